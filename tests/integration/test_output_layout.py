"""Published layout, work units, rolling shards, relative lineage paths, per-config views.

- whole-output readers (pyarrow.dataset, DuckDB, polars, HF datasets) pointed at
  `OUT/data` see exactly the kept documents;
- work units are planned deterministically, persisted, and bounded by files and bytes;
- rolling writers cut shards at the size cap, token files at the same rows, deterministically;
- a copied output is self-contained: delete in the copy leaves the original byte-identical;
- two configs in one output: views answer per config by default, all with `all_configs`;
- a multi-WARC crawl (generated) gives shard counts bounded per (unit, lang, bucket).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lineage.store import open_reader
from pipeline.work import Layout, load_or_plan_units, plan_units
from stages.token_shards import IndexedDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crawlgen import generate_crawl  # noqa: E402


def _kept_doc_ids(db: str) -> list[str]:
    con = open_reader(db)
    try:
        ids = sorted(r[0] for r in con.execute("SELECT doc_id FROM documents").fetchall())
        kept = con.execute("SELECT sum(docs_kept) FROM input_files").fetchone()[0]
    finally:
        con.close()
    assert len(ids) == kept > 0
    return ids


def _tree(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


# ---- whole-output readers ----------------------------------------------------------------------
def test_layout_has_only_kept_docs_under_data(sample_run):
    out = Path(sample_run.output)
    files = [p.relative_to(out / "data").parts for p in (out / "data").rglob("*") if p.is_file()]
    assert files and all(
        len(f) == 3
        and f[0].startswith("lang=")
        and f[1].startswith("bucket=")
        and f[2].startswith("part-")
        and f[2].endswith(".parquet")
        for f in files
    )
    assert {p.suffix for p in (out / "tokens").rglob("*") if p.is_file()} == {".bin", ".idx"}
    assert (out / "_rejected").is_dir() and not (out / "data" / "_rejected").exists()


def test_pyarrow_dataset_reads_exactly_kept_docs(sample_run):
    import pyarrow.dataset as ds

    d = ds.dataset(Path(sample_run.output) / "data", format="parquet", partitioning="hive")
    t = d.to_table(columns=["doc_id", "lang", "bucket", "quality_bucket"])
    assert sorted(t.column("doc_id").to_pylist()) == _kept_doc_ids(sample_run.lineage_path)
    assert t.column("bucket").to_pylist() == t.column("quality_bucket").to_pylist()


def test_duckdb_read_parquet_hive_reads_exactly_kept_docs(sample_run):
    import duckdb

    glob = str(Path(sample_run.output) / "data" / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT doc_id FROM read_parquet('{glob}', hive_partitioning = true)"
    ).fetchall()
    assert sorted(r[0] for r in rows) == _kept_doc_ids(sample_run.lineage_path)


def test_polars_scan_parquet_reads_exactly_kept_docs(sample_run):
    pl = pytest.importorskip("polars")
    df = (
        pl.scan_parquet(
            str(Path(sample_run.output) / "data" / "**" / "*.parquet"), hive_partitioning=True
        )
        .select("doc_id", "lang")
        .collect()
    )
    assert sorted(df["doc_id"].to_list()) == _kept_doc_ids(sample_run.lineage_path)


def test_hf_datasets_load_dataset_reads_exactly_kept_docs(sample_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    d = datasets.load_dataset(
        "parquet",
        data_dir=str(Path(sample_run.output) / "data"),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert sorted(d["doc_id"]) == _kept_doc_ids(sample_run.lineage_path)


# ---- work units ----------------------------------------------------------------------------------
def _files(n: int, size: int = 100) -> list[tuple[str, str, int]]:
    return [(f"s3://b/crawl/f{i:03d}.warc.gz", f"f{i:03d}", size) for i in range(n)]


def test_units_are_sorted_bounded_and_stable():
    files = _files(10)
    units = plan_units(list(reversed(files)), max_files=3, max_bytes=10_000)
    assert [len(u.file_keys) for u in units] == [3, 3, 3, 1]
    assert [k for u in units for k in u.file_keys] == [f[1] for f in files]  # sorted by URI
    assert plan_units(files, 3, 10_000) == units  # deterministic ids too
    by_bytes = plan_units(files, max_files=100, max_bytes=250)
    assert [len(u.file_keys) for u in by_bytes] == [2, 2, 2, 2, 2]
    # A file above the byte cap is a unit of its own.
    big = plan_units([*files[:2], ("s3://b/crawl/f001z", "big", 10**9)], 100, 250)
    assert [u.file_keys for u in big] == [("f000", "f001"), ("big",)]
    # Removing committed units leaves every other unit unchanged (resume / nightly).
    rest = [f for f in files if f[1] not in units[1].file_keys]
    assert plan_units(rest, 3, 10_000) == [units[0], units[2], units[3]]


def test_unit_plan_is_persisted_and_reused(tmp_path):
    uri = str(tmp_path / "units.json")
    first = load_or_plan_units(uri, _files(5), 2, 10_000)
    # Different caps later (same run key): the persisted plan wins.
    assert load_or_plan_units(uri, _files(5)[2:], 4, 10_000) == first
    # New files (a nightly increment) are planned afresh.
    fresh = load_or_plan_units(uri, [("x", "new1", 1), ("y", "new2", 1)], 4, 10_000)
    assert [u.file_keys for u in fresh] == [("new1", "new2")]


# ---- rolling writer ----------------------------------------------------------------------------
def _docs(n: int, seed: int, src: str) -> pa.Table:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 200, n)
    toks = [rng.integers(0, 5000, k).astype(np.int32) for k in lengths]
    return pa.table(
        {
            "doc_id": [f"{src}-{i}" for i in range(n)],
            "text": [" ".join(map(str, t[:50])) for t in toks],
            "source_uri": [src] * n,
            "source_offset": pa.array(np.arange(n) * 1000, pa.int64()),
            "crawl_id": ["CC-TEST"] * n,
            "pii_counts": ['{"EMAIL_ADDRESS": 1}'] * n,
            "n_tokens": pa.array(lengths, pa.int32()),
            "tokens": pa.array([t.tolist() for t in toks], pa.list_(pa.int32())),
        }
    )


def _roll(out: Path, cap: int) -> list[dict]:
    from pipeline.phase3 import RollingWriter

    w = RollingWriter(
        Layout(str(out), "c" * 64),
        "text",
        "en",
        "high",
        "u000",
        cap,
        16,
        vocab_size=5000,
        tokenizer_hash="t",
    )
    for i, src in enumerate(("a.warc", "b.warc", "c.warc")):
        w.add(_docs(70, i, src))
    return w.finish()


def test_rolling_writer_cuts_at_cap_with_mirrored_tokens(tmp_path):
    recs = _roll(tmp_path / "a", cap=8000)
    text = [r for r in recs if r["kind"] == "text"]
    total = sum(r["n_bytes"] for r in text)
    assert 1 < len(text) <= math.ceil(total / 8000) + 1
    assert sum(r["n_docs"] for r in text) == 210
    seen: Counter[str] = Counter()
    for r in text:
        p = tmp_path / "a" / r["path"]
        t = pq.read_table(p)
        assert t.column("shard_row").to_pylist() == list(range(t.num_rows))
        ds = IndexedDataset(str(tmp_path / "a" / "tokens" / "lang=en" / "bucket=high" / p.stem))
        assert len(ds) == t.num_rows and ds.lengths.tolist() == t.column("n_tokens").to_pylist()
        assert t.column("token_start").to_pylist() == [int(x) for x in ds.token_offsets()]
        # per-input-file accounting inside a shard that spans files
        assert sum(i["n_docs"] for i in r["inputs"]) == r["n_docs"]
        for i in r["inputs"]:
            seen[i["source_uri"]] += i["n_docs"]
    assert seen == {"a.warc": 70, "b.warc": 70, "c.warc": 70}
    # all but the tail came close to the cap (cut on an estimate); names are sequential
    assert all(r["n_bytes"] >= 8000 * 0.7 for r in text[:-1])
    assert [Path(r["path"]).name for r in text] == [
        f"part-u000-cccccccc-{i:05d}.parquet" for i in range(len(text))
    ]
    # deterministic: same rows, same bytes
    again = _roll(tmp_path / "b", cap=8000)
    assert [(r["path"], r["sha256"]) for r in again] == [(r["path"], r["sha256"]) for r in recs]
    assert not [p for p in (tmp_path / "a").rglob("*") if ".tmp-" in p.name]


# ---- copies are self-contained --------------------------------------------------------------------
def test_copy_then_delete_leaves_original_byte_identical(sample_run, tmp_path):
    from lineage.delete import delete_documents
    from lineage.trace import trace

    src = Path(sample_run.output)
    before = _tree(src)
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    con = open_reader(dst / "lineage.duckdb")
    doc_id, url = con.execute(
        "SELECT doc_id, url FROM documents ORDER BY doc_id LIMIT 1"
    ).fetchone()
    assert (
        con.execute(
            "SELECT count(*) FROM shards WHERE path LIKE '/%' OR path LIKE '%://%'"
        ).fetchone()[0]
        == 0
    )
    [item] = [t for t in trace(con, doc_id) if t["status"] == "kept"]
    assert (dst / item["filename"]).is_file()
    con.close()
    res = delete_documents(dst / "lineage.duckdb", urls=[url])
    assert res.docs_deleted >= 1 and res.files_removed
    assert all(str(p).startswith(str(dst)) for p in res.files_removed)
    assert _tree(src) == before, "deleting in a copy touched the original"
    con = open_reader(dst / "lineage.duckdb")
    assert con.execute("SELECT count(*) FROM documents WHERE url = ?", [url]).fetchone()[0] == 0
    con.close()
    con = open_reader(src / "lineage.duckdb")
    assert con.execute("SELECT count(*) FROM documents WHERE url = ?", [url]).fetchone()[0] >= 1
    con.close()


# ---- many WARCs: bounded shards per (unit, lang, bucket); two configs ---------------------------
N_FILES = 4
CAP = 60_000


@pytest.fixture(scope="module")
def crawl_run(ray_session, tmp_path_factory):
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    crawl = generate_crawl(tmp_path_factory.mktemp("crawl"), N_FILES)
    out = tmp_path_factory.mktemp("crawl_out")
    sets = [
        f"input.paths={json.dumps(crawl)}",
        f"output.dir={out}",
        "execution.progress=false",
        "output.unit_max_files=2",
        f"output.shard_max_bytes={CAP}",
        "output.row_group_docs=50",
    ]
    result = run_pipeline(load_config(None, sets))
    assert result.status == "succeeded"
    return out, crawl, sets, result


def test_shard_count_follows_bytes_not_inputs(crawl_run):
    out, crawl, _, result = crawl_run
    con = open_reader(out / "lineage.duckdb")
    try:
        units = con.execute("SELECT unit_id, count(*) FROM input_files GROUP BY 1").fetchall()
        parts = con.execute(
            "SELECT unit_id, lang, quality_bucket, count(*), sum(n_bytes), max(n_bytes) "
            "FROM shards WHERE kind = 'text' GROUP BY 1, 2, 3"
        ).fetchall()
        per_file = con.execute(
            "SELECT f.source_uri, f.docs_kept, sum(i.n_docs) FROM input_files f LEFT JOIN "
            "shard_inputs i ON i.source_uri = f.source_uri AND i.shard_id IN (SELECT shard_id "
            "FROM shards WHERE kind = 'text') GROUP BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    assert sorted(n for _, n in units) == [2] * (N_FILES // 2)
    for _unit, _lang, _bucket, n, total, _biggest in parts:
        assert n <= math.ceil(total / CAP) + 1
    assert all(kept == (n or 0) for _, kept, n in per_file)  # accounting per input file
    assert sum(kept for _, kept, _ in per_file) == result.docs_kept


def test_two_configs_views_per_config_by_default(crawl_run, capsys):
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    out, crawl, sets, first = crawl_run
    cfg1 = load_config(None, sets).config_hash
    con = open_reader(out / "lineage.duckdb")
    one = con.execute("SELECT count(*) FROM documents").fetchone()[0]
    con.close()
    assert one == first.docs_kept
    # A second config (another shard cap changes output bytes) into the same output.
    sets2 = [*sets, f"output.shard_max_bytes={CAP * 2}"]
    second = run_pipeline(load_config(None, sets2))
    cfg2 = load_config(None, sets2).config_hash
    assert cfg2 != cfg1 and second.files_processed == N_FILES
    con = open_reader(out / "lineage.duckdb")
    try:
        assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == second.docs_kept
    finally:
        con.close()
    con = open_reader(out / "lineage.duckdb", config=cfg1[:8])
    try:
        assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == first.docs_kept
    finally:
        con.close()
    con = open_reader(out / "lineage.duckdb", all_configs=True)
    try:
        n = con.execute("SELECT count(*) FROM documents").fetchone()[0]
        assert n == first.docs_kept + second.docs_kept
    finally:
        con.close()
    # The CLI: per config by default, --config to pick one, --all-configs for all.
    from lineage.cli import main

    db = str(out / "lineage.duckdb")
    for extra, want in (
        ([], second.docs_kept),
        (["--config", cfg1[:8]], first.docs_kept),
        (["--all-configs"], first.docs_kept + second.docs_kept),
    ):
        capsys.readouterr()
        assert (
            main(["sql", "SELECT count(*) AS n FROM documents", "--lineage", db, "--json", *extra])
            == 0
        )
        assert json.loads(capsys.readouterr().out)[0]["n"] == want, extra


@pytest.mark.slow
def test_two_hundred_warcs_bounded_shards(ray_session, tmp_path):
    """The issue's scale check: 200 sample-sized WARCs, default caps except the unit size."""
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    crawl = generate_crawl(tmp_path / "crawl", 200)
    out = tmp_path / "out"
    result = run_pipeline(
        load_config(
            None,
            [
                f"input.paths={json.dumps(crawl)}",
                f"output.dir={out}",
                "execution.progress=false",
                "output.unit_max_files=50",
            ],
        )
    )
    assert result.status == "succeeded"
    con = open_reader(out / "lineage.duckdb")
    try:
        per_part = con.execute(
            "SELECT unit_id, lang, quality_bucket, count(*) FROM shards "
            "WHERE kind = 'text' GROUP BY 1, 2, 3"
        ).fetchall()
        n_units = con.execute("SELECT count(DISTINCT unit_id) FROM input_files").fetchone()[0]
    finally:
        con.close()
    assert n_units == 4
    assert max(n for *_, n in per_part) == 1  # far below the 1 GB cap: one shard each
