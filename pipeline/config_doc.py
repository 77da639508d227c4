"""The README's configuration reference, generated from the config models' descriptions.

`python -m pipeline config --reference` prints it; a test fails when README.md differs, so
the documentation can never drift from the code.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from core.config_effects import field_effect, hashed_by_content
from pipeline.config import PipelineConfig

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def _default(field: Any) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    text = json.dumps(
        value, default=lambda o: o.model_dump() if isinstance(o, BaseModel) else str(o)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is not None:
            rows.extend(_rows(sub, key + "."))
            continue
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        effect = field_effect(field) or "?"
        if hashed_by_content(field):
            effect += " (file content)"
        rows.append(f"| `{key}` | `{_default(field)}` | {effect} | {desc} |")
    return rows


def reference_markdown() -> str:
    lines = [BEGIN, "| key | default | effect | meaning |", "|---|---|---|---|"]
    lines += _rows(PipelineConfig, "")
    lines.append(END)
    return "\n".join(lines)
