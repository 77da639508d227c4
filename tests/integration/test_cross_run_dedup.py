"""Incremental runs dedup against everything released before and never touch released shards.

Run A processes the first sample file; run B, into the same output, processes the second. The
sample plants near/exact duplicate groups spanning both files: in B, every copy of a document
released by A must be dropped (whatever its date), and A's shards must stay byte-identical.
"""

from __future__ import annotations

from pathlib import Path

from lineage.store import open_reader
from pipeline.config import load_config
from pipeline.run import run_pipeline
from pipeline.sample import planted, sample_paths


def _files(out: Path, pattern: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob(pattern)) if p.is_file()
    }


def _released(out: Path) -> dict[str, bytes]:
    """Everything run A published: its unit's shards (data, tokens, audit) and index part."""
    return {
        **_files(out / "data", "part-*"),
        **_files(out / "tokens", "part-*"),
        **_files(out / "_rejected", "part-*"),
        **_files(out / "_dedup_index", "*.parquet"),
    }


def _index_files(out: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted((out / "_dedup_index").rglob("*.parquet"))
    }


def test_run_b_drops_copies_of_released_documents(ray_session, tmp_path):
    first, second = sample_paths()
    base = [f"output.dir={tmp_path}", "execution.progress=false"]
    a = run_pipeline(load_config(None, base + [f"input.paths=[{first}]"]))
    assert a.files_processed == 1
    released_a = _released(tmp_path)
    assert any(k.endswith(".parquet") for k in released_a)
    index_a = _index_files(tmp_path)  # A's index parts: bytes and mtimes
    assert index_a and all("file=sample-00000" in k for k in index_a)

    b = run_pipeline(load_config(None, base + [f"input.paths=[{first},{second}]"]))
    assert b.files_skipped == 1 and b.files_processed == 1
    after = _released(tmp_path)
    assert {k: v for k, v in after.items() if k in released_a} == released_a  # A untouched
    assert len(after) > len(released_a)  # B's unit wrote new files beside A's
    index_b = _index_files(tmp_path)  # B only appended its own parts to the index
    assert {k: v for k, v in index_b.items() if k in index_a} == index_a
    assert all("file=sample-00001" in k for k in set(index_b) - set(index_a))

    manifest = planted()
    cross = [
        g
        for g in manifest["near_duplicates"] + manifest["exact_duplicates"]
        if len(set(g["files"])) > 1
    ]
    assert cross, "the sample plants cross-file duplicate groups"
    con = open_reader(tmp_path / "lineage.duckdb")
    kept = {r[0]: r[1] for r in con.execute("SELECT url, source_uri FROM documents").fetchall()}
    dropped = {
        r[0]
        for r in con.execute("SELECT url FROM rejections WHERE drop_stage = 'dedup'").fetchall()
    }
    by_url = {d["url"]: d["file"] for d in manifest["documents"]}
    for g in cross:
        in_a = [u for u in g["urls"] if by_url[u] == "sample-00000.warc.gz"]
        in_b = [u for u in g["urls"] if by_url[u] == "sample-00001.warc.gz"]
        # exactly one member of the group survives overall, and B never re-adds one A released
        survivors = [u for u in g["urls"] if u in kept]
        assert len(survivors) == 1, g["group"]
        if any(u in kept for u in in_a):
            assert all(u in dropped for u in in_b), g["group"]

    # the same input again is a no-op
    c = run_pipeline(load_config(None, base + [f"input.paths=[{first},{second}]"]))
    assert c.files_processed == 0 and c.files_skipped == 2
