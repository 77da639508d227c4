"""Duplicate WARC-Record-IDs across input files become dedup decisions (issue 19).

Among the staged (phase-1 surviving) occurrences of one record id, the one in the first
input file in URI order (then the smallest offset) wins; every other occurrence becomes a
`dedup.record_id` decision pointing at it, unless dedup already dropped it. Runs at the end
of phase 2, on the per-input-file decisions (i17).

Three steps, each a plain function of Arrow tables (no Ray import), so that one process can
run them over a small run (:func:`add_record_id_duplicates`) and Ray Data can run them as a
shuffle by record-id range over a crawl (``pipeline/dedup_phase.py``): occurrences
(:func:`record_id_rows`) -> decisions of one record-id range (:func:`record_id_decisions`)
-> merged into one input file's decisions (:func:`merge_record_id_decisions`).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from pipeline.dedup_index import decisions_file_uri, read_decisions_uri
from stages.dedup_cluster import OUTPUT_SCHEMA, doc_keys, partition_of

RID_COLUMNS = ["doc_id", "warc_record_id", "source_uri", "source_offset"]
OCCURRENCE_SCHEMA = pa.schema(
    [
        ("part", pa.int64()),
        ("fidx", pa.int32()),
        ("doc_id", pa.large_string()),
        ("rid", pa.large_string()),
        ("source_uri", pa.large_string()),
        ("source_offset", pa.int64()),
    ]
)
RID_DECISION_SCHEMA = pa.schema([("fidx", pa.int32()), *OUTPUT_SCHEMA])
MERGED_SCHEMA = pa.schema([("fidx", pa.int32()), ("added", pa.int64())])


def record_id_rows(batch: pa.Table, bits: int) -> pa.Table:
    """Staged signature files (``uri``, ``fidx``) -> one row per document with a record id,
    keyed by the top ``bits`` bits of the id's 64-bit hash."""
    parts = []
    for uri, fidx in zip(
        batch.column("uri").to_pylist(), batch.column("fidx").to_pylist(), strict=True
    ):
        fs, path = storage.resolve(uri)
        with fs.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            if not set(RID_COLUMNS) <= set(pf.schema_arrow.names):
                continue  # staged by a version without record ids
            t = pf.read(columns=RID_COLUMNS)
        t = t.filter(pc.is_valid(t.column("warc_record_id")))
        if t.num_rows == 0:
            continue
        rid = t.column("warc_record_id").combine_chunks()
        parts.append(
            pa.table(
                {
                    "part": pa.array(partition_of(doc_keys(rid), bits)),
                    "fidx": pa.array(np.full(t.num_rows, fidx, np.int32)),
                    "doc_id": t.column("doc_id").cast(pa.large_string()),
                    "rid": rid.cast(pa.large_string()),
                    "source_uri": t.column("source_uri").cast(pa.large_string()),
                    "source_offset": t.column("source_offset").cast(pa.int64()),
                },
                schema=OCCURRENCE_SCHEMA,
            )
        )
    return pa.concat_tables(parts) if parts else OCCURRENCE_SCHEMA.empty_table()


def record_id_decisions(group: pa.Table) -> pa.Table:
    """Occurrences of whole record ids -> a decision for each one after the first.

    "First" = the occurrence whose input file comes first in URI order, then the smallest
    offset. Vectorised: sort, mark where a record id starts, carry the first row's doc_id.
    """
    if group.num_rows < 2:
        return RID_DECISION_SCHEMA.empty_table()
    group = group.sort_by(
        [("rid", "ascending"), ("source_uri", "ascending"), ("source_offset", "ascending")]
    )
    rid = group.column("rid").combine_chunks()
    starts = np.ones(group.num_rows, dtype=bool)
    starts[1:] = ~pc.equal(rid.slice(1), rid.slice(0, len(rid) - 1)).to_numpy(zero_copy_only=False)
    first = np.maximum.accumulate(np.where(starts, np.arange(group.num_rows), 0))
    doc = group.column("doc_id").combine_chunks()
    winner = doc.take(pa.array(first))
    later = ~starts & pc.not_equal(doc, winner).to_numpy(zero_copy_only=False)
    if not later.any():
        return RID_DECISION_SCHEMA.empty_table()
    idx = pa.array(np.flatnonzero(later))
    dup_rid = rid.take(idx).to_pylist()
    return pa.table(
        {
            "fidx": group.column("fidx").take(idx),
            "doc_id": doc.take(idx).cast(pa.string()),
            "reason": pa.array(["dedup.record_id"] * len(dup_rid), pa.string()),
            "cluster_id": pa.array(
                [int.from_bytes(hashlib.sha256(r.encode()).digest()[:8], "big") for r in dup_rid],
                pa.uint64(),
            ),
            "keeper_doc_id": winner.take(idx).cast(pa.string()),
        },
        schema=RID_DECISION_SCHEMA,
    )


def merge_record_id_decisions(
    group: pa.Table, decisions_dir: str, file_keys: list[str]
) -> pa.Table:
    """One input file's record-id decisions -> appended to its decisions file, except for
    documents dedup already dropped (a document has one decision); one count row back."""
    fidx = int(group.column("fidx")[0].as_py())
    uri = decisions_file_uri(decisions_dir, file_keys[fidx])
    old = read_decisions_uri(uri) if storage.exists(uri) else OUTPUT_SCHEMA.empty_table()
    extra = group.drop_columns(["fidx"]).cast(OUTPUT_SCHEMA)
    extra = extra.filter(pc.invert(pc.is_in(extra.column("doc_id"), old.column("doc_id"))))
    if extra.num_rows:
        out = pa.concat_tables([old.cast(OUTPUT_SCHEMA), extra]).sort_by([("doc_id", "ascending")])
        storage.write_parquet_atomic(uri, out, 100_000)
    return pa.table({"fidx": [fidx], "added": [extra.num_rows]}, schema=MERGED_SCHEMA)


def add_record_id_duplicates(sig_files: list[tuple[str, str]], decisions_dir: str) -> int:
    """The three steps in this process, over every staged file of a small run; returns the
    number of decisions added. ``sig_files``: (uri, file_key), several per input file."""
    file_keys = sorted({fk for _, fk in sig_files})
    fidx = {fk: i for i, fk in enumerate(file_keys)}
    items = pa.table(
        {
            "uri": [u for u, _ in sig_files],
            "fidx": pa.array([fidx[fk] for _, fk in sig_files], pa.int32()),
        }
    )
    dec = record_id_decisions(record_id_rows(items, 0))
    added = 0
    for i in sorted(set(dec.column("fidx").to_pylist())):
        part = dec.filter(pc.equal(dec.column("fidx"), i))
        added += merge_record_id_decisions(part, decisions_dir, file_keys)["added"][0].as_py()
    return added
