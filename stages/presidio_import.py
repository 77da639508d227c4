"""Import ``presidio_analyzer`` without its optional Hugging Face engine.

Why: at import time presidio_analyzer runs ``from transformers import pipeline`` (in a
try/except) for its ``TransformersNlpEngine``, which this project never uses
(``stages/pii_engine.py`` builds its own engine on a blank spaCy pipeline). Where
``transformers`` is installed, as on most ML cluster images, that import costs about 1 s
(measured here: 0.65-1.3 s; several seconds more when it pulls in torch) in every process
that scrubs PII: the in-process run, each phase-1 Ray worker. Hiding ``transformers`` while
presidio is imported makes that optional import fail exactly as it does where transformers is
absent, a case presidio handles itself. Nothing else sees the mask: it is lifted right after.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["import_presidio"]

_ABSENT = object()


def import_presidio() -> None:
    """Import presidio_analyzer (once) with ``transformers`` unimportable meanwhile."""
    if "presidio_analyzer" in sys.modules:
        return
    saved = sys.modules.get("transformers", _ABSENT)
    sys.modules["transformers"] = None  # type: ignore[assignment]  # import -> ImportError
    try:
        importlib.import_module("presidio_analyzer")
    finally:
        if saved is _ABSENT:
            del sys.modules["transformers"]
        else:
            sys.modules["transformers"] = saved  # type: ignore[assignment]


import_presidio()
