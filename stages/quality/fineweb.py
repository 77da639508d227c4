"""FineWeb's own rules (Penedo et al. 2024): line punctuation, short lines, duplicated line
chars, line breaks per word."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import Output
from stages.quality.rules import ANCHOR, Batch, Rule, alt, div, mask_by_group, param, section
from stages.text_stats import per_doc_sum

TERMINAL_PUNCTUATION = (
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
)


class FineWebConfig(BaseModel):
    """FineWeb's own rules (Penedo et al. 2024). A None threshold = rule off."""

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(default=True, description="Apply the fineweb family.")
    min_line_punct_ratio: Output[float | None] = Field(
        default=0.12,
        description=f"Min fraction of lines ending in terminal punctuation (FineWeb 0.12; "
        f"{ANCHOR}).",
    )
    terminal_punctuation: Output[list[str]] = Field(
        default_factory=lambda: list(TERMINAL_PUNCTUATION),
        description="Line endings counted as terminal punctuation (multilingual, as "
        "datatrove's TERMINAL_PUNCTUATION idea; list ours).",
    )
    max_short_line_ratio: Output[float | None] = Field(
        default=0.67,
        description=f"Drop if the fraction of short lines is >= this (FineWeb 0.67; {ANCHOR}).",
    )
    short_line_length: Output[int] = Field(
        default=30, description="A line of at most this many chars is short (FineWeb 30)."
    )
    max_dup_line_char_ratio: Output[float | None] = Field(
        default=0.01,
        description=f"Drop if chars in duplicated lines / non-newline chars >= this (FineWeb "
        f"0.01; {ANCHOR}).",
    )
    max_newline_word_ratio: Output[float | None] = Field(
        default=0.3,
        description=f"Max line breaks per word (FineWeb 0.3; {ANCHOR}); line breaks counted "
        "as non-empty lines - 1.",
    )


FLOAT_SIGNALS = (
    "q_line_punct_ratio",
    "q_short_line_ratio",
    "q_fineweb_dup_line_char_ratio",
    "q_newline_word_ratio",
)


def signals(b: Batch) -> dict[str, np.ndarray]:
    """FineWeb signals over the non-empty lines of each document."""
    st, cfgs = b.st, b.cfgs
    n = st.n_docs
    lines = st.lines
    lg = b.line_group
    s: dict[str, np.ndarray] = {}
    term = mask_by_group(
        lines, lg, [f"(?:{alt(c.fineweb.terminal_punctuation)})$" for c in cfgs], False
    )
    s["q_line_punct_ratio"] = div(per_doc_sum(lines.doc[term], None, n), lines.count)
    short_len = param([c.fineweb.short_line_length for c in cfgs], lg)
    short = lines.lengths <= short_len
    s["q_short_line_ratio"] = div(per_doc_sum(lines.doc[short], None, n), lines.count)
    n_newlines = np.asarray(pc.count_substring(st.text, "\n").to_numpy(zero_copy_only=False))
    _, line_dup_chars = b.line_repeats
    s["q_fineweb_dup_line_char_ratio"] = div(line_dup_chars, st.char_len - n_newlines)
    s["q_newline_word_ratio"] = div(np.maximum(lines.count - 1, 0), b.n_tokens)
    return s


def _f(name: str, op: str, attr: str) -> Rule:
    signal = "q_fineweb_dup_line_char_ratio" if name == "dup_line_char_ratio" else f"q_{name}"
    return Rule(f"fineweb.{name}", signal, op, section("fineweb", attr), name)


RULES: tuple[Rule, ...] = (
    _f("line_punct_ratio", "<", "min_line_punct_ratio"),
    _f("short_line_ratio", ">=", "max_short_line_ratio"),
    _f("dup_line_char_ratio", ">=", "max_dup_line_char_ratio"),
    _f("newline_word_ratio", ">", "max_newline_word_ratio"),
)
