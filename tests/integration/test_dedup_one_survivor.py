"""Every duplicate group ends with exactly one kept document, whatever mix of rules joins it.

Why: record-id dedup (the same WARC-Record-ID in several input files) and exact/near dedup
used to pick their keepers by different rules; the same WARC under two names then lost the
documents for which the two rules disagreed (a's copy an exact duplicate of b's, b's copy a
record-id duplicate of a's: both dropped). Real WARC files, the in-process engine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lineage.store import open_reader
from pipeline.config import load_config
from pipeline.run import run_pipeline

SAMPLE = Path("/work/shared/data/warc/other/dolma_sample-0000.warc.gz")


def _run(out: Path, files: list[Path]):
    paths = ",".join(str(f) for f in files)
    cfg = load_config(
        None,
        [
            f"output.dir={out}",
            "execution.progress=false",
            "execution.engine=local",
            f"input.paths=[{paths}]",
        ],
    )
    return run_pipeline(cfg)


def _kept_urls(out: Path) -> list[str]:
    con = open_reader(out / "lineage.duckdb")
    return sorted(r[0] for r in con.execute("SELECT url FROM documents").fetchall())


def test_same_warc_under_two_names_keeps_every_document_once(tmp_path):
    a, b = tmp_path / "in" / "a.warc.gz", tmp_path / "in" / "b.warc.gz"
    a.parent.mkdir()
    shutil.copyfile(SAMPLE, a)
    shutil.copyfile(SAMPLE, b)
    _run(tmp_path / "alone", [a])
    _run(tmp_path / "both", [a, b])
    alone, both = _kept_urls(tmp_path / "alone"), _kept_urls(tmp_path / "both")
    assert alone, "the sample keeps documents"
    assert both == alone  # every unique document once, none lost, none twice

    con = open_reader(tmp_path / "both" / "lineage.duckdb")
    kept = {r[0] for r in con.execute("SELECT doc_id FROM documents").fetchall()}
    dup = con.execute("SELECT doc_id, reason, keeper_doc_id FROM duplicates").fetchall()
    assert len(dup) == len(alone)  # b's copy of each kept document, nothing more
    for doc_id, reason, keeper in dup:
        assert doc_id not in kept
        assert keeper in kept, (doc_id, reason, keeper)  # the keeper is a kept document
    rej = con.execute(
        "SELECT doc_id, keeper_doc_id FROM rejections WHERE drop_stage = 'dedup'"
    ).fetchall()
    assert len(rej) == len(dup) and all(k in kept for _, k in rej)
