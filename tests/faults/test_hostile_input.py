"""Hostile input (issue 19): symlink loops, huge URLs, same record id twice, reader parity."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.sample import sample_paths

REPO = Path(__file__).resolve().parents[2]


def _resolve_in_child(path: str, timeout: float = 60) -> list[str]:
    code = (
        "import sys; from pipeline.inputs import resolve_inputs; "
        "print('\\n'.join(f.uri for f in resolve_inputs([sys.argv[1]])))"
    )
    try:
        r = subprocess.run(
            [sys.executable, "-c", code, path],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"resolving inputs under {path} did not finish in {timeout:.0f} s")
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


def test_symlink_loops_in_an_input_directory(tmp_path):
    """A loop (`sub/up -> ..`, `self -> .`) hung the listing or read files dozens of times;
    a second link to the same file is the same input."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(sample_paths()[0], d / "a.warc.gz")
    os.symlink("..", d / "sub" / "up")
    os.symlink(str(d), d / "self")
    os.symlink("a.warc.gz", d / "alias.warc.gz")
    assert _resolve_in_child(str(d)) == [str((d / "a.warc.gz").resolve())]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs (root only): the run's lineage fits, its outputs do not."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_disk_full_fails_the_run_in_one_line_and_resumes(tiny_disk, small_inputs):
    """Issue 19: a full disk gave a traceback and left the run marked `running`."""
    import duckdb
    from faultkit import run_args, run_cli

    out = tiny_disk / "out"
    proc = run_cli(run_args(small_inputs[:1], out))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: run failed: storage error: No space left on device"), last
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    again = run_cli(run_args(small_inputs[:1], out))
    assert again.returncode == 0, again.stderr[-3000:]
    con = duckdb.connect(str(out / "lineage.duckdb"), read_only=True)
    runs = con.execute("SELECT status, error FROM runs ORDER BY started_at").fetchall()
    con.close()
    assert [s for s, _ in runs] == ["failed", "succeeded"], runs
    assert "No space left on device" in runs[0][1] or "interrupted" in runs[0][1]


# ---- reader parity: fastwarc and warcio count damaged files identically ------------------
def _summary(path: Path, lib: str) -> tuple:
    from stages.warc_reader import ReadConfig, read_warc

    recs = docs = 0
    counts: dict[str, int] = {}
    for ch in read_warc(str(path), ReadConfig(library=lib, chunk_records=7)):
        recs += ch.records_read
        docs += ch.docs.num_rows
        for k, v in ch.counts.items():
            counts[k] = counts.get(k, 0) + v
    return recs, docs, dict(sorted(counts.items()))


def _generated_damaged(d: Path) -> list[Path]:
    """The shared damaged set's defects, made from the shipped sample (always available)."""
    import gzip

    from faultkit import gzip_members

    data = Path(sample_paths()[0]).read_bytes()
    m = gzip_members(data)[:40]
    base = data[: m[-1][1]]
    out = {
        "truncated-member.warc.gz": base[: int(len(base) * 0.6)],
        "junk-between-members.warc.gz": base[: m[10][1]]
        + b"<html>junk</html>\n" * 40
        + base[m[10][1] :],
        "empty.warc.gz": b"",
        "not-a-warc.warc.gz": b"<!doctype html><html><body>hello</body></html>",
        "plain-truncated.warc": gzip.decompress(base)[:-5000],
        "whole-file-gzip.warc.gz": gzip.compress(gzip.decompress(base)),
    }
    raw = gzip.decompress(base[m[5][0] : m[5][1]])
    bad = raw.replace(b"Content-Length: ", b"Content-Length: x", 1)
    out["bad-content-length.warc.gz"] = base[: m[5][0]] + gzip.compress(bad) + base[m[5][1] :]
    paths = []
    for name, blob in out.items():
        (d / name).write_bytes(blob)
        paths.append(d / name)
    return paths


def test_readers_agree_on_generated_damaged_files(tmp_path):
    for p in _generated_damaged(tmp_path):
        assert _summary(p, "fastwarc") == _summary(p, "warcio"), p.name


def test_readers_agree_on_the_shared_damaged_set(shared_data):
    files = sorted((shared_data / "warc" / "damaged").glob("*"))
    assert len(files) >= 6
    for p in files:
        assert _summary(p, "fastwarc") == _summary(p, "warcio"), p.name


# ---- one WARC-Record-ID = one record --------------------------------------------------------
def _rec(rid: str, url: str, words: str) -> bytes:
    import gzip

    body = f"<html><body><p>{words}</p></body></html>".encode()
    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + body
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Record-ID: {rid}\r\nContent-Length: {len(http)}\r\n\r\n"
    ).encode()
    return gzip.compress(head + http + b"\r\n\r\n")


RID = "<urn:uuid:12345678-1234-1234-1234-123456789abc>"


def test_same_record_id_twice_in_one_file_is_one_record(tmp_path):
    from stages.warc_reader import ReadConfig, read_warc

    p = tmp_path / "a.warc.gz"
    p.write_bytes(
        _rec(RID, "http://a.example/1", "first")
        + _rec(RID, "http://a.example/2", "x")
        + _rec("<urn:uuid:0000>", "http://a.example/3", "other")
    )
    for lib in ("fastwarc", "warcio"):
        chunks = list(read_warc(str(p), ReadConfig(library=lib)))
        docs = [d for c in chunks for d in c.docs.column("url").to_pylist()]
        counts = {k: v for c in chunks for k, v in c.counts.items()}
        assert docs == ["http://a.example/1", "http://a.example/3"], lib
        assert counts == {"read.duplicate_record_id": 1}
        ids = [d for c in chunks for d in c.docs.column("doc_id").to_pylist()]
        assert len(set(ids)) == len(ids)


def test_same_record_id_in_two_files_is_one_record(tmp_path):
    """The occurrence in the first input file (URI order) wins; the other is dedup.record_id
    (phase 2: the record id is a group key of the dedup graph)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.dedup_phase import run_dedup_phase
    from stages.minhash import DedupConfig, SignatureStage
    from stages.warc_reader import ReadConfig, read_warc

    staged = []
    for name, words in (("b.warc.gz", "second file text"), ("a.warc.gz", "first file text")):
        p = tmp_path / name
        p.write_bytes(_rec(RID, f"http://{name}/", words))
        t = pa.concat_tables([c.docs for c in read_warc(str(p), ReadConfig())])
        t = t.drop_columns(["html"]).append_column("text", pa.array([words]))
        out = tmp_path / f"{name}.kept.parquet"
        pq.write_table(SignatureStage(DedupConfig())(t), out)
        staged.append((str(out), name.split(".")[0]))
    dec = tmp_path / "decisions"  # per-input-file decisions (i17): b's row lands in b.parquet
    stats = run_dedup_phase(staged, None, str(dec), DedupConfig(), 10**6, record_ids=True)
    assert stats["record_id_dups"] == stats["dropped"] == 1
    assert sorted(p.name for p in dec.iterdir()) == ["_SUCCESS.json", "b.parquet"]
    row = pq.read_table(dec / "b.parquet").to_pylist()[0]
    a_id = pq.read_table(staged[1][0]).column("doc_id")[0].as_py()
    b_id = pq.read_table(staged[0][0]).column("doc_id")[0].as_py()
    assert row["reason"] == "dedup.record_id"
    assert (row["doc_id"], row["keeper_doc_id"]) == (b_id, a_id)
    again = run_dedup_phase(staged, None, str(dec), DedupConfig(), 10**6, record_ids=True)
    assert again["dropped"] == 1  # the same decision on resume
    assert pq.read_table(dec / "b.parquet").to_pylist() == [row]


def test_one_megabyte_urls_stay_linear(tmp_path):
    """Issue 19 reported a quadratic URL scan: every URL check on a 1 MB URL (host made of
    500k labels, a 1 MB path) must take about as long per byte as on a 100 kB one."""
    import time

    import pyarrow as pa

    from core.urls import url_hash
    from lineage.blocklist import blocked_mask
    from stages.pii import PiiScrubber
    from stages.url_filter import UrlFilter, UrlFilterConfig
    from stages.warc_reader import ReadConfig, read_warc

    flt, pii = UrlFilter(UrlFilterConfig()), PiiScrubber()

    def cost(n: int) -> float:
        urls = [
            "http://x.example/" + "a" * n,
            "http://" + "a." * (n // 2) + "com/",
            "http://x.example/" + "/%40" * (n // 3),
        ]
        p = tmp_path / f"u{n}.warc.gz"
        p.write_bytes(b"".join(_rec(f"<urn:uuid:{i}-{n}>", u, "t") for i, u in enumerate(urls)))
        t0 = time.perf_counter()
        for lib in ("fastwarc", "warcio"):
            list(read_warc(str(p), ReadConfig(library=lib)))
        arr = pa.array(urls)
        flt.evaluate(arr)
        blocked_mask(
            pa.table({"url": arr}),
            frozenset({url_hash("http://y.example/a")}),
            frozenset({"y.example"}),
        )
        pii.scrub_metadata(urls)
        return time.perf_counter() - t0

    cost(1000)  # warm-up
    small, big = cost(100_000), cost(1_000_000)
    assert big < 30, f"1 MB URLs took {big:.1f} s"
    assert big < 10 * small * 3 + 2, f"superlinear: {small:.2f} s -> {big:.2f} s"


def _member_with_record_id(data: bytes, start: int, rid: str | None) -> tuple[bytes, str]:
    """The gzip member (record) at ``start``: its WARC-Record-ID, and (``rid`` given) the
    member recompressed with that id instead."""
    import gzip
    import re
    import zlib

    d = zlib.decompressobj(31)
    raw = d.decompress(data[start:])
    head, sep, rest = raw.partition(b"\r\n\r\n")
    old = re.search(rb"WARC-Record-ID: (<[^>]*>)", head).group(1).decode()
    if rid is None:
        return b"", old
    new = head.replace(old.encode(), rid.encode()) + sep + rest
    return gzip.compress(new), old


@pytest.mark.parametrize("engine", ["local", "ray", "ray-shuffle"])
def test_a_record_id_in_two_input_files_is_kept_once_end_to_end(engine, tmp_path, request):
    """Two input files holding one WARC-Record-ID for two different kept pages: the run keeps
    the first file's page and counts the other as dedup.record_id (a crawl re-packaged into
    new files must not enter the output twice). ``ray-shuffle``: phase 2 as Ray Data
    shuffles, where the record ids are a shuffle by record-id range too."""
    import json

    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from faultkit import cut_warc, gzip_members

    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    extra = ["execution.dedup_local_max_docs=0"] if engine == "ray-shuffle" else []
    if engine != "local":
        request.getfixturevalue("ray_session")
        engine = "ray"
    a, b = (
        cut_warc(p, tmp_path / n, 60)
        for p, n in zip(sample_paths(), ("a.warc.gz", "b.warc.gz"), strict=True)
    )

    def run(paths: list[Path], out: Path, eng: str, sets: tuple[str, ...] = ()):
        return run_pipeline(
            load_config(
                None,
                [
                    f"input.paths={json.dumps([str(p) for p in paths])}",
                    f"output.dir={out}",
                    "execution.progress=false",
                    f"execution.engine={eng}",
                    *sets,
                ],
            )
        )

    base = run([a, b], tmp_path / "base", "local")
    assert base.status == "succeeded" and not base.counts.get("dedup.record_id")
    offsets: dict[str, list[int]] = {str(a): [], str(b): []}
    for f in sorted((tmp_path / "base" / "data").rglob("*.parquet")):
        t = pq.read_table(f, columns=["source_uri", "source_offset"]).to_pydict()
        for uri, off in zip(t["source_uri"], t["source_offset"], strict=True):
            offsets[uri].append(off)
    offsets = {u: sorted(o) for u, o in offsets.items()}
    assert offsets[str(a)] and offsets[str(b)], "both files must have kept pages"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    _, rid_a = _member_with_record_id(data_a, offsets[str(a)][0], None)
    start = offsets[str(b)][0]
    end = next(e for s, e in gzip_members(data_b) if s == start)
    member, _ = _member_with_record_id(data_b, start, rid_a)
    b2 = tmp_path / "b2" / "b.warc.gz"
    b2.parent.mkdir()
    b2.write_bytes(data_b[:start] + member + data_b[end:])

    res = run([a, b2], tmp_path / "out", engine, tuple(extra))
    assert res.status == "succeeded"
    assert res.counts.get("dedup.record_id") == 1, res.counts
    assert res.docs_kept == base.docs_kept - 1
