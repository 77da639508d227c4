"""Every configuration field declares its effect: output-affecting or execution-only.

Why: ``config_hash`` names shards, keys resumability and the cross-run dedup index. If a
speed knob (chunk size, batch size, partitions) were hashed, changing it would rename every
shard, reprocess everything and start an empty dedup index, so released documents could come
back as "new". If an output-affecting field were not hashed, two different outputs would share
a name. So each leaf field of a config model is annotated with one of:

- ``Output[T]``: changes the bytes made from a given input file -> part of ``config_hash``;
- ``Execution[T]``: where/how fast/with what resources -> never hashed;
- ``ModelPath[T]``: an output-affecting path of a model, tokenizer or classifier: hashed by
  the CONTENT of the file (or directory) it names, not by the path string, so moving a model
  keeps the hash and replacing its bytes changes it. ``None`` (the shipped default) and a path
  that names no local file are hashed as they are.

A field whose type is itself a config model is a section (its own fields carry the marks).
``tests/test_config_effects.py`` fails when a field has no mark, changes every execution-only
field and checks the sample output bytes and the hash stay identical, and changes every
output-affecting field and checks the hash changes.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = [
    "Effect",
    "Execution",
    "ModelPath",
    "Output",
    "content_digest",
    "field_effect",
    "hashed_by_content",
    "leaf_fields",
    "output_dump",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Effect:
    """The typed mark carried in a field's ``Annotated`` metadata."""

    kind: Literal["output", "execution"]
    by_content: bool = False  # hash the file/directory the value names, not the value


Output = Annotated[T, Effect("output")]
Execution = Annotated[T, Effect("execution")]
ModelPath = Annotated[T, Effect("output", by_content=True)]


def _mark(field: FieldInfo) -> Effect | None:
    for m in field.metadata:
        if isinstance(m, Effect):
            return m
    return None


def field_effect(field: FieldInfo) -> str | None:
    """'output', 'execution', or None when the field carries no mark."""
    m = _mark(field)
    return m.kind if m else None


def hashed_by_content(field: FieldInfo) -> bool:
    """True for ``ModelPath`` fields (see the module docstring)."""
    m = _mark(field)
    return bool(m and m.by_content)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """sha256 of a file's bytes; cached per (path, size, mtime, inode): a config's hash is
    read often and a model can be 100+ MB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sha256_of(path: str) -> str:
    st = os.stat(path)
    return _file_sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)


def content_digest(path: str) -> str:
    """``sha256:<hex>`` of the file at `path`, or of a directory's files (their relative
    paths and contents, in sorted order); `path` itself when it names no local file or
    directory (an object-store URI, a ``package:`` name, a missing file the run will reject)."""
    if "://" in path or not os.path.exists(path):
        return path
    if os.path.isfile(path):
        return "sha256:" + _sha256_of(path)
    h = hashlib.sha256()
    for d, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(d, name)
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            h.update(f"{rel}\0{_sha256_of(full)}\n".encode())
    return "sha256:" + h.hexdigest()


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
    ``ModelPath`` fields are replaced by the content digest of what they name.
    """
    out: dict[str, Any] = {}
    for name, field in type(obj).model_fields.items():
        value = getattr(obj, name)
        if _section(field) is not None:
            out[name] = output_dump(value)
        elif hashed_by_content(field) and isinstance(value, str):
            out[name] = content_digest(value)
        elif field_effect(field) != "execution":
            out[name] = obj.model_dump(mode="json", include={name})[name]
    return out
