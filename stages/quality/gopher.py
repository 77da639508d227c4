"""Gopher quality and repetition rules (Rae et al. 2021, as run by FineWeb).

Signals are computed for a whole batch from the cached splits of
:class:`stages.text_stats.TextStats`; thresholds are per document (per language).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config_effects import Output
from stages.quality.rules import ANCHOR, Batch, Rule, alt, div, mask_by_group, param, section
from stages.text_stats import per_doc_sum

if TYPE_CHECKING:
    from stages.quality.config import QualityConfig

TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)

GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
# Non-English lists are ours: the most frequent function words of each language, so that
# ">= 2 of them" keeps ordinary prose as Gopher's English list does (FineWeb-2 derived its
# per-language lists from corpus statistics instead).
DEFAULT_STOP_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("en", GOPHER_STOP_WORDS),
    ("de", ("der", "die", "das", "und", "ist", "nicht", "mit", "von", "zu", "den", "ein", "sich")),
    ("fr", ("le", "la", "les", "de", "et", "est", "des", "un", "une", "que", "pour", "dans")),
    ("es", ("el", "la", "de", "que", "y", "en", "los", "las", "del", "por", "con", "una")),
    ("it", ("il", "di", "che", "la", "e", "per", "un", "una", "non", "sono", "con", "del")),
    ("nl", ("de", "het", "een", "en", "van", "is", "dat", "op", "te", "niet", "met", "voor")),
    ("pt", ("o", "a", "de", "que", "e", "do", "da", "em", "um", "para", "com", "não")),
)
STOP_WORD_SOURCES = ("stopwordsiso", "spacy")


@cache
def _source_list(source: str, lang: str) -> tuple[str, ...] | None:
    """A maintained stop-word list for ``lang`` from ``source`` (None if it has none)."""
    if source == "stopwordsiso":
        import stopwordsiso

        return tuple(sorted(stopwordsiso.stopwords(lang))) if stopwordsiso.has_lang(lang) else None
    if source == "spacy":
        import importlib

        try:
            mod = importlib.import_module(f"spacy.lang.{lang}.stop_words")
        except ImportError:
            return None
        return tuple(sorted(mod.STOP_WORDS))
    raise ValueError(f"unknown stop-word source {source!r}; one of {STOP_WORD_SOURCES}")


def stop_list(sec: GopherQualityConfig, lang: str | None) -> list[str] | tuple[str, ...] | None:
    """The stop words used for ``lang``: the explicit list, else the first source that has one."""
    if lang is None:
        return None
    if lang in sec.stop_words:
        return sec.stop_words[lang]
    for src in sec.stop_words_sources:
        got = _source_list(src, lang)
        if got:
            return got
    return None


DEFAULT_BULLETS = ("•", "-", "*", "·", "●", "▪", "◦", "‣", "⁃")


class GopherQualityConfig(BaseModel):
    """Gopher quality rules (Rae et al. 2021, as run by FineWeb). A None threshold = rule off."""

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(default=True, description="Apply the gopher_quality family.")
    min_words: Output[int | None] = Field(
        default=50, description=f"Drop docs with fewer words (Gopher/FineWeb 50; {ANCHOR})."
    )
    max_words: Output[int | None] = Field(
        default=100_000, description=f"Drop docs with more words (Gopher 100,000; {ANCHOR})."
    )
    min_mean_word_length: Output[float | None] = Field(
        default=3.0, description=f"Min mean word length in chars (Gopher 3; {ANCHOR})."
    )
    max_mean_word_length: Output[float | None] = Field(
        default=10.0, description=f"Max mean word length in chars (Gopher 10; {ANCHOR})."
    )
    max_char_unit_fraction: Output[float] = Field(
        default=0.5,
        description="Skip the mean-word-length rule when more than this fraction of words are "
        "single CJK/Thai/... characters (ours: the rule is meaningless for those scripts).",
    )
    max_symbol_word_ratio: Output[float | None] = Field(
        default=0.1,
        description=f"Max ratio of '#' or of ellipses ('...', '…') to words, each (Gopher 0.1; "
        f"{ANCHOR}).",
    )
    max_bullet_lines_ratio: Output[float | None] = Field(
        default=0.9,
        description=f"Max fraction of lines starting with a bullet (Gopher 0.9; {ANCHOR}).",
    )
    bullet_chars: Output[list[str]] = Field(
        default_factory=lambda: list(DEFAULT_BULLETS),
        description="Line prefixes counted as bullets (datatrove uses • and -; rest ours).",
    )
    max_ellipsis_lines_ratio: Output[float | None] = Field(
        default=0.3,
        description=f"Max fraction of lines ending in an ellipsis (Gopher 0.3; {ANCHOR}).",
    )
    min_alpha_words_ratio: Output[float | None] = Field(
        default=0.8,
        description=f"Min fraction of words containing a letter (Gopher 0.8; {ANCHOR}).",
    )
    min_stop_words: Output[int | None] = Field(
        default=2,
        description=f"Min number of stop-word occurrences (Gopher 2; {ANCHOR}); applied only "
        "to docs whose lang has a list (stop_words or stop_words_sources).",
    )
    stop_words_sources: Output[list[str]] = Field(
        default_factory=lambda: list(STOP_WORD_SOURCES),
        description="Where lists come from for languages not in `stop_words`, first hit wins: "
        "'stopwordsiso' (the stopwords-iso collection, 50+ languages incl. zh, ja, th, sw, "
        "zu, yo, so, st) then 'spacy' (spaCy's per-language STOP_WORDS: az, is, lg, mk, nb, "
        "sq, sr, ta, te, tn). Empty = only `stop_words`.",
    )
    stop_words: Output[dict[str, list[str]]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_STOP_WORDS},
        description="Stop-word list per language code. 'en' is Gopher's {the, be, to, of, and, "
        "that, have, with}; de/fr/es/it/nl/pt are our lists of frequent function words "
        "(FineWeb-2 adapted the rule per language). Matched case-insensitively on words "
        "without surrounding punctuation.",
    )


class GopherRepetitionConfig(BaseModel):
    """Gopher repetition rules (as run by FineWeb). A None threshold = rule off."""

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(default=True, description="Apply the gopher_repetition family.")
    max_dup_para_fraction: Output[float | None] = Field(
        default=0.3, description=f"Max fraction of duplicated paragraphs (Gopher 0.30; {ANCHOR})."
    )
    max_dup_para_char_fraction: Output[float | None] = Field(
        default=0.2,
        description=f"Max fraction of chars in duplicated paragraphs (Gopher 0.20; {ANCHOR}).",
    )
    max_dup_line_fraction: Output[float | None] = Field(
        default=0.3, description=f"Max fraction of duplicated lines (Gopher 0.30; {ANCHOR})."
    )
    max_dup_line_char_fraction: Output[float | None] = Field(
        default=0.2,
        description=f"Max fraction of chars in duplicated lines (Gopher 0.20; {ANCHOR}).",
    )
    max_top_ngram_char_fraction: Output[dict[int, float]] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description=f"n -> max fraction of chars in the most frequent word n-gram (Gopher "
        f"0.20/0.18/0.16 for n=2/3/4; {ANCHOR}). Counted only if it occurs at least twice.",
    )
    max_dup_ngram_char_fraction: Output[dict[int, float]] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description=f"n -> max fraction of chars covered by repeated word n-grams (Gopher "
        f"0.15..0.10 for n=5..10; {ANCHOR}).",
    )

    @field_validator("max_top_ngram_char_fraction", "max_dup_ngram_char_fraction")
    @classmethod
    def _check_ns(cls, v: dict[int, float], info: Any) -> dict[int, float]:
        allowed = TOP_NS if info.field_name == "max_top_ngram_char_fraction" else DUP_NS
        bad = set(v) - set(allowed)
        if bad:
            raise ValueError(f"n-gram sizes {sorted(bad)} not supported; use {allowed}")
        return v


# --------------------------------------------------------------------------- signals

QUALITY_INT_SIGNALS = ("q_word_count", "q_stop_word_count")
QUALITY_FLOAT_SIGNALS = (
    "q_char_unit_fraction",
    "q_mean_word_length",
    "q_symbol_word_ratio",
    "q_bullet_line_ratio",
    "q_ellipsis_line_ratio",
    "q_alpha_word_ratio",
)
REPETITION_FLOAT_SIGNALS = (
    "q_dup_para_fraction",
    "q_dup_para_char_fraction",
    "q_dup_line_fraction",
    "q_dup_line_char_fraction",
    *(f"q_top_{n}gram_char_fraction" for n in TOP_NS),
    *(f"q_dup_{n}gram_char_fraction" for n in DUP_NS),
)


def quality_signals(b: Batch) -> dict[str, np.ndarray]:
    """Gopher quality signals: word counts and shapes, symbols, bullets, stop words."""
    st, cfgs, gi = b.st, b.cfgs, b.gi
    n = st.n_docs
    w = st.words
    lines = st.lines
    n_tokens = b.n_tokens
    s: dict[str, np.ndarray] = {}
    nonsym = w.mask(r"[^\p{P}\p{S}]")
    is_unit = st.word_is_unit
    s["q_word_count"] = per_doc_sum(w.doc[nonsym], None, n)
    s["q_char_unit_fraction"] = div(per_doc_sum(w.doc[is_unit], None, n), n_tokens)
    lw = nonsym & ~is_unit
    mean_len = div(
        per_doc_sum(w.doc[lw], st.word_core_lengths[lw].astype(np.float64), n),
        per_doc_sum(w.doc[lw], None, n),
    )
    skip = s["q_char_unit_fraction"] > param(
        [c.gopher_quality.max_char_unit_fraction for c in cfgs], gi
    )
    s["q_mean_word_length"] = np.where(skip, np.nan, mean_len)
    hashes = np.asarray(pc.count_substring(st.text, "#").to_numpy(zero_copy_only=False))
    ell = np.asarray(pc.count_substring(st.text, "...").to_numpy(zero_copy_only=False)) + (
        np.asarray(pc.count_substring(st.text, "…").to_numpy(zero_copy_only=False))
    )
    s["q_symbol_word_ratio"] = div(np.maximum(hashes, ell), n_tokens)
    bullets = mask_by_group(
        lines,
        b.line_group,
        [f"^(?:{alt(c.gopher_quality.bullet_chars)})" for c in cfgs],
        False,
    )
    s["q_bullet_line_ratio"] = div(per_doc_sum(lines.doc[bullets], None, n), lines.count)
    ell_l = lines.mask(r"(?:\.\.\.|…)$")
    s["q_ellipsis_line_ratio"] = div(per_doc_sum(lines.doc[ell_l], None, n), lines.count)
    alpha = w.mask(r"\p{L}")
    s["q_alpha_word_ratio"] = div(per_doc_sum(w.doc[alpha], None, n), n_tokens)
    stop = np.full(n, np.nan)
    wg = b.word_group
    for k, (c, lang) in enumerate(zip(cfgs, b.langs, strict=True)):
        lst = stop_list(c.gopher_quality, lang)
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
    return s


def repetition_signals(b: Batch) -> dict[str, np.ndarray]:
    """Gopher repetition signals: duplicated paragraphs/lines, top and repeated n-grams."""
    st = b.st
    n = st.n_docs
    w = st.words
    chars = st.char_len
    paras = st.paragraphs
    lines = st.lines
    s: dict[str, np.ndarray] = {}
    n_par_dup, par_dup_chars = paras.repeated()
    s["q_dup_para_fraction"] = div(n_par_dup, paras.count)
    s["q_dup_para_char_fraction"] = div(par_dup_chars, chars)
    n_line_dup, line_dup_chars = b.line_repeats
    s["q_dup_line_fraction"] = div(n_line_dup, lines.count)
    s["q_dup_line_char_fraction"] = div(line_dup_chars, chars)
    wlen = w.lengths
    csum = np.concatenate(([0], np.cumsum(wlen)))
    for ng in TOP_NS:
        starts, cnt, _ = st.repeated_ngrams(ng)
        best = np.zeros(n, np.int64)
        if len(starts):
            ch = csum[starts + ng] - csum[starts] + (ng - 1)
            score = (cnt << 32) + ch
            np.maximum.at(best, w.doc[starts], score)
        top_cnt = best >> 32
        top_ch = best & 0xFFFFFFFF
        s[f"q_top_{ng}gram_char_fraction"] = np.where(
            top_cnt >= 2, div(top_cnt * top_ch, chars), np.where(chars > 0, 0.0, np.nan)
        )
    n_w = len(wlen)
    for ng in DUP_NS:
        starts, _, rep = st.repeated_ngrams(ng)
        cov_chars = np.zeros(n)
        if len(starts):
            rs = starts[rep]
            if len(rs):
                d = np.bincount(rs, minlength=n_w + 1) - np.bincount(rs + ng, minlength=n_w + 1)
                cov = np.cumsum(d)[:n_w] > 0
                cov_chars = per_doc_sum(w.doc[cov], wlen[cov].astype(np.float64), n)
        s[f"q_dup_{ng}gram_char_fraction"] = np.where(chars > 0, div(cov_chars, chars), np.nan)
    return s


# --------------------------------------------------------------------------- rules


def _ngram(kind: str, n: int):
    def get(c: QualityConfig, _lang: str | None) -> float | None:
        sec = c.gopher_repetition
        return getattr(sec, kind).get(n) if sec.enabled else None

    return get


def _stop(c: QualityConfig, lang: str | None) -> float | None:
    sec = c.gopher_quality
    if not sec.enabled or stop_list(sec, lang) is None:
        return None
    return sec.min_stop_words


def _rep(name: str, attr: str) -> Rule:
    return Rule(
        f"gopher_repetition.{name}", f"q_{name}", ">", section("gopher_repetition", attr), name
    )


REPETITION_RULES: tuple[Rule, ...] = (
    _rep("dup_para_fraction", "max_dup_para_fraction"),
    _rep("dup_para_char_fraction", "max_dup_para_char_fraction"),
    _rep("dup_line_fraction", "max_dup_line_fraction"),
    _rep("dup_line_char_fraction", "max_dup_line_char_fraction"),
    *(
        Rule(
            f"gopher_repetition.top_{n}gram",
            f"q_top_{n}gram_char_fraction",
            ">",
            _ngram("max_top_ngram_char_fraction", n),
            f"top_{n}gram_char_fraction",
        )
        for n in TOP_NS
    ),
    *(
        Rule(
            f"gopher_repetition.dup_{n}gram",
            f"q_dup_{n}gram_char_fraction",
            ">",
            _ngram("max_dup_ngram_char_fraction", n),
            f"dup_{n}gram_char_fraction",
        )
        for n in DUP_NS
    ),
)


def _q(reason: str, signal: str, op: str, attr: str, label: str) -> Rule:
    return Rule(f"gopher_quality.{reason}", signal, op, section("gopher_quality", attr), label)


QUALITY_RULES: tuple[Rule, ...] = (
    _q("word_count", "q_word_count", "<", "min_words", "word_count"),
    _q("word_count", "q_word_count", ">", "max_words", "word_count"),
    _q("mean_word_length", "q_mean_word_length", "<", "min_mean_word_length", "mean_word_length"),
    _q("mean_word_length", "q_mean_word_length", ">", "max_mean_word_length", "mean_word_length"),
    _q(
        "symbol_word_ratio",
        "q_symbol_word_ratio",
        ">",
        "max_symbol_word_ratio",
        "symbol_word_ratio",
    ),
    _q("bullet_lines", "q_bullet_line_ratio", ">", "max_bullet_lines_ratio", "bullet_line_ratio"),
    _q(
        "ellipsis_lines",
        "q_ellipsis_line_ratio",
        ">",
        "max_ellipsis_lines_ratio",
        "ellipsis_line_ratio",
    ),
    _q("alpha_words", "q_alpha_word_ratio", "<", "min_alpha_words_ratio", "alpha_word_ratio"),
    Rule("gopher_quality.stop_words", "q_stop_word_count", "<", _stop, "stop_word_count"),
)
