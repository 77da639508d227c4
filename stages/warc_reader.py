"""Robust streaming WARC reader: one WARC file -> chunks of HTML documents + drop counts.

Why this module exists rather than a bare library loop: real crawls contain truncated gzip
members, junk between members, unparsable headers and HTTP headers that lie about their
encoding. Both fastwarc and warcio either raise on those or stop silently. This reader lets
the library parse the happy path, verifies completeness itself (body length against
Content-Length, leftover bytes after the last record) and, after an error, resynchronises on
the next gzip member / ``WARC/1.`` header, so one bad record costs one counted record and never
the rest of the file. Every record consumed is either a document row or a named drop reason
(docs/architecture.md: conservation).

Layout: byte-level work (streams, gzip members, resync scans, fastwarc/warcio adapters) is in
:mod:`stages.warc_backend`; turning one record into a row or drop reason is in
:mod:`stages.warc_records`; this module holds the config, the scan/resync policy and chunking.

Offsets: for per-record gzip (CommonCrawl) and plain WARC, ``source_offset``/``source_length``
are the record's byte range in the file as stored; :func:`fetch_record` re-parses it from one
range read. For the rare whole-file (multi-record member) gzip, no such range exists; offsets
are then positions in the *decompressed* stream and :func:`fetch_record` falls back to a
streaming decompression up to the offset.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import Execution, Output
from stages.warc_backend import (
    _SCAN_BLOCK,
    RecordOverrun,
    _CountingRaw,
    _default_opener,
    _find_resync,
    _FreshOpener,
    _gunzip_head,
    _gzip_member_end,
    _iter_fastwarc,
    _iter_warcio,
    _LenientGunzip,
    _plain_record_end,
    _read_at,
    _seek,
    _seek_forward,
    _seekable,
    _skip_blank_members,
    _stream_size,
)
from stages.warc_records import (
    _PASS_THROUGH,
    DOC_SCHEMA,
    FILE_REASONS,
    READ_REASONS,
    RecordNormaliser,
    _parse_warc_block,
    describe_error,
    make_table,
    parse_http_head,
)

__all__ = [
    "DOC_SCHEMA",
    "READ_REASONS",
    "FILE_REASONS",
    "ReadConfig",
    "ReadChunk",
    "read_warc",
    "fetch_record",
    "parse_http_head",
]


class ReadConfig(BaseModel):
    """How WARC files are read and which records become documents."""

    model_config = ConfigDict(extra="forbid")

    library: Execution[Literal["fastwarc", "warcio"]] = Field(
        "fastwarc",
        description=(
            "WARC parsing library. Both pass the same damaged-file tests (this reader does the "
            "completeness checks and resynchronisation itself) and give identical rows: both "
            "cut a record whose Content-Length runs past its gzip member at the member end "
            "(read.truncated), read WARC header blocks up to 1 MiB and count larger ones "
            "read.parse_error. fastwarc is the default: 1.1-1.3x warcio's records/s here on "
            "the 990-record trafilatura-eval WARC (gzip inflation and body copies dominate "
            "both); it needs a seekable stream and falls back to warcio on forward-only ones "
            "and on files whose WARC lines end in a bare LF."
        ),
    )
    max_record_bytes: Output[int] = Field(
        16 * 1024 * 1024,
        gt=0,
        le=1 << 30,
        description=(
            "Records whose WARC block is larger are counted read.too_large and skipped without "
            "holding the body in memory. 16 MiB: CommonCrawl truncates payloads at 1 MiB "
            "(5 MiB since 2024), so only non-CC crawls hit this."
        ),
    )
    chunk_records: Execution[int] = Field(
        1000,
        gt=0,
        le=1_000_000,
        description="A chunk closes after this many records consumed (all types, not only docs).",
    )
    chunk_bytes: Execution[int] = Field(
        64 * 1024 * 1024,
        gt=0,
        le=1 << 31,
        description=(
            "A chunk closes once its documents hold this many HTML bytes; bounds the memory of "
            "one chunk to about this size (64 MiB)."
        ),
    )
    html_content_types: Output[list[str]] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml"],
        description=(
            "HTTP Content-Type values (lower-case, without parameters) kept as documents. A "
            "response without Content-Type is kept only if its body starts like HTML."
        ),
    )
    keep_record_id: Output[bool] = Field(
        False,
        description=(
            "Store the raw WARC-Record-ID in the warc_record_id column. Off by default: a "
            "record id is any URI the crawler chose (it can be a mailto: address), so the "
            "column holds 'sha256:' + a hash of it; doc_id is always a hash of (record id, "
            "source file)."
        ),
    )
    accept_status: Output[list[int]] = Field(
        default_factory=lambda: [200],
        description="HTTP status codes kept; others are read.non_200 (FineWeb keeps 200 only).",
    )


@dataclass
class ReadChunk:
    """Consecutive records of one file: the documents and the counts of everything else."""

    chunk_index: int
    docs: pa.Table
    counts: dict[str, int]
    records_read: int
    errors: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the reader


@dataclass
class _ScanState:
    """Where `_FileReader._scan` stopped: last record offset, whether it was unparsable, the
    document still waiting for its length, and the exception that ended the scan."""

    last_pos: int | None = None
    last_bad: bool = False
    pending: dict | None = None
    exc: BaseException | None = None


class _FileReader(RecordNormaliser):
    """State of reading one file; ``units()`` yields one item per record consumed."""

    def __init__(
        self,
        source_uri: str,
        cfg: ReadConfig,
        open_stream: Callable[[], BinaryIO] | None,
        crawl_id: str | None,
    ) -> None:
        super().__init__(source_uri, cfg, crawl_id)
        self.open = open_stream or _default_opener(source_uri)
        self._iter = _iter_fastwarc if cfg.library == "fastwarc" else _iter_warcio

    # Items yielded by units(): ("doc", row) | ("drop", reason) | ("file", reason)

    def units(self) -> Iterator[tuple[str, object]]:
        try:
            stream = self.open()
        except FileNotFoundError as e:
            self.errors.append(f"{self.uri}: missing: {describe_error(e)}")
            yield "file", "file.missing"
            return
        except Exception as e:  # noqa: BLE001 - permission, network, bad URI
            self.errors.append(f"{self.uri}: cannot open: {describe_error(e)}")
            yield "file", "file.unreadable"
            return
        try:
            try:
                head = stream.read(64 * 1024) or b""
                size = _stream_size(stream)
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"{self.uri}: cannot read: {describe_error(e)}")
                yield "file", "file.unreadable"
                return
            if not head:
                self.errors.append(f"{self.uri}: empty file")
                yield "file", "file.empty"
                return
            if head.startswith(b"\x1f\x8b"):
                first = _gunzip_head(head, 4096)
                if not first or not first.lstrip(b"\r\n").startswith(b"WARC/"):
                    self.errors.append(f"{self.uri}: gzip file does not contain a WARC record")
                    yield "file", "file.not_warc"
                    return
                mode = "gz" if self._per_record_gzip(stream) else "gzmulti"
                self._lf_only_fallback(first)
            elif head.lstrip(b"\r\n").startswith(b"WARC/"):
                mode = "plain"
                self._lf_only_fallback(head)
            else:
                self.errors.append(f"{self.uri}: not a WARC file (no WARC or gzip header)")
                yield "file", "file.not_warc"
                return
        finally:
            stream.close()
        try:
            if mode == "gzmulti":
                yield from self._units_multi()
            else:
                yield from self._units_seekable(gz=(mode == "gz"), size=size)
        except OSError as e:
            # the storage failed under us (not the data): report it at file level
            self.errors.append(f"{self.uri}: read failed mid-file: {describe_error(e)}")
            yield "file", "file.unreadable"

    def _lf_only_fallback(self, first: bytes) -> None:
        """A file whose WARC lines end in a bare LF is read with warcio.

        fastwarc (strict) reads such a header as one line and counts every record
        read.other_type; its quirks mode reads them but silently skips what it cannot parse.
        warcio reads them and its failures are counted, so both settings give the same rows.
        """
        line = first.lstrip(b"\r\n").split(b"\n", 1)[0]
        if self._iter is _iter_fastwarc and not line.endswith(b"\r"):
            self._iter = _iter_warcio

    def _per_record_gzip(self, stream: BinaryIO) -> bool:
        """True when the first gzip member holds exactly the first record (CommonCrawl layout)."""
        _seek(stream, 0)
        d = zlib.decompressobj(31)
        out = bytearray()
        need: int | None = None
        raw_read = 0
        while True:
            raw = stream.read(64 * 1024)
            if not raw:
                return True
            raw_read += len(raw)
            try:
                out += d.decompress(raw)
            except zlib.error:
                return True
            if need is None:
                i = out.find(b"\r\n\r\n")
                if i >= 0:
                    m = re.search(rb"\ncontent-length:\s*(\d+)", bytes(out[:i]), re.I)
                    if not m:
                        return True
                    need = i + 4 + int(m.group(1)) + 4
            if need is not None and len(out) >= need + 64:
                return False  # more data after the first record inside one member
            if d.eof:  # the whole first member is in `out` (a small whole-file gzip too)
                return True
            if raw_read > 64 * 1024 * 1024:
                return True

    # ---- per-record gzip and plain files: library iteration + resync on error

    def _units_seekable(self, gz: bool, size: int | None) -> Iterator[tuple[str, object]]:
        start = 0
        while True:
            st = _ScanState()
            stream = self.open()
            try:
                _seek(stream, start)
                if not _seekable(stream):
                    stream = io.BufferedReader(_CountingRaw(stream, start), _SCAN_BLOCK)
                yield from self._scan(stream, st)
            finally:
                stream.close()
            last_pos, last_bad, pending, exc = st.last_pos, st.last_bad, st.pending, st.exc
            probe = _FreshOpener(self.open)
            try:
                if last_pos is not None:
                    end, _ = (
                        probe.call(_gzip_member_end, last_pos)
                        if gz
                        else probe.call(_plain_record_end, last_pos, size)
                    )
                else:
                    end = start
                lib_end = end
                if gz:  # members holding no record belong to no record and count nothing
                    end = probe.call(_skip_blank_members, end)
                if pending is not None:
                    pending["source_length"] = end - pending["source_offset"]
                    yield "doc", pending
                    pending = None
                if isinstance(exc, RecordOverrun):
                    # the record was counted (read.truncated if its body was read); the next
                    # record starts at its member's end, where `end` already points
                    start = end
                    continue
                if exc is not None:
                    self.errors.append(
                        f"{self.uri}: parse error after offset {end}: {describe_error(exc)}"
                    )
                    if not last_bad:
                        yield "drop", "read.parse_error"
                    scan_from = max(end, (last_pos if last_pos is not None else start) + 1)
                    if not last_bad:
                        # the parse_error just counted is the record at `end`: resync past it,
                        # or it is read (and counted) again
                        scan_from = max(scan_from, end + 1)
                    if last_pos is None:
                        scan_from = start + 1
                    nxt = probe.call(_find_resync, scan_from, gz)
                    if nxt is None:
                        return
                    start = nxt
                    continue
                # normal end: anything left after the last record?
                if size is None or end >= size:
                    return
                rest = probe.call(_read_at, end, 4096)
                if not rest.strip(b"\r\n\t \x00"):
                    return
                nxt = probe.call(_find_resync, end, gz)
                if nxt == end and end > lib_end:
                    # fastwarc stops at an empty gzip member as if the file ended there
                    start = end
                    continue
                if nxt == end or (nxt is None and self._looks_record_start(rest, gz)):
                    # a record starts here that the library did not return
                    _, whole = (
                        probe.call(_gzip_member_end, end)
                        if gz
                        else probe.call(_plain_record_end, end, size)
                    )
                    reason = "read.parse_error" if whole else "read.truncated"
                    self.errors.append(f"{self.uri}: unreadable record at offset {end} ({reason})")
                    yield "drop", reason
                    if nxt is None:
                        return
                    nxt = probe.call(_find_resync, end + 1, gz)
                    if nxt is None:
                        return
                else:
                    self.errors.append(f"{self.uri}: unparsable bytes at offset {end}")
                    yield "drop", "read.parse_error"
                    if nxt is None:
                        return
                start = nxt
            finally:
                probe.close()

    def _scan(self, stream: BinaryIO, st: _ScanState) -> Iterator[tuple[str, object]]:
        """Classify the library's records until it stops; the error it stopped on goes to st.

        A document's length is known only when the next record starts, so the last document
        stays in ``st.pending`` for the caller, which knows where the file really ends.
        """
        try:
            for rec in self._iter(stream):
                if st.pending is not None:
                    st.pending["source_length"] = rec.pos - st.pending["source_offset"]
                    yield "doc", st.pending
                    st.pending = None
                st.last_pos = rec.pos
                kind, val = self._classify(rec)
                st.last_bad = kind == "drop" and val == "read.parse_error"
                if kind == "doc":
                    st.pending = val  # type: ignore[assignment]
                else:
                    yield kind, val
        except _PASS_THROUGH:
            raise
        except BaseException as e:  # noqa: BLE001 - incl. pyo3 PanicException from fastwarc
            st.exc = e

    @staticmethod
    def _looks_record_start(rest: bytes, gz: bool) -> bool:
        if gz:
            return rest.startswith(b"\x1f\x8b")
        return rest.lstrip(b"\r\n").startswith(b"WARC/")

    # ---- whole-file gzip: one pass over a lenient decompressed stream, uncompressed offsets

    def _units_multi(self) -> Iterator[tuple[str, object]]:
        raw = self.open()
        gun = _LenientGunzip(raw)
        stream = io.BufferedReader(gun, buffer_size=_SCAN_BLOCK)
        st = _ScanState()
        yield from self._scan(stream, st)
        pending, last_bad, exc = st.pending, st.last_bad, st.exc
        if pending is not None:
            try:
                stream.read()  # drain so total_out is the end of the last record
            except Exception:  # noqa: BLE001
                pass
            pending["source_length"] = gun.total_out - pending["source_offset"]
            yield "doc", pending
        raw.close()
        if exc is not None and not last_bad and not gun.truncated:
            self.errors.append(f"{self.uri}: parse error: {describe_error(exc)}")
            yield "drop", "read.parse_error"
        if gun.junk:
            self.errors.append(f"{self.uri}: junk after a gzip member; rest of file skipped")
            yield "drop", "read.parse_error"
        if gun.truncated and not self._last_truncated:
            self.errors.append(f"{self.uri}: gzip stream truncated")
            yield "drop", "read.truncated"


def read_warc(
    source_uri: str,
    cfg: ReadConfig,
    open_stream: Callable[[], BinaryIO] | None = None,
    crawl_id: str | None = None,
) -> Iterator[ReadChunk]:
    """Stream one WARC file as chunks of consecutive records; never raises for bad data.

    ``open_stream`` returns a fresh binary stream each call (it is called again to resync after
    an error); by default ``source_uri`` is opened as a local path. Always yields at least one
    chunk; per chunk ``records_read == docs.num_rows + sum(non-file counts)``.
    """
    fr = _FileReader(source_uri, cfg, open_stream, crawl_id)
    idx = 0
    rows: list[dict] = []
    counts: dict[str, int] = {}
    n_read = 0
    nbytes = 0
    emitted = False

    def flush() -> ReadChunk:
        nonlocal idx, rows, counts, n_read, nbytes
        chunk = ReadChunk(
            chunk_index=idx,
            docs=make_table(rows, fr.crawl_id()),
            counts=counts,
            records_read=n_read,
            errors=list(fr.errors),
        )
        fr.errors.clear()
        idx += 1
        rows, counts, n_read, nbytes = [], {}, 0, 0
        return chunk

    for kind, val in fr.units():
        if kind == "file":
            counts[val] = counts.get(val, 0) + 1  # type: ignore[index]
            continue
        n_read += 1
        if kind == "doc":
            rows.append(val)  # type: ignore[arg-type]
            nbytes += len(val["html"])  # type: ignore[index]
        else:
            counts[val] = counts.get(val, 0) + 1  # type: ignore[index]
        if n_read >= cfg.chunk_records or nbytes >= cfg.chunk_bytes:
            emitted = True
            yield flush()
    if n_read or counts or fr.errors or not emitted:
        yield flush()


def _open_for_fetch(source_uri: str, open_stream: Callable[[], BinaryIO] | None) -> BinaryIO:
    return (open_stream or _default_opener(source_uri))()


def fetch_record(
    source_uri: str,
    offset: int,
    length: int,
    open_stream: Callable[[], BinaryIO] | None = None,
) -> tuple[dict[str, str], dict[str, str], bytes]:
    """Re-read one record with a single range read: (WARC headers, HTTP headers, decoded body).

    HTTP headers are lower-cased with the status under ``":status"``. For whole-file gzip
    (offsets in decompressed space) it falls back to decompressing the stream up to ``offset``.
    """
    stream = _open_for_fetch(source_uri, open_stream)
    try:
        data = _read_at(stream, offset, length)
        if data.startswith(b"\x1f\x8b"):
            try:
                d = zlib.decompressobj(31)
                plain = d.decompress(data)
                if d.eof and plain.startswith(b"WARC/"):
                    return _parse_warc_block(plain)
            except zlib.error:
                pass
        elif data.startswith(b"WARC/"):
            head = _read_at(stream, 0, 2)
            if head != b"\x1f\x8b":
                return _parse_warc_block(data)
        # offsets in the decompressed stream of a whole-file gzip
        _seek(stream, 0)
        gz = gzip.GzipFile(fileobj=stream)
        _seek_forward(gz, offset)
        return _parse_warc_block(gz.read(length))
    finally:
        stream.close()
