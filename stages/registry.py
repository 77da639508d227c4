"""Stage name -> the class implementing it (``module:Class``, imported only when used).

Adding a stage = its module + one line here; the config's ``stages:`` list then names it
(docs/adding-a-filter.md). Names are what lineage records as ``drop_stage``.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType

from stages.contract import TableStage

REGISTRY = MappingProxyType(
    {
        "extract": "stages.builtin:ExtractStage",
        "trafilatura": "stages.builtin:TrafilaturaStage",
        "resiliparse": "stages.builtin:ResiliparseStage",
        "lang": "stages.builtin:LangIdStage",
        "quality": "stages.builtin:QualityStage",
        "signatures": "stages.builtin:SignaturesStage",
        "digit_ratio": "stages.digit_ratio:DigitRatioFilter",
    }
)

# The phase-1 chain when the config does not name one.
DEFAULT_STAGES: tuple[str, ...] = ("extract", "lang", "quality", "signatures")


def stage_class(name: str) -> type[TableStage]:
    """The class registered under ``name``; KeyError naming the known stages otherwise."""
    if name not in REGISTRY:
        raise KeyError(f"unknown stage {name!r}; known: {sorted(REGISTRY)}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)
