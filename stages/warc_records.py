"""WARC record normalisation: one library record -> a document row or a named drop reason.

Why a module of its own: the rules that turn a record into a row of ``DOC_SCHEMA`` (record
types, HTTP head parsing, transfer/content decoding, ids, URIs, dates, crawl ids) are the same
whichever WARC library parsed the bytes and however the file was laid out; the byte-level side
is :mod:`stages.warc_backend`.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pyarrow as pa

from core.urls import url_hash
from stages.warc_backend import HTTP_HEAD_PROBE as _HTTP_HEAD_PROBE
from stages.warc_backend import SCAN_BLOCK as _SCAN_BLOCK
from stages.warc_backend import _Rec

if TYPE_CHECKING:
    from stages.warc_reader import ReadConfig

DOC_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("warc_record_id", pa.string()),  # hashed unless read.keep_record_id
        ("url", pa.string()),
        # Hash of the normalised ORIGINAL url (core/urls.py), computed here, before any PII
        # scrubbing touches `url`: deletions and the blocklist match on it.
        ("url_hash", pa.string()),
        ("warc_date", pa.timestamp("s", tz="UTC")),
        ("crawl_id", pa.string()),
        ("source_uri", pa.string()),
        ("source_offset", pa.int64()),
        ("source_length", pa.int64()),
        ("http_status", pa.int32()),
        ("content_type", pa.string()),
        ("charset", pa.string()),
        ("html", pa.binary()),
    ]
)

READ_REASONS = (
    "read.warcinfo",
    "read.request",
    "read.metadata",
    "read.revisit",
    "read.other_type",
    "read.non_200",
    "read.non_html",
    "read.too_large",
    "read.parse_error",
    "read.truncated",
    "read.duplicate_record_id",
)
FILE_REASONS = ("file.missing", "file.empty", "file.not_warc", "file.unreadable")

PASS_THROUGH = (GeneratorExit, KeyboardInterrupt, SystemExit)
_PASS_THROUGH = PASS_THROUGH
_CRAWL_RE = re.compile(r"CC-MAIN-\d{4}-\d{2}(?!\d)")
_CHARSET_RE = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._:\-]+)""", re.I)


def _to_str(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _clean_uri(uri: str | None) -> str | None:
    """wget writes ``<uri>`` (a WARC 1.1 draft form); warcio strips the brackets, fastwarc not."""
    if uri is None:
        return None
    uri = uri.strip()
    if uri.startswith("<") and uri.endswith(">"):
        uri = uri[1:-1].strip()
    return uri.replace(" ", "%20")


def _parse_warc_date(s: str | None) -> datetime | None:
    if not s:
        return None
    s = s.strip()
    try:
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).replace(microsecond=0)


def _norm_record_id(record_id: str | None) -> str:
    rid = (record_id or "").strip().strip("<>").strip().lower()
    return rid[9:] if rid.startswith("urn:uuid:") else rid


def doc_id_for(record_id: str | None, source_uri: str, offset: int) -> str:
    """Stable document id: a hash of (WARC-Record-ID, source file), 32 hex chars.

    Why a hash: a WARC-Record-ID is any URI a crawler chose (``<mailto:jane@...>`` is valid),
    so the raw value must not become the id that every output and lineage table repeats; and
    the same record id in two files is two occurrences (issue 19). Without a record id the
    record's byte offset stands in.
    """
    rid = _norm_record_id(record_id)
    key = f"rid\n{rid}\n{source_uri}" if rid else f"pos\n{source_uri}\n{offset}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def record_id_column(record_id: str | None, keep_raw: bool) -> str | None:
    """What the ``warc_record_id`` column stores: the raw id only when the user asks for it
    (``read.keep_record_id``), else ``sha256:`` + a hash of the normalised id, which still
    tells two occurrences of one record apart from two records."""
    if record_id is None:
        return None
    if keep_raw:
        return record_id
    rid = _norm_record_id(record_id)
    return "sha256:" + hashlib.sha256(rid.encode("utf-8", "surrogatepass")).hexdigest()[:32]


_doc_id = doc_id_for


def _crawl_from_path(source_uri: str) -> str:
    m = _CRAWL_RE.search(source_uri)
    if m:
        return m.group(0)
    name = source_uri.rstrip("/").rsplit("/", 1)[-1]
    for ext in (".gz", ".warc", ".arc"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


def parse_http_head(block_head: bytes) -> tuple[int, dict[str, str], int]:
    """Parse an HTTP response head: (status, lower-cased headers, length of head incl. blank line).

    Raises ValueError when the block does not start with an HTTP status line.
    """
    i = block_head.find(b"\r\n\r\n")
    j = block_head.find(b"\n\n")
    if i >= 0 and (j < 0 or i <= j):
        head, hlen = block_head[:i], i + 4
    elif j >= 0:
        head, hlen = block_head[:j], j + 2
    else:
        head, hlen = block_head, len(block_head)
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    status_line = lines[0].strip()
    if not status_line.upper().startswith(b"HTTP/"):
        raise ValueError(f"no HTTP status line (first line {len(status_line)} bytes)")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[1][:3].isdigit():
        raise ValueError(f"bad HTTP status line ({len(status_line)} bytes)")
    status = int(parts[1][:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, sep, v = line.partition(b":")
        if not sep:
            continue
        key = k.strip().lower().decode("latin-1")
        if key and key not in headers:
            headers[key] = v.strip().decode("latin-1")
    return status, headers, hlen


def _dechunk(body: bytes) -> bytes | None:
    """Undo HTTP chunked transfer coding; None if the body is not really chunked."""
    out = []
    pos = 0
    n = len(body)
    while pos < n:
        eol = body.find(b"\r\n", pos, pos + 64)
        if eol < 0:
            return None
        size_s = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError:
            return None
        pos = eol + 2
        if size == 0:
            return b"".join(out)
        if pos + size > n:
            out.append(body[pos:])  # truncated last chunk: keep what is there
            return b"".join(out)
        out.append(body[pos : pos + size])
        pos += size + 2
    return b"".join(out) if out else None


def _decode_body(body: bytes, headers: dict[str, str], limit: int) -> bytes:
    """Undo transfer/content encoding where the bytes really are encoded, else keep them raw.

    2009-era CommonCrawl stores plain bodies under ``Content-Encoding: gzip`` and
    ``Transfer-Encoding: chunked`` headers; each step is tried and dropped on failure.
    """
    if "chunked" in headers.get("transfer-encoding", "").lower():
        dechunked = _dechunk(body)
        if dechunked is not None:
            body = dechunked
    enc = headers.get("content-encoding", "").lower().strip()
    if enc in ("gzip", "x-gzip", "deflate") and body:
        for wbits in (47, -15):  # gzip/zlib auto-detect, then raw deflate
            try:
                d = zlib.decompressobj(wbits)
                out = d.decompress(body, limit)
                if out:
                    return out
            except zlib.error:
                continue
    return body


def _looks_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def describe_error(e: BaseException) -> str:
    """A description of an error that never quotes the data that caused it.

    Errors end up in lineage (`input_files.error`), logs and run summaries; library messages
    (and reprs of bytes) can carry payload bytes, so only the type, and for OS errors the
    errno text, are kept (issue 19: errors store descriptions, never payload bytes).
    """
    if isinstance(e, OSError):
        return f"{type(e).__name__} [errno {e.errno}] {e.strerror or ''}".strip()
    return type(e).__name__


class RecordNormaliser:
    """Per-file state of record classification: the drop/row decision for each record.

    ``_FileReader`` (stages.warc_reader) extends it with the scanning and resync policy.
    """

    def __init__(self, source_uri: str, cfg: ReadConfig, crawl_id: str | None) -> None:
        self.uri = source_uri
        self.cfg = cfg
        self.crawl_arg = crawl_id
        self.crawl_warcinfo: str | None = None
        self.html_types = {t.lower() for t in cfg.html_content_types}
        self.accept = set(cfg.accept_status)
        self.errors: list[str] = []
        self._seen_rids: set[str] = set()

    _last_truncated = False

    def _classify(self, rec: _Rec) -> tuple[str, object]:
        """Decide what one record is: ('doc', row) or ('drop', reason). Never raises."""
        self._last_truncated = False
        try:
            return self._classify_inner(rec)
        except _PASS_THROUGH:
            raise
        except BaseException as e:  # noqa: BLE001 - a library error inside one record
            self.errors.append(f"{self.uri}: record at {rec.pos}: {describe_error(e)}")
            return "drop", "read.parse_error"

    def _classify_inner(self, rec: _Rec) -> tuple[str, object]:
        if rec.error is not None:
            self.errors.append(f"{self.uri}: record at {rec.pos}: {rec.error}")
            return "drop", "read.parse_error"
        g = rec.get
        rtype = (_to_str(g("WARC-Type")) or "").strip().lower()
        cl_raw = (_to_str(g("Content-Length")) or "").strip()
        if not cl_raw.isdigit():
            self.errors.append(
                f"{self.uri}: record at {rec.pos}: bad Content-Length "
                f"({len(cl_raw)} characters, not a number)"
            )
            return "drop", "read.parse_error"
        cl = int(cl_raw)
        if rtype == "warcinfo":
            if cl <= _HTTP_HEAD_PROBE:
                m = re.search(rb"(?mi)^ispartof:\s*(\S+)", rec.read(cl) or b"")
                if m and self.crawl_warcinfo is None:
                    self.crawl_warcinfo = m.group(1).decode("utf-8", "replace")
            return "drop", "read.warcinfo"
        if rtype == "request":
            return "drop", "read.request"
        if rtype == "metadata":
            return "drop", "read.metadata"
        if rtype == "revisit":
            return "drop", "read.revisit"
        if rtype != "response":
            return "drop", "read.other_type"
        head = rec.read(min(cl, _HTTP_HEAD_PROBE)) or b""
        try:
            status, headers, hlen = parse_http_head(head)
        except ValueError as e:
            if len(head) < min(cl, _HTTP_HEAD_PROBE):
                self._last_truncated = True
                return "drop", "read.truncated"
            self.errors.append(f"{self.uri}: record at {rec.pos}: {e}")
            return "drop", "read.parse_error"
        if status not in self.accept:
            return "drop", "read.non_200"
        ctype_raw = headers.get("content-type")
        ctype = ctype_raw.split(";", 1)[0].strip().lower() if ctype_raw else None
        if ctype is not None and ctype not in self.html_types:
            return "drop", "read.non_html"
        if ctype is None and not _looks_html(head[hlen:]):
            return "drop", "read.non_html"
        if cl > self.cfg.max_record_bytes:
            return "drop", "read.too_large"
        rest_len = cl - len(head)
        parts = [head]
        while rest_len > 0:
            got = rec.read(min(rest_len, _SCAN_BLOCK))
            if not got:
                break
            parts.append(got)
            rest_len -= len(got)
        if rest_len > 0:
            self._last_truncated = True
            return "drop", "read.truncated"
        block = b"".join(parts) if len(parts) > 1 else head
        body = _decode_body(block[hlen:], headers, self.cfg.max_record_bytes)
        charset = None
        if ctype_raw:
            m = _CHARSET_RE.search(ctype_raw.encode("latin-1", "replace"))
            if m:
                charset = m.group(1).decode("ascii", "replace").lower()
        rid = _to_str(g("WARC-Record-ID"))
        nrid = _norm_record_id(rid)
        if nrid:
            # the same record twice in one file is one record: the first occurrence wins
            # (two rows would share a doc_id); across files phase 2 decides (run.py)
            if nrid in self._seen_rids:
                return "drop", "read.duplicate_record_id"
            self._seen_rids.add(nrid)
        return "doc", {
            "doc_id": doc_id_for(rid, self.uri, rec.pos),
            "warc_record_id": record_id_column(rid, self.cfg.keep_record_id),
            "url": _clean_uri(_to_str(g("WARC-Target-URI"))),
            "warc_date": _parse_warc_date(_to_str(g("WARC-Date"))),
            "crawl_id": None,  # filled at chunk time (warcinfo may come first)
            "source_uri": self.uri,
            "source_offset": rec.pos,
            "source_length": None,
            "http_status": status,
            "content_type": ctype,
            "charset": charset,
            "html": body,
        }

    def crawl_id(self) -> str:
        return self.crawl_warcinfo or self.crawl_arg or _crawl_from_path(self.uri)


def make_table(rows: list[dict], crawl_id: str) -> pa.Table:
    """Rows from :meth:`RecordNormaliser._classify` as a ``DOC_SCHEMA`` table."""
    cols = {name: [r.get(name) for r in rows] for name in DOC_SCHEMA.names}
    cols["crawl_id"] = [crawl_id] * len(rows)
    cols["url_hash"] = [None if u is None else url_hash(u) for u in cols["url"]]
    return pa.Table.from_pydict(cols, schema=DOC_SCHEMA)


def _parse_warc_block(data: bytes) -> tuple[dict[str, str], dict[str, str], bytes]:
    i = data.find(b"\r\n\r\n")
    if i < 0:
        raise ValueError("no end of WARC header")
    lines = data[:i].split(b"\r\n")
    if not lines[0].startswith(b"WARC/"):
        raise ValueError(f"not a WARC record: {lines[0][:40]!r}")
    warc_headers: dict[str, str] = {}
    for line in lines[1:]:
        k, sep, v = line.partition(b":")
        if sep:
            warc_headers.setdefault(
                k.strip().decode("utf-8", "replace"), v.strip().decode("utf-8", "replace")
            )
    cl = int(warc_headers.get("Content-Length", "0"))
    block = data[i + 4 : i + 4 + cl]
    http_headers: dict[str, str] = {}
    body = block
    if block[:5].upper() == b"HTTP/":
        status, http_headers, hlen = parse_http_head(block)
        http_headers = {":status": str(status), **http_headers}
        body = _decode_body(block[hlen:], http_headers, max(len(block) * 64, 1 << 26))
    return warc_headers, http_headers, body
