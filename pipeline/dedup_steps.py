"""The per-step functions of phase 2 (pipeline/dedup_phase.py): Arrow tables in, Arrow out.

Split out of pipeline/dedup_phase.py, which keeps the Ray side (the shuffles, the
connected-components loop, the one-task engine). Each function here is what one Ray Data
``map_batches`` / ``map_groups`` call runs on one block or group: reading signature files
into keys and attributes, band-group star edges, one large-/small-star step, joining
component members with attributes, picking keepers, writing one input file's decisions.
No Ray import: the steps are plain functions of their inputs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from pipeline.dedup_index import (
    DECISIONS_SCHEMA,
    date_seconds,
    decisions_file_uri,
    read_docs,
    read_keys,
    signature_keys,
)
from stages.dedup_cluster import (
    DECISION_SCHEMA,
    MEMBER_SCHEMA,
    dedupe_pairs,
    doc_keys,
    large_star,
    merge_node_attrs,
    partition_of,
    pick_keepers,
    record_id_group_keys,
    record_id_keys,
    small_star,
    star_edges,
    star_roots,
)

SIGNATURE_COLUMNS = ["doc_id", "warc_date", "text_hash", "minhash_bands"]
RID_COLUMN = "warc_record_id"
EDGE_SCHEMA = pa.schema(
    [("part", pa.int64()), ("a", pa.uint64()), ("b", pa.uint64()), ("chg", pa.int64())]
)
_STATS_FIDX = -2  # keeper-step row that carries the partition's cluster count


def _read_sig(uri: str, record_ids: bool = False) -> pa.Table:
    """The signature columns of a staged file, plus ``rid`` (:func:`record_id_keys`, 0 =
    none) when ``record_ids`` (files staged without record ids: all 0)."""
    fs, path = storage.resolve(uri)
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        has_rid = record_ids and RID_COLUMN in pf.schema_arrow.names
        t = pf.read(columns=SIGNATURE_COLUMNS + ([RID_COLUMN] if has_rid else []))
    if has_rid:
        rid = record_id_keys(t.column(RID_COLUMN))
        t = t.drop_columns([RID_COLUMN])
    else:
        rid = np.zeros(t.num_rows, np.uint64)
    return t.append_column("rid", pa.array(rid, pa.uint64()))


def _keys_batch(batch: pa.Table, bits: int, record_ids: bool = False) -> pa.Table:
    """Input files -> (part, gkey, node) records: LSH bands, text_hash and (``record_ids``)
    the record id, so copies of one WARC record join the same component as exact copies."""
    parts = []
    for uri in batch.column("uri").to_pylist():
        sig = _read_sig(uri, record_ids)
        if sig.num_rows == 0:
            continue
        node = doc_keys(sig.column("doc_id"))
        gkey, rows = signature_keys(sig)
        parts.append((gkey, node[rows]))
        rkey, rrows = record_id_group_keys(sig.column("rid").to_numpy())
        if len(rrows):
            parts.append((rkey, node[rrows]))
    gkey = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint64)
    node = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.uint64)
    return pa.table(
        {
            "part": pa.array(partition_of(gkey, bits)),
            "gkey": pa.array(gkey, pa.uint64()),
            "node": pa.array(node, pa.uint64()),
        }
    )


def _attrs_table(sig: pa.Table, fidx: int) -> pa.Table:
    node = doc_keys(sig.column("doc_id"))
    return pa.table(
        {
            "node": pa.array(node, pa.uint64()),
            "fidx": pa.array(np.full(sig.num_rows, fidx, np.int32)),
            "doc_id": sig.column("doc_id").combine_chunks().cast(pa.large_string()),
            "warc_date": date_seconds(sig.column("warc_date")),
            "text_hash": sig.column("text_hash").combine_chunks().cast(pa.uint64()),
            "rid": sig.column("rid").combine_chunks().cast(pa.uint64()),
        }
    )


_JOIN_SCHEMA = pa.schema(
    [
        ("part", pa.int64()),
        ("kind", pa.int8()),  # 0 = component member (node, root), 1 = run doc attributes
        ("node", pa.uint64()),
        ("root", pa.uint64()),
        ("fidx", pa.int32()),
        ("doc_id", pa.large_string()),
        ("warc_date", pa.int64()),
        ("text_hash", pa.uint64()),
        ("rid", pa.uint64()),
    ]
)


def _attrs_batch(batch: pa.Table, bits: int, record_ids: bool = False) -> pa.Table:
    """Input files -> run doc attributes keyed by node partition."""
    tables = []
    for uri, fidx in zip(
        batch.column("uri").to_pylist(), batch.column("fidx").to_pylist(), strict=True
    ):
        sig = _read_sig(uri, record_ids)
        if sig.num_rows:
            tables.append(_attrs_table(sig, fidx))
    if not tables:
        return _JOIN_SCHEMA.empty_table()
    t = pa.concat_tables(tables)
    n = t.num_rows
    node = t.column("node").to_numpy()
    return pa.table(
        {
            "part": pa.array(partition_of(node, bits)),
            "kind": pa.array(np.ones(n, np.int8)),
            "node": t.column("node"),
            "root": pa.array(np.zeros(n, np.uint64)),
            "fidx": t.column("fidx"),
            "doc_id": t.column("doc_id"),
            "warc_date": t.column("warc_date"),
            "text_hash": t.column("text_hash"),
            "rid": t.column("rid"),
        },
        schema=_JOIN_SCHEMA,
    )


def _edges_out(a: np.ndarray, b: np.ndarray, bits: int, changed: int, both: bool) -> pa.Table:
    """Edge rows keyed by the partition of ``a`` (and of ``b`` for the reverse rows)."""
    if both:
        a, b = np.concatenate([a, b]), np.concatenate([b, a])
    chg = np.zeros(len(a), np.int64)
    if len(a):
        chg[0] = changed
    return pa.table(
        {
            "part": pa.array(partition_of(a, bits)),
            "a": pa.array(a, pa.uint64()),
            "b": pa.array(b, pa.uint64()),
            "chg": pa.array(chg),
        },
        schema=EDGE_SCHEMA,
    )


def _band_edges(group: pa.Table, bits: int, index_dir: str | None) -> pa.Table:
    """map_groups: one gkey range -> star edges (both directions, keyed by node range)."""
    if group.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    part = int(group.column("part")[0].as_py())
    gkey = group.column("gkey").to_numpy()
    node = group.column("node").to_numpy()
    rel = read_keys(index_dir, part, bits, gkey)
    if rel.num_rows:
        gkey = np.concatenate([gkey, rel.column("gkey").to_numpy()])
        node = np.concatenate([node, rel.column("node").to_numpy()])
    src, dst = star_edges(gkey, node)
    src, dst = dedupe_pairs(src, dst)
    return _edges_out(src, dst, bits, len(src), both=True)


def _large_star_fn(group: pa.Table, bits: int) -> pa.Table:
    child, parent, chg = large_star(group.column("a").to_numpy(), group.column("b").to_numpy())
    return _edges_out(child, parent, bits, chg, both=False)


def _small_star_fn(group: pa.Table, bits: int) -> pa.Table:
    child, parent, chg = small_star(group.column("a").to_numpy(), group.column("b").to_numpy())
    return _edges_out(child, parent, bits, chg, both=True)


def _roots_batch(batch: pa.Table, bits: int) -> pa.Table:
    node, root = star_roots(batch.column("a").to_numpy(), batch.column("b").to_numpy())
    n = len(node)
    return pa.table(
        {
            "part": pa.array(partition_of(node, bits)),
            "kind": pa.array(np.zeros(n, np.int8)),
            "node": pa.array(node, pa.uint64()),
            "root": pa.array(root, pa.uint64()),
            "fidx": pa.nulls(n, pa.int32()),
            "doc_id": pa.nulls(n, pa.large_string()),
            "warc_date": pa.nulls(n, pa.int64()),
            "text_hash": pa.nulls(n, pa.uint64()),
            "rid": pa.nulls(n, pa.uint64()),
        },
        schema=_JOIN_SCHEMA,
    )


def _members_of(mem: pa.Table) -> pa.Table:
    """Distinct (node, root): a node's root is the smallest root it was given."""
    node, root = dedupe_pairs(mem.column("node").to_numpy(), mem.column("root").to_numpy())
    if len(node):
        first = np.ones(len(node), bool)
        first[1:] = node[1:] != node[:-1]
        node, root = node[first], root[first]
    return pa.table({"node": pa.array(node, pa.uint64()), "root": pa.array(root, pa.uint64())})


def _join_fn(group: pa.Table, bits: int, index_dir: str | None) -> pa.Table:
    """map_groups: one node range -> component members with attributes, keyed by root."""
    part = int(group.column("part")[0].as_py())
    kind = group.column("kind").to_numpy()
    members = _members_of(group.filter(pa.array(kind == 0)))
    if members.num_rows == 0:
        return _with_part(MEMBER_SCHEMA.empty_table(), bits)
    attrs = group.filter(pa.array(kind == 1))
    released = read_docs(index_dir, part, bits, members.column("node").to_numpy())
    return _with_part(merge_node_attrs(members, attrs, released), bits)


def _with_part(members: pa.Table, bits: int) -> pa.Table:
    return members.add_column(
        0, "part", pa.array(partition_of(members.column("root").to_numpy(), bits))
    )


_KEEP_SCHEMA = DECISION_SCHEMA.append(pa.field("clusters", pa.int64()))


def _keeper_fn(group: pa.Table) -> pa.Table:
    """map_groups: one root range (whole components) -> dropped rows + a cluster-count row."""
    out, stats = pick_keepers(group.drop_columns(["part"]))
    out = out.append_column("clusters", pa.array(np.zeros(out.num_rows, np.int64)))
    stat = pa.table(
        {
            "fidx": pa.array([_STATS_FIDX], pa.int32()),
            "doc_id": pa.array([""], pa.large_string()),
            "reason": pa.array([""]),
            "cluster_id": pa.array([0], pa.uint64()),
            "keeper_doc_id": pa.array([""], pa.large_string()),
            "clusters": pa.array([stats["clusters"]], pa.int64()),
        },
        schema=_KEEP_SCHEMA,
    )
    return pa.concat_tables([out.cast(_KEEP_SCHEMA), stat])


_WRITE_RESULT = pa.schema(
    [
        ("fidx", pa.int32()),
        ("dropped", pa.int64()),
        ("exact", pa.int64()),
        ("near", pa.int64()),
        ("rid", pa.int64()),
        ("clusters", pa.int64()),
    ]
)


def write_file_decisions(decisions_dir: str, file_key: str, rows: pa.Table) -> tuple[int, int, int]:
    """Write one input file's decisions (sorted by doc_id); returns (exact, near, record-id)
    counts."""
    t = pa.table(
        {
            "doc_id": rows.column("doc_id").cast(pa.string()),
            "reason": rows.column("reason").cast(pa.string()),
            "cluster_id": rows.column("cluster_id").cast(pa.uint64()),
            "keeper_doc_id": rows.column("keeper_doc_id").cast(pa.string()),
        },
        schema=DECISIONS_SCHEMA,
    )
    t = t.take(pc.sort_indices(t, sort_keys=[("doc_id", "ascending")]))
    storage.write_parquet_atomic(decisions_file_uri(decisions_dir, file_key), t, 100_000)
    exact = int(pc.sum(pc.equal(t.column("reason"), "dedup.exact")).as_py() or 0)
    rid = int(pc.sum(pc.equal(t.column("reason"), "dedup.record_id")).as_py() or 0)
    return exact, t.num_rows - exact - rid, rid


def _write_fn(group: pa.Table, decisions_dir: str, file_keys: list[str]) -> pa.Table:
    """map_groups: one input file's dropped rows -> its decisions file; one stats row back."""
    fidx = int(group.column("fidx")[0].as_py())
    if fidx == _STATS_FIDX:
        n = int(pc.sum(group.column("clusters")).as_py() or 0)
        row = [fidx, 0, 0, 0, 0, n]
    else:
        exact, near, rid = write_file_decisions(decisions_dir, file_keys[fidx], group)
        row = [fidx, group.num_rows, exact, near, rid, 0]
    return pa.table(
        {f.name: pa.array([v], f.type) for f, v in zip(_WRITE_RESULT, row, strict=True)},
        schema=_WRITE_RESULT,
    )
