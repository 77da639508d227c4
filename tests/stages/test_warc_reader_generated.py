"""The WARC reader's capabilities on data the project generates (shipped sample crawl and
`pipeline.sample.generate.damaged_warcs`): the twins of the real-file tests in
test_warc_reader.py, so that a clean clone without the real data still tests all of it."""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from pipeline.sample import sample_paths
from pipeline.sample.generate import damaged_warcs
from stages.warc_reader import ReadConfig, fetch_record, read_warc
from stages.warc_records import record_id_column

LIBS = ["fastwarc", "warcio"]
SAMPLE = Path(sample_paths()[0])
MANIFEST = json.loads((SAMPLE.parent / "planted.json").read_text(encoding="utf-8"))


def _read_all(path, cfg: ReadConfig, **kw):
    chunks = list(read_warc(str(path), cfg, **kw))
    counts: Counter = Counter()
    for ch in chunks:
        counts.update(ch.counts)
    return chunks, pa.concat_tables([c.docs for c in chunks]), counts


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, Path]:
    return damaged_warcs(tmp_path_factory.mktemp("damaged"))


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("index", [0, 1])
def test_sample_counts_match_the_manifest(index: int, lib: str) -> None:
    path = Path(sample_paths()[index])
    want = next(f for f in MANIFEST["files"] if f["file"] == path.name)
    chunks, docs, counts = _read_all(path, ReadConfig(library=lib))
    assert docs.num_rows == want["documents_after_read"]
    assert dict(counts) == want["expected_read_drops"]
    assert sum(c.records_read for c in chunks) == want["records"]
    assert len(set(docs["doc_id"].to_pylist())) == docs.num_rows


# defect -> (reasons that must appear, documents compared with the undamaged prefix)
DEFECTS = {
    "truncated-member.warc.gz": ({"read.request"}, None),
    "bad-content-length.warc.gz": ({"read.parse_error"}, None),
    "junk-between-members.warc.gz": ({"read.parse_error"}, None),
    "binary-payload.warc.gz": (set(), None),
    "empty.warc.gz": ({"file.empty"}, 0),
    "not-a-warc.warc.gz": ({"file.not_warc"}, 0),
}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_generated_damaged_files_are_counted_not_fatal(damaged, name: str, lib: str) -> None:
    reasons, n_docs = DEFECTS[name]
    chunks, docs, counts = _read_all(damaged[name], ReadConfig(library=lib))
    assert reasons <= set(counts), dict(counts)
    if n_docs is not None:
        assert docs.num_rows == n_docs and chunks[0].errors
    else:
        assert docs.num_rows > 0
    if name == "truncated-member.warc.gz":
        assert counts["read.parse_error"] + counts["read.truncated"] >= 1, dict(counts)


def test_libraries_agree_on_generated_damage(damaged) -> None:
    for name in ("junk-between-members.warc.gz", "bad-content-length.warc.gz"):
        a = _read_all(damaged[name], ReadConfig(library="fastwarc"))[1]
        b = _read_all(damaged[name], ReadConfig(library="warcio"))[1]
        assert a.equals(b), name


def test_crawl_id_sources(tmp_path: Path) -> None:
    _, docs, _ = _read_all(SAMPLE, ReadConfig())
    assert set(docs["crawl_id"].to_pylist()) == {MANIFEST["crawl_id"]}  # warcinfo isPartOf
    data = SAMPLE.read_bytes()
    d = zlib.decompressobj(31)
    d.decompress(data)
    no_info = tmp_path / "no-warcinfo.warc.gz"
    no_info.write_bytes(d.unused_data)  # every member but the first (the warcinfo)
    _, docs, _ = _read_all(no_info, ReadConfig(), crawl_id="CC-MAIN-2019-51")
    assert set(docs["crawl_id"].to_pylist()) == {"CC-MAIN-2019-51"}
    _, docs, _ = _read_all(no_info, ReadConfig())
    assert set(docs["crawl_id"].to_pylist()) == {"no-warcinfo"}


def test_doc_columns() -> None:
    _, docs, _ = _read_all(SAMPLE, ReadConfig())
    row = docs.slice(0, 1).to_pylist()[0]
    # ids are hashes (issue 19): doc_id of (record id, source), the record id itself unless
    # read.keep_record_id
    assert row["warc_record_id"].startswith("sha256:") and len(row["doc_id"]) == 32
    (raw,) = _read_all(SAMPLE, ReadConfig(keep_record_id=True))[1].slice(0, 1)["warc_record_id"]
    assert raw.as_py().startswith("<urn:uuid:")
    assert row["url"].startswith("http")
    assert row["warc_date"].year == 2026 and row["warc_date"].tzinfo is not None
    assert row["source_uri"] == str(SAMPLE)
    assert row["html"].lstrip()[:1] == b"<"
    offsets = docs["source_offset"].to_pylist()
    assert offsets == sorted(offsets)


def _record(http: bytes, rid: str = "0000-1") -> bytes:
    return (
        (
            b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:%s>\r\n"
            b"WARC-Target-URI: http://example.org/\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
            b"Content-Length: %d\r\n\r\n" % (rid.encode(), len(http))
        )
        + http
        + b"\r\n\r\n"
    )


def test_content_encoding_undone_and_false_claims_kept_raw(tmp_path: Path) -> None:
    html = _read_all(SAMPLE, ReadConfig())[1]["html"].to_pylist()[0]
    gz = gzip.compress(html)
    chunked = (
        b"".join(
            b"%x\r\n%s\r\n" % (len(gz[i : i + 1000]), gz[i : i + 1000])
            for i in range(0, len(gz), 1000)
        )
        + b"0\r\n\r\n"
    )
    real = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n"
        b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    )
    false = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n" + html
    )  # claims gzip, stores plain (as CC 2009 files do)
    path = tmp_path / "encoded.warc"
    path.write_bytes(_record(real, "0000-1") + _record(false, "0000-2"))
    _, out, _ = _read_all(path, ReadConfig())
    assert out["html"].to_pylist() == [html, html]
    rids = ReadConfig(keep_record_id=True)
    assert _read_all(path, rids)[1]["warc_record_id"].to_pylist() == [
        "<urn:uuid:0000-1>",
        "<urn:uuid:0000-2>",
    ]


@pytest.mark.parametrize("lib", LIBS)
def test_fetch_record_round_trip(tmp_path: Path, lib: str) -> None:
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(SAMPLE.read_bytes()))
    whole = tmp_path / "whole.warc.gz"
    whole.write_bytes(gzip.compress(plain.read_bytes()))
    n = MANIFEST["files"][0]["documents_after_read"]
    for path in (SAMPLE, plain, whole):
        _, docs, _ = _read_all(path, ReadConfig(library=lib))
        assert docs.num_rows == n
        for row in docs.take([0, 5, n - 1]).to_pylist():
            warc, http, body = fetch_record(str(path), row["source_offset"], row["source_length"])
            assert record_id_column(warc["WARC-Record-ID"], False) == row["warc_record_id"]
            assert http[":status"] == "200" and body == row["html"]
    row = _read_all(SAMPLE, ReadConfig(library=lib))[1].slice(3, 1).to_pylist()[0]
    raw = SAMPLE.read_bytes()[row["source_offset"] : row["source_offset"] + row["source_length"]]
    d = zlib.decompressobj(31)
    d.decompress(raw)
    assert d.eof and d.unused_data == b""  # per-record gzip: the range is one member


def test_chunking_is_deterministic_and_conserving() -> None:
    cfg = ReadConfig(chunk_records=50)
    c1, d1, n1 = _read_all(SAMPLE, cfg)
    c2, d2, n2 = _read_all(SAMPLE, cfg)
    records = MANIFEST["files"][0]["records"]
    assert [c.records_read for c in c1] == [50] * (records // 50) + [records % 50]
    assert d1.equals(d2) and n1 == n2
    whole = _read_all(SAMPLE, ReadConfig())[1]
    assert d1.equals(whole)
    cb, db, _ = _read_all(SAMPLE, ReadConfig(chunk_bytes=100_000))
    assert len(cb) > 3 and db.equals(whole)


def test_too_large_and_status_filters() -> None:
    n = MANIFEST["files"][0]["documents_after_read"]
    sizes = sorted(len(h) for h in _read_all(SAMPLE, ReadConfig())[1]["html"].to_pylist())
    _, docs, counts = _read_all(SAMPLE, ReadConfig(max_record_bytes=sizes[n // 2]))
    assert counts["read.too_large"] > 0 and docs.num_rows + counts["read.too_large"] == n
    _, docs, counts = _read_all(SAMPLE, ReadConfig(accept_status=[404]))
    assert docs["http_status"].to_pylist() == [404]  # only the planted 404 page
    assert counts["read.non_200"] >= n


def test_pyarrow_streams(damaged) -> None:
    path = str(damaged["junk-between-members.warc.gz"])
    fs = pafs.LocalFileSystem()
    ref = _read_all(path, ReadConfig())[1]
    for opener in (
        lambda: fs.open_input_file(path),
        lambda: fs.open_input_stream(path, compression=None),
    ):
        _, docs, counts = _read_all(path, ReadConfig(), open_stream=opener)
        assert docs.equals(ref) and counts["read.parse_error"] == 1
    row = ref.slice(3, 1).to_pylist()[0]
    _, _, body = fetch_record(
        path, row["source_offset"], row["source_length"], lambda: fs.open_input_file(path)
    )
    assert body == row["html"]
