"""Record boundaries the WARC libraries get wrong on their own: a Content-Length that runs past
its gzip member, gzip members that hold no record, and library output on stderr.

Every file is built here from bytes (one gzip member per record, as CommonCrawl writes) and read
with the real fastwarc and warcio; both readers must give the same rows and the same counts.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from stages.warc_reader import ReadConfig, fetch_record, read_warc

LIBS = ["fastwarc", "warcio"]


def _http(name: str) -> bytes:
    body = (
        b"<html><head><title>%s</title></head><body><article>" % name.encode()
        + b"<p>Some ordinary sentence of page %s that is long enough to look real.</p>\n"
        % name.encode()
        * 20
        + b"</article></body></html>"
    )
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


def _record(
    name: str, block: bytes, rtype: str = "response", extra: int = 0, uri: bytes | None = None
) -> bytes:
    """One WARC record; ``extra`` bytes are added to the declared Content-Length (a lie)."""
    uri = uri or b"http://%s.example.com/" % name.encode()
    return (
        (
            b"WARC/1.0\r\nWARC-Type: %s\r\nWARC-Record-ID: <urn:uuid:0000-%s>\r\n"
            b"WARC-Target-URI: %s\r\nWARC-Date: 2024-05-20T10:00:00Z\r\n"
            b"Content-Type: application/http; msgtype=%s\r\n"
            b"Content-Length: %d\r\n\r\n"
            % (rtype.encode(), name.encode(), uri, rtype.encode(), len(block) + extra)
        )
        + block
        + b"\r\n\r\n"
    )


def _warcinfo() -> bytes:
    info = b"software: test\r\nisPartOf: CC-MAIN-2024-22\r\n"
    return (
        (
            b"WARC/1.0\r\nWARC-Type: warcinfo\r\nWARC-Record-ID: <urn:uuid:0000-info>\r\n"
            b"WARC-Date: 2024-05-20T10:00:00Z\r\nContent-Type: application/warc-fields\r\n"
            b"Content-Length: %d\r\n\r\n" % len(info)
        )
        + info
        + b"\r\n\r\n"
    )


def _gz(records: list[bytes]) -> tuple[bytes, list[int]]:
    """Per-record gzip: the file bytes and each member's start offset."""
    out, starts = b"", []
    for r in records:
        starts.append(len(out))
        out += gzip.compress(r, mtime=0)
    return out, starts


def _read_all(path: Path, lib: str) -> tuple[pa.Table, Counter, int, list[str]]:
    chunks = list(read_warc(str(path), ReadConfig(library=lib)))
    counts: Counter = Counter()
    for ch in chunks:
        counts.update(ch.counts)
        drops = sum(v for k, v in ch.counts.items() if not k.startswith("file."))
        assert ch.records_read == ch.docs.num_rows + drops, ch
    docs = pa.concat_tables([c.docs for c in chunks])
    return docs, counts, sum(c.records_read for c in chunks), [e for c in chunks for e in c.errors]


def _assert_rows_refetch(path: Path, docs: pa.Table) -> None:
    for row in docs.to_pylist():
        warc, _, body = fetch_record(str(path), row["source_offset"], row["source_length"])
        assert warc["WARC-Target-URI"] == row["url"] and body == row["html"]


# ------------------------------------------------- 1. Content-Length longer than its member

# which record lies, and by how much: it must never take bytes of the members after it
OVERLONG = {
    "html-response-by-200": ("mid2", "response", 200),
    "html-response-past-two-members": ("mid2", "response", 5000),
    "request-by-200": ("req", "request", 200),
    "non-html-response-by-200": ("img", "response", 200),
}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("case", sorted(OVERLONG))
def test_content_length_past_its_gzip_member_is_truncated_not_run_on(
    tmp_path: Path, lib: str, case: str
) -> None:
    liar, rtype, extra = OVERLONG[case]
    lying_block = {
        "request": b"GET / HTTP/1.1\r\nHost: req.example.com\r\n\r\n",
        "response": _http(liar),
    }[rtype]
    if liar == "img":
        lying_block = lying_block.replace(b"text/html", b"image/png")
    records = [
        _warcinfo(),
        _record("mid1", _http("mid1")),
        _record(liar, lying_block, rtype=rtype, extra=extra),
        _record("mid3", _http("mid3")),
        _record("mid4", _http("mid4")),
    ]
    data, starts = _gz(records)
    path = tmp_path / "overlong.warc.gz"
    path.write_bytes(data)
    docs, counts, n_read, errors = _read_all(path, lib)
    assert n_read == 5, (dict(counts), errors)  # every record once, none twice
    liar_reason = {
        "mid2": "read.truncated",
        "req": "read.request",
        "img": "read.non_html",
    }[liar]
    assert dict(counts) == {"read.warcinfo": 1, liar_reason: 1}, errors
    assert docs["url"].to_pylist() == [
        "http://mid1.example.com/",
        "http://mid3.example.com/",
        "http://mid4.example.com/",
    ]
    assert not any(b"WARC/1.0" in h for h in docs["html"].to_pylist())
    assert docs["source_offset"].to_pylist() == [starts[1], starts[3], starts[4]]
    assert docs["source_length"].to_pylist() == [
        starts[2] - starts[1],
        starts[4] - starts[3],
        len(data) - starts[4],
    ]
    _assert_rows_refetch(path, docs)


def test_overlong_record_both_readers_give_identical_rows(tmp_path: Path) -> None:
    data, _ = _gz(
        [
            _warcinfo(),
            _record("a", _http("a")),
            _record("b", _http("b"), extra=300),
            _record("c", _http("c")),
        ]
    )
    path = tmp_path / "overlong.warc.gz"
    path.write_bytes(data)
    fw, fw_counts, _, _ = _read_all(path, "fastwarc")
    wi, wi_counts, _, _ = _read_all(path, "warcio")
    assert fw.equals(wi) and fw_counts == wi_counts


# ------------------------------------------------------ 2. gzip members that hold no record

BLANK_MEMBERS = {"empty": b"", "crlf-only": b"\r\n\r\n", "two-empty": None}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("where", ["between", "at-end"])
@pytest.mark.parametrize("kind", sorted(BLANK_MEMBERS))
def test_gzip_member_without_bytes_is_not_a_record(
    tmp_path: Path, lib: str, where: str, kind: str
) -> None:
    content = BLANK_MEMBERS[kind]
    blank = gzip.compress(b"", mtime=0) * 2 if content is None else gzip.compress(content, mtime=0)
    parts = [gzip.compress(r, mtime=0) for r in (_warcinfo(), _record("e1", _http("e1")))]
    last = gzip.compress(_record("e2", _http("e2")), mtime=0)
    data = b"".join(parts) + (blank + last if where == "between" else last + blank)
    path = tmp_path / "blank-member.warc.gz"
    path.write_bytes(data)
    docs, counts, n_read, errors = _read_all(path, lib)
    assert n_read == 3 and dict(counts) == {"read.warcinfo": 1}, (dict(counts), errors)
    assert errors == []
    assert docs["url"].to_pylist() == ["http://e1.example.com/", "http://e2.example.com/"]
    # a record's byte range runs to where the next record starts (blank members included)
    e1_start, e2_start = len(parts[0]), data.index(last)
    assert docs["source_offset"].to_pylist() == [e1_start, e2_start]
    assert docs["source_length"].to_pylist() == [e2_start - e1_start, len(data) - e2_start]
    _assert_rows_refetch(path, docs)


# ------------------------------------------------- 4. library output never reaches stderr


@pytest.mark.parametrize("lib", LIBS)
def test_library_warnings_never_print_record_bytes(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, lib: str
) -> None:
    """warcio writes the bytes after a wrong Content-Length ("Remainder: b'WARC-Target-URI:
    ...'") to stderr and logs URIs with spaces: PII must not reach logs, our reasons stay."""
    a = _http("a")
    leak_uri = b"http://b.example.com/?email=leak.log%40example-mail.com"
    spaced_uri = b"http://c.example.com/a b?email=spaced.log@example-mail.com"
    data = (
        _warcinfo()
        # claims the CRLFs and the next "WARC/1.0" line: the next header line is left over
        + _record("a", a, extra=4 + len(b"WARC/1.0\r\n"))
        # the leftover line is the URI (header order is free)
        + _record("b", _http("b"), uri=leak_uri).replace(
            b"WARC/1.0\r\n", b"WARC/1.0\r\nWARC-Target-URI: " + leak_uri + b"\r\n", 1
        )
        + _record("c", _http("c"), uri=spaced_uri)
        + _record("d", _http("d"))
    )
    path = tmp_path / "leak.warc"
    path.write_bytes(data)
    caplog.set_level("DEBUG")
    docs, counts, n_read, _ = _read_all(path, lib)
    assert docs.num_rows >= 2 and n_read >= 4  # counted, not dropped silently
    captured = capfd.readouterr()
    logs = caplog.text
    for secret in ("leak.log", "spaced.log", "example-mail.com", "Remainder"):
        assert secret not in captured.err and secret not in captured.out, captured.err
        assert secret not in logs, logs


# ------------------------------------------------- 3. long WARC header blocks: one rule for both


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("lib", LIBS)
def test_header_block_of_33_kb_is_read_by_both_readers(tmp_path: Path, lib: str, gz: bool) -> None:
    """fastwarc's default limit is 32 KiB of WARC header; warcio has none. Up to 1 MiB both read."""
    long_uri = b"http://long.example.com/?q=" + b"a" * 33_000
    records = [
        _record("x", _http("x")),
        _record("long", _http("long"), uri=long_uri),
        _record("y", _http("y")),
    ]
    path = tmp_path / ("long.warc.gz" if gz else "long.warc")
    path.write_bytes(_gz(records)[0] if gz else b"".join(records))
    docs, counts, n_read, errors = _read_all(path, lib)
    assert (n_read, dict(counts)) == (3, {}), errors
    assert docs["url"].to_pylist()[1] == long_uri.decode()
    _assert_rows_refetch(path, docs)


@pytest.mark.parametrize("lib", LIBS)
def test_header_block_over_1_mib_is_one_parse_error_in_both_readers(
    tmp_path: Path, lib: str
) -> None:
    records = [
        _record("x", _http("x")),
        _record("huge", _http("huge"), uri=b"http://huge.example.com/?q=" + b"a" * (1 << 20)),
        _record("y", _http("y")),
    ]
    path = tmp_path / "huge.warc.gz"
    path.write_bytes(_gz(records)[0])
    docs, counts, n_read, errors = _read_all(path, lib)
    assert (n_read, dict(counts)) == (3, {"read.parse_error": 1}), errors
    assert docs["url"].to_pylist() == ["http://x.example.com/", "http://y.example.com/"]
    assert not any("aaaa" in e for e in errors)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("lib", LIBS)
def test_lf_only_warc_header_lines_are_read_by_both_readers(
    tmp_path: Path, lib: str, gz: bool
) -> None:
    """Some writers end WARC header lines with a bare LF; warcio reads them, so fastwarc must."""
    records = [
        _record(n, _http(n)).replace(b"\r\n\r\nHTTP/", b"\n\nHTTP/", 1) for n in ("lf1", "lf2")
    ]
    records = [
        r[: r.index(b"\n\nHTTP/")].replace(b"\r\n", b"\n") + r[r.index(b"\n\nHTTP/") :]
        for r in records
    ]
    path = tmp_path / ("lf.warc.gz" if gz else "lf.warc")
    path.write_bytes(_gz(records)[0] if gz else b"".join(records))
    docs, counts, n_read, errors = _read_all(path, lib)
    assert (n_read, dict(counts)) == (2, {}), errors
    assert docs["url"].to_pylist() == ["http://lf1.example.com/", "http://lf2.example.com/"]
    assert all(h.startswith(b"<html>") for h in docs["html"].to_pylist())
