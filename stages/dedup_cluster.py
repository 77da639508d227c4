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
earliest ``warc_date`` (null last), then (phase 2) the earliest input file in URI order, then
smallest ``doc_id``. Every non-released, non-keeper node is dropped: reason
``dedup.record_id`` if it carries the keeper's WARC-Record-ID, else ``dedup.exact`` if its
text_hash equals the keeper's, else ``dedup.minhash``; ``cluster_id`` = xxh64(keeper doc_id)
(uint64, stable across runs), ``keeper_doc_id`` = the keeper's doc_id.

Record ids are one more group key in the same graph (:func:`record_id_keys`), not a separate
step: two rules that each chose their own keeper could drop every copy of a document (the
record-id rule dropping the exact rule's keeper and the other way round). One graph, one
keeper per component: every duplicate group keeps exactly one document, and every
``keeper_doc_id`` is a document that is kept.
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
    "record_id_keys",
    "date_seconds",
    "doc_keys",
    "partition_of",
    "dedupe_pairs",
    "large_star",
    "small_star",
    "star_roots",
    "merge_node_attrs",
    "pick_keepers",
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
RID_KEY_SEED = 0x51D
"""Seed of the 64-bit record-id key (a group key of the dedup graph, and the ``rid`` member
attribute that names the reason ``dedup.record_id``)."""
RID_GROUP_SALT = np.uint64(0xA24BAED4963EE407)
"""Folded into the record-id key to make its group key (so it never meets a band key)."""


def record_id_keys(rid: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit key of every ``warc_record_id`` (0 = none: null or empty)."""
    if isinstance(rid, pa.ChunkedArray):
        rid = rid.combine_chunks()
    h = xxhash.xxh64_intdigest
    vals = rid.to_pylist()
    return np.fromiter(
        ((h(v.encode("utf-8"), RID_KEY_SEED) or 1) if v else 0 for v in vals), np.uint64, len(vals)
    )


def record_id_group_keys(rid_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group key, row) for the rows with a record id: copies of one WARC record across input
    files share the group key, so they land in one component like exact/near copies."""
    rows = np.flatnonzero(rid_key != 0)
    return rid_key[rows] ^ RID_GROUP_SALT, rows


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


def date_seconds(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """warc_date (timestamp or int) -> int64 seconds, nulls kept (the keeper rule compares
    these; phase 2 and the cross-run index use the same function)."""
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
            "warc_date": date_seconds(table.column("warc_date")),
            "text_hash": pa.array(th, pa.uint64()),
        }
    )
    edges = pa.table({"src": uniq.take(pa.array(src)), "dst": uniq.take(pa.array(dst))})
    involved = np.zeros(len(uniq), dtype=bool)
    involved[src] = True
    involved[dst] = True
    nodes = nodes.filter(pa.array(involved[member]))
    return resolve_clusters(nodes, edges)


# ------------------------------------------------------------------------------------------
# Per-partition pieces of the distributed phase 2 (pipeline/dedup_phase.py runs them inside
# Ray Data shuffle partitions; the small-run path runs them on one partition).
# Nodes are 64-bit keys: xxh64(doc_id), so the same doc_id in this run and in the released
# index is the same node without a string join.

DOC_KEY_SEED = 0x1D0C
"""Seed of the 64-bit document key (part of the index format)."""

DECISION_SCHEMA = pa.schema(
    [
        ("fidx", pa.int32()),
        ("doc_id", pa.large_string()),
        ("reason", pa.string()),
        ("cluster_id", pa.uint64()),
        ("keeper_doc_id", pa.large_string()),
    ]
)
"""Dropped rows of one partition; ``fidx`` = index of the input file the row came from."""

MEMBER_SCHEMA = pa.schema(
    [
        ("root", pa.uint64()),
        ("node", pa.uint64()),
        ("fidx", pa.int32()),
        ("released", pa.bool_()),
        ("warc_date", pa.int64()),
        ("text_hash", pa.uint64()),
        ("doc_id", pa.large_string()),
        ("rid", pa.uint64()),
    ]
)
"""One row per (component member, input file it occurs in); fidx = -1 for index-only docs;
``rid`` = :func:`record_id_keys` (0 = none; released docs: 0)."""


def doc_keys(doc_id: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit node key of every doc_id (xxh64 with a fixed seed; nulls are not allowed)."""
    if isinstance(doc_id, pa.ChunkedArray):
        doc_id = doc_id.combine_chunks()
    h = xxhash.xxh64_intdigest
    vals = doc_id.to_pylist()
    return np.fromiter((h(v.encode("utf-8"), DOC_KEY_SEED) for v in vals), np.uint64, len(vals))


def partition_of(keys: np.ndarray, bits: int) -> np.ndarray:
    """Range partition of uint64 keys: their top ``bits`` bits (0 bits = one partition)."""
    if bits == 0:
        return np.zeros(len(keys), dtype=np.int64)
    return (keys >> np.uint64(64 - bits)).astype(np.int64)


def dedupe_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) pairs sorted by (a, b)."""
    if len(a) == 0:
        return a, b
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[keep], b[keep]


def _group_min(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (a, b) sorted by a: (start index of each a-run, min b of the run) per row."""
    new = np.empty(len(a), dtype=bool)
    new[0] = True
    new[1:] = a[1:] != a[:-1]
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    mins = np.minimum.reduceat(b, starts)
    return run, mins


def large_star(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Large-star step (Kiveris et al. 2014) over the adjacency rows of some nodes.

    Input: both directions of every edge whose endpoint ``a`` lives in this partition.
    For every node u: m = min(u, neighbours); every neighbour v > u is linked to m.
    Returns (child, parent, changed): parent < child; ``changed`` counts rows whose
    parent differs from u (the step did something).
    """
    if len(a) == 0:
        return a, b, 0
    a, b = dedupe_pairs(a, b)
    run, mins = _group_min(a, b)
    m = np.minimum(mins[run], a)
    sel = b > a
    return b[sel], m[sel], int((m[sel] != a[sel]).sum())


def small_star(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Small-star step: rows (u, v) with v < u grouped by u.

    For every node u: m = min of its smaller neighbours; u and every smaller neighbour
    v != m are linked to m. Returns (child, parent, changed) with parent < child.
    """
    if len(a) == 0:
        return a, b, 0
    a, b = dedupe_pairs(a, b)
    run, mins = _group_min(a, b)
    m = mins[run]
    others = b != m
    first = np.empty(len(a), dtype=bool)
    first[0] = True
    first[1:] = a[1:] != a[:-1]
    child = np.concatenate([a[first], b[others]])
    parent = np.concatenate([m[first], m[others]])
    return child, parent, int(others.sum())


def star_roots(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Converged star edges (both directions) -> (node, root) for every node seen."""
    node = a
    root = np.minimum(a, b)
    node, root = dedupe_pairs(node, root)
    # a root also appears as (root, root); a leaf only as (leaf, root) once converged
    return node, root


def merge_node_attrs(members: pa.Table, run_attrs: pa.Table, released_attrs: pa.Table) -> pa.Table:
    """Attributes of every component member of one node partition (MEMBER_SCHEMA rows).

    ``members``: node, root (distinct nodes). ``run_attrs``: node, fidx, doc_id, warc_date,
    text_hash (and ``rid``, else 0) of this run's docs in the partition (any subset). ``released_attrs``: node,
    doc_id, warc_date, text_hash of index docs. Node-level attributes follow the reference
    rule: a released copy wins, then the earliest date. Raises ValueError when two different
    doc_ids share a 64-bit key (never silently merges two documents).
    """
    if members.num_rows == 0:
        return MEMBER_SCHEMA.empty_table()
    mnode = members.column("node").to_numpy()
    mroot = members.column("root").to_numpy()
    order = np.argsort(mnode, kind="stable")
    mnode, mroot = mnode[order], mroot[order]
    ra = run_attrs.filter(pa.array(np.isin(run_attrs.column("node").to_numpy(), mnode)))
    la = released_attrs.filter(pa.array(np.isin(released_attrs.column("node").to_numpy(), mnode)))
    n_r, n_l = ra.num_rows, la.num_rows
    run_rid = (
        ra.column("rid").combine_chunks().cast(pa.uint64())
        if "rid" in ra.column_names
        else pa.array(np.zeros(n_r, np.uint64))
    )
    allr = pa.table(
        {
            "node": pa.concat_arrays(
                [ra.column("node").combine_chunks(), la.column("node").combine_chunks()]
            ),
            "fidx": pa.concat_arrays(
                [
                    ra.column("fidx").combine_chunks().cast(pa.int32()),
                    pa.array(np.full(n_l, -1, np.int32)),
                ]
            ),
            "released": pa.array(np.concatenate([np.zeros(n_r, bool), np.ones(n_l, bool)])),
            "warc_date": pa.concat_arrays(
                [ra.column("warc_date").combine_chunks(), la.column("warc_date").combine_chunks()]
            ),
            "text_hash": pa.concat_arrays(
                [ra.column("text_hash").combine_chunks(), la.column("text_hash").combine_chunks()]
            ),
            "doc_id": pa.concat_arrays(
                [
                    ra.column("doc_id").combine_chunks().cast(pa.large_string()),
                    la.column("doc_id").combine_chunks().cast(pa.large_string()),
                ]
            ),
            "rid": pa.concat_arrays([run_rid, pa.array(np.zeros(n_l, np.uint64))]),
        }
    )
    if allr.num_rows == 0:
        return MEMBER_SCHEMA.empty_table()
    date = pc.fill_null(allr.column("warc_date"), _DATE_NULL)
    idx = pc.sort_indices(
        pa.table({"n": allr.column("node"), "r": allr.column("released"), "t": date}),
        sort_keys=[("n", "ascending"), ("r", "descending"), ("t", "ascending")],
    )
    allr = allr.take(idx)
    node = allr.column("node").to_numpy()
    first = np.empty(len(node), dtype=bool)
    first[0] = True
    first[1:] = node[1:] != node[:-1]
    head = np.cumsum(first) - 1  # row -> its node's first (priority) row
    # a released node's index row has no record id: take the one its run rows carry
    node_rid = np.maximum.reduceat(
        allr.column("rid").to_numpy(zero_copy_only=False), np.flatnonzero(first)
    )
    heads = allr.filter(pa.array(first))
    doc = allr.column("doc_id").combine_chunks()
    same = pc.equal(doc, heads.column("doc_id").take(pa.array(head))).to_numpy(zero_copy_only=False)
    if not same.all():
        bad = np.flatnonzero(~same)[0]
        raise ValueError(
            f"64-bit document key collision: {doc[bad]} and "
            f"{heads.column('doc_id')[head[bad]]} share key {node[bad]}; rename one doc_id "
            "or change stages.dedup_cluster.DOC_KEY_SEED (and rebuild the index)"
        )
    # one row per (node, fidx) with the node-level attributes of its priority row
    fidx = allr.column("fidx").to_numpy()
    key_order = np.lexsort((fidx, node))
    node_s, fidx_s = node[key_order], fidx[key_order]
    keep = np.empty(len(node_s), dtype=bool)
    keep[0] = True
    keep[1:] = (node_s[1:] != node_s[:-1]) | (fidx_s[1:] != fidx_s[:-1])
    rows = key_order[keep]
    # a released node keeps only its fidx=-1 row (it is never dropped)
    rel_node = heads.column("released").to_numpy(zero_copy_only=False)[head[rows]]
    rows = rows[~rel_node | (fidx[rows] == -1)]
    hsel = pa.array(head[rows])
    pos = np.searchsorted(mnode, node[rows])
    return pa.table(
        {
            "root": pa.array(mroot[pos], pa.uint64()),
            "node": pa.array(node[rows], pa.uint64()),
            "fidx": pa.array(fidx[rows], pa.int32()),
            "released": heads.column("released").take(hsel),
            "warc_date": heads.column("warc_date").take(hsel),
            "text_hash": heads.column("text_hash").take(hsel),
            "doc_id": heads.column("doc_id").take(hsel),
            "rid": pa.array(node_rid[head[rows]], pa.uint64()),
        },
        schema=MEMBER_SCHEMA,
    )


def _shares_record_id(root: np.ndarray, node: np.ndarray, rid: np.ndarray) -> np.ndarray:
    """Per member row: another node of its component carries the same record id."""
    out = np.zeros(len(rid), dtype=bool)
    sel = np.flatnonzero(rid != 0)
    if len(sel) < 2:
        return out
    order = sel[np.lexsort((node[sel], rid[sel], root[sel]))]
    r, k, n = root[order], rid[order], node[order]
    same_grp = (r[1:] == r[:-1]) & (k[1:] == k[:-1])
    start = np.concatenate(([True], ~same_grp))
    gid = np.cumsum(start) - 1
    first_node = n[np.flatnonzero(start)][gid]
    last_node = n[np.concatenate((np.flatnonzero(start)[1:] - 1, [len(n) - 1]))][gid]
    out[order] = first_node != last_node  # sorted by node: >1 distinct node in the group
    return out


def pick_keepers(members: pa.Table) -> tuple[pa.Table, dict]:
    """Keepers + dropped rows of whole components (all rows of each root in ``members``).

    Same rule as :func:`resolve_clusters`: released first, earliest warc_date (null last),
    then the earliest input file (``fidx`` numbers the files in URI order), smallest doc_id.
    Returns (DECISION_SCHEMA rows, stats).
    """
    empty = {"clusters": 0, "exact_dups": 0, "near_dups": 0, "record_id_dups": 0}
    if members.num_rows == 0:
        return DECISION_SCHEMA.empty_table(), empty
    members = members.cast(MEMBER_SCHEMA)
    date = pc.fill_null(members.column("warc_date"), _DATE_NULL)
    idx = pc.sort_indices(
        pa.table(
            {
                "k": members.column("root"),
                "r": members.column("released"),
                "t": date,
                "f": members.column("fidx"),
                "d": members.column("doc_id"),
            }
        ),
        sort_keys=[
            ("k", "ascending"),
            ("r", "descending"),
            ("t", "ascending"),
            ("f", "ascending"),
            ("d", "ascending"),
        ],
    )
    m = members.take(idx)
    root = m.column("root").to_numpy()
    first = np.empty(len(root), dtype=bool)
    first[0] = True
    first[1:] = root[1:] != root[:-1]
    head = np.flatnonzero(first)[np.cumsum(first) - 1]
    node = m.column("node").to_numpy()
    released = np.asarray(m.column("released").to_numpy(zero_copy_only=False), dtype=bool)
    drop = (node != node[head]) & ~released
    rows = np.flatnonzero(drop)
    th = m.column("text_hash").to_numpy(zero_copy_only=False)
    rid = m.column("rid").to_numpy(zero_copy_only=False)
    same_rid = (rid[rows] != 0) & (rid[rows] == rid[head[rows]])
    exact = ~same_rid & (th[rows] == th[head[rows]])
    # neither the keeper's record nor its text: a copy of a record that another member
    # carries (the component's keeper came through that copy) is still a record-id drop
    same_rid |= ~exact & _shares_record_id(root, node, rid)[rows]
    doc = m.column("doc_id").combine_chunks()
    keeper_doc = doc.take(pa.array(head[rows]))
    h = xxhash.xxh64_intdigest
    cid = np.fromiter(
        (h(k.encode("utf-8")) for k in keeper_doc.to_pylist()), dtype=np.uint64, count=len(rows)
    )
    reason = np.where(same_rid, "dedup.record_id", np.where(exact, "dedup.exact", "dedup.minhash"))
    out = pa.table(
        {
            "fidx": m.column("fidx").take(pa.array(rows)),
            "doc_id": doc.take(pa.array(rows)),
            "reason": pa.array(reason, pa.string()),
            "cluster_id": pa.array(cid, pa.uint64()),
            "keeper_doc_id": keeper_doc,
        },
        schema=DECISION_SCHEMA,
    )
    # a node dropped in two input files counts once
    dn = node[rows]
    uniq_node, first_i = np.unique(dn, return_index=True)
    n_rid, n_exact = int(same_rid[first_i].sum()), int(exact[first_i].sum())
    stats = {
        "clusters": int(first.sum()),
        "exact_dups": n_exact,
        "near_dups": len(uniq_node) - n_exact - n_rid,
        "record_id_dups": n_rid,
    }
    return out, stats
