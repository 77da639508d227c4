"""Every duplicate group ends with exactly one kept document, whatever mix of rules joins it.

Why: record-id dedup (the same WARC-Record-ID in several input files) and exact/near dedup
used to pick their keepers by different rules; the same WARC under two names then lost the
documents for which the two rules disagreed (a's copy an exact duplicate of b's, b's copy a
record-id duplicate of a's: both dropped). Real WARC files, the in-process engine.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage.store import open_reader
from pipeline.config import load_config
from pipeline.dedup_index import decisions_files, write_index_part
from pipeline.dedup_phase import run_dedup_phase
from pipeline.run import run_pipeline
from stages.minhash import DedupConfig, SignatureStage

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
    first = con.execute(  # one WARC under two names: the first name's copy is the keeper
        "SELECT DISTINCT d.reason, k.source_uri FROM duplicates d "
        "JOIN documents k ON k.doc_id = d.keeper_doc_id"
    ).fetchall()
    assert [(r, Path(u).name) for r, u in first] == [("dedup.record_id", "a.warc.gz")]
    rej = con.execute(
        "SELECT doc_id, keeper_doc_id FROM rejections WHERE drop_stage = 'dedup'"
    ).fetchall()
    assert len(rej) == len(dup) and all(k in kept for _, k in rej)


# ---- property: any mix of shared record ids and shared texts, across files and runs ----------

TEXTS = 5  # texts are disjoint word sets: only equal texts link (exact), never near ones
RIDS = 4


def _text(k: int) -> str:
    """Letters only: dedup maps every digit to 0, so digits would make the texts equal."""
    return " ".join(f"{chr(97 + k) * 3}{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40))


DOC = st.tuples(
    st.integers(0, 2),  # input file
    st.one_of(st.none(), st.integers(0, RIDS - 1)),  # record id
    st.integers(0, TEXTS - 1),  # text
    st.one_of(st.none(), st.integers(1, 3)),  # warc_date
)


def _sig(rows: list[tuple[str, str | None, int, int | None]]) -> pa.Table:
    t = pa.table(
        {
            "doc_id": [r[0] for r in rows],
            "warc_date": pa.array([r[3] for r in rows], pa.int64()).cast(
                pa.timestamp("s", tz="UTC")
            ),
            "text": [_text(r[2]) for r in rows],
        }
    )
    sig = SignatureStage(DedupConfig())(t).drop_columns(["text"])
    return sig.append_column("warc_record_id", pa.array([r[1] for r in rows], pa.string()))


def _groups(docs: dict[str, tuple], released: set[str]) -> dict[str, str]:
    """doc_id -> its connected group (union-find over shared texts, and shared record ids
    between this run's documents: record ids are not looked up in the index)."""
    parent = {d: d for d in docs}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by: dict[tuple, str] = {}
    for d, (_, rid, text, _) in sorted(docs.items()):
        keys = [("t", text)] + ([("r", rid)] if rid is not None and d not in released else [])
        for k in keys:
            if k in by:
                parent[find(d)] = find(by[k])
            else:
                by[k] = d
    return {d: find(d) for d in docs}


@given(
    st.lists(DOC, min_size=1, max_size=14),
    st.lists(st.tuples(st.integers(0, TEXTS - 1), st.one_of(st.none(), st.integers(1, 3)))),
)
@settings(max_examples=40, deadline=None)
def test_every_group_keeps_one_document_and_keepers_are_kept(docs, released_docs) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        index = f"{tmp}/index"
        rel = [(f"r{i:02d}", None, t, d) for i, (t, d) in enumerate(released_docs[:4])]
        if rel:
            write_index_part(index, "released", _sig(rel))
        files: dict[int, list] = {}
        seen: set[tuple[int, int]] = set()
        for i, (f, rid, text, date) in enumerate(docs):
            if rid is not None and (f, rid) in seen:
                rid = None  # phase 1 keeps one record per record id within a file
            seen.add((f, rid) if rid is not None else (f, -1 - i))
            files.setdefault(f, []).append(
                (f"d{i:02d}", f"<urn:rid:{rid}>" if rid is not None else None, text, date)
            )
        sig_files = []
        for f, rows in sorted(files.items()):
            p = f"{tmp}/f{f}.parquet"
            pq.write_table(_sig(rows), p)
            sig_files.append((p, f"f{f}"))
        stats = run_dedup_phase(
            sig_files, index, f"{tmp}/dec", DedupConfig(), 10**6, record_ids=True
        )
        dec = {}
        for p in decisions_files(f"{tmp}/dec"):
            for r in pq.read_table(p).to_pylist():
                dec[r["doc_id"]] = r
        assert stats["dropped"] == len(dec)
        every = {r[0]: r for rows in files.values() for r in rows} | {r[0]: r for r in rel}
        released = {r[0] for r in rel}
        kept = set(every) - set(dec)
        assert released <= kept  # released documents are never dropped
        for d, r in dec.items():
            assert r["keeper_doc_id"] in kept, (d, r)  # the keeper is kept, no chains
        group = _groups(every, released)
        survivors: dict[str, list[str]] = {}
        for d in kept:
            survivors.setdefault(group[d], []).append(d)
        for g in set(group.values()):
            alive = survivors.get(g, [])
            if not any(m in released for m in alive):
                assert len(alive) == 1, (g, alive)  # exactly one survivor per group
            for d in alive:  # a group with a released document keeps only those
                assert d in released or not any(m in released for m in alive)
