"""The per-document quality signal columns the stage writes (``q_*``), by type.

Their own module because both the stage (which fills them) and the bucket config (whose
``soft_min``/``soft_max`` name them, validated when the config is loaded) need the list.
"""

from __future__ import annotations

from stages.quality import c4, fineweb, gopher

INT_SIGNALS: tuple[str, ...] = (
    "q_char_count",
    "q_line_count",
    *gopher.QUALITY_INT_SIGNALS,
    *c4.INT_SIGNALS,
    "q_soft_signals",
)
FLOAT_SIGNALS: tuple[str, ...] = (
    *gopher.QUALITY_FLOAT_SIGNALS,
    *gopher.REPETITION_FLOAT_SIGNALS,
    *fineweb.FLOAT_SIGNALS,
)
SIGNAL_COLUMNS: tuple[str, ...] = (*INT_SIGNALS, *FLOAT_SIGNALS)
