"""WARC byte-level backend: streams, gzip members, resynchronisation and library adapters.

Why a module of its own: everything here is about *bytes and positions* (where a gzip member or
plain record ends, where the next plausible record starts, how fastwarc and warcio are driven
over seekable and forward-only streams). What a record *means* lives in
:mod:`stages.warc_records`; the policy that ties both together (resync after an error, chunks,
conservation) lives in :mod:`stages.warc_reader`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

GZ_MAGIC = b"\x1f\x8b\x08"
SCAN_BLOCK = 1 << 20
HTTP_HEAD_PROBE = 64 * 1024
# Largest WARC header block read, the same for both libraries: fastwarc's default (32 KiB) lost
# records with long URIs that warcio (no limit) read; above this both count read.parse_error.
MAX_WARC_HEADER = 1 << 20
_GZ_MAGIC = GZ_MAGIC
_SCAN_BLOCK = SCAN_BLOCK
_HTTP_HEAD_PROBE = HTTP_HEAD_PROBE


def _default_opener(source_uri: str) -> Callable[[], BinaryIO]:
    path = source_uri[7:] if source_uri.startswith("file://") else source_uri
    return lambda: open(path, "rb")  # noqa: SIM115 - caller closes


def _stream_size(stream: BinaryIO) -> int | None:
    size = getattr(stream, "size", None)
    if callable(size):
        try:
            return int(size())
        except Exception:  # noqa: BLE001 - not all NativeFile kinds know their size
            pass
    try:
        pos = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(pos)
        return int(end)
    except Exception:  # noqa: BLE001
        return None


def _seek(stream: BinaryIO, offset: int) -> None:
    """Position a fresh stream at ``offset`` (read-and-discard if it cannot seek)."""
    try:
        stream.seek(offset)
        return
    except Exception:  # noqa: BLE001
        pass
    left = offset
    while left > 0:
        got = stream.read(min(left, _SCAN_BLOCK))
        if not got:
            return
        left -= len(got)


def _read_at(stream: BinaryIO, offset: int, n: int) -> bytes:
    _seek(stream, offset)
    return stream.read(n) or b""


def _gunzip_head(raw: bytes, n: int = 16) -> bytes | None:
    """First ``n`` decompressed bytes of the gzip member starting ``raw``, None if invalid."""
    try:
        d = zlib.decompressobj(31)
        return d.decompress(raw, n)
    except zlib.error:
        return None


def _gzip_member_end(stream: BinaryIO, offset: int) -> tuple[int, bool]:
    """(end offset, complete) of the gzip member starting at ``offset``; streams, bounded memory."""
    _seek(stream, offset)
    d = zlib.decompressobj(31)
    pos = offset
    try:
        while True:
            raw = stream.read(_SCAN_BLOCK)
            if not raw:
                return pos, False
            # decompress in pieces so a huge member never sits in memory
            buf = raw
            while buf:
                d.decompress(buf, _SCAN_BLOCK)
                buf = d.unconsumed_tail
                if d.eof:
                    return pos + len(raw) - len(d.unused_data), True
            pos += len(raw)
    except zlib.error:
        return pos, False


def _plain_record_end(stream: BinaryIO, offset: int, size: int | None) -> tuple[int, bool]:
    """(end offset, complete) of the plain WARC record at ``offset`` from its Content-Length."""
    head = _read_at(stream, offset, _HTTP_HEAD_PROBE)
    i = head.find(b"\r\n\r\n")
    sep = 4
    if i < 0:
        i, sep = head.find(b"\n\n"), 2
    if i < 0:
        return offset + len(head), False
    m = re.search(rb"\ncontent-length:\s*(\d+)", head[:i], re.I)
    if not m:
        return offset + i + sep, False
    end = offset + i + sep + int(m.group(1))
    # swallow the record separator (CRLF CRLF, tolerate bare LFs)
    tail = _read_at(stream, end, 4)
    k = 0
    while k < len(tail) and tail[k : k + 1] in (b"\r", b"\n"):
        k += 1
    end += k
    complete = size is None or end <= size
    return (min(end, size) if size is not None else end), complete


def _find_resync(stream: BinaryIO, start: int, gz: bool) -> int | None:
    """Offset >= start of the next plausible record start (gzip member or ``WARC/1.`` line)."""
    pos = start
    carry = b""
    _seek(stream, start)
    while True:
        block = stream.read(_SCAN_BLOCK)
        if not block:
            return None
        data = carry + block
        base = pos - len(carry)
        i = 0
        while True:
            if gz:
                j = data.find(_GZ_MAGIC, i)
            else:
                j = data.find(b"WARC/1.", i)
            if j < 0:
                break
            if gz:
                if j + 64 > len(data) and len(block) == _SCAN_BLOCK:
                    break  # need more bytes to verify; retry with the next block
                head = _gunzip_head(data[j : j + 4096])
                if head and head.startswith(b"WARC/"):
                    return base + j
            elif j == 0 and base == start or (j > 0 and data[j - 1 : j] == b"\n"):
                return base + j
            i = j + 1
        keep = 4096 if gz else 8
        carry = data[-keep:]
        pos += len(block)


@dataclass
class _Rec:
    pos: int
    get: Callable[[str], object]
    read: Callable[[int], bytes]
    content_length: int | None
    error: str | None = None  # why the record is unreadable though the library returned it


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except Exception:  # noqa: BLE001
        return False


class RecordOverrun(Exception):
    """A record declared more bytes than its gzip member holds (per-record gzip).

    Raised by the fastwarc adapter after the record was classified, so the scan stops there
    and resumes at the start of the next member: the next record's bytes never become part of
    the liar and the next record is read once (warcio stops at the member end by itself).
    """

    def __init__(self, pos: int) -> None:
        super().__init__(f"record at {pos} runs past its gzip member")
        self.pos = pos


def _is_gzip(stream: BinaryIO) -> bool:
    pos = stream.tell()
    magic = stream.read(2)
    stream.seek(pos)
    return magic == b"\x1f\x8b"


def _iter_fastwarc(stream: BinaryIO) -> Iterator[_Rec]:
    # fastwarc 2.x panics (a BaseException) on a stream that cannot seek: use warcio there
    if not _seekable(stream):
        yield from _iter_warcio(stream)
        return
    if not _is_gzip(stream):
        for r in _archive_iterator(stream):
            h = r.headers
            yield _Rec(pos=int(r.stream_pos), get=h.get, read=r.reader.read, content_length=None)
        return
    yield from _iter_fastwarc_members(stream)


def _archive_iterator(stream: object, **kw: object) -> Iterable[Any]:
    """fastwarc's iterator as both paths use it: every record type, raw HTTP, the shared
    header limit."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    return ArchiveIterator(
        stream,
        parse_http=False,
        record_types=WarcRecordType.any_type,
        max_header_len=MAX_WARC_HEADER,
        fsspec_args=False,
        **kw,
    )


def _iter_fastwarc_members(stream: BinaryIO) -> Iterator[_Rec]:
    """fastwarc over per-record gzip, with each record held to its own gzip member.

    fastwarc reads a record's Content-Length across member ends, so a record that claims more
    bytes than its member holds swallows the head of the next record. Our own GzipReader tells
    which member is being decoded: a read that moves to another member is refused (the record
    comes out short: read.truncated) and the scan stops with :class:`RecordOverrun`.
    """
    from fastwarc.stream_io import GzipReader

    gz = GzipReader(stream, fsspec_args=False)
    for r in _archive_iterator(gz, stream_detect=False):
        frame = gz.frame_start_position()
        pos = int(r.stream_pos)
        over = False
        given = 0

        def read(
            n: int, _reader: object = r.reader, _frame: int | None = frame, _pos: int = pos
        ) -> bytes:
            nonlocal over, given
            if over:
                return b""
            data = _reader.read(n)  # type: ignore[attr-defined]
            if gz.frame_start_position() != _frame:
                # the read ran into the next member: hand out only what this member holds,
                # as warcio does, so both readers classify the record alike
                over = True
                return _member_body_slice(stream, _pos, given, n)
            given += len(data)
            return data

        yield _Rec(pos=pos, get=r.headers.get, read=read, content_length=None)
        if not over:
            r.reader.consume()  # what fastwarc would skip next, checked against the member
            over = gz.frame_start_position() != frame
        if over:
            raise RecordOverrun(pos)


def _member_body_slice(stream: BinaryIO, member: int, skip: int, n: int) -> bytes:
    """Bytes [skip, skip + n) of the record block in the gzip member at ``member``, cut at the
    member's end. Leaves ``stream`` where it was (a library is reading from it)."""
    back = stream.tell()
    try:
        _seek(stream, member)
        d = zlib.decompressobj(31)
        out = bytearray()
        body = -1
        while not d.eof:
            raw = stream.read(_SCAN_BLOCK)
            if not raw:
                break
            try:
                out += d.decompress(raw)
            except zlib.error:
                break
            if body < 0:
                i = out.find(b"\r\n\r\n")
                body = i + 4 if i >= 0 else -1
            if body >= 0 and len(out) >= body + skip + n:
                break
        if body < 0:
            return b""
        return bytes(out[body + skip : body + skip + n])
    finally:
        stream.seek(back)


class _NullWriter:
    """Swallows what a library writes; a file-like that never stores anything."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


class _SysWithoutStderr:
    """Stands in for ``sys`` inside warcio's modules: all of ``sys`` except ``stderr``."""

    stderr = _NullWriter()

    def __getattr__(self, name: str) -> object:
        return getattr(sys, name)


_WARCIO_QUIET = False


def _quiet_warcio() -> None:
    """Stop warcio printing record bytes: no PII in logs (docs/architecture.md).

    warcio writes ``Remainder: b'<the next header line>'`` (a URI with its query, i.e. PII) to
    ``sys.stderr`` after a wrong Content-Length, logs URIs with spaces, and prints zlib and
    digest messages. Our reader counts those records with a reason and describes errors without
    data, so warcio's own output is dropped: its modules get a ``sys`` without stderr (no global
    redirection, so other threads' output is untouched) and its loggers are turned off.
    Idempotent; done once per process.
    """
    global _WARCIO_QUIET
    if _WARCIO_QUIET:
        return
    import importlib

    for name in ("archiveiterator", "bufferedreaders", "digestverifyingreader"):
        mod = importlib.import_module(f"warcio.{name}")
        if getattr(mod, "sys", None) is sys:
            mod.sys = _SysWithoutStderr()  # type: ignore[attr-defined]
    # above CRITICAL: every warcio.* logger (none sets its own level) drops its records
    logging.getLogger("warcio").setLevel(logging.CRITICAL + 1)
    _WARCIO_QUIET = True


def _iter_warcio(stream: BinaryIO) -> Iterator[_Rec]:
    from warcio.archiveiterator import ArchiveIterator

    _quiet_warcio()
    base = stream.tell()
    it = ArchiveIterator(stream, no_record_parse=True)
    it.offset = base  # warcio starts counting at 0 even for a stream positioned mid-file
    reader = it.reader
    # warcio's own offset stays on an empty gzip member it skipped (its EOFError path), so the
    # record after it would get the empty member's offset: note where each member starts
    member_start = [base]
    next_member = reader.read_next_member

    def read_next_member() -> bool:
        ok = next_member()
        if ok:
            member_start[0] = it.fh.tell() - len(reader.starting_data or b"")
        return ok

    reader.read_next_member = read_next_member
    for r in it:
        h = r.rec_headers
        if not h.protocol and not h.headers:
            continue  # a gzip member holding only CRLFs: no record (fastwarc skips it too)
        head_len = len(h.protocol) + 4 + sum(len(k) + len(v) + 4 for k, v in h.headers)
        if head_len > MAX_WARC_HEADER:
            # fastwarc refuses such a header block: count it the same way (read.parse_error)
            yield _Rec(
                pos=_warcio_pos(it, member_start),
                get=_no_header,
                read=_no_body,
                content_length=None,
                error=f"WARC header block over {MAX_WARC_HEADER} bytes",
            )
            continue
        # it.offset is the current record's start until the record is read to its end
        # (get_record_offset() would read the body first)
        yield _Rec(
            pos=_warcio_pos(it, member_start),
            get=h.get_header,
            read=r.raw_stream.read,
            content_length=None,
        )


def _warcio_pos(it: object, member_start: list[int]) -> int:
    gz = it.reader.decompressor is not None  # type: ignore[attr-defined]
    return int(member_start[0] if gz else it.offset)  # type: ignore[attr-defined]


def _no_header(name: str) -> None:
    """Header lookup of a record whose header block was too large to keep."""
    return None


def _no_body(n: int) -> bytes:
    return b""


def _skip_blank_members(stream: BinaryIO, offset: int) -> int:
    """Offset after the complete gzip members at ``offset`` that hold only whitespace.

    An empty member (``gzip.compress(b"")``) or one holding only CRLFs is not a record: it is
    skipped without a count, as warcio does, and it never counts as junk.
    """
    while True:
        raw = _read_at(stream, offset, 4096)
        if not raw.startswith(_GZ_MAGIC):
            return offset
        d = zlib.decompressobj(31)
        try:
            out = d.decompress(raw, 4096)
        except zlib.error:
            return offset
        if not d.eof or out.strip(b"\r\n\t \x00"):
            return offset
        offset += len(raw) - len(d.unused_data)


class _FreshOpener:
    """Each helper call gets a freshly opened stream: forward-only streams cannot seek back."""

    def __init__(self, opener: Callable[[], BinaryIO]) -> None:
        self._opener = opener
        self._seekable: BinaryIO | None = None

    def call(self, fn: Callable[..., object], *args: object) -> object:
        if self._seekable is not None:
            return fn(self._seekable, *args)
        stream = self._opener()
        if _seekable(stream):
            self._seekable = stream
            return fn(stream, *args)
        try:
            return fn(stream, *args)
        finally:
            stream.close()

    def close(self) -> None:
        if self._seekable is not None:
            self._seekable.close()


class _CountingRaw(io.RawIOBase):
    """Gives a forward-only stream (e.g. an object-store read stream) the ``tell()`` warcio needs."""

    def __init__(self, raw: BinaryIO, base: int) -> None:
        self._raw = raw
        self._pos = base

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self._pos += n
        return n


class _LenientGunzip(io.RawIOBase):
    """Multi-member gunzip that stops (and says why) on junk or truncation instead of raising."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(31)
        self._buf = b""
        self._pending = b""
        self.truncated = False
        self.junk = False
        self._done = False
        self.total_out = 0  # decompressed bytes handed out so far

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.total_out - len(self._buf)  # not used by BufferedReader for reads

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only forward seeks (fastwarc probes the position); served by reading."""
        target = offset if whence == 0 else self.total_out + offset
        if whence not in (0, 1) or target < self.total_out:
            raise io.UnsupportedOperation("backward seek in a gzip stream")
        skip = bytearray(min(target - self.total_out, _SCAN_BLOCK))
        while self.total_out < target:
            n = self.readinto(memoryview(skip)[: target - self.total_out])
            if not n:
                break
        return self.total_out

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        while not self._buf and not self._done:
            self._fill()
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self.total_out += n
        self._buf = self._buf[n:]
        return n

    def _fill(self) -> None:
        data = self._pending or self._raw.read(_SCAN_BLOCK)
        self._pending = b""
        if not data:
            if not self._d.eof:
                self.truncated = True
            self._done = True
            return
        try:
            self._buf = self._d.decompress(data)
        except zlib.error:
            self.junk = True
            self._done = True
            return
        if self._d.eof:
            rest = self._d.unused_data
            if not rest:
                rest = self._raw.read(_SCAN_BLOCK)
                if not rest:
                    self._done = True
                    return
            if not rest.startswith(b"\x1f\x8b"):
                if rest.strip(b"\r\n\t \x00"):
                    self.junk = True
                self._done = True
                return
            self._d = zlib.decompressobj(31)
            self._pending = rest


def _seek_forward(stream: BinaryIO, n: int) -> None:
    while n > 0:
        got = stream.read(min(n, _SCAN_BLOCK))
        if not got:
            return
        n -= len(got)
