"""The real damaged WARCs of $CCPIPE_SHARED_DATA/warc/damaged go through the FULL pipeline in
one run, listed together with a good file and a file that does not exist: the run succeeds,
every damaged file's defects are counted in lineage (stage_stats / input_files, with
reasons), and conservation holds per file."""

from __future__ import annotations

import pytest
from faultkit import check_lineage, leftovers, small_cfg

pytestmark = pytest.mark.ray

# defect -> drop reasons that must appear in that file's stage_stats
EXPECTED = {
    "empty.warc.gz": {"file.empty"},
    "binary-payload.warc.gz": {"extract.binary"},
    "missing-00000.warc.gz": {"file.missing"},
}
# defects a reader can survive without losing a record still leave a reason or an error text
RECORD_DEFECTS = {
    "truncated-member.warc.gz",
    "bad-content-length.warc.gz",
    "junk-between-members.warc.gz",
}


def test_damaged_files_in_one_full_run(shared_data, small_inputs, ray_session, tmp_path):
    """The real damaged files of the test data ($CCPIPE_SHARED_DATA/warc/damaged)."""
    damaged = sorted((shared_data / "warc" / "damaged").glob("*.warc.gz"))
    _damaged_run(damaged, small_inputs, tmp_path)


def test_generated_damaged_files_in_one_full_run(small_inputs, ray_session, tmp_path):
    """The same defects made by pipeline/sample/generate.py: runs on a clean clone."""
    from pipeline.sample.generate import damaged_warcs

    damaged = sorted(damaged_warcs(tmp_path / "damaged").values())
    _damaged_run(damaged, small_inputs, tmp_path)


def _damaged_run(damaged: list, small_inputs: list[str], tmp_path) -> None:
    from lineage.store import open_reader
    from pipeline.run import run_pipeline

    assert len(damaged) >= 6
    missing = tmp_path / "crawl" / "missing-00000.warc.gz"
    listing = tmp_path / "warc.paths"
    listing.write_text("\n".join([*map(str, damaged), small_inputs[0], str(missing)]) + "\n")
    out = tmp_path / "out"
    result = run_pipeline(small_cfg([str(listing)], out))
    assert result.status == "succeeded"
    # a local file that is not WARC is set aside before the run and reported (CLI exit 3)
    assert [u.rsplit("/", 1)[-1] for u in result.bad_inputs] == ["not-a-warc.warc.gz"]
    assert result.files_total == len(damaged) + 1
    check_lineage(out)
    assert not leftovers(out)
    con = open_reader(out / "lineage.duckdb")
    try:
        files = {
            r[0].rsplit("/", 1)[-1]: r
            for r in con.execute(
                "SELECT source_uri, status, records_read, docs_kept, error FROM input_files"
            ).fetchall()
        }
        reasons = {}
        for uri, reason, n in con.execute(
            "SELECT source_uri, reason, sum(count) FROM stage_stats GROUP BY 1, 2"
        ).fetchall():
            reasons.setdefault(uri.rsplit("/", 1)[-1], {})[reason] = n
    finally:
        con.close()
    assert set(files) == {p.name for p in damaged if p.name != "not-a-warc.warc.gz"} | {
        "sample-00000.warc.gz",
        "missing-00000.warc.gz",
    }
    report = {name: (files[name][1:], reasons.get(name)) for name in files}
    for name, want in EXPECTED.items():
        assert want <= set(reasons.get(name, {})), (name, report[name])
    for name in ("empty.warc.gz", "missing-00000.warc.gz"):
        assert files[name][1] == "error" and files[name][2] == 0, report[name]
    for name in RECORD_DEFECTS:
        uri, status, read, kept, error = files[name]
        # The damaged files are cuts of one sample, so exact dedup keeps each document in only
        # one of them (the survivor is chosen by hashed doc id, not by file): the file is not
        # lost if its documents reached dedup, kept or dropped there as a copy.
        deduped = sum(n for k, n in reasons[name].items() if k.startswith("dedup."))
        assert status == "committed" and read > 0 and kept + deduped > 0, report[name]
        damage = {k for k in reasons[name] if k in ("read.truncated", "read.parse_error")}
        assert damage or error, f"{name}: defect neither counted nor reported: {report[name]}"
    good = files["sample-00000.warc.gz"]
    assert good[1] == "committed" and good[4] is None and good[3] > 0


def test_chunk_without_docs_does_not_break_phase2(tmp_path):
    """Ray-free minimal repro: phase 1 on a missing file, then phase 2 with no signatures."""
    from pipeline.config import load_config
    from pipeline.dedup_phase import run_dedup_phase
    from pipeline.phase1 import ChunkProcessor, read_file_chunks
    from pipeline.work import Layout

    cfg = load_config(None, [])
    proc = ChunkProcessor(cfg, Layout(str(tmp_path), cfg.config_hash), "r")
    for row in read_file_chunks(str(tmp_path / "missing.warc.gz"), "m", cfg):
        assert proc.process(row)["counts"] == {"file.missing": 1}
    # an empty chunk stages no kept file (it would lack the signature columns) ...
    assert sorted(tmp_path.rglob("*.kept.parquet")) == []
    assert len(sorted(tmp_path.rglob("chunk-*.json"))) == 1  # ... but its counts are committed
    stats = run_dedup_phase([], None, str(tmp_path / "decisions"), cfg.dedup)
    assert stats["docs"] == 0
