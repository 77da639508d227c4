"""What every quality rule family shares: the rule record, the per-batch context, helpers.

Why: the families (gopher, c4, fineweb, bucket) each compute signals and declare rules; the
filter evaluates all rules the same way (vectorized ``signal <op> threshold`` per document,
thresholds resolved per language). Keeping those mechanics here keeps each family module to
its own published rule set.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from stages.text_stats import Segments, TextStats

if TYPE_CHECKING:
    from stages.quality.config import QualityConfig

ANCHOR = "sources: docs/quality_thresholds.md"

Getter = Callable[["QualityConfig", "str | None"], "float | None"]


@dataclass(frozen=True)
class Rule:
    """One drop rule: drop a document if ``signal <op> threshold`` (threshold None = off)."""

    reason: str
    signal: str
    op: str  # drop if  value <op> threshold ; one of "<", ">", ">="
    get: Getter
    label: str


@dataclass
class Batch:
    """One batch of active documents as the rule families see it (per-language configs)."""

    st: TextStats
    cfgs: list[QualityConfig]  # one resolved config per distinct language
    langs: list[str | None]  # the distinct languages, parallel to cfgs
    gi: np.ndarray  # per document: index into cfgs/langs

    @cached_property
    def line_group(self) -> np.ndarray:
        """Per non-empty line: its document's language group."""
        lines = self.st.lines
        return self.gi[lines.doc] if len(lines.doc) else np.zeros(0, np.int64)

    @cached_property
    def word_group(self) -> np.ndarray:
        """Per word: its document's language group."""
        w = self.st.words
        return self.gi[w.doc] if len(w.doc) else np.zeros(0, np.int64)

    @cached_property
    def line_repeats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per document: (repeated lines, chars in repeated lines); Gopher and FineWeb share it."""
        return self.st.lines.repeated()

    @cached_property
    def n_tokens(self) -> np.ndarray:
        """Whitespace/char-unit tokens per document (punctuation-only tokens included)."""
        return self.st.words.count.astype(np.float64)


def section(section_name: str, attr: str) -> Getter:
    """Threshold ``cfg.<section>.<attr>``, None when the family is disabled."""

    def get(c: QualityConfig, _lang: str | None) -> float | None:
        sec = getattr(c, section_name)
        return getattr(sec, attr) if sec.enabled else None

    return get


def flag(section_name: str, attr: str) -> Getter:
    """A boolean switch as a threshold: 0.0 (drop if signal > 0) when on, None when off."""

    def get(c: QualityConfig, _lang: str | None) -> float | None:
        sec = getattr(c, section_name)
        return 0.0 if sec.enabled and getattr(sec, attr) else None

    return get


def param(values: list[Any], idx: np.ndarray) -> np.ndarray:
    """Per-group values (None = NaN) spread to elements by their group index."""
    arr = np.array([np.nan if v is None else float(v) for v in values], np.float64)
    return arr[idx] if len(arr) else np.zeros(0)


def mask_by_group(
    seg: Segments, grp_of_piece: np.ndarray, patterns: list[str | None], ignore_case: bool
) -> np.ndarray:
    """Per piece: its group's RE2 pattern matches (one pass per distinct pattern)."""
    out = np.zeros(len(seg.values), bool)
    for pat in dict.fromkeys(p for p in patterns if p):
        hit = seg.mask(pat, ignore_case)
        sel = np.isin(grp_of_piece, [i for i, p in enumerate(patterns) if p == pat])
        out |= hit & sel
    return out


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b elementwise, NaN where b <= 0 (a signal undefined for an empty document)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


def alt(items: list[str]) -> str:
    """An RE2 alternation matching any of the literal strings."""
    return "|".join(re.escape(s) for s in items if s)


def fmt(v: float) -> str:
    """A measured value or threshold as written into drop_detail."""
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.4g}"
