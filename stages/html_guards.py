"""Cheap estimates that keep hostile pages away from the HTML parsers.

Why: lxml is superlinear in the attributes of one tag and resiliparse's main-content pass is
quadratic in nesting depth, and neither can be interrupted inside C. So the extraction stage
measures both before any parser sees a page (``extract.too_large`` /
``extract.too_many_attributes``). Every page pays for these checks, so they are linear, have
no Python step per tag, and return early when a page cannot reach the cap.

Each function takes the decoded page and, optionally, ``raw``: the bytes it was decoded from
**as UTF-8** (with or without replacement characters). In UTF-8 every byte below 0x80 is the
ASCII character itself and no multi-byte sequence contains one, so ``<``, ``/``, ``=`` and
space can be counted and tags located on the bytes with numpy, several times faster than on
a ``str``. The answers with ``raw`` equal the answers without it (a hypothesis property in
tests/stages/test_html_guards.py); pages in other encodings take the ``str`` path.
"""

from __future__ import annotations

import functools
import re

import numpy as np

__all__ = ["max_attributes", "nesting_depth"]

_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr p li option".split()
)
# An opening or closing tag whose name is not void: group 1 is "/" for a closing tag.
_DEPTH_TAG = r"<(/?)(?!(?:" + "|".join(sorted(_VOID)) + r")(?![a-zA-Z0-9]))[a-zA-Z]"
_DEPTH_TAG_RE = re.compile(_DEPTH_TAG, re.IGNORECASE | re.ASCII)  # ASCII: "ſ" is not an "s"
_DEPTH_TAG_RE_BYTES = re.compile(_DEPTH_TAG.encode(), re.IGNORECASE)  # bytes: ASCII only
_ATTR_RE = re.compile(r"""[\s/]+[^\s=/>"']+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']*))?""")
_LT, _GT, _SLASH, _EQ, _SPACE = (ord(c) for c in "<>/= ")


@functools.lru_cache(maxsize=8)
def _long_open_tag_re(cap: int) -> re.Pattern[str]:
    """Opening tags longer than ``cap`` characters (only those can carry more than ``cap``
    attributes): the regex engine skips the short ones without a Python step per tag."""
    return re.compile("<[A-Za-z][^<>]{" + str(max(cap - 1, 0)) + ",}")


def _depth_walk(closes: np.ndarray) -> int:
    """Maximum of the +1/-1 walk over tags clamped at 0, as a running sum minus its running
    minimum (a closing tag at depth 0 is ignored)."""
    if closes.size == 0:
        return 0
    walk = np.cumsum(1 - 2 * closes)
    return int((walk - np.minimum(np.minimum.accumulate(walk), 0)).max())


def nesting_depth(html: str, cap: int, raw: bytes | None = None) -> int:
    """Estimated maximum tag depth; cheap (a count) unless the page could be deeper than cap.

    ``p``, ``li`` and ``option`` count as void: their end tags are optional in HTML and
    unclosed ones would otherwise look like nesting. Returns 0 when there are at most ``cap``
    more opening than closing tags (the page cannot be deeper).
    """
    if raw is not None:
        a = np.frombuffer(raw, np.uint8)
        lt = a == _LT
        opening = int(np.count_nonzero(lt)) - int(np.count_nonzero(lt[:-1] & (a[1:] == _SLASH)))
        if opening <= cap:
            return 0
        return _depth_walk(np.fromiter(map(len, _DEPTH_TAG_RE_BYTES.findall(raw)), np.int64))
    if html.count("<") - html.count("</") <= cap:
        return 0
    return _depth_walk(np.fromiter(map(len, _DEPTH_TAG_RE.findall(html)), np.int64))


def _long_tags_utf8(raw: bytes, cap: int) -> list[str]:
    """The opening tags of at least ``cap + 1`` characters (``<``, a letter, then no ``<`` or
    ``>``), located on UTF-8 bytes and decoded one by one. Their boundaries are ASCII bytes,
    which no UTF-8 sequence (valid or not) spans, so each equals its slice of the decoded page.
    """
    a = np.frombuffer(raw, np.uint8)
    delim = np.flatnonzero((a == _LT) | (a == _GT))
    if delim.size == 0:
        return []
    ends = np.append(delim[1:], a.size)  # the tag runs up to the next < or >
    # a tag's bytes are at least its characters: a shorter byte run cannot be long enough
    cand = (a[delim] == _LT) & (ends - delim >= cap + 1) & (delim + 1 < a.size)
    starts, ends = delim[cand], ends[cand]
    if starts.size == 0:
        return []
    name = a[starts + 1] | 0x20  # ASCII lower case
    letter = (name >= ord("a")) & (name <= ord("z"))
    spans = zip(starts[letter].tolist(), ends[letter].tolist(), strict=True)
    tags = (raw[s:e].decode("utf-8", "replace") for s, e in spans)
    return [t for t in tags if len(t) >= cap + 1]


def max_attributes(html: str, cap: int, raw: bytes | None = None) -> int:
    """Estimated attribute count of the busiest tag; linear time, cheap unless it could exceed cap.

    Counts attributes after the tag name (``a=1 b c='x y'`` is 3), skipping quoted values.
    Tags of at most ``cap`` characters are not counted (they cannot exceed it), and 0 is
    returned when the whole page has at most ``cap`` ``=`` and spaces.
    """
    if raw is not None:
        a = np.frombuffer(raw, np.uint8)
        if int(np.count_nonzero(a == _EQ)) + int(np.count_nonzero(a == _SPACE)) <= cap:
            return 0
        tags = _long_tags_utf8(raw, cap)
    else:
        if html.count("=") + html.count(" ") <= cap:
            return 0  # not enough separators anywhere for one tag to exceed the cap
        tags = [m.group(0) for m in _long_open_tag_re(cap).finditer(html)]
    return max((len(_ATTR_RE.findall(t)) for t in tags), default=0)
