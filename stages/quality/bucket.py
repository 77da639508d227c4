"""How kept documents are assigned to ``quality_bucket`` (the output partition).

Without a model (cheap, deterministic): count the "soft signals" of a kept document, i.e.
signals on the wrong side of the softer bounds in ``bucket.soft_min``/``bucket.soft_max``
(column ``q_soft_signals``); ``<= bucket.high_max_soft`` -> high, ``<= bucket.mid_max_soft`` ->
mid, else low. With a model: P(hq) >= ``bucket.high_min_score`` -> high, >= ``mid_min_score``
-> mid, else low.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config_effects import Output
from stages.quality.rules import param
from stages.quality.signals import SIGNAL_COLUMNS

if TYPE_CHECKING:
    from stages.quality.config import QualityConfig


class BucketConfig(BaseModel):
    """How kept documents are assigned to ``quality_bucket`` (the output partition)."""

    model_config = ConfigDict(extra="forbid")

    high_min_score: Output[float] = Field(
        default=0.8, description="With a model: P(hq) >= this -> 'high' (ours)."
    )
    mid_min_score: Output[float] = Field(
        default=0.5, description="With a model: P(hq) >= this -> 'mid', below -> 'low' (ours)."
    )
    soft_min: Output[dict[str, float]] = Field(
        default_factory=lambda: {
            "q_word_count": 200,
            "q_line_punct_ratio": 0.5,
            "q_alpha_word_ratio": 0.9,
        },
        description="Without a model: a signal below its value counts one soft signal (ours: "
        "roughly halfway between the hard threshold and typical clean prose).",
    )
    soft_max: Output[dict[str, float]] = Field(
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

    @field_validator("soft_min", "soft_max")
    @classmethod
    def _known_signals(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [name for name in v if name not in SIGNAL_COLUMNS]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} not a quality signal; signals: "
                + ", ".join(SIGNAL_COLUMNS)
            )
        return v

    high_max_soft: Output[int] = Field(
        default=0, description="<= this many soft signals -> 'high'."
    )
    mid_max_soft: Output[int] = Field(
        default=2, description="<= this many -> 'mid', more -> 'low'."
    )


def soft_signals(s: dict[str, np.ndarray], cfgs: list[QualityConfig], gi: np.ndarray) -> np.ndarray:
    """Per document: how many signals are on the wrong side of their soft bound."""
    n = len(gi)
    total = np.zeros(n)
    names = dict.fromkeys(k for c in cfgs for k in (*c.bucket.soft_min, *c.bucket.soft_max))
    for name in names:
        v = s[name]
        lo = param([c.bucket.soft_min.get(name) for c in cfgs], gi)
        hi = param([c.bucket.soft_max.get(name) for c in cfgs], gi)
        with np.errstate(invalid="ignore"):
            total += np.nan_to_num((v < lo).astype(float)) + np.nan_to_num((v > hi).astype(float))
    return total


def assign(
    cfgs: list[QualityConfig], gi: np.ndarray, scores: np.ndarray | None, soft: np.ndarray
) -> np.ndarray:
    """Bucket names for documents with group indices ``gi`` (model scores, else soft counts)."""
    if scores is not None:
        hi = param([c.bucket.high_min_score for c in cfgs], gi)
        mid = param([c.bucket.mid_min_score for c in cfgs], gi)
        return np.where(scores >= hi, "high", np.where(scores >= mid, "mid", "low"))
    hi = param([c.bucket.high_max_soft for c in cfgs], gi)
    mid = param([c.bucket.mid_max_soft for c in cfgs], gi)
    return np.where(soft <= hi, "high", np.where(soft <= mid, "mid", "low"))
