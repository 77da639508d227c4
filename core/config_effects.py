"""Every configuration field declares its effect: output-affecting or execution-only.

Why: ``config_hash`` names shards, keys resumability and the cross-run dedup index. If a
speed knob (chunk size, batch size, partitions) were hashed, changing it would rename every
shard, reprocess everything and start an empty dedup index, so released documents could come
back as "new". If an output-affecting field were not hashed, two different outputs would share
a name. So each leaf field of a config model is annotated with one of:

- ``Output[T]``: changes the bytes made from a given input file -> part of ``config_hash``;
- ``Execution[T]``: where/how fast/with what resources -> never hashed.

A field whose type is itself a config model is a section (its own fields carry the marks).
``tests/test_config_effects.py`` fails when a field has no mark, changes every execution-only
field and checks the sample output bytes and the hash stay identical, and changes every
output-affecting field and checks the hash changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["Effect", "Execution", "Output", "field_effect", "leaf_fields", "output_dump"]

T = TypeVar("T")


@dataclass(frozen=True)
class Effect:
    """The typed mark carried in a field's ``Annotated`` metadata."""

    kind: Literal["output", "execution"]


Output = Annotated[T, Effect("output")]
Execution = Annotated[T, Effect("execution")]


def field_effect(field: FieldInfo) -> str | None:
    """'output', 'execution', or None when the field carries no mark."""
    for m in field.metadata:
        if isinstance(m, Effect):
            return m.kind
    return None


def _section(field: FieldInfo) -> type[BaseModel] | None:
    ann = field.annotation
    if isinstance(ann, type) and issubclass(ann, BaseModel) and field_effect(field) is None:
        return ann
    return None


def leaf_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """(dotted path, field) for every leaf field, depth first in declaration order."""
    for name, field in model.model_fields.items():
        sub = _section(field)
        if sub is not None:
            yield from leaf_fields(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def output_dump(obj: BaseModel) -> dict[str, Any]:
    """``model_dump(mode="json")`` keeping only output-affecting fields (recursively).

    Unmarked fields are kept (hashing too much is safe; the test makes marks mandatory).
    """
    out: dict[str, Any] = {}
    for name, field in type(obj).model_fields.items():
        value = getattr(obj, name)
        if _section(field) is not None:
            out[name] = output_dump(value)
        elif field_effect(field) != "execution":
            out[name] = obj.model_dump(mode="json", include={name})[name]
    return out
