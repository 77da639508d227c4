"""Bad-input fuzzing: mutated real WARC bytes never crash the reader or phase-1 processing.

Seeds are real files: the first records of the shipped sample (always) and the small real
WARCs of $CCPIPE_SHARED_DATA/warc (when present). Mutations: truncation, bit flips, garbage
(random bytes or a fake gzip header) inserted, and record-level edits made inside a gzip
member (decompress, edit, recompress): corrupted WARC header lines, wrong Content-Length, a
lying HTTP charset. Asserted: `read_warc` never raises and conserves counts per chunk; the
Ray-free phase 1 (`read_file_chunks` + `ChunkProcessor.process`) never raises and conserves
counts (records_read = kept + record-level drops).
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
import zlib
from pathlib import Path

import pytest
from faultkit import gzip_members
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config
from pipeline.phase1 import ChunkProcessor, read_file_chunks
from pipeline.sample import sample_paths
from pipeline.work import Layout
from stages.warc_reader import read_warc
from tests.real_data import shared_data_dir

SHARED_WARC = shared_data_dir() / "warc"
SHARED_SEEDS = [
    "cc/jwarc_cc.warc.gz",
    "cc/whirlwind_CC-MAIN-2024-22.warc.gz",
    "cc/bennokr-wdps_CommonCrawl-sample_CC-MAIN-2014-35.warc",
    "cc/resiliparse_warcfile_CC-MAIN-2020-34.warc.gz",
]
CHARSETS = [
    b"utf-16",
    b"klingon",
    b"shift_jis",
    b"iso-8859-1",
    b"utf-32be",
    b"",
    b"\xff\xfe",
    b"utf-8; charset=big5",
    b"x" * 300,
]


def _seeds() -> dict[str, bytes]:
    data = Path(sample_paths()[0]).read_bytes()
    seeds = {"sample": data[: gzip_members(data)[24][1]]}  # 25 records, ~8 HTML docs
    for rel in SHARED_SEEDS:
        p = SHARED_WARC / rel
        if p.is_file():
            seeds[rel] = p.read_bytes()
    return seeds


SEEDS = _seeds()


def _edit_record(raw: bytes, edit: str, k: int, charset: bytes) -> bytes:
    """Apply a record-level edit to decompressed WARC bytes."""
    if edit == "content_length":
        return re.sub(
            rb"(?i)(\r\nContent-Length: *)(\d+)",
            lambda m: m.group(1) + str(max(0, int(m.group(2)) + k - 50)).encode(),
            raw,
            count=1,
        )
    if edit == "content_length_garbage":
        return re.sub(
            rb"(?i)(\r\nContent-Length: *)(\d+)", rb"\1x" + bytes([65 + k % 26]) * 3, raw, count=1
        )
    if edit == "charset":
        if re.search(rb"(?i)charset=", raw):
            return re.sub(rb"(?i)charset=[^\r\n;\"' >]*", b"charset=" + charset, raw, count=2)
        return raw.replace(b"text/html", b"text/html; charset=" + charset, 1)
    if edit == "header_line":
        lines = raw.split(b"\r\n", 12)
        i = k % len(lines)
        lines[i] = lines[i][: k % 7] + b"\x00\xff:garbage" + lines[i][k % 7 :]
        return b"\r\n".join(lines)
    if edit == "version":
        return raw.replace(b"WARC/1.", b"WARC/9.", 1) if k % 2 else raw.replace(b"WARC/", b"", 1)
    raise AssertionError(edit)


@st.composite
def mutated_warc(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = SEEDS[name]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "bitflip", "insert", "record_edit"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            data = data[:pos]
        elif kind == "bitflip":
            for _ in range(draw(st.integers(1, 8))):
                p = draw(st.integers(0, len(data) - 1))
                data = data[:p] + bytes([data[p] ^ (1 << draw(st.integers(0, 7)))]) + data[p + 1 :]
        elif kind == "insert":
            junk = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=200),
                    st.binary(max_size=40).map(lambda b: b"\x1f\x8b\x08\x00" + b),
                    st.just(b"WARC/1.0\r\nContent-Length: 99999999\r\n\r\n"),
                )
            )
            if data[:2] == b"\x1f\x8b" and draw(st.booleans()):
                members = gzip_members_safe(data)
                pos = members[draw(st.integers(0, len(members) - 1))][0] if members else pos
            data = data[:pos] + junk + data[pos:]
        else:
            edit = draw(
                st.sampled_from(
                    [
                        "content_length",
                        "content_length_garbage",
                        "charset",
                        "header_line",
                        "version",
                    ]
                )
            )
            k = draw(st.integers(0, 100))
            cs = draw(st.sampled_from(CHARSETS))
            members = gzip_members_safe(data) if data[:2] == b"\x1f\x8b" else []
            if members:
                a, b = members[draw(st.integers(0, len(members) - 1))]
                raw = zlib.decompress(data[a:b], 31)
                data = data[:a] + gzip.compress(_edit_record(raw, edit, k, cs), 1) + data[b:]
            elif data[:2] != b"\x1f\x8b":
                data = _edit_record(data, edit, k, cs)
    return name, data


def gzip_members_safe(data: bytes) -> list[tuple[int, int]]:
    """Member ranges of the intact prefix of a gzip file (stops at the first damage)."""
    try:
        return gzip_members(data)
    except zlib.error:
        return []


def _check_read(path: Path, cfg) -> int:
    total = 0
    for chunk in read_warc(str(path), cfg.read):
        drops = sum(v for k, v in chunk.counts.items() if not k.startswith("file."))
        assert chunk.records_read == chunk.docs.num_rows + drops, chunk.counts
        total += chunk.records_read
    return total


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    cfg = load_config(None, ["read.chunk_records=10"])
    out = tmp_path_factory.mktemp("fuzz_out")
    return cfg, ChunkProcessor(cfg, Layout(str(out), cfg.config_hash), "fuzz")


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutated_warc())
def test_reader_never_raises_and_conserves(case, tmp_path_factory):
    name, data = case
    path = tmp_path_factory.mktemp("fz") / ("x.warc.gz" if name.endswith(".gz") else "x.warc")
    path.write_bytes(data)
    _check_read(path, load_config(None, ["read.chunk_records=7"]))


def _phase1(proc: ChunkProcessor, cfg, path: Path) -> None:
    proc.rkey = uuid.uuid4().hex[:8]  # fresh staging names: no chunk is "already done"
    for row in read_file_chunks(str(path), "fz", cfg):
        s = proc.process(row)
        drops = sum(v for k, v in s["counts"].items() if not k.startswith("file."))
        assert s["records_read"] == s["docs_kept"] + drops, json.dumps(s)[:2000]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutated_warc())
def test_phase1_never_raises_on_mutated_files(case, processor, tmp_path_factory):
    cfg, proc = processor
    name, data = case
    path = tmp_path_factory.mktemp("fz") / ("x.warc.gz" if name.endswith(".gz") else "x.warc")
    path.write_bytes(data)
    _phase1(proc, cfg, path)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutated_warc())
def test_phase1_never_raises_on_mutated_files_long(case, processor, tmp_path_factory):
    cfg, proc = processor
    name, data = case
    path = tmp_path_factory.mktemp("fz") / ("x.warc.gz" if name.endswith(".gz") else "x.warc")
    path.write_bytes(data)
    _phase1(proc, cfg, path)


# ---- hostile (not just damaged) WARCs and configs: issue 19 --------------------------------
_PLANTED = "jane.roe.fuzz@protonmail.com"


def _hostile_record(rid: str, uri: str, body: bytes) -> bytes:
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {uri}\r\n"
        f"WARC-Record-ID: {rid}\r\nContent-Length: {len(http)}\r\n\r\n"
    ).encode()
    return gzip.compress(head + http + b"\r\n\r\n", 1)


@st.composite
def hostile_warc(draw) -> bytes:
    """Records built to hurt: huge URLs, attribute floods, deep nesting, PII in ids and URLs,
    the same record id twice, long header lines."""
    out = []
    rid_pool = ["<urn:uuid:0f0f0f0f-0000-0000-0000-000000000001>", f"<mailto:{_PLANTED}>"]
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["long_url", "attrs", "deep", "pii_url", "plain"]))
        n = draw(st.integers(1, 6))
        uri = "http://fuzz.example/" + str(draw(st.integers(0, 10**6)))
        body = b"<html><body><p>" + b"Ordinary words in a paragraph. " * 20 + b"</p></body></html>"
        if kind == "long_url":
            uri = "http://fuzz.example/" + "a" * (n * 150_000)
        elif kind == "attrs":
            body = b"<div " + b" ".join(b"a%d=1" % i for i in range(n * 20_000)) + b">x</div>"
        elif kind == "deep":
            body = b"<div>" * (n * 5_000) + b"deep" + b"</div>" * (n * 5_000)
        elif kind == "pii_url":
            uri = f"http://u{n}:pw@fuzz.example/c/{_PLANTED}/?m={_PLANTED}#{_PLANTED}"
        rid = (
            draw(st.sampled_from(rid_pool))
            if draw(st.booleans())
            else (f"<urn:uuid:{uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))}>")
        )
        out.append(_hostile_record(rid, uri, body))
    return b"".join(out)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=hostile_warc())
def test_hostile_warcs_bounded_and_no_pii_in_ids_or_errors(data, tmp_path_factory):
    import time

    from stages.extract import ExtractConfig, Extractor

    path = tmp_path_factory.mktemp("hw") / "h.warc.gz"
    path.write_bytes(data)
    t0 = time.monotonic()
    for lib in ("fastwarc", "warcio"):
        cfg = load_config(None, [f"read.library={lib}", "read.chunk_records=3"])
        for chunk in read_warc(str(path), cfg.read):
            drops = sum(v for k, v in chunk.counts.items() if not k.startswith("file."))
            assert chunk.records_read == chunk.docs.num_rows + drops
            leak = [
                str(v)
                for v in (
                    chunk.docs.column("doc_id").to_pylist()
                    + chunk.docs.column("warc_record_id").to_pylist()
                    + chunk.errors
                )
                if v and "jane.roe" in str(v)
            ]
            assert not leak, leak
            if lib == "fastwarc" and chunk.docs.num_rows:
                ex = Extractor(ExtractConfig(timeout_s=5))
                out = ex(chunk.docs)
                ex.close()
                assert out.num_rows == chunk.docs.num_rows
    assert time.monotonic() - t0 < 120, "hostile WARC took more than 120 s"


_YAML_ATOMS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
)
_KEYS = st.sampled_from(
    [
        "read",
        "extract",
        "output",
        "dedup",
        "pii",
        "chunk_records",
        "row_group_docs",
        "timeout_s",
        "max_attributes",
        "bands",
        "x",
    ]
)


@st.composite
def hostile_yaml(draw) -> str:
    """Nested sections with random leaves, plus an alias ladder of random depth and width."""
    import yaml

    doc = draw(
        st.recursive(
            _YAML_ATOMS, lambda kids: st.dictionaries(_KEYS, kids, max_size=4), max_leaves=12
        )
    )
    text = yaml.safe_dump({"read": doc} if not isinstance(doc, dict) else doc)
    width, depth = draw(st.integers(1, 12)), draw(st.integers(0, 9))
    if depth:
        lines = ["l0: &l0 [" + ",".join(["x"] * width) + "]"]
        for i in range(1, depth):
            lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]")
        text = "\n".join(lines) + "\n" + text
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=hostile_yaml())
def test_hostile_configs_are_loaded_or_refused_quickly(text, tmp_path_factory):
    import time

    from pipeline.config import ConfigError

    f = tmp_path_factory.mktemp("hy") / "c.yaml"
    f.write_text(text)
    t0 = time.monotonic()
    try:
        load_config(str(f), [])
    except ConfigError as e:
        assert len(str(e)) < 20_000
    assert time.monotonic() - t0 < 10
