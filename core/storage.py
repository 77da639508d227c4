"""Filesystem access for local paths and object stores through `pyarrow.fs`.

Everything that reads inputs or writes outputs goes through here, so `s3://` and `gs://` work
wherever a local path does. Writes are atomic: a temporary name, then a rename (on object
stores a single PUT is atomic, so we write the final key directly).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

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


# Requests in flight when `map_uris` asks an object store (each is one round trip).
REQUESTS_IN_FLIGHT = 32

T = TypeVar("T")


def map_uris(fn: Callable[[str], T], uris: Sequence[str]) -> list[T]:
    """``[fn(u) for u in uris]``, with the object-store URIs asked concurrently: one after
    another, a driver's per-file request over the ~9,000 WARC files of a 10 TB crawl costs
    minutes of round trips (local paths are answered in order, in this thread)."""
    out: list[Any] = [None] * len(uris)
    remote = [i for i, u in enumerate(uris) if is_remote(u)]
    for i, u in enumerate(uris):
        if not is_remote(u):
            out[i] = fn(u)
    if remote:
        with ThreadPoolExecutor(min(REQUESTS_IN_FLIGHT, len(remote))) as pool:
            for i, v in zip(remote, pool.map(fn, [uris[i] for i in remote]), strict=True):
                out[i] = v
    return out


def file_sizes(uris: Sequence[str]) -> list[int | None]:
    """`file_size` of each URI, in order (None: not a file), see `map_uris`."""
    return map_uris(file_size, uris)


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
    with AtomicOutput(uri) as out:
        out.write(data)


# ---- the one atomic-publish mechanism --------------------------------------------------
# Every file the project writes becomes visible under its final name only once complete:
# local files are written under a temporary sibling name (`temp_sibling`), flushed to disk
# and renamed (`atomic_path`, `AtomicOutput`); on an object store the upload of the final
# key becomes visible only when its stream closes. Nothing else in the tree renames files.


def temp_sibling(path: str, hidden: bool = False) -> str:
    """A unique temporary name next to local `path`: `<path>.tmp-<tag>`, or
    `.<name>.tmp-<tag>` when `hidden` (for files globbed by name, e.g. lineage snapshots)."""
    tag = uuid.uuid4().hex[:8]
    if hidden:
        d, name = os.path.split(path)
        return os.path.join(d, f".{name}.tmp-{tag}")
    return f"{path}.tmp-{tag}"


def _fsync(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _discard(tmp: str) -> None:
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.lexists(tmp):
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, fsync: bool = True, hidden: bool = False
) -> Iterator[str]:
    """A temporary sibling of the local `path` for the block to write (a file or a directory),
    renamed onto `path` when the block succeeds and removed when it fails.

    Readers see the old content or the whole new one, never a partial file. `fsync=False`
    when the caller flushes many files at once (one `os.sync()` before the blocks end).
    """
    path = os.fspath(path)
    tmp = temp_sibling(path, hidden)
    try:
        yield tmp
        if fsync and os.path.isfile(tmp):
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        _discard(tmp)


class AtomicOutput:
    """A file (local path or object-store URI) written in pieces as a stream, visible under
    its name only once `commit()`ed; `abort()` leaves nothing. As a context manager it
    commits when the block succeeds and aborts when it raises.

    Local: a temporary sibling, flushed to disk and renamed on commit. Object store: the
    output stream of the final key (an upload becomes visible only when it closes).
    """

    def __init__(self, uri: str, *, fsync: bool = True):
        self.uri = uri
        self.fs, self.path = resolve(uri)
        self.remote = is_remote(uri)
        parent = posixpath.dirname(self.path) if self.remote else os.path.dirname(self.path)
        self.fs.create_dir(parent, recursive=True)
        self.tmp = self.path if self.remote else temp_sibling(self.path)
        self.fsync = fsync
        # local: a Python file, so OS errors keep their errno (ENOSPC names a full disk)
        self.stream: Any = (
            self.fs.open_output_stream(self.tmp) if self.remote else open(self.tmp, "wb")  # noqa: SIM115
        )

    def write(self, data: bytes) -> None:
        self.stream.write(data)

    def commit(self) -> None:
        try:
            if not self.remote and self.fsync:
                self.stream.flush()
                os.fsync(self.stream.fileno())
            self.stream.close()
            if not self.remote:
                os.replace(self.tmp, self.path)
        finally:
            if not self.remote:
                _discard(self.tmp)

    def abort(self) -> None:
        """Drop what was written; never raises for the failed write it cleans up after
        (closing a local file flushes its buffer, which fails again on a full disk)."""
        with contextlib.suppress(OSError):
            self.stream.close()
        if not self.remote:
            _discard(self.tmp)

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


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
    return [u for u, _ in list_file_sizes(uri, recursive)]


def list_file_sizes(uri: str, recursive: bool = True) -> list[tuple[str, int | None]]:
    """`list_files` with each file's size, which the listing returns anyway (on an object
    store a size asked later is one more request per file)."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        return [(uri, info.size)]
    sel = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
    out = []
    for fi in fs.get_file_info(sel):
        if fi.type != pafs.FileType.File:
            continue
        out.append((_to_uri(uri, path, fi.path), fi.size))
    return sorted(out)


def _to_uri(base_uri: str, base_path: str, path: str) -> str:
    if not is_remote(base_uri):
        return path
    scheme = base_uri.split("://", 1)[0]
    return f"{scheme}://{path}"
