"""Bytes -> str for HTML bodies, and a cheap "is this text at all?" check.

Why: the extractors take ``str``; the wrong charset silently turns a page into mojibake that
later passes language ID with a low score or not at all. Order, as browsers do it: BOM, HTTP
charset, ``<meta charset>`` / ``http-equiv`` in the first bytes, then UTF-8; a declared charset
that does not decode cleanly is not trusted, and uchardet (shipped in resiliparse) guesses.
A legacy (non-Unicode) label never beats bytes that are valid UTF-8 with non-ASCII in them:
single-byte codecs decode any bytes, so "decodes cleanly" proves nothing for them, UTF-8 pages
served as ``iso-8859-1`` (Apache's default) are common, and real legacy text is practically
never valid UTF-8 (none of 19 language/codec pairs, 500 real sentences each as one page: German
cp1252, Russian cp1251/koi8-r, Japanese Shift_JIS, Chinese GBK/Big5, Korean EUC-KR).
Nothing here raises: the last resort is UTF-8 with replacement characters.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["decode_html", "binary_ratio", "normalize_charset"]

_META_RE = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]{1,40})""",
    re.I,
)
_META_WINDOW = 4096
# WHATWG: these labels mean windows-1252 in HTML (the bytes 0x80-0x9f are printable there)
_WHATWG_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "windows-1252": "cp1252",
    "iso-8859-9": "cp1254",
    "x-sjis": "shift_jis",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# C0 controls except tab, LF, FF and CR, plus DEL and U+FFFD (what a failed decode leaves)
_BINARY_CHAR = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")

try:  # uchardet via resiliparse (a declared dependency); guarded so decoding never fails
    from resiliparse.parse.encoding import detect_encoding as _detect
except Exception:  # noqa: BLE001
    _detect = None


def normalize_charset(label: str | None) -> str | None:
    """Python codec name for an HTTP/HTML charset label, None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _WHATWG_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _try(data: bytes, enc: str | None) -> str | None:
    if not enc:
        return None
    try:
        return data.decode(enc)
    except (UnicodeDecodeError, LookupError):
        return None


def _legacy(enc: str) -> bool:
    """A codec label that UTF-8 overrides: anything but the Unicode encodings (UTF-16 without
    a BOM is not checked: its ASCII-range text is valid UTF-8 too)."""
    return not enc.startswith("utf")


def _attempt(data: bytes, enc: str | None, tried: set[str]) -> tuple[str, str] | None:
    """Decode with ``enc``, but with UTF-8 first when ``enc`` is legacy and the body not ASCII.

    ``tried`` collects the codecs already run on this body, so each runs at most once per page
    (one strict decode in C, no per-character Python).
    """
    if not enc or enc in tried:
        return None
    if _legacy(enc) and "utf-8" not in tried and not data.isascii():
        tried.add("utf-8")
        text = _try(data, "utf-8")
        if text is not None:
            return text, "utf-8"
    tried.add(enc)
    text = _try(data, enc)
    return None if text is None else (text, enc)


def decode_html(data: bytes, http_charset: str | None = None) -> tuple[str, str]:
    """Decode an HTML body; returns (text, codec used). Never raises."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(enc, "replace"), enc
    tried: set[str] = set()
    declared = normalize_charset(http_charset)
    got = _attempt(data, declared, tried)
    if got is not None:
        return got
    m = _META_RE.search(data, 0, _META_WINDOW)
    meta = normalize_charset(m.group(1).decode("ascii", "replace")) if m else None
    got = _attempt(data, meta, tried) or _attempt(data, "utf-8", tried)
    if got is not None:
        return got
    guess = None
    if _detect is not None:
        try:
            guess = normalize_charset(_detect(data))
        except Exception:  # noqa: BLE001
            guess = None
    # a declared charset that failed strict decoding still beats a guess when it is
    # multi-byte (a few broken sequences in a GBK page); otherwise trust the detector
    for enc in (guess, meta, declared):
        if enc and enc not in tried:  # those failed already
            text = _try(data, enc)
            if text is not None:
                return text, enc
    enc = guess or meta or declared or "utf-8"
    return data.decode(enc, "replace"), enc


def binary_ratio(text: str, window: int = 2048) -> float:
    """Share of NUL/control/replacement characters in the first ``window`` chars.

    Random or binary payloads served as text/html decode to a high ratio (>0.1); real pages,
    whatever the language, stay near 0.
    """
    head = text[:window]
    if not head:
        return 0.0
    return len(_BINARY_CHAR.findall(head)) / len(head)
