"""Filesystem access for local paths and object stores through `pyarrow.fs`.

Everything that reads inputs or writes outputs goes through here, so `s3://` and `gs://` work
wherever a local path does. Writes are atomic: a temporary name, then a rename (on object
stores a single PUT is atomic, so we write the final key directly).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import uuid
from collections.abc import Callable
from typing import BinaryIO

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_remote(uri: str) -> bool:
    return bool(_SCHEME.match(uri)) and not uri.startswith("file://")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI."""
    if is_remote(uri):
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def opener(uri: str) -> Callable[[], BinaryIO]:
    """A zero-argument callable that opens `uri` for reading (random access when possible)."""

    def _open() -> BinaryIO:
        fs, path = resolve(uri)
        return fs.open_input_file(path)  # type: ignore[return-value]

    return _open


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def file_size(uri: str) -> int | None:
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    return info.size if info.type == pafs.FileType.File else None


def makedirs(uri: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write so that readers see either nothing or the whole file."""
    try:
        _write_atomic(uri, data)
    except OSError as exc:  # name the file: "File too large" alone tells the user nothing
        raise OSError(exc.errno, f"cannot write {uri}: {exc.strerror or exc}") from exc


def _write_atomic(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    parent = posixpath.dirname(path) if is_remote(uri) else os.path.dirname(path)
    fs.create_dir(parent, recursive=True)
    if is_remote(uri):
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def parquet_bytes(table: pa.Table, row_group_size: int = 2000) -> bytes:
    """Deterministic Parquet bytes (zstd, fixed row groups, no timestamps in metadata)."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=3,
        row_group_size=row_group_size,
        write_statistics=True,
        use_dictionary=True,
    )
    return sink.getvalue().to_pybytes()


def write_parquet_atomic(uri: str, table: pa.Table, row_group_size: int = 2000) -> tuple[int, str]:
    """Write a table atomically; returns (bytes, sha256)."""
    data = parquet_bytes(table, row_group_size)
    write_bytes_atomic(uri, data)
    return len(data), hashlib.sha256(data).hexdigest()


def delete_tree(uri: str) -> None:
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def list_files(uri: str, recursive: bool = True) -> list[str]:
    """Files under a directory/prefix, as URIs in the same style as `uri`, sorted."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        return [uri]
    sel = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
    out = []
    for fi in fs.get_file_info(sel):
        if fi.type != pafs.FileType.File:
            continue
        out.append(_to_uri(uri, path, fi.path))
    return sorted(out)


def _to_uri(base_uri: str, base_path: str, path: str) -> str:
    if not is_remote(base_uri):
        return path
    scheme = base_uri.split("://", 1)[0]
    return f"{scheme}://{path}"
