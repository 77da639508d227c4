"""Digit-ratio filter: drop documents that are mostly numbers (tables of prices, scores, logs).

The worked example of docs/adding-a-filter.md: one module, one line in stages/registry.py.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import Output
from stages.contract import TableStage, mark_dropped


class DigitRatioParams(BaseModel):
    """Settings of the digit_ratio stage (given inline in the config's ``stages:`` list)."""

    model_config = ConfigDict(extra="forbid")

    max_digit_ratio: Output[float] = Field(
        default=0.25, gt=0, le=1, description="Drop if digits / non-space chars exceed this."
    )


class DigitRatioFilter(TableStage):
    """Adds ``q_digit_ratio``; drops rows above ``max_digit_ratio`` (rule digit_ratio.too_high)."""

    name = "digit_ratio"
    reads = ("text",)
    adds = ("q_digit_ratio",)
    Params = DigitRatioParams

    def apply(self, table: pa.Table) -> pa.Table:
        text = pc.fill_null(table.column("text"), "")
        digits = pc.count_substring_regex(text, r"\d").to_numpy(zero_copy_only=False)
        chars = pc.count_substring_regex(text, r"\S").to_numpy(zero_copy_only=False)
        ratio = np.divide(digits, chars, out=np.zeros(len(digits)), where=chars > 0)
        table = table.append_column("q_digit_ratio", pa.array(ratio, pa.float32()))
        limit = self.params.max_digit_ratio
        too_high = ratio > limit
        details = [f"digit_ratio={r:.3f} > {limit}" for r in ratio]
        return mark_dropped(table, too_high, "digit_ratio.too_high", details)
