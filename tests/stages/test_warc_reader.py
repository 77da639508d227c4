"""WARC reader on real CommonCrawl/dolma files and on the deliberately damaged ones."""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.warc_reader import DOC_SCHEMA, ReadChunk, ReadConfig, fetch_record, read_warc
from stages.warc_records import doc_id_for
from tests.real_data import shared_data_dir, skip_reason

LIBS = ["fastwarc", "warcio"]

# file -> (docs, record-level counts, file-level counts); the same for both libraries.
EXPECTED = {
    "cc/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz": (
        16,
        {"read.warcinfo": 1, "read.request": 17, "read.metadata": 16},
    ),
    # the sample ends inside its 4th response (Content-Length 24745, 19496 bytes present)
    "cc/bennokr-wdps_CommonCrawl-sample_CC-MAIN-2014-35.warc": (
        3,
        {"read.warcinfo": 1, "read.request": 4, "read.metadata": 3, "read.truncated": 1},
    ),
    # one response has no Content-Type and an empty body
    "cc/eugeneware_CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc": (
        3,
        {"read.warcinfo": 1, "read.request": 4, "read.metadata": 4, "read.non_html": 1},
    ),
    "cc/whirlwind_CC-MAIN-2024-22.warc.gz": (
        1,
        {"read.warcinfo": 1, "read.request": 1, "read.metadata": 1},
    ),
    "cc/jwarc_cc.warc.gz": (1, {}),
    "cc/cc2009-copycat-coursehero.warc.gz": (8, {"read.warcinfo": 1}),
    "other/dolma_sample-0000.warc.gz": (
        22,
        {"read.warcinfo": 1, "read.request": 22, "read.metadata": 1, "read.other_type": 2},
    ),
    "other/dolma_sample-0001.warc.gz": (
        15,
        {"read.warcinfo": 1, "read.request": 15, "read.metadata": 1, "read.other_type": 2},
    ),
    "damaged/truncated-member.warc.gz": (
        8,
        {"read.warcinfo": 1, "read.request": 9, "read.metadata": 8, "read.truncated": 1},
    ),
    # 6th record (a request) has Content-Length "x127": one parse error, then resync
    "damaged/bad-content-length.warc.gz": (
        22,
        {
            "read.warcinfo": 1,
            "read.request": 21,
            "read.metadata": 1,
            "read.other_type": 2,
            "read.parse_error": 1,
        },
    ),
    # 660 junk bytes between two members: one parse error, nothing lost after it
    "damaged/junk-between-members.warc.gz": (
        22,
        {
            "read.warcinfo": 1,
            "read.request": 22,
            "read.metadata": 1,
            "read.other_type": 2,
            "read.parse_error": 1,
        },
    ),
    # the random-bytes text/html response is passed on: extract decides (extract.binary)
    "damaged/binary-payload.warc.gz": (
        23,
        {"read.warcinfo": 1, "read.request": 22, "read.metadata": 1, "read.other_type": 2},
    ),
    "damaged/empty.warc.gz": (0, {"file.empty": 1}),
    "damaged/not-a-warc.warc.gz": (0, {"file.not_warc": 1}),
}


def _read_all(path: Path | str, cfg: ReadConfig, **kw) -> tuple[list[ReadChunk], pa.Table, Counter]:
    chunks = list(read_warc(str(path), cfg, **kw))
    for i, ch in enumerate(chunks):
        assert ch.chunk_index == i
        assert ch.docs.schema.equals(DOC_SCHEMA)
        record_drops = sum(v for k, v in ch.counts.items() if not k.startswith("file."))
        assert ch.records_read == ch.docs.num_rows + record_drops, ch
    counts: Counter = Counter()
    for ch in chunks:
        counts.update(ch.counts)
    return chunks, pa.concat_tables([c.docs for c in chunks]), counts


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_counts(shared_data: Path, name: str, lib: str) -> None:
    docs_expected, counts_expected = EXPECTED[name]
    chunks, docs, counts = _read_all(shared_data / "warc" / name, ReadConfig(library=lib))
    assert len(chunks) >= 1
    assert docs.num_rows == docs_expected
    assert dict(counts) == counts_expected
    if any(k.startswith("file.") for k in counts):
        assert chunks[0].errors, "file-level failures carry a human message"
    assert docs["doc_id"].null_count == 0
    assert len(set(docs["doc_id"].to_pylist())) == docs.num_rows
    if docs.num_rows:
        assert set(docs["http_status"].to_pylist()) == {200}
        assert set(docs["content_type"].to_pylist()) <= {"text/html", "application/xhtml+xml"}


def test_missing_file_is_counted(tmp_path: Path) -> None:
    chunks, docs, counts = _read_all(tmp_path / "nope.warc.gz", ReadConfig())
    assert len(chunks) == 1 and docs.num_rows == 0 and chunks[0].records_read == 0
    assert dict(counts) == {"file.missing": 1}
    assert "nope.warc.gz" in chunks[0].errors[0]


def test_crawl_id_sources(shared_data: Path) -> None:
    cc = shared_data / "warc" / "cc"
    _, docs, _ = _read_all(cc / "resiliparse_warcfile_CC-MAIN-2020-34.warc.gz", ReadConfig())
    assert set(docs["crawl_id"].to_pylist()) == {"CC-MAIN-2020-34"}  # warcinfo isPartOf
    # no warcinfo: the argument, else the file name
    _, docs, _ = _read_all(cc / "jwarc_cc.warc.gz", ReadConfig(), crawl_id="CC-MAIN-2019-51")
    assert docs["crawl_id"].to_pylist() == ["CC-MAIN-2019-51"]
    _, docs, _ = _read_all(cc / "jwarc_cc.warc.gz", ReadConfig())
    assert docs["crawl_id"].to_pylist() == ["jwarc_cc"]


def test_doc_columns(shared_data: Path) -> None:
    path = shared_data / "warc" / "cc" / "resiliparse_warcfile_CC-MAIN-2020-34.warc.gz"
    _, docs, _ = _read_all(path, ReadConfig())
    row = docs.slice(0, 1).to_pylist()[0]
    assert re.fullmatch(r"sha256:[0-9a-f]{32}", row["warc_record_id"])
    assert re.fullmatch(r"[0-9a-f]{32}", row["doc_id"])
    _, raw, _ = _read_all(path, ReadConfig(keep_record_id=True))
    rid = raw.slice(0, 1).to_pylist()[0]["warc_record_id"]
    assert rid.startswith("<urn:uuid:") and raw["doc_id"].to_pylist() == docs["doc_id"].to_pylist()
    assert row["doc_id"] == doc_id_for(rid, str(path), row["source_offset"])
    assert row["url"].startswith("http")
    assert row["warc_date"].year == 2020 and row["warc_date"].tzinfo is not None
    assert row["source_uri"] == str(path)
    assert row["html"].lstrip()[:1] == b"<"
    offsets = docs["source_offset"].to_pylist()
    assert offsets == sorted(offsets)


def test_2009_false_content_encoding_kept_raw(shared_data: Path) -> None:
    """Headers claim gzip/chunked but the stored body is plain: keep the raw bytes."""
    path = shared_data / "warc" / "cc" / "cc2009-copycat-coursehero.warc.gz"
    _, docs, _ = _read_all(path, ReadConfig())
    row = docs.slice(0, 1).to_pylist()[0]
    _, http, body = fetch_record(str(path), row["source_offset"], row["source_length"])
    assert http["content-encoding"] == "gzip"
    for html in docs["html"].to_pylist():
        assert b"<!DOCTYPE" in html[:200] and len(html) > 100_000


def test_real_content_encoding_is_undone(tmp_path: Path, shared_data: Path) -> None:
    """A body that really is gzip + chunked (rewritten from a real record) is decoded."""
    src = shared_data / "warc" / "cc" / "whirlwind_CC-MAIN-2024-22.warc.gz"
    _, docs, _ = _read_all(src, ReadConfig())
    html = docs["html"].to_pylist()[0]
    gz = gzip.compress(html)
    chunked = (
        b"".join(
            b"%x\r\n%s\r\n" % (len(gz[i : i + 1000]), gz[i : i + 1000])
            for i in range(0, len(gz), 1000)
        )
        + b"0\r\n\r\n"
    )
    http = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n"
        b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    )
    rec = (
        (
            b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:0000-1>\r\n"
            b"WARC-Target-URI: http://example.org/\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            b"Content-Length: %d\r\n\r\n" % len(http)
        )
        + http
        + b"\r\n\r\n"
    )
    path = tmp_path / "encoded.warc"
    path.write_bytes(rec)
    _, out, counts = _read_all(path, ReadConfig())
    assert out.num_rows == 1 and out["html"].to_pylist()[0] == html
    assert out["charset"].to_pylist() == ["utf-8"]
    assert out["doc_id"].to_pylist() == [doc_id_for("<urn:uuid:0000-1>", str(path), 0)]


@pytest.mark.parametrize("lib", LIBS)
def test_fetch_record_round_trip(shared_data: Path, tmp_path: Path, lib: str) -> None:
    gz_path = shared_data / "warc" / "cc" / "resiliparse_warcfile_CC-MAIN-2020-34.warc.gz"
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(gz_path.read_bytes()))
    whole = tmp_path / "whole.warc.gz"  # one gzip member for the whole file
    whole.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (gz_path, plain, whole):
        _, docs, counts = _read_all(path, ReadConfig(library=lib))
        assert docs.num_rows == 16 and counts["read.request"] == 17
        for row in docs.take([0, 5, 15]).to_pylist():
            warc, http, body = fetch_record(str(path), row["source_offset"], row["source_length"])
            assert (
                doc_id_for(warc["WARC-Record-ID"], str(path), row["source_offset"]) == row["doc_id"]
            )
            assert http[":status"] == "200"
            assert body == row["html"]
    _, docs, _ = _read_all(gz_path, ReadConfig(library=lib))
    # per-record gzip: the range is exactly one gzip member
    row = docs.slice(3, 1).to_pylist()[0]
    raw = gz_path.read_bytes()[row["source_offset"] : row["source_offset"] + row["source_length"]]
    d = zlib.decompressobj(31)
    d.decompress(raw)
    assert d.eof and d.unused_data == b""


def test_libraries_agree(shared_data: Path) -> None:
    path = shared_data / "warc" / "damaged" / "junk-between-members.warc.gz"
    a = _read_all(path, ReadConfig(library="fastwarc"))[1]
    b = _read_all(path, ReadConfig(library="warcio"))[1]
    assert a.equals(b)


def test_chunking_is_deterministic_and_conserving(shared_data: Path) -> None:
    path = shared_data / "warc" / "other" / "dolma_sample-0000.warc.gz"
    cfg = ReadConfig(chunk_records=7)
    c1, d1, n1 = _read_all(path, cfg)
    c2, d2, n2 = _read_all(path, cfg)
    assert [c.records_read for c in c1] == [7] * 6 + [6]
    assert [c.docs.num_rows for c in c1] == [c.docs.num_rows for c in c2]
    assert d1.equals(d2) and n1 == n2
    whole = _read_all(path, ReadConfig())[1]
    assert d1.equals(whole)
    # byte budget: every chunk closes once it holds at least chunk_bytes of HTML
    cb, db, _ = _read_all(path, ReadConfig(chunk_bytes=100_000))
    assert len(cb) > 3 and db.equals(whole)
    assert all(c.docs.num_rows for c in cb[:-1])


def test_too_large_and_status_filters(shared_data: Path) -> None:
    path = shared_data / "warc" / "cc" / "resiliparse_warcfile_CC-MAIN-2020-34.warc.gz"
    _, docs, counts = _read_all(path, ReadConfig(max_record_bytes=20_000))
    assert counts["read.too_large"] > 0
    assert docs.num_rows + counts["read.too_large"] == 16
    _, docs, counts = _read_all(path, ReadConfig(accept_status=[404]))
    assert docs.num_rows == 0 and counts["read.non_200"] == 16
    _, docs, counts = _read_all(path, ReadConfig(html_content_types=["application/pdf"]))
    assert docs.num_rows == 0 and counts["read.non_html"] == 16


def test_pyarrow_streams(shared_data: Path) -> None:
    """The pipeline passes pyarrow.fs files; a non-seekable stream falls back cleanly."""
    path = str(shared_data / "warc" / "damaged" / "junk-between-members.warc.gz")
    fs = pafs.LocalFileSystem()
    ref = _read_all(path, ReadConfig())[1]
    for opener in (
        lambda: fs.open_input_file(path),
        lambda: fs.open_input_stream(path, compression=None),
    ):
        _, docs, counts = _read_all(path, ReadConfig(), open_stream=opener)
        assert docs.equals(ref) and counts["read.parse_error"] == 1
    row = ref.slice(10, 1).to_pylist()[0]
    warc, _, body = fetch_record(
        path, row["source_offset"], row["source_length"], lambda: fs.open_input_file(path)
    )
    assert body == row["html"]


def test_not_warc_gzip(tmp_path: Path) -> None:
    path = tmp_path / "page.warc.gz"
    path.write_bytes(gzip.compress(b"<html><body>hello</body></html>"))
    _, docs, counts = _read_all(path, ReadConfig())
    assert dict(counts) == {"file.not_warc": 1}


# ---------------------------------------------------------------- fuzzing with real bytes

_FUZZ_SRC = SHARED = shared_data_dir()
_FUZZ_FILE = _FUZZ_SRC / "warc" / "cc" / "resiliparse_warcfile_CC-MAIN-2020-34.warc.gz"


def _mutate(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for op, pos, junk in ops:
        if not buf:
            break
        p = pos % len(buf)
        if op == "truncate":
            del buf[p:]
        elif op == "flip":
            buf[p] ^= 0xFF
        elif op == "insert":
            buf[p:p] = junk
        elif op == "delete":
            del buf[p : p + len(junk) + 1]
    return bytes(buf)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["truncate", "flip", "insert", "delete"]),
        st.integers(min_value=0, max_value=1 << 30),
        st.binary(min_size=1, max_size=300),
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.skipif(not _FUZZ_FILE.is_file(), reason=skip_reason())
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_ops, plain=st.booleans(), lib=st.sampled_from(LIBS))
def test_fuzz_never_raises_and_conserves(ops, plain: bool, lib: str) -> None:
    data = _FUZZ_FILE.read_bytes()
    if plain:
        data = gzip.decompress(data)
    mutated = _mutate(data, ops)
    chunks = list(
        read_warc("mem://fuzz.warc.gz", ReadConfig(library=lib), lambda: io.BytesIO(mutated))
    )
    assert chunks
    total = 0
    for ch in chunks:
        drops = sum(v for k, v in ch.counts.items() if not k.startswith("file."))
        assert ch.records_read == ch.docs.num_rows + drops
        total += ch.records_read
    # a mutation can split or merge records, never invent dozens of them
    assert total <= 50 + 4 * len(ops)
