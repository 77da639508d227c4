"""The cross-run dedup index: released documents' band keys, append-only, range-partitioned.

Why: a nightly run must find copies of everything released before without reading (or
rewriting) the whole index. Layout under ``<output>/_dedup_index/<cfg8>/`` (Ray-free; phase 3
writes, phase 2 reads, ``python -m pipeline dedup compact`` merges):

* ``keys/b=XX/<name>.parquet``: ``gkey`` (uint64 LSH band key with the band folded in, or the
  exact-text key), ``node`` (uint64 = xxh64(doc_id)); rows sorted by (gkey, node); bucket XX =
  the top :data:`BUCKET_BITS` bits of gkey.
* ``docs/b=XX/<name>.parquet``: ``node``, ``doc_id``, ``warc_date`` (int64 s), ``text_hash``;
  sorted by node; bucket = top bits of node.

``<name>`` is ``file=<file_key>`` for the part written when an input file is committed (a
re-run rewrites the same bytes under the same name) or ``compact-<digest>`` for merged parts.
A run only ever adds files: the index writes of a nightly run grow with its new documents,
never with the index. Phase 2 reads, per key range it owns, only the buckets of that range, and
inside a file only the row groups whose [min, max] gkey range holds one of the run's keys.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from stages.dedup_cluster import (
    OUTPUT_SCHEMA,
    band_group_keys,
    date_seconds,
    doc_keys,
    partition_of,
)

BUCKET_BITS = 4
"""Index buckets = 2**BUCKET_BITS per table (part of the on-disk format)."""
ROW_GROUP = 65_536

KEY_SCHEMA = pa.schema([("gkey", pa.uint64()), ("node", pa.uint64())])
DOC_SCHEMA = pa.schema(
    [
        ("node", pa.uint64()),
        ("doc_id", pa.large_string()),
        ("warc_date", pa.int64()),
        ("text_hash", pa.uint64()),
    ]
)

DECISIONS_SCHEMA = OUTPUT_SCHEMA
"""Phase-2 decisions file of one input file: doc_id, reason, cluster_id, keeper_doc_id."""

__all__ = [
    "BUCKET_BITS",
    "DECISIONS_SCHEMA",
    "decisions_file_uri",
    "decisions_done_uri",
    "read_decisions",
    "KEY_SCHEMA",
    "DOC_SCHEMA",
    "signature_keys",
    "date_seconds",
    "write_index_part",
    "bucket_files",
    "read_keys",
    "read_docs",
    "compact",
    "index_doc_count",
]


def signature_keys(sig: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(gkey, row) pairs of a signature table: one per LSH band (docs with words) + text_hash."""
    n = sig.num_rows
    bands_col = sig.column("minhash_bands").combine_chunks()
    nb = bands_col.type.list_size
    has = np.asarray(pc.is_valid(bands_col).to_numpy(zero_copy_only=False), dtype=bool)
    filled = bands_col.fill_null(pa.scalar([0] * nb, bands_col.type))
    bands = pc.list_flatten(filled).to_numpy(zero_copy_only=False).astype(np.uint64)
    th = sig.column("text_hash").to_numpy(zero_copy_only=False).astype(np.uint64)
    gk = band_group_keys(bands.reshape(n, nb), th)
    row = np.arange(n)
    keys = np.concatenate([gk[:, :nb][has].reshape(-1), gk[:, nb]])
    rows = np.concatenate([np.repeat(row[has], nb), row])
    return keys, rows


def _bucket_dir(index_dir: str, table: str, b: int) -> str:
    return storage.join(index_dir, table, f"b={b:02x}")


def _write_bucketed(
    index_dir: str, table: str, name: str, t: pa.Table, key: str, sort: list[tuple[str, str]]
) -> list[str]:
    keys = t.column(key).to_numpy()
    part = partition_of(keys, BUCKET_BITS)
    order = np.argsort(part, kind="stable")
    part_s = part[order]
    bounds = np.searchsorted(part_s, np.arange((1 << BUCKET_BITS) + 1))
    written = []
    for b in range(1 << BUCKET_BITS):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        sub = t.take(pa.array(order[lo:hi])).sort_by(sort)
        uri = storage.join(_bucket_dir(index_dir, table, b), name + ".parquet")
        storage.write_parquet_atomic(uri, sub, ROW_GROUP)
        written.append(uri)
    return written


def write_index_part(index_dir: str, file_key: str, kept: pa.Table) -> list[str]:
    """Append the released docs of one committed input file (``kept``: doc_id, warc_date,
    text_hash, minhash_bands). Deterministic: a re-run writes the same bytes, same names."""
    if kept.num_rows == 0:
        return []
    node = doc_keys(kept.column("doc_id"))
    gkey, rows = signature_keys(kept)
    name = f"file={file_key}"
    keys = pa.table(
        {"gkey": pa.array(gkey, pa.uint64()), "node": pa.array(node[rows])}, schema=KEY_SCHEMA
    )
    docs = pa.table(
        {
            "node": pa.array(node, pa.uint64()),
            "doc_id": kept.column("doc_id").combine_chunks().cast(pa.large_string()),
            "warc_date": date_seconds(kept.column("warc_date")),
            "text_hash": kept.column("text_hash").combine_chunks().cast(pa.uint64()),
        },
        schema=DOC_SCHEMA,
    )
    out = _write_bucketed(
        index_dir, "keys", name, keys, "gkey", [("gkey", "ascending"), ("node", "ascending")]
    )
    out += _write_bucketed(
        index_dir, "docs", name, docs, "node", [("node", "ascending"), ("doc_id", "ascending")]
    )
    return out


def bucket_files(index_dir: str | None, table: str, buckets: Iterable[int]) -> list[str]:
    """Parquet files of the given buckets of ``table`` ("keys" or "docs"), sorted."""
    if not index_dir:
        return []
    out: list[str] = []
    for b in buckets:
        out += [
            u
            for u in storage.list_files(_bucket_dir(index_dir, table, b), recursive=False)
            if u.endswith(".parquet")
        ]
    return sorted(out)


def buckets_of_range(part: int, part_bits: int) -> range:
    """Index buckets covering shuffle partition ``part`` of a ``part_bits`` range split."""
    if part_bits >= BUCKET_BITS:
        b = part >> (part_bits - BUCKET_BITS)
        return range(b, b + 1)
    w = 1 << (BUCKET_BITS - part_bits)
    return range(part * w, (part + 1) * w)


def _read_matching(uri: str, col: str, wanted: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows of ``uri`` whose ``col`` is in sorted ``wanted``, reading only the row groups whose
    [min, max] statistics can hold one of them."""
    fs, path = storage.resolve(uri)
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        ci = pf.schema_arrow.get_field_index(col)
        groups = []
        for g in range(pf.metadata.num_row_groups):
            st = pf.metadata.row_group(g).column(ci).statistics
            if st is None or not st.has_min_max:
                groups.append(g)
                continue
            lo = np.searchsorted(wanted, np.uint64(st.min), "left")
            hi = np.searchsorted(wanted, np.uint64(st.max), "right")
            if hi > lo:
                groups.append(g)
        if not groups:
            return pf.schema_arrow.empty_table().select(columns)
        t = pf.read_row_groups(groups, columns=columns)
    mask = np.isin(t.column(col).to_numpy(), wanted, assume_unique=False)
    return t.filter(pa.array(mask))


def read_keys(index_dir: str | None, part: int, part_bits: int, gkeys: np.ndarray) -> pa.Table:
    """Released (gkey, node) rows whose gkey is one of ``gkeys`` (a partition's run keys)."""
    wanted = np.unique(gkeys)
    files = bucket_files(index_dir, "keys", buckets_of_range(part, part_bits))
    tables = [_read_matching(u, "gkey", wanted, ["gkey", "node"]) for u in files]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return KEY_SCHEMA.empty_table()
    return pa.concat_tables(tables).cast(KEY_SCHEMA)


def read_docs(index_dir: str | None, part: int, part_bits: int, nodes: np.ndarray) -> pa.Table:
    """Released docs rows (DOC_SCHEMA) of the given nodes (all in node partition ``part``)."""
    wanted = np.unique(nodes)
    files = bucket_files(index_dir, "docs", buckets_of_range(part, part_bits))
    tables = [_read_matching(u, "node", wanted, DOC_SCHEMA.names) for u in files]
    tables = [t.cast(DOC_SCHEMA) for t in tables if t.num_rows]
    if not tables:
        return DOC_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def index_doc_count(index_dir: str | None) -> int:
    """Released doc rows in the index (Parquet footers only; duplicates across parts count)."""
    total = 0
    for u in bucket_files(index_dir, "docs", range(1 << BUCKET_BITS)):
        fs, path = storage.resolve(u)
        with fs.open_input_file(path) as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def compact(index_dir: str, min_files: int = 2) -> dict[str, int]:
    """Merge each bucket's part files into one ``compact-<digest>.parquet`` (sorted, deduped).

    Safe to interrupt: the merged file is written before its inputs are deleted, and duplicate
    rows in an index are harmless (the same (gkey, node) pair or node row counts once).
    Returns counts: buckets merged, files before, files after.
    """
    stats = {"buckets_merged": 0, "files_before": 0, "files_after": 0}
    for table, schema, sort in (
        ("keys", KEY_SCHEMA, [("gkey", "ascending"), ("node", "ascending")]),
        ("docs", DOC_SCHEMA, [("node", "ascending"), ("doc_id", "ascending")]),
    ):
        for b in range(1 << BUCKET_BITS):
            files = bucket_files(index_dir, table, [b])
            stats["files_before"] += len(files)
            if len(files) < min_files:
                stats["files_after"] += len(files)
                continue
            parts = []
            for u in files:
                fs, path = storage.resolve(u)
                parts.append(pq.read_table(path, filesystem=fs).cast(schema))
            t = pa.concat_tables(parts).sort_by(sort)
            if table == "keys":
                k = np.stack([t.column("gkey").to_numpy(), t.column("node").to_numpy()], 1)
                first = np.ones(len(k), bool)
                first[1:] = (k[1:] != k[:-1]).any(axis=1)
            else:
                nd = t.column("node").to_numpy()
                first = np.ones(len(nd), bool)
                first[1:] = nd[1:] != nd[:-1]
            t = t.filter(pa.array(first))
            digest = hashlib.sha256("\n".join(posixpath.basename(f) for f in files).encode())
            out = storage.join(
                _bucket_dir(index_dir, table, b), f"compact-{digest.hexdigest()[:16]}.parquet"
            )
            storage.write_parquet_atomic(out, t, ROW_GROUP)
            for u in files:
                if u != out:
                    fs, path = storage.resolve(u)
                    fs.delete_file(path)
            stats["buckets_merged"] += 1
            stats["files_after"] += 1
    return stats


# ---------------------------------------------------------------- phase-2 decisions files


def decisions_file_uri(decisions_dir: str, file_key: str) -> str:
    """Decisions of one input file (absent = no document of that file is dropped)."""
    return storage.join(decisions_dir, f"{file_key}.parquet")


def decisions_done_uri(decisions_dir: str) -> str:
    """Commit marker of phase 2 (its stats as JSON): written after every decisions file."""
    return storage.join(decisions_dir, "_SUCCESS.json")


def read_decisions(decisions_dir: str, file_key: str) -> pa.Table:
    """The dropped docs of ONE input file (phase 3 reads nothing else)."""
    uri = decisions_file_uri(decisions_dir, file_key)
    if not storage.exists(uri):
        return DECISIONS_SCHEMA.empty_table()
    fs, path = storage.resolve(uri)
    return pq.read_table(path, filesystem=fs).cast(DECISIONS_SCHEMA)


def decisions_files(decisions_dir: str) -> list[str]:
    """Every per-file decisions file of a run, sorted by name."""
    return [u for u in storage.list_files(decisions_dir, recursive=False) if u.endswith(".parquet")]


def write_decisions_archive(decisions_dir: str, archive_uri: str) -> int:
    """Concatenate a run's per-file decisions into one Parquet file (lineage's `duplicates`
    view), streaming one input file at a time. Returns rows written."""
    n = 0
    with (
        storage.AtomicOutput(archive_uri) as out,
        pq.ParquetWriter(out.stream, DECISIONS_SCHEMA, compression="zstd") as w,
    ):
        for u in decisions_files(decisions_dir):
            t = read_decisions_uri(u)
            w.write_table(t, row_group_size=100_000)
            n += t.num_rows
        if n == 0:
            w.write_table(DECISIONS_SCHEMA.empty_table())
    return n


def read_decisions_uri(uri: str) -> pa.Table:
    fs, path = storage.resolve(uri)
    return pq.read_table(path, filesystem=fs).cast(DECISIONS_SCHEMA)
