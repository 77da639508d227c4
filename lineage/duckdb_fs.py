"""The fsspec filesystem DuckDB reads shard files through (object stores, analyst sessions).

Why its own file class: DuckDB reads one file from several threads through one handle
(``seek`` then ``read``), and pyarrow releases the GIL inside ``read``. With fsspec's
``ArrowFile`` (one shared position) another thread's ``seek`` could land in between, so a
read returned the bytes of another offset: random "Invalid string encoding found in Parquet
file" / "TProtocolException: Invalid data" errors in queries over the views. Here every read
is a positional ``read_at`` at a position kept per thread.
"""

from __future__ import annotations

import threading
from typing import Any

from fsspec.implementations.arrow import ArrowFSWrapper

__all__ = ["PositionalArrowFS", "PositionalReader"]


class PositionalReader:
    """A read-only file whose position is per thread; every read is a positional ``read_at``."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream  # a pyarrow RandomAccessFile: read_at is thread-safe
        self._size = stream.size()
        self._pos = threading.local()

    def _at(self) -> int:
        return getattr(self._pos, "value", 0)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._at(), 2: self._size}[whence]
        self._pos.value = max(0, base + offset)
        return self._pos.value

    def tell(self) -> int:
        return self._at()

    def read(self, n: int = -1) -> bytes:
        pos = self._at()
        n = self._size - pos if n is None or n < 0 else min(n, max(0, self._size - pos))
        data = self._stream.read_at(n, pos) if n > 0 else b""
        self._pos.value = pos + len(data)
        return data

    @property
    def size(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> PositionalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PositionalArrowFS(ArrowFSWrapper):
    """fsspec over a pyarrow filesystem whose binary reads are :class:`PositionalReader`."""

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if mode == "rb":
            return PositionalReader(self.fs.open_input_file(path))
        return super()._open(path, mode, *args, **kwargs)
