"""Candidate edges, connected components and deterministic keepers for MinHash-LSH dedup.

Pure numpy / scipy / pyarrow (no Ray): phase 2 (``pipeline/dedup_phase.py``) runs
:func:`group_edges` inside its shuffle partitions and :func:`resolve_clusters` on the driver;
:func:`dedup_local` does the whole thing in one process (tests, benchmarks, small runs).

Graph: one node per distinct ``doc_id`` (a doc present both in this run and in the released
index is ONE node, released: a document is never a duplicate of itself). Each group of nodes
sharing a (band, key) - or a ``text_hash``, treated as one more band - with more than one
member yields star edges member -> smallest member of the group (any spanning choice gives the
same components, so the output does not depend on which member is the centre or on row order).
Components via ``scipy.sparse.csgraph.connected_components``.

Keeper per component, deterministic: released documents first (they are never removed), then
earliest ``warc_date`` (null last), then smallest ``doc_id``. Every non-released, non-keeper
node is dropped: reason ``dedup.exact`` if its text_hash equals the keeper's, else
``dedup.minhash``; ``cluster_id`` = xxh64(keeper doc_id) (uint64, stable across runs),
``keeper_doc_id`` = the keeper's doc_id.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _cc

__all__ = [
    "EXACT_BAND",
    "OUTPUT_SCHEMA",
    "NODE_SCHEMA",
    "star_edges",
    "explode_keys",
    "group_edges",
    "components",
    "resolve_clusters",
    "dedup_local",
]

EXACT_BAND = -1
"""Band index used for ``text_hash`` groups (exact duplicates)."""

OUTPUT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("reason", pa.string()),
        ("cluster_id", pa.uint64()),
        ("keeper_doc_id", pa.string()),
    ]
)
NODE_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("released", pa.bool_()),
        ("warc_date", pa.int64()),
        ("text_hash", pa.uint64()),
    ]
)
_DATE_NULL = np.iinfo(np.int64).max  # null warc_date sorts last
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def star_edges(keys: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Star edges (member -> smallest member) for every key shared by > 1 distinct member.

    ``keys`` uint64 group keys, ``members`` integer node ids (same length). Duplicate
    (key, member) pairs count once. Returns (src, dst) with src > dst.
    """
    if len(keys) == 0:
        e = np.zeros(0, dtype=members.dtype)
        return e, e
    order = np.lexsort((members, keys))
    k = keys[order]
    m = members[order]
    new_key = np.empty(len(k), dtype=bool)
    new_key[0] = True
    np.not_equal(k[1:], k[:-1], out=new_key[1:])
    dup = ~new_key
    dup[1:] &= m[1:] == m[:-1]
    dup[0] = False
    if dup.any():
        k, m, new_key = k[~dup], m[~dup], new_key[~dup]
    run_start = np.flatnonzero(new_key)
    run_id = np.cumsum(new_key) - 1
    centre = m[run_start][run_id]  # smallest member of the run (sorted by member)
    is_edge = ~new_key
    return m[is_edge], centre[is_edge]


def band_group_keys(bands: np.ndarray, text_hash: np.ndarray | None) -> np.ndarray:
    """(n x (bands [+1])) uint64 keys with the band index folded in (exact band = last col).

    Band keys from :func:`stages.minhash.band_keys` already depend on the band index; folding it
    in again here keeps the grouping correct for any key source (e.g. synthetic keys).
    """
    n, nb = bands.shape
    cols = [bands]
    if text_hash is not None:
        cols.append(text_hash.reshape(n, 1))
    k = np.concatenate(cols, axis=1) if len(cols) > 1 else bands
    salt = (np.arange(k.shape[1], dtype=np.uint64) + np.uint64(1)) * _GOLD
    with np.errstate(over="ignore"):
        return k ^ salt[None, :]


def explode_keys(
    node: np.ndarray, bands: np.ndarray, has_bands: np.ndarray, text_hash: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten per-doc band keys + text_hash into (group_key, node) pairs (one per band)."""
    gk = band_group_keys(bands, text_hash)
    nb = bands.shape[1]
    keys_b = gk[:, :nb][has_bands].reshape(-1)
    nodes_b = np.repeat(node[has_bands], nb)
    return np.concatenate([keys_b, gk[:, nb]]), np.concatenate([nodes_b, node])


def group_edges(records: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Edges + involved nodes of one shuffle partition.

    ``records``: columns gkey (uint64), doc_id, released, warc_date (int64 s), text_hash.
    Returns (edges: src/dst doc_id strings, nodes: NODE_SCHEMA rows for every edge endpoint,
    deduplicated by doc_id with released first). Nothing here depends on row order.
    """
    if records.num_rows == 0:
        return (
            pa.table({"src": pa.array([], pa.string()), "dst": pa.array([], pa.string())}),
            NODE_SCHEMA.empty_table(),
        )
    doc = records.column("doc_id").combine_chunks()
    uniq = pc.unique(doc)
    uniq = uniq.take(pc.sort_indices(uniq))
    member = pc.index_in(doc, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    keys = records.column("gkey").to_numpy()
    src, dst = star_edges(keys, member)
    edges = pa.table({"src": uniq.take(pa.array(src)), "dst": uniq.take(pa.array(dst))})
    involved = np.zeros(len(uniq), dtype=bool)
    involved[src] = True
    involved[dst] = True
    rows = np.flatnonzero(involved[member])
    nodes = records.select(["doc_id", "released", "warc_date", "text_hash"]).take(pa.array(rows))
    return edges, _dedupe_nodes(nodes.cast(NODE_SCHEMA))


def _dedupe_nodes(nodes: pa.Table) -> pa.Table:
    """One row per doc_id, preferring the released copy (then earliest date)."""
    if nodes.num_rows == 0:
        return nodes
    date = pc.fill_null(nodes.column("warc_date"), _DATE_NULL)
    order = pc.sort_indices(
        pa.table({"d": nodes.column("doc_id"), "r": nodes.column("released"), "t": date}),
        sort_keys=[("d", "ascending"), ("r", "descending"), ("t", "ascending")],
    )
    nodes = nodes.take(order)
    d = nodes.column("doc_id").combine_chunks()
    if len(d) > 1:
        same = pc.equal(d.slice(1), d.slice(0, len(d) - 1)).to_numpy(zero_copy_only=False)
        first = np.concatenate(([True], ~same))
        nodes = nodes.filter(pa.array(first))
    return nodes


def components(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components over ``n`` nodes (int32 labels) from an undirected edge list."""
    idx = np.int32 if n < 2**31 - 1 else np.int64
    g = coo_matrix(
        (np.ones(len(src), dtype=np.int8), (src.astype(idx), dst.astype(idx))), shape=(n, n)
    ).tocsr()
    return _cc(g, directed=True, connection="weak", return_labels=True)


def resolve_clusters(nodes: pa.Table, edges: pa.Table) -> tuple[pa.Table, dict]:
    """Components + keepers over the collected graph; returns (dropped rows, stats).

    ``nodes``: NODE_SCHEMA (may contain the same doc_id several times: merged, released wins),
    ``edges``: src/dst doc_id strings.
    """
    nodes = _dedupe_nodes(nodes.cast(NODE_SCHEMA))
    n = nodes.num_rows
    if n == 0 or edges.num_rows == 0:
        return OUTPUT_SCHEMA.empty_table(), {"clusters": 0, "exact_dups": 0, "near_dups": 0}
    # node id = priority rank: released first, earliest date (null last), smallest doc_id
    date = pc.fill_null(nodes.column("warc_date"), _DATE_NULL)
    order = pc.sort_indices(
        pa.table({"r": nodes.column("released"), "t": date, "d": nodes.column("doc_id")}),
        sort_keys=[("r", "descending"), ("t", "ascending"), ("d", "ascending")],
    )
    nodes = nodes.take(order)
    doc = nodes.column("doc_id").combine_chunks()
    src = pc.index_in(edges.column("src"), value_set=doc).to_numpy(zero_copy_only=False)
    dst = pc.index_in(edges.column("dst"), value_set=doc).to_numpy(zero_copy_only=False)
    ncomp, labels = components(n, src.astype(np.int64), dst.astype(np.int64))
    keeper = np.full(ncomp, n, dtype=np.int64)
    np.minimum.at(keeper, labels, np.arange(n, dtype=np.int64))
    keeper_of = keeper[labels]
    released = np.asarray(nodes.column("released").to_numpy(zero_copy_only=False), dtype=bool)
    drop = (keeper_of != np.arange(n)) & ~released
    idx = np.flatnonzero(drop)
    th = nodes.column("text_hash").to_numpy(zero_copy_only=False)
    exact = th[idx] == th[keeper_of[idx]]
    keeper_doc = doc.take(pa.array(keeper_of[idx]))
    h = xxhash.xxh64_intdigest
    cid = np.fromiter(
        (h(k.encode("utf-8")) for k in keeper_doc.to_pylist()), dtype=np.uint64, count=len(idx)
    )
    out = pa.table(
        {
            "doc_id": doc.take(pa.array(idx)),
            "reason": pa.array(np.where(exact, "dedup.exact", "dedup.minhash"), pa.string()),
            "cluster_id": pa.array(cid, pa.uint64()),
            "keeper_doc_id": keeper_doc,
        },
        schema=OUTPUT_SCHEMA,
    )
    out = out.take(pc.sort_indices(out, sort_keys=[("doc_id", "ascending")]))
    sizes = np.bincount(labels, minlength=ncomp)
    stats = {
        "clusters": int((sizes > 1).sum()),
        "exact_dups": int(exact.sum()),
        "near_dups": int(len(idx) - exact.sum()),
    }
    return out, stats


def _date_seconds(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """warc_date (timestamp or int) -> int64 seconds, nulls kept."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("s", tz=col.type.tz)).cast(pa.int64())
    return col.cast(pa.int64())


def dedup_local(table: pa.Table, released: np.ndarray | None = None) -> tuple[pa.Table, dict]:
    """Single-process exact + near dedup of a signature table (reference for phase 2).

    ``table``: doc_id, warc_date, text_hash, minhash_bands (fixed_size_list, null = no
    shingles). ``released``: bool per row (rows from the released index). Same output as the
    Ray phase.
    """
    n = table.num_rows
    rel = np.zeros(n, dtype=bool) if released is None else np.asarray(released, dtype=bool)
    doc = table.column("doc_id").combine_chunks()
    uniq = pc.unique(doc)
    member = pc.index_in(doc, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    bands_col = table.column("minhash_bands").combine_chunks()
    nb = bands_col.type.list_size
    has = np.asarray(pc.is_valid(bands_col).to_numpy(zero_copy_only=False), dtype=bool)
    flat = pc.list_flatten(bands_col.fill_null(pa.scalar([0] * nb, bands_col.type)))
    bands = flat.to_numpy(zero_copy_only=False).astype(np.uint64).reshape(n, nb)
    th = table.column("text_hash").to_numpy().astype(np.uint64)
    keys, mem = explode_keys(member, bands, has, th)
    src, dst = star_edges(keys, mem)
    nodes = pa.table(
        {
            "doc_id": doc,
            "released": pa.array(rel),
            "warc_date": _date_seconds(table.column("warc_date")),
            "text_hash": pa.array(th, pa.uint64()),
        }
    )
    edges = pa.table({"src": uniq.take(pa.array(src)), "dst": uniq.take(pa.array(dst))})
    involved = np.zeros(len(uniq), dtype=bool)
    involved[src] = True
    involved[dst] = True
    nodes = nodes.filter(pa.array(involved[member]))
    return resolve_clusters(nodes, edges)
