"""Duplicate WARC-Record-IDs across input files become dedup decisions (issue 19).

Split out of pipeline/run.py: runs after phase 2 (either engine), before its decisions commit.
"""

from __future__ import annotations

from core import storage


def add_record_id_duplicates(sig_files: list[tuple[str, str]], decisions_dir: str) -> int:
    """One WARC-Record-ID in several input files is one record (issue 19).

    Among the staged (phase-1 surviving) occurrences, the one in the first input file in URI
    order (then the smallest offset) wins; every other occurrence becomes a
    `dedup.record_id` decision pointing at it, unless dedup already dropped it. Runs after
    either phase-2 engine, on the per-input-file decisions (i17); returns the number of
    decisions added.
    """
    import hashlib

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipeline.dedup_index import decisions_file_uri, decisions_files, read_decisions_uri
    from stages.dedup_cluster import OUTPUT_SCHEMA

    cols = ["doc_id", "warc_record_id", "source_uri", "source_offset"]
    parts = []
    for u, fk in sig_files:
        fs, path = storage.resolve(u)
        names = pq.ParquetFile(fs.open_input_file(path)).schema_arrow.names
        if all(c in names for c in cols):
            t = pq.read_table(path, columns=cols, filesystem=fs)
            parts.append(t.append_column("file_key", pa.array([fk] * t.num_rows, pa.string())))
    if not parts:
        return 0
    occ = pa.concat_tables(parts).filter(pc.is_valid(pc.field("warc_record_id")))
    if occ.num_rows < 2:
        return 0
    occ = occ.sort_by(
        [
            ("warc_record_id", "ascending"),
            ("source_uri", "ascending"),
            ("source_offset", "ascending"),
        ]
    )
    decided = set()
    for u in decisions_files(decisions_dir):
        decided.update(read_decisions_uri(u).column("doc_id").to_pylist())
    rows: dict[str, dict[str, list]] = {}
    winner_rid, winner = None, None
    for rid, doc, fk in zip(
        occ.column("warc_record_id").to_pylist(),
        occ.column("doc_id").to_pylist(),
        occ.column("file_key").to_pylist(),
        strict=True,
    ):
        if rid != winner_rid:
            winner_rid, winner = rid, doc
            continue
        if doc == winner or doc in decided:
            continue
        decided.add(doc)
        r = rows.setdefault(fk, {n: [] for n in OUTPUT_SCHEMA.names})
        r["doc_id"].append(doc)
        r["reason"].append("dedup.record_id")
        r["cluster_id"].append(int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big"))
        r["keeper_doc_id"].append(winner)
    n = 0
    for fk, r in sorted(rows.items()):
        uri = decisions_file_uri(decisions_dir, fk)
        old = read_decisions_uri(uri) if storage.exists(uri) else OUTPUT_SCHEMA.empty_table()
        extra = pa.Table.from_pydict(r, schema=OUTPUT_SCHEMA)
        out = pa.concat_tables([old.cast(OUTPUT_SCHEMA), extra]).sort_by([("doc_id", "ascending")])
        storage.write_parquet_atomic(uri, out, 100_000)
        n += extra.num_rows
    return n
