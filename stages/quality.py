"""Quality stage: URL rules, Gopher / C4 / FineWeb heuristics, optional fastText score, bucket.

Why this shape: the published rule sets (thresholds in docs/ANCHORS, cited per field) are cheap
per document but datatrove runs them as separate Python filters that re-split the text each
time (~25 docs/s for the chain). Here every split is made once per batch by
:class:`stages.text_stats.TextStats` with Arrow string kernels and numpy, and every rule is a
vectorized comparison of a signal column against a per-document threshold array (so
``per_language`` overrides cost nothing extra).

Contract (docs/architecture.md): same rows, same order; appends ``q_*`` signal columns,
``quality_score`` (float32, P(hq) from the model, null without one), ``quality_bucket``
(``high``/``mid``/``low`` for kept rows), sets ``drop_reason``/``drop_detail`` only on rows
whose ``drop_reason`` is null. Rows dropped earlier get null signals.

Fixed rule order (first failing rule wins; the order of FineWeb's pipeline):
  1. ``url.blocklist``, ``url.banned_substring``
  2. C4 line filter (see below), then ``c4.all_lines_removed``
  3. ``gopher_repetition.``: dup_para_fraction, dup_para_char_fraction, dup_line_fraction,
     dup_line_char_fraction, top_{2,3,4}gram, dup_{5..10}gram
  4. ``gopher_quality.``: word_count, mean_word_length, symbol_word_ratio, bullet_lines,
     ellipsis_lines, alpha_words, stop_words
  5. ``c4.``: lorem_ipsum, curly_bracket, too_few_sentences
  6. ``fineweb.``: line_punct_ratio, short_line_ratio, dup_line_char_ratio, newline_word_ratio
  7. ``quality_model.low_score`` (only with a model and ``model.min_score``)

C4 line filter and ``text``: as FineWeb's C4 filter, lines with a word > 1000 chars, < 3 words,
"javascript" or policy text are REMOVED from ``text`` (``c4.remove_lines``, default on). We do
this before all other rules (FineWeb ran Gopher before it), so every signal describes the text
that is actually kept; blank lines between kept lines are kept (collapsed to one) so paragraph
rules still see paragraphs. Documents with no removed line keep their text byte-identical; the
number of removed lines is ``q_c4_lines_removed`` and the original is one range read away
(source_offset/length). With ``remove_lines: false`` the lines are only counted, never removed.

Words: see text_stats (each CJK/Thai/... character is a word). Mean word length is skipped
(null) when more than ``gopher_quality.max_char_unit_fraction`` of the words are such
characters. Stop words apply only to documents whose ``lang`` has a list.

Bucket without a model (cheap, deterministic): count the "soft signals" of a kept document,
i.e. signals on the wrong side of the softer bounds in ``bucket.soft_min``/``bucket.soft_max``
(column ``q_soft_signals``); ``<= bucket.high_max_soft`` -> high, ``<= bucket.mid_max_soft`` ->
mid, else low. With a model: P(hq) >= ``bucket.high_min_score`` -> high, >= ``mid_min_score``
-> mid, else low.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stages.quality_model import QualityModelConfig, QualityScorer
from stages.text_stats import (
    DEFAULT_CHAR_UNIT_SCRIPTS,
    Segments,
    TextStats,
    per_doc_sum,
)
from stages.url_filter import UrlFilter, UrlFilterConfig

__all__ = [
    "BucketConfig",
    "C4Config",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "QualityConfig",
    "QualityFilter",
    "RULE_ORDER",
    "SIGNAL_COLUMNS",
]

_TOP_NS = (2, 3, 4)
_DUP_NS = (5, 6, 7, 8, 9, 10)
_ANCHOR = "docs: ../shared/ANCHORS.md"

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
# Non-English lists are ours: the most frequent function words of each language, so that
# ">= 2 of them" keeps ordinary prose as Gopher's English list does (FineWeb-2 derived its
# per-language lists from corpus statistics instead).
_DEFAULT_STOP_WORDS: dict[str, list[str]] = {
    "en": GOPHER_STOP_WORDS,
    "de": ["der", "die", "das", "und", "ist", "nicht", "mit", "von", "zu", "den", "ein", "sich"],
    "fr": ["le", "la", "les", "de", "et", "est", "des", "un", "une", "que", "pour", "dans"],
    "es": ["el", "la", "de", "que", "y", "en", "los", "las", "del", "por", "con", "una"],
    "it": ["il", "di", "che", "la", "e", "per", "un", "una", "non", "sono", "con", "del"],
    "nl": ["de", "het", "een", "en", "van", "is", "dat", "op", "te", "niet", "met", "voor"],
    "pt": ["o", "a", "de", "que", "e", "do", "da", "em", "um", "para", "com", "não"],
}
_TERMINAL_PUNCT = [
    ".",
    "!",
    "?",
    '"',
    "'",
    "”",
    "’",
    "…",
    ")",
    "。",
    "！",
    "？",
    "．",
    "｡",
    "؟",
    "۔",
    "।",
    "॥",
    "።",
    "။",
    "។",
    "៕",
    ":",
    ";",
    "」",
    "』",
]
_POLICY = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
]


class GopherQualityConfig(BaseModel):
    """Gopher quality rules (Rae et al. 2021, as run by FineWeb). A None threshold = rule off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Apply the gopher_quality family.")
    min_words: int | None = Field(
        default=50, description=f"Drop docs with fewer words (Gopher/FineWeb 50; {_ANCHOR})."
    )
    max_words: int | None = Field(
        default=100_000, description=f"Drop docs with more words (Gopher 100,000; {_ANCHOR})."
    )
    min_mean_word_length: float | None = Field(
        default=3.0, description=f"Min mean word length in chars (Gopher 3; {_ANCHOR})."
    )
    max_mean_word_length: float | None = Field(
        default=10.0, description=f"Max mean word length in chars (Gopher 10; {_ANCHOR})."
    )
    max_char_unit_fraction: float = Field(
        default=0.5,
        description="Skip the mean-word-length rule when more than this fraction of words are "
        "single CJK/Thai/... characters (ours: the rule is meaningless for those scripts).",
    )
    max_symbol_word_ratio: float | None = Field(
        default=0.1,
        description=f"Max ratio of '#' or of ellipses ('...', '…') to words, each (Gopher 0.1; "
        f"{_ANCHOR}).",
    )
    max_bullet_lines_ratio: float | None = Field(
        default=0.9,
        description=f"Max fraction of lines starting with a bullet (Gopher 0.9; {_ANCHOR}).",
    )
    bullet_chars: list[str] = Field(
        default_factory=lambda: ["•", "-", "*", "·", "●", "▪", "◦", "‣", "⁃"],
        description="Line prefixes counted as bullets (datatrove uses • and -; rest ours).",
    )
    max_ellipsis_lines_ratio: float | None = Field(
        default=0.3,
        description=f"Max fraction of lines ending in an ellipsis (Gopher 0.3; {_ANCHOR}).",
    )
    min_alpha_words_ratio: float | None = Field(
        default=0.8,
        description=f"Min fraction of words containing a letter (Gopher 0.8; {_ANCHOR}).",
    )
    min_stop_words: int | None = Field(
        default=2,
        description=f"Min number of stop-word occurrences (Gopher 2; {_ANCHOR}); applied only "
        "to docs whose lang has a list in stop_words.",
    )
    stop_words: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in _DEFAULT_STOP_WORDS.items()},
        description="Stop-word list per language code. 'en' is Gopher's {the, be, to, of, and, "
        "that, have, with}; de/fr/es/it/nl/pt are our lists of frequent function words "
        "(FineWeb-2 adapted the rule per language). Matched case-insensitively on words "
        "without surrounding punctuation.",
    )


class GopherRepetitionConfig(BaseModel):
    """Gopher repetition rules (as run by FineWeb). A None threshold = rule off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Apply the gopher_repetition family.")
    max_dup_para_fraction: float | None = Field(
        default=0.3, description=f"Max fraction of duplicated paragraphs (Gopher 0.30; {_ANCHOR})."
    )
    max_dup_para_char_fraction: float | None = Field(
        default=0.2,
        description=f"Max fraction of chars in duplicated paragraphs (Gopher 0.20; {_ANCHOR}).",
    )
    max_dup_line_fraction: float | None = Field(
        default=0.3, description=f"Max fraction of duplicated lines (Gopher 0.30; {_ANCHOR})."
    )
    max_dup_line_char_fraction: float | None = Field(
        default=0.2,
        description=f"Max fraction of chars in duplicated lines (Gopher 0.20; {_ANCHOR}).",
    )
    max_top_ngram_char_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description=f"n -> max fraction of chars in the most frequent word n-gram (Gopher "
        f"0.20/0.18/0.16 for n=2/3/4; {_ANCHOR}). Counted only if it occurs at least twice.",
    )
    max_dup_ngram_char_fraction: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description=f"n -> max fraction of chars covered by repeated word n-grams (Gopher "
        f"0.15..0.10 for n=5..10; {_ANCHOR}).",
    )

    @field_validator("max_top_ngram_char_fraction", "max_dup_ngram_char_fraction")
    @classmethod
    def _check_ns(cls, v: dict[int, float], info: Any) -> dict[int, float]:
        allowed = _TOP_NS if info.field_name == "max_top_ngram_char_fraction" else _DUP_NS
        bad = set(v) - set(allowed)
        if bad:
            raise ValueError(f"n-gram sizes {sorted(bad)} not supported; use {allowed}")
        return v


class C4Config(BaseModel):
    """C4 rules (Raffel et al. 2020, as run by FineWeb): line removal and document rules."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Apply the c4 family (lines and docs).")
    remove_lines: bool = Field(
        default=True,
        description="Remove failing lines from `text` before all other rules (FineWeb's C4 "
        "filter modifies text). False = lines are only counted (q_c4_lines_removed).",
    )
    line_max_word_length: int | None = Field(
        default=1000, description=f"Remove lines with a word longer than this (C4 1000; {_ANCHOR})."
    )
    line_min_words: int | None = Field(
        default=3, description=f"Remove lines with fewer words (C4 3; {_ANCHOR})."
    )
    line_drop_javascript: bool = Field(
        default=True, description=f"Remove lines containing 'javascript' (C4; {_ANCHOR})."
    )
    line_drop_policy: bool = Field(
        default=True, description=f"Remove lines containing policy_substrings (C4; {_ANCHOR})."
    )
    policy_substrings: list[str] = Field(
        default_factory=lambda: list(_POLICY),
        description="Case-insensitive policy/cookie phrases (C4's list).",
    )
    line_require_terminal_punct: bool = Field(
        default=False,
        description=f"Remove lines not ending in terminal punctuation (C4 on; FineWeb turned "
        f"it off: default off; {_ANCHOR}).",
    )
    drop_lorem_ipsum: bool = Field(
        default=True, description=f"Drop docs containing 'lorem ipsum' (C4; {_ANCHOR})."
    )
    drop_curly_bracket: bool = Field(
        default=True, description=f"Drop docs containing '{{' (C4; {_ANCHOR})."
    )
    min_sentences: int | None = Field(
        default=5, description=f"Drop docs with fewer sentences (C4 5; {_ANCHOR})."
    )


class FineWebConfig(BaseModel):
    """FineWeb's own rules (Penedo et al. 2024). A None threshold = rule off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Apply the fineweb family.")
    min_line_punct_ratio: float | None = Field(
        default=0.12,
        description=f"Min fraction of lines ending in terminal punctuation (FineWeb 0.12; "
        f"{_ANCHOR}).",
    )
    terminal_punctuation: list[str] = Field(
        default_factory=lambda: list(_TERMINAL_PUNCT),
        description="Line endings counted as terminal punctuation (multilingual, as "
        "datatrove's TERMINAL_PUNCTUATION idea; list ours).",
    )
    max_short_line_ratio: float | None = Field(
        default=0.67,
        description=f"Drop if the fraction of short lines is >= this (FineWeb 0.67; {_ANCHOR}).",
    )
    short_line_length: int = Field(
        default=30, description="A line of at most this many chars is short (FineWeb 30)."
    )
    max_dup_line_char_ratio: float | None = Field(
        default=0.01,
        description=f"Drop if chars in duplicated lines / non-newline chars >= this (FineWeb "
        f"0.01; {_ANCHOR}).",
    )
    max_newline_word_ratio: float | None = Field(
        default=0.3,
        description=f"Max line breaks per word (FineWeb 0.3; {_ANCHOR}); line breaks counted "
        "as non-empty lines - 1.",
    )


class BucketConfig(BaseModel):
    """How kept documents are assigned to ``quality_bucket`` (the output partition)."""

    model_config = ConfigDict(extra="forbid")

    high_min_score: float = Field(
        default=0.8, description="With a model: P(hq) >= this -> 'high' (ours)."
    )
    mid_min_score: float = Field(
        default=0.5, description="With a model: P(hq) >= this -> 'mid', below -> 'low' (ours)."
    )
    soft_min: dict[str, float] = Field(
        default_factory=lambda: {
            "q_word_count": 200,
            "q_line_punct_ratio": 0.5,
            "q_alpha_word_ratio": 0.9,
        },
        description="Without a model: a signal below its value counts one soft signal (ours: "
        "roughly halfway between the hard threshold and typical clean prose).",
    )
    soft_max: dict[str, float] = Field(
        default_factory=lambda: {
            "q_symbol_word_ratio": 0.05,
            "q_short_line_ratio": 0.4,
            "q_dup_line_char_fraction": 0.05,
            "q_newline_word_ratio": 0.15,
            "q_top_2gram_char_fraction": 0.1,
            "q_c4_lines_removed": 20,
        },
        description="Without a model: a signal above its value counts one soft signal (ours).",
    )
    high_max_soft: int = Field(default=0, description="<= this many soft signals -> 'high'.")
    mid_max_soft: int = Field(default=2, description="<= this many -> 'mid', more -> 'low'.")


_LANG_SECTIONS = ("gopher_quality", "gopher_repetition", "c4", "fineweb", "bucket")


class QualityConfig(BaseModel):
    """Quality stage configuration (rule families, model, buckets, per-language overrides)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Run the quality stage at all.")
    url: UrlFilterConfig = Field(default_factory=UrlFilterConfig, description="URL rules.")
    gopher_repetition: GopherRepetitionConfig = Field(
        default_factory=GopherRepetitionConfig, description="Gopher repetition rules."
    )
    gopher_quality: GopherQualityConfig = Field(
        default_factory=GopherQualityConfig, description="Gopher quality rules."
    )
    c4: C4Config = Field(default_factory=C4Config, description="C4 line and document rules.")
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig, description="FineWeb rules.")
    model: QualityModelConfig = Field(
        default_factory=QualityModelConfig, description="Optional fastText quality classifier."
    )
    bucket: BucketConfig = Field(default_factory=BucketConfig, description="quality_bucket rules.")
    char_unit_scripts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHAR_UNIT_SCRIPTS),
        description="Unicode scripts (RE2 names) written without spaces: each character counts "
        "as one word (ours; keeps word-count rules meaningful for zh/ja/th).",
    )
    default_lang: str | None = Field(
        default="en",
        description="Language assumed when the batch has no `lang` column or it is null "
        "(Gopher's rules are English-centred).",
    )
    per_language: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per language code, overrides deep-merged over the sections "
        f"{', '.join(_LANG_SECTIONS)}, e.g. {{zh: {{gopher_quality: {{min_words: 100}}}}}}.",
    )

    @field_validator("per_language")
    @classmethod
    def _check_sections(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for lang, over in v.items():
            bad = set(over) - set(_LANG_SECTIONS)
            if bad:
                raise ValueError(
                    f"per_language.{lang}: cannot override {sorted(bad)}; allowed: {_LANG_SECTIONS}"
                )
        return v

    def for_language(self, lang: str | None) -> QualityConfig:
        """This config with ``per_language[lang]`` deep-merged over it (validated)."""
        over = self.per_language.get(lang or "")
        if not over:
            return self
        return QualityConfig.model_validate(_deep_merge(self.model_dump(), over))


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- rules

Getter = Callable[[QualityConfig, "str | None"], "float | None"]


@dataclass(frozen=True)
class _Rule:
    reason: str
    signal: str
    op: str  # drop if  value <op> threshold ; one of "<", ">", ">="
    get: Getter
    label: str


def _g(section: str, attr: str) -> Getter:
    def get(c: QualityConfig, _lang: str | None) -> float | None:
        sec = getattr(c, section)
        return getattr(sec, attr) if sec.enabled else None

    return get


def _flag(section: str, attr: str) -> Getter:
    def get(c: QualityConfig, _lang: str | None) -> float | None:
        sec = getattr(c, section)
        return 0.0 if sec.enabled and getattr(sec, attr) else None

    return get


def _ngram(kind: str, n: int) -> Getter:
    def get(c: QualityConfig, _lang: str | None) -> float | None:
        sec = c.gopher_repetition
        return getattr(sec, kind).get(n) if sec.enabled else None

    return get


def _stop(c: QualityConfig, lang: str | None) -> float | None:
    sec = c.gopher_quality
    if not sec.enabled or lang is None or lang not in sec.stop_words:
        return None
    return sec.min_stop_words


def _all_removed(c: QualityConfig, _lang: str | None) -> float | None:
    return 0.5 if c.c4.enabled and c.c4.remove_lines else None


RULES: tuple[_Rule, ...] = (
    _Rule("c4.all_lines_removed", "q_c4_all_lines_removed", ">", _all_removed, "all lines removed"),
    _Rule(
        "gopher_repetition.dup_para_fraction",
        "q_dup_para_fraction",
        ">",
        _g("gopher_repetition", "max_dup_para_fraction"),
        "dup_para_fraction",
    ),
    _Rule(
        "gopher_repetition.dup_para_char_fraction",
        "q_dup_para_char_fraction",
        ">",
        _g("gopher_repetition", "max_dup_para_char_fraction"),
        "dup_para_char_fraction",
    ),
    _Rule(
        "gopher_repetition.dup_line_fraction",
        "q_dup_line_fraction",
        ">",
        _g("gopher_repetition", "max_dup_line_fraction"),
        "dup_line_fraction",
    ),
    _Rule(
        "gopher_repetition.dup_line_char_fraction",
        "q_dup_line_char_fraction",
        ">",
        _g("gopher_repetition", "max_dup_line_char_fraction"),
        "dup_line_char_fraction",
    ),
    *(
        _Rule(
            f"gopher_repetition.top_{n}gram",
            f"q_top_{n}gram_char_fraction",
            ">",
            _ngram("max_top_ngram_char_fraction", n),
            f"top_{n}gram_char_fraction",
        )
        for n in _TOP_NS
    ),
    *(
        _Rule(
            f"gopher_repetition.dup_{n}gram",
            f"q_dup_{n}gram_char_fraction",
            ">",
            _ngram("max_dup_ngram_char_fraction", n),
            f"dup_{n}gram_char_fraction",
        )
        for n in _DUP_NS
    ),
    _Rule(
        "gopher_quality.word_count",
        "q_word_count",
        "<",
        _g("gopher_quality", "min_words"),
        "word_count",
    ),
    _Rule(
        "gopher_quality.word_count",
        "q_word_count",
        ">",
        _g("gopher_quality", "max_words"),
        "word_count",
    ),
    _Rule(
        "gopher_quality.mean_word_length",
        "q_mean_word_length",
        "<",
        _g("gopher_quality", "min_mean_word_length"),
        "mean_word_length",
    ),
    _Rule(
        "gopher_quality.mean_word_length",
        "q_mean_word_length",
        ">",
        _g("gopher_quality", "max_mean_word_length"),
        "mean_word_length",
    ),
    _Rule(
        "gopher_quality.symbol_word_ratio",
        "q_symbol_word_ratio",
        ">",
        _g("gopher_quality", "max_symbol_word_ratio"),
        "symbol_word_ratio",
    ),
    _Rule(
        "gopher_quality.bullet_lines",
        "q_bullet_line_ratio",
        ">",
        _g("gopher_quality", "max_bullet_lines_ratio"),
        "bullet_line_ratio",
    ),
    _Rule(
        "gopher_quality.ellipsis_lines",
        "q_ellipsis_line_ratio",
        ">",
        _g("gopher_quality", "max_ellipsis_lines_ratio"),
        "ellipsis_line_ratio",
    ),
    _Rule(
        "gopher_quality.alpha_words",
        "q_alpha_word_ratio",
        "<",
        _g("gopher_quality", "min_alpha_words_ratio"),
        "alpha_word_ratio",
    ),
    _Rule("gopher_quality.stop_words", "q_stop_word_count", "<", _stop, "stop_word_count"),
    _Rule(
        "c4.lorem_ipsum",
        "q_c4_lorem_ipsum",
        ">",
        _flag("c4", "drop_lorem_ipsum"),
        "contains 'lorem ipsum'",
    ),
    _Rule(
        "c4.curly_bracket",
        "q_c4_curly_bracket",
        ">",
        _flag("c4", "drop_curly_bracket"),
        "contains '{'",
    ),
    _Rule(
        "c4.too_few_sentences", "q_sentence_count", "<", _g("c4", "min_sentences"), "sentence_count"
    ),
    _Rule(
        "fineweb.line_punct_ratio",
        "q_line_punct_ratio",
        "<",
        _g("fineweb", "min_line_punct_ratio"),
        "line_punct_ratio",
    ),
    _Rule(
        "fineweb.short_line_ratio",
        "q_short_line_ratio",
        ">=",
        _g("fineweb", "max_short_line_ratio"),
        "short_line_ratio",
    ),
    _Rule(
        "fineweb.dup_line_char_ratio",
        "q_fineweb_dup_line_char_ratio",
        ">=",
        _g("fineweb", "max_dup_line_char_ratio"),
        "dup_line_char_ratio",
    ),
    _Rule(
        "fineweb.newline_word_ratio",
        "q_newline_word_ratio",
        ">",
        _g("fineweb", "max_newline_word_ratio"),
        "newline_word_ratio",
    ),
)

RULE_ORDER: tuple[str, ...] = (
    "url.blocklist",
    "url.banned_substring",
    *dict.fromkeys(r.reason for r in RULES),
    "quality_model.low_score",
)

_INT_SIGNALS = (
    "q_char_count",
    "q_line_count",
    "q_word_count",
    "q_stop_word_count",
    "q_c4_lines_removed",
    "q_c4_all_lines_removed",
    "q_c4_lorem_ipsum",
    "q_c4_curly_bracket",
    "q_sentence_count",
    "q_soft_signals",
)
_FLOAT_SIGNALS = (
    "q_char_unit_fraction",
    "q_mean_word_length",
    "q_symbol_word_ratio",
    "q_bullet_line_ratio",
    "q_ellipsis_line_ratio",
    "q_alpha_word_ratio",
    "q_dup_para_fraction",
    "q_dup_para_char_fraction",
    "q_dup_line_fraction",
    "q_dup_line_char_fraction",
    *(f"q_top_{n}gram_char_fraction" for n in _TOP_NS),
    *(f"q_dup_{n}gram_char_fraction" for n in _DUP_NS),
    "q_line_punct_ratio",
    "q_short_line_ratio",
    "q_fineweb_dup_line_char_ratio",
    "q_newline_word_ratio",
)
SIGNAL_COLUMNS: tuple[str, ...] = (*_INT_SIGNALS, *_FLOAT_SIGNALS)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


def _alt(items: list[str]) -> str:
    return "|".join(re.escape(s) for s in items if s)


def _fmt(v: float) -> str:
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.4g}"


# --------------------------------------------------------------------------- the stage


class QualityFilter:
    """The quality stage: ``QualityFilter(cfg)(table) -> table`` (see module docstring)."""

    def __init__(self, cfg: QualityConfig | None = None) -> None:
        self.cfg = cfg or QualityConfig()
        self.url_filter = UrlFilter(self.cfg.url)
        self.scorer = QualityScorer(self.cfg.model) if self.cfg.model.path else None
        for name in (*self.cfg.bucket.soft_min, *self.cfg.bucket.soft_max):
            if name not in SIGNAL_COLUMNS:
                raise ValueError(f"bucket soft signal {name!r} is not one of {SIGNAL_COLUMNS}")
        self._lang_cfg: dict[str | None, QualityConfig] = {}
        self._units = tuple(self.cfg.char_unit_scripts)

    # ----------------------------------------------------------------- helpers

    def _resolve(self, lang: str | None) -> QualityConfig:
        if lang not in self._lang_cfg:
            self._lang_cfg[lang] = self.cfg.for_language(lang)
        return self._lang_cfg[lang]

    def _groups(self, langs: list[str | None]) -> tuple[list[str | None], np.ndarray]:
        """Distinct effective languages and each document's index into them."""
        eff = [x if x else self.cfg.default_lang for x in langs]
        uniq: dict[str | None, int] = {}
        idx = np.fromiter((uniq.setdefault(x, len(uniq)) for x in eff), np.int64, len(eff))
        return list(uniq), idx

    @staticmethod
    def _param(values: list[Any], idx: np.ndarray) -> np.ndarray:
        arr = np.array([np.nan if v is None else float(v) for v in values], np.float64)
        return arr[idx] if len(arr) else np.zeros(0)

    @staticmethod
    def _mask_by_group(
        seg: Segments, grp_of_piece: np.ndarray, patterns: list[str | None], ignore_case: bool
    ) -> np.ndarray:
        """Per piece: its group's RE2 pattern matches (one pass per distinct pattern)."""
        out = np.zeros(len(seg.values), bool)
        for pat in dict.fromkeys(p for p in patterns if p):
            hit = seg.mask(pat, ignore_case)
            sel = np.isin(grp_of_piece, [i for i, p in enumerate(patterns) if p == pat])
            out |= hit & sel
        return out

    # ----------------------------------------------------------------- C4 lines

    def _c4_lines(
        self, st: TextStats, cfgs: list[QualityConfig], gi: np.ndarray
    ) -> tuple[dict[str, np.ndarray], pa.Array | None]:
        raw = st.raw_lines
        g = gi[raw.doc] if len(raw.doc) else np.zeros(0, np.int64)
        nonempty = raw.lengths > 0
        on = np.array([c.c4.enabled for c in cfgs], bool)[g] if len(g) else np.zeros(0, bool)
        bad = np.zeros(len(g), bool)
        # words per line, char units counted one each (as TextStats.words)
        unit = st._unit_class
        wpat = f"{unit}[\\p{{Mn}}\\p{{Mc}}]*|[^\\s{unit[1:-1]}]+" if unit else r"\S+"
        nwords = (
            np.asarray(pc.count_substring_regex(raw.values, wpat).to_numpy(zero_copy_only=False))
            if len(g)
            else np.zeros(0)
        )
        minw = self._param([c.c4.line_min_words for c in cfgs], g)
        bad |= nwords < minw
        maxw = self._param([c.c4.line_max_word_length for c in cfgs], g)
        long_cand = np.flatnonzero(raw.lengths > np.nan_to_num(maxw, nan=np.inf))
        if len(long_cand):
            vals = raw.values.take(pa.array(long_cand)).to_pylist()
            longest = np.array([max((len(w) for w in v.split()), default=0) for v in vals])
            bad[long_cand[longest > maxw[long_cand]]] = True
        term = [c.c4.line_require_terminal_punct for c in cfgs]
        if any(term):
            ends = self._mask_by_group(
                raw, g, [r"[.!?\"']$" if t else None for t in term], False
            ) & ~raw.mask(r"\.\.\.$")
            bad |= ~ends & np.array(term, bool)[g]
        structural_ok = ~bad  # lines the doc-level lorem/curly checks look at
        js = [("javascript" if c.c4.line_drop_javascript else None) for c in cfgs]
        bad |= self._mask_by_group(raw, g, js, True)
        pol = [(_alt(c.c4.policy_substrings) if c.c4.line_drop_policy else None) for c in cfgs]
        bad |= self._mask_by_group(raw, g, pol, True)
        bad &= on & nonempty
        kept = nonempty & ~bad
        n = st.n_docs
        look = nonempty & structural_ok
        lorem = raw.mask("lorem ipsum", True) & look if len(g) else bad
        curly = raw.mask(r"\{") & look if len(g) else bad
        # sentences: terminators (+ closing quotes) followed by space/end, CJK ones anywhere,
        # plus one for a kept line that does not end with a terminator (as C4 per line).
        if len(g):
            s_pat = r"[。！？]+|[.!?…]+[\"'”’)\]]*(?:\s|$)"
            n_sent = np.asarray(
                pc.count_substring_regex(raw.values, s_pat).to_numpy(zero_copy_only=False)
            )
            ends_term = raw.mask(r"(?:[。！？]|[.!?…][\"'”’)\]]*)$")
            n_sent = n_sent + (~ends_term)
        else:
            n_sent = np.zeros(0)
        sig = {
            "q_c4_lines_removed": per_doc_sum(raw.doc[bad], None, n),
            "q_c4_lorem_ipsum": (per_doc_sum(raw.doc[lorem], None, n) > 0).astype(np.float64),
            "q_c4_curly_bracket": (per_doc_sum(raw.doc[curly], None, n) > 0).astype(np.float64),
            "q_sentence_count": per_doc_sum(raw.doc[kept], n_sent[kept].astype(np.float64), n),
        }
        remove = (
            np.array([c.c4.enabled and c.c4.remove_lines for c in cfgs], bool)[gi]
            if n
            else (np.zeros(0, bool))
        )
        had_lines = per_doc_sum(raw.doc[nonempty], None, n) > 0
        n_kept = per_doc_sum(raw.doc[kept], None, n)
        sig["q_c4_all_lines_removed"] = (remove & had_lines & (n_kept == 0)).astype(np.float64)
        changed = remove & (sig["q_c4_lines_removed"] > 0)
        if not changed.any():
            return sig, None
        keep_piece = kept | ~nonempty
        idx = np.flatnonzero(keep_piece)
        counts = per_doc_sum(raw.doc[idx], None, n).astype(np.int64)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        lists = pa.LargeListArray.from_arrays(pa.array(offsets), raw.values.take(pa.array(idx)))
        new = pc.binary_join(lists, pa.scalar("\n", pa.large_string()))
        new = pc.replace_substring_regex(new, r"\n{3,}", "\n\n")
        new = pc.utf8_trim(new, "\n")
        text = pc.if_else(pa.array(changed), new, st.text)
        return sig, text

    # ----------------------------------------------------------------- signals

    def _signals(
        self, st: TextStats, cfgs: list[QualityConfig], langs: list[str | None], gi: np.ndarray
    ) -> dict[str, np.ndarray]:
        n = st.n_docs
        w = st.words
        lines = st.lines
        paras = st.paragraphs
        chars = st.char_len
        s: dict[str, np.ndarray] = {"q_char_count": chars.astype(np.float64)}
        n_tokens = w.count.astype(np.float64)
        s["q_line_count"] = lines.count.astype(np.float64)

        # --- Gopher quality
        nonsym = w.mask(r"[^\p{P}\p{S}]")
        is_unit = st.word_is_unit
        s["q_word_count"] = per_doc_sum(w.doc[nonsym], None, n)
        s["q_char_unit_fraction"] = _div(per_doc_sum(w.doc[is_unit], None, n), n_tokens)
        lw = nonsym & ~is_unit
        mean_len = _div(
            per_doc_sum(w.doc[lw], st.word_core_lengths[lw].astype(np.float64), n),
            per_doc_sum(w.doc[lw], None, n),
        )
        skip = s["q_char_unit_fraction"] > self._param(
            [c.gopher_quality.max_char_unit_fraction for c in cfgs], gi
        )
        s["q_mean_word_length"] = np.where(skip, np.nan, mean_len)
        hashes = np.asarray(pc.count_substring(st.text, "#").to_numpy(zero_copy_only=False))
        ell = np.asarray(pc.count_substring(st.text, "...").to_numpy(zero_copy_only=False)) + (
            np.asarray(pc.count_substring(st.text, "…").to_numpy(zero_copy_only=False))
        )
        s["q_symbol_word_ratio"] = _div(np.maximum(hashes, ell), n_tokens)
        lg = gi[lines.doc] if len(lines.doc) else np.zeros(0, np.int64)
        bullets = self._mask_by_group(
            lines, lg, [f"^(?:{_alt(c.gopher_quality.bullet_chars)})" for c in cfgs], False
        )
        s["q_bullet_line_ratio"] = _div(per_doc_sum(lines.doc[bullets], None, n), lines.count)
        ell_l = lines.mask(r"(?:\.\.\.|…)$")
        s["q_ellipsis_line_ratio"] = _div(per_doc_sum(lines.doc[ell_l], None, n), lines.count)
        alpha = w.mask(r"\p{L}")
        s["q_alpha_word_ratio"] = _div(per_doc_sum(w.doc[alpha], None, n), n_tokens)
        stop = np.full(n, np.nan)
        wg = gi[w.doc] if len(w.doc) else np.zeros(0, np.int64)
        for k, (c, lang) in enumerate(zip(cfgs, langs, strict=True)):
            lst = c.gopher_quality.stop_words.get(lang) if lang else None
            if lst is None:
                continue
            docs_k = gi == k
            sel = np.flatnonzero(wg == k)
            hit = pc.is_in(
                st.word_core.take(pa.array(sel)),
                value_set=pa.array([x.lower() for x in lst], pa.large_string()),
            )
            hit = np.asarray(hit.to_numpy(zero_copy_only=False), bool)
            cnt = per_doc_sum(w.doc[sel[hit]], None, n)
            stop[docs_k] = cnt[docs_k]
        s["q_stop_word_count"] = stop

        # --- Gopher repetition
        n_par_dup, par_dup_chars = paras.repeated()
        s["q_dup_para_fraction"] = _div(n_par_dup, paras.count)
        s["q_dup_para_char_fraction"] = _div(par_dup_chars, chars)
        n_line_dup, line_dup_chars = lines.repeated()
        s["q_dup_line_fraction"] = _div(n_line_dup, lines.count)
        s["q_dup_line_char_fraction"] = _div(line_dup_chars, chars)
        wlen = w.lengths
        csum = np.concatenate(([0], np.cumsum(wlen)))
        for ng in _TOP_NS:
            starts, cnt, _ = st.repeated_ngrams(ng)
            best = np.zeros(n, np.int64)
            if len(starts):
                ch = csum[starts + ng] - csum[starts] + (ng - 1)
                score = (cnt << 32) + ch
                np.maximum.at(best, w.doc[starts], score)
            top_cnt = best >> 32
            top_ch = best & 0xFFFFFFFF
            s[f"q_top_{ng}gram_char_fraction"] = np.where(
                top_cnt >= 2, _div(top_cnt * top_ch, chars), np.where(chars > 0, 0.0, np.nan)
            )
        n_w = len(wlen)
        for ng in _DUP_NS:
            starts, _, rep = st.repeated_ngrams(ng)
            cov_chars = np.zeros(n)
            if len(starts):
                rs = starts[rep]
                if len(rs):
                    d = np.bincount(rs, minlength=n_w + 1) - np.bincount(rs + ng, minlength=n_w + 1)
                    cov = np.cumsum(d)[:n_w] > 0
                    cov_chars = per_doc_sum(w.doc[cov], wlen[cov].astype(np.float64), n)
            s[f"q_dup_{ng}gram_char_fraction"] = np.where(chars > 0, _div(cov_chars, chars), np.nan)

        # --- FineWeb
        term = self._mask_by_group(
            lines, lg, [f"(?:{_alt(c.fineweb.terminal_punctuation)})$" for c in cfgs], False
        )
        s["q_line_punct_ratio"] = _div(per_doc_sum(lines.doc[term], None, n), lines.count)
        short_len = self._param([c.fineweb.short_line_length for c in cfgs], lg)
        short = lines.lengths <= short_len
        s["q_short_line_ratio"] = _div(per_doc_sum(lines.doc[short], None, n), lines.count)
        n_newlines = np.asarray(pc.count_substring(st.text, "\n").to_numpy(zero_copy_only=False))
        s["q_fineweb_dup_line_char_ratio"] = _div(line_dup_chars, chars - n_newlines)
        s["q_newline_word_ratio"] = _div(np.maximum(lines.count - 1, 0), n_tokens)
        return s

    # ----------------------------------------------------------------- evaluation

    def _evaluate(
        self, s: dict[str, np.ndarray], cfgs: list[QualityConfig], langs: list, gi: np.ndarray
    ) -> list[tuple[_Rule, np.ndarray, np.ndarray]]:
        """Per rule: (rule, fails mask, threshold array) over the documents."""
        out = []
        for r in RULES:
            thr = self._param([r.get(c, lang) for c, lang in zip(cfgs, langs, strict=True)], gi)
            v = s[r.signal]
            with np.errstate(invalid="ignore"):
                if r.op == "<":
                    fail = v < thr
                elif r.op == ">":
                    fail = v > thr
                else:
                    fail = v >= thr
            out.append((r, fail & ~np.isnan(v) & ~np.isnan(thr), thr))
        return out

    def _soft(self, s: dict[str, np.ndarray], cfgs: list[QualityConfig], gi: np.ndarray):
        n = len(gi)
        total = np.zeros(n)
        names = dict.fromkeys(k for c in cfgs for k in (*c.bucket.soft_min, *c.bucket.soft_max))
        for name in names:
            v = s[name]
            lo = self._param([c.bucket.soft_min.get(name) for c in cfgs], gi)
            hi = self._param([c.bucket.soft_max.get(name) for c in cfgs], gi)
            with np.errstate(invalid="ignore"):
                total += np.nan_to_num((v < lo).astype(float)) + np.nan_to_num(
                    (v > hi).astype(float)
                )
        return total

    def _compute(self, sub: pa.Table):
        """Signals, cleaned text (None if unchanged) and rule evaluation for a text/lang table."""
        langs = (
            sub.column("lang").to_pylist() if "lang" in sub.column_names else [None] * sub.num_rows
        )
        glangs, gi = self._groups(langs)
        cfgs = [self._resolve(x) for x in glangs]
        st0 = TextStats(sub.column("text"), self._units)
        c4sig, new_text = self._c4_lines(st0, cfgs, gi)
        st = TextStats(new_text, self._units) if new_text is not None else st0
        s = self._signals(st, cfgs, glangs, gi)
        s.update(c4sig)
        s["q_soft_signals"] = self._soft(s, cfgs, gi)
        return s, new_text, cfgs, gi, self._evaluate(s, cfgs, glangs, gi)

    def signals(self, table: pa.Table) -> tuple[dict[str, np.ndarray], list[list[str]]]:
        """All signals and every failing text rule per row, in rule order (for analysis/tests).

        Ignores existing drops and the URL/model rules.
        """
        s, _, _, _, ev = self._compute(table)
        failing: list[list[str]] = [[] for _ in range(table.num_rows)]
        for r, fail, _ in ev:
            for i in np.flatnonzero(fail):
                if r.reason not in failing[i]:
                    failing[i].append(r.reason)
        return s, failing

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        reason = (
            np.asarray(table.column("drop_reason").to_pylist(), dtype=object)
            if "drop_reason" in table.column_names
            else np.full(n, None, dtype=object)
        )
        detail = (
            np.asarray(table.column("drop_detail").to_pylist(), dtype=object)
            if "drop_detail" in table.column_names
            else np.full(n, None, dtype=object)
        )
        active = np.array([r is None for r in reason], bool) if n else np.zeros(0, bool)
        sig_full = {k: np.full(n, np.nan) for k in SIGNAL_COLUMNS}
        score_full = np.full(n, np.nan, np.float32)
        bucket = np.full(n, None, dtype=object)
        text_col = table.column("text") if "text" in table.column_names else None
        new_text_col = None

        if self.cfg.enabled and n and active.any():
            if "url" in table.column_names:
                ai = np.flatnonzero(active)
                ur, ud = self.url_filter.evaluate(table.column("url").take(pa.array(ai)))
                hit = ur != None  # noqa: E711
                reason[ai[hit]] = ur[hit]
                detail[ai[hit]] = ud[hit]
                active[ai[hit]] = False
            ai = np.flatnonzero(active)
            if len(ai) and text_col is not None:
                sub = table.select([c for c in ("text", "lang") if c in table.column_names]).take(
                    pa.array(ai)
                )
                s, cleaned, _ = self._run(sub, ai, reason, detail)
                for k in SIGNAL_COLUMNS:
                    sig_full[k][ai] = s[k]
                if cleaned is not None:
                    full = pc.fill_null(text_col.combine_chunks().cast(pa.large_string()), "")
                    take = np.arange(n, dtype=np.int64)
                    take[ai] = n + np.arange(len(ai))
                    merged = pa.concat_arrays([full, cleaned.cast(pa.large_string())])
                    new_text_col = merged.take(pa.array(take)).cast(text_col.type)
                kept = ai[np.array([reason[i] is None for i in ai], bool)]
                if len(kept):
                    pos_in_sub = np.searchsorted(ai, kept)
                    if self.scorer is not None:
                        texts = cleaned if cleaned is not None else sub.column("text")
                        txt = texts.take(pa.array(pos_in_sub))
                        sc = self.scorer.score(txt)
                        score_full[kept] = sc
                        ms = self.cfg.model.min_score
                        if ms is not None:
                            low = sc < ms
                            reason[kept[low]] = "quality_model.low_score"
                            detail[kept[low]] = [
                                f"quality_score={_fmt(v)} < {_fmt(ms)}" for v in sc[low]
                            ]
                    self._bucket(kept, pos_in_sub, s, score_full, reason, bucket, sub)
        elif not self.cfg.enabled:
            bucket[active] = "unfiltered"

        out = table
        if new_text_col is not None:
            out = out.set_column(out.column_names.index("text"), "text", new_text_col)
        cols: dict[str, pa.Array] = {}
        for k in SIGNAL_COLUMNS:
            v = sig_full[k]
            mask = np.isnan(v)
            if k in _INT_SIGNALS:
                cols[k] = pa.array(np.nan_to_num(v).astype(np.int32), pa.int32(), mask=mask)
            else:
                cols[k] = pa.array(v.astype(np.float32), pa.float32(), mask=mask)
        cols["quality_score"] = pa.array(score_full, pa.float32(), mask=np.isnan(score_full))
        cols["quality_bucket"] = pa.array(bucket.tolist(), pa.string())
        cols["drop_reason"] = pa.array(reason.tolist(), pa.string())
        cols["drop_detail"] = pa.array(detail.tolist(), pa.string())
        for name, arr in cols.items():
            if name in out.column_names:
                out = out.set_column(out.column_names.index(name), name, arr)
            else:
                out = out.append_column(name, arr)
        return out

    def _run(self, sub: pa.Table, ai: np.ndarray, reason: np.ndarray, detail: np.ndarray):
        """Signals + first failing rule for the active rows ``ai`` (in place on reason)."""
        s, new_text, cfgs, gi, ev = self._compute(sub)
        decided = np.zeros(len(ai), bool)
        for r, fail, thr in ev:
            new = fail & ~decided
            if not new.any():
                continue
            decided |= new
            idx = np.flatnonzero(new)
            reason[ai[idx]] = r.reason
            v = s[r.signal]
            if r.signal in ("q_c4_lorem_ipsum", "q_c4_curly_bracket", "q_c4_all_lines_removed"):
                detail[ai[idx]] = r.label
            else:
                detail[ai[idx]] = [f"{r.label}={_fmt(v[i])} {r.op} {_fmt(thr[i])}" for i in idx]
        self._gi, self._cfgs = gi, cfgs
        return s, new_text, None

    def _bucket(self, kept, pos_in_sub, s, score_full, reason, bucket, sub) -> None:
        """Assign quality_bucket to rows still kept."""
        still = np.array([reason[i] is None for i in kept], bool)
        kept, pos = kept[still], pos_in_sub[still]
        if not len(kept):
            return
        cfgs, gi = self._cfgs, self._gi[pos]
        if self.scorer is not None:
            sc = score_full[kept]
            hi = self._param([c.bucket.high_min_score for c in cfgs], gi)
            mid = self._param([c.bucket.mid_min_score for c in cfgs], gi)
            b = np.where(sc >= hi, "high", np.where(sc >= mid, "mid", "low"))
        else:
            soft = s["q_soft_signals"][pos]
            hi = self._param([c.bucket.high_max_soft for c in cfgs], gi)
            mid = self._param([c.bucket.mid_max_soft for c in cfgs], gi)
            b = np.where(soft <= hi, "high", np.where(soft <= mid, "mid", "low"))
        bucket[kept] = b
