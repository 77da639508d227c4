"""Word segmentation for languages written without spaces (Thai, Chinese, Japanese, Lao, ...).

Why: the Gopher/C4/FineWeb statistics count words, word lengths, stop words and word
n-gram repetition. Whitespace finds no words in Thai or Chinese, and one character per word
(the old fallback) makes ordinary Thai prose look repetitive: its 5-"grams" of letters repeat
(issue 21: 3 of 4 clean Thai documents dropped as ``gopher_repetition.dup_5gram``). So the
quality stage asks this module for real words in those languages, and keeps whitespace
splitting everywhere else.

Segmenters (measured on 24-sentence documents of real sentences, one core, ms per document;
``python -m benchmarks.multilingual --segmenters``):

| name | languages | engine | ms/doc |
|---|---|---|---|
| ``icu`` | th, lo, km, my, ja (default) | ICU word BreakIterator (PyICU; dictionary-based for Thai, Lao, Khmer, Burmese, CJ) | th 0.26, ja 0.43 |
| ``rjieba`` | zh (default) | jieba-rs (Rust port of jieba) | 0.18 |
| ``fugashi`` | ja (option) | MeCab + unidic-lite | 2.15 (over the 1.5x budget; not default) |
| ``unicode`` | fallback | runs of one script (``regex`` ``\\w+``-style), no dictionary | 0.05 |

Output: the text with words separated by spaces, so the whitespace machinery of
:mod:`stages.text_stats` counts them. Punctuation tokens stick to the preceding word (as in
whitespace languages, where ``word,`` is one token).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DEFAULT_SEGMENTERS", "SEGMENTERS", "get_segmenter", "segment_texts"]

DEFAULT_SEGMENTERS: dict[str, str] = {
    "th": "icu",
    "lo": "icu",
    "km": "icu",
    "my": "icu",
    "bo": "unicode",
    "zh": "rjieba",
    "ja": "icu",
}
SEGMENTERS = ("icu", "rjieba", "fugashi", "unicode")

Tokenizer = Callable[[str], list[str]]


@cache
def _icu(lang: str) -> Tokenizer | None:
    try:
        import icu
    except ImportError:  # PyICU needs the system ICU library; fall back to script runs
        return None
    bi = icu.BreakIterator.createWordInstance(icu.Locale(lang))

    def tok(text: str) -> list[str]:
        bi.setText(text)
        out, p = [], bi.first()
        for q in bi:
            out.append(text[p:q])
            p = q
        return out

    return tok


@cache
def _rjieba() -> Tokenizer:
    import rjieba

    return rjieba.cut


@cache
def _fugashi() -> Tokenizer:
    import fugashi

    tagger = fugashi.Tagger()
    return lambda text: [w.surface for w in tagger(text)]


@cache
def _unicode() -> Tokenizer:
    import regex

    pat = regex.compile(r"\p{L}[\p{M}\p{L}]*|\p{N}+|[^\s\p{L}\p{N}]")
    return pat.findall


def get_segmenter(name: str, lang: str) -> Tokenizer:
    """Tokenizer function ``text -> tokens`` for a segmenter name (see SEGMENTERS)."""
    if name == "icu":
        return _icu(lang) or _unicode()
    if name == "rjieba":
        return _rjieba()
    if name == "fugashi":
        return _fugashi()
    if name == "unicode":
        return _unicode()
    raise ValueError(f"unknown segmenter {name!r}; one of {SEGMENTERS}")


def segment_texts(texts: list[str], name: str, lang: str) -> list[str]:
    """Each text with its words separated by spaces, for the word statistics.

    Punctuation tokens are glued back to the word before them (one Arrow regex pass over the
    batch), so a segmented language tokenizes like a whitespace one (``word,``).
    """
    tok = get_segmenter(name, lang)
    spaced = pa.array([" ".join(tok(t)) for t in texts], pa.large_string())
    glued = pc.replace_substring_regex(spaced, r"\s+([\p{P}\p{S}])", r"\1")
    return glued.to_pylist()
