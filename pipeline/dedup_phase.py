"""Phase 2: global exact + MinHash-LSH dedup on Ray Data, against the released index.

Plan:

1. ``ray.data.read_parquet`` the phase-1 signature files of THIS run (released = False) and the
   index of earlier runs (released = True); columns doc_id, warc_date, text_hash, minhash_bands.
2. ``map_batches``: explode each doc into ``bands + 1`` records (gkey, doc_id, released,
   warc_date, text_hash) - one per LSH band plus one for text_hash (exact dups) - with a
   partition id ``part = gkey % P``.
3. Shuffle by ``part`` (``groupby("part").map_groups``, default; or ``repartition(P,
   keys=["part"])`` + ``map_batches``, see ``shuffle=``), and in every partition
   :func:`stages.dedup_cluster.group_edges`: sort by (gkey, doc_id), star edges per group,
   plus the attributes of every node that has an edge.
4. Driver: collect edges + involved nodes (much smaller than the keys), run
   :func:`stages.dedup_cluster.resolve_clusters` (scipy connected components, keeper =
   released first, then earliest warc_date, then smallest doc_id) and write ``out_path``
   (doc_id, reason, cluster_id, keeper_doc_id).

A doc_id present in both the run and the index is one node (released): re-running the same
input against an index that already holds it is a no-op. Released docs are never output.

Shuffle choice, measured on this (shared, heavily loaded) 2-core machine with
``benchmarks/dedup_scale.py --docs 200000 --ray 200000``: groupby(part).map_groups 18.1 s,
repartition(P, keys=[part]) + map_batches(batch_size=None) 13.0 s, same output. groupby stays
the default: map_groups guarantees a whole group per call, whereas the repartition variant relies
on a hash partition arriving as one block (Ray may split blocks above target_max_block_size,
which would silently lose edges at scale).

Memory math for 300 M documents (14 bands, 36-char doc_ids):

* Band keys at rest (phase-1 output / index): 14 x 8 B + text_hash 8 B + doc_id ~40 B + date
  8 B ~= 170 B/doc -> ~51 GB per 300 M docs (Parquet, mostly incompressible hashes).
* Shuffle volume: 15 records/doc x (gkey 8 + part 8 + doc_id ~40 + released 1 + date 8 +
  text_hash 8 ~= 73 B) ~= 1.1 KB/doc -> ~330 GB through the Ray object store (spilled to
  disk), spread over P partitions: with P = 2,000, ~165 MB per partition task. Replacing the
  doc_id string by a 64-bit node id (e.g. a per-file row number assigned from Parquet footers)
  would cut it to ~35 B/record = ~160 GB; not done yet (strings keep the code exact/simple).
* Edges: star edges per group = members - 1. FineWeb-like CC dumps have ~20-40 % near/exact
  dups per dump; assume 30 % of docs in non-trivial groups with up to 15 groups each and
  ~60 % of bands colliding -> E ~= 90 M x 9 ~= 800 M edges worst case before de-duplication
  (most are repeated across bands: a pair found in 10 bands is 10 identical edges).
* Driver: edges as doc_id strings ~2 x 40 B = 80 B/edge while collected -> the dominant term,
  ~64 GB at 800 M edges: too much for one head node. Mitigations in order: (a) dedupe edges
  per partition (done: star edges are unique per group) and drop band edges already implied
  by the exact band; (b) map doc_ids to int64 node ids before the shuffle (then 16 B/edge ->
  13 GB); (c) run the union-find itself distributed. Node table for involved docs: 90 M x
  ~57 B ~= 5 GB. Union-find/connected components: CSR with int32 indices = 4 B x (E + N)
  + int8 data E + labels 4 B x N -> ~5 GB at E = 800 M, N = 90 M.
  This run's measured numbers at 1 M docs are in ``benchmarks/dedup_scale.py``.
"""

from __future__ import annotations

import os
import posixpath
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray

from pipeline import storage
from stages.dedup_cluster import (
    NODE_SCHEMA,
    OUTPUT_SCHEMA,
    band_group_keys,
    group_edges,
    resolve_clusters,
)
from stages.minhash import DedupConfig

__all__ = ["run_dedup_phase", "write_index", "index_paths", "SIGNATURE_COLUMNS"]

SIGNATURE_COLUMNS = ["doc_id", "warc_date", "text_hash", "minhash_bands"]
_DATE_NULL = np.iinfo(np.int64).max


def _fs(path: str, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        return filesystem, path
    if "://" in path and not path.startswith("file://"):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path.removeprefix("file://"))


def _date_seconds(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("s", tz=col.type.tz)).cast(pa.int64())
    return col.cast(pa.int64()).fill_null(_DATE_NULL).to_numpy(zero_copy_only=False)


class _Explode:
    """map_batches fn: signatures -> (gkey, part, doc_id, released, warc_date, text_hash)."""

    def __init__(self, released: bool, num_partitions: int) -> None:
        self.released = released
        self.p = np.uint64(num_partitions)

    def __call__(self, t: pa.Table) -> pa.Table:
        n = t.num_rows
        bands_col = t.column("minhash_bands").combine_chunks()
        nb = bands_col.type.list_size
        has = np.asarray(pc.is_valid(bands_col).to_numpy(zero_copy_only=False), dtype=bool)
        filled = bands_col.fill_null(pa.scalar([0] * nb, bands_col.type))
        bands = pc.list_flatten(filled).to_numpy(zero_copy_only=False).astype(np.uint64)
        th = t.column("text_hash").to_numpy().astype(np.uint64)
        gk = band_group_keys(bands.reshape(n, nb), th)
        row = np.arange(n)
        sel_b = np.repeat(row[has], nb)
        rows = np.concatenate([sel_b, row])
        keys = np.concatenate([gk[:, :nb][has].reshape(-1), gk[:, nb]])
        date = _date_seconds(t.column("warc_date"))
        return pa.table(
            {
                "gkey": pa.array(keys, pa.uint64()),
                "part": pa.array((keys % self.p).astype(np.int64)),
                "doc_id": t.column("doc_id").take(pa.array(rows)),
                "released": pa.array(np.full(len(rows), self.released)),
                "warc_date": pa.array(date[rows], pa.int64()),
                "text_hash": pa.array(th[rows], pa.uint64()),
            }
        )


def _partition_edges(records: pa.Table) -> pa.Table:
    """map_groups fn: one table holding edges (kind 0) and involved nodes (kind 1)."""
    edges, nodes = group_edges(records.drop_columns(["part"]))
    ne, nn = edges.num_rows, nodes.num_rows
    return pa.table(
        {
            "kind": pa.array(np.concatenate([np.zeros(ne, np.int8), np.ones(nn, np.int8)])),
            "a": pa.concat_arrays(
                [edges.column("src").combine_chunks(), nodes.column("doc_id").combine_chunks()]
            ),
            "b": pa.concat_arrays(
                [edges.column("dst").combine_chunks(), pa.nulls(nn, pa.string())]
            ),
            "released": pa.concat_arrays(
                [pa.nulls(ne, pa.bool_()), nodes.column("released").combine_chunks()]
            ),
            "warc_date": pa.concat_arrays(
                [pa.nulls(ne, pa.int64()), nodes.column("warc_date").combine_chunks()]
            ),
            "text_hash": pa.concat_arrays(
                [pa.nulls(ne, pa.uint64()), nodes.column("text_hash").combine_chunks()]
            ),
        }
    )


def _count_rows(paths: list[str], filesystem: pafs.FileSystem | None) -> int:
    total = 0
    for p in paths:
        fs, path = _fs(p, filesystem)
        with fs.open_input_file(path) as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def _read(paths: list[str], filesystem: pafs.FileSystem | None):
    return ray.data.read_parquet(paths, columns=SIGNATURE_COLUMNS, filesystem=filesystem)


def run_dedup_phase(
    signature_paths: list[str],
    index_paths: list[str],
    out_path: str,
    cfg: DedupConfig,
    filesystem: pafs.FileSystem | None = None,
    shuffle: str = "groupby",
) -> dict:
    """Global dedup of this run's signatures against itself and the released index.

    Writes ``out_path`` (Parquet, OUTPUT_SCHEMA: one row per dropped doc of this run) and
    returns stats: docs, index_docs, exact_dups, near_dups, clusters, edges, seconds.
    ``shuffle``: "groupby" (groupby(part).map_groups) or "repartition" (hash repartition
    by part + map_batches over whole blocks).
    """
    t0 = time.perf_counter()
    nparts = cfg.num_partitions or 4 * max(1, int(ray.available_resources().get("CPU", 1)))
    stats: dict = {
        "docs": _count_rows(signature_paths, filesystem),
        "index_docs": _count_rows(index_paths, filesystem) if index_paths else 0,
    }
    out_table = OUTPUT_SCHEMA.empty_table()
    res_stats = {"clusters": 0, "exact_dups": 0, "near_dups": 0}
    nedges = 0
    if signature_paths and stats["docs"]:
        ds = _read(signature_paths, filesystem).map_batches(
            _Explode(False, nparts), batch_format="pyarrow"
        )
        if index_paths:
            ds = ds.union(
                _read(index_paths, filesystem).map_batches(
                    _Explode(True, nparts), batch_format="pyarrow"
                )
            )
        if shuffle == "groupby":
            res = ds.groupby("part", num_partitions=nparts).map_groups(_partition_edges, batch_format="pyarrow")
        elif shuffle == "repartition":
            res = ds.repartition(nparts, keys=["part"]).map_batches(
                _partition_edges, batch_format="pyarrow", batch_size=None
            )
        else:
            raise ValueError(f"unknown shuffle {shuffle!r}")
        parts = [t for t in ray.get(res.to_arrow_refs()) if t.num_rows]
        if parts:
            coll = pa.concat_tables(parts)
            kind = coll.column("kind").to_numpy()
            e = coll.filter(pa.array(kind == 0))
            nd = coll.filter(pa.array(kind == 1))
            edges = pa.table({"src": e.column("a"), "dst": e.column("b")})
            nodes = pa.table(
                {
                    "doc_id": nd.column("a"),
                    "released": nd.column("released"),
                    "warc_date": nd.column("warc_date"),
                    "text_hash": nd.column("text_hash"),
                },
                schema=NODE_SCHEMA,
            )
            nedges = edges.num_rows
            out_table, res_stats = resolve_clusters(nodes, edges)
    if filesystem is None:  # the same bytes as the driver-side path (pipeline/run.py)
        storage.write_parquet_atomic(out_path, out_table, 100_000)
    else:
        _write_parquet(out_table, out_path, filesystem)
    stats.update(res_stats)
    stats["edges"] = nedges
    stats["dropped"] = out_table.num_rows
    stats["seconds"] = time.perf_counter() - t0
    return stats


def _write_parquet(table: pa.Table, path: str, filesystem: pafs.FileSystem | None) -> None:
    """Write atomically: temp name + rename (local); object stores PUT the final key."""
    fs, p = _fs(path, filesystem)
    parent = posixpath.dirname(p)
    if parent:
        fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{p}.tmp-{uuid.uuid4().hex}"
        pq.write_table(table, tmp, filesystem=fs, compression="zstd")
        fs.move(tmp, p)
    else:
        pq.write_table(table, p, filesystem=fs, compression="zstd")


def write_index(
    signature_paths: list[str],
    index_dir: str,
    run_id: str,
    dropped_path: str | None = None,
    filesystem: pafs.FileSystem | None = None,
    rows_per_part: int = 1_000_000,
) -> list[str]:
    """Persist doc_id, warc_date, text_hash, minhash_bands of this run's RELEASED docs.

    Released = every doc of ``signature_paths`` not listed in ``dropped_path`` (the phase-2
    output). Layout: ``<index_dir>/run=<run_id>/part-00000.parquet`` ... (rows sorted by
    doc_id, zstd, <= ``rows_per_part`` rows each). One directory per run, so a nightly run adds
    a directory and reads all (or a chosen window of) runs via :func:`index_paths`; rewriting
    the same run_id replaces its parts. Returns the part paths written.
    """
    cols = []
    for sp in signature_paths:
        fs, p = _fs(sp, filesystem)
        cols.append(pq.read_table(p, columns=SIGNATURE_COLUMNS, filesystem=fs))
    table = pa.concat_tables(cols, promote_options="permissive") if cols else None
    if table is None or table.num_rows == 0:
        return []
    if dropped_path:
        fs, p = _fs(dropped_path, filesystem)
        dropped = pq.read_table(p, columns=["doc_id"], filesystem=fs).column("doc_id")
        table = table.filter(pc.invert(pc.is_in(table.column("doc_id"), value_set=dropped)))
    table = table.take(pc.sort_indices(table, sort_keys=[("doc_id", "ascending")]))
    run_dir = posixpath.join(index_dir.rstrip("/"), f"run={run_id}")
    fs, rd = _fs(run_dir, filesystem)
    if fs.get_file_info(rd).type != pafs.FileType.NotFound:
        fs.delete_dir_contents(rd)
    written = []
    for i, s in enumerate(range(0, table.num_rows, rows_per_part)):
        path = posixpath.join(run_dir, f"part-{i:05d}.parquet")
        _write_parquet(table.slice(s, rows_per_part), path, filesystem)
        written.append(path)
    return written


def index_paths(index_dir: str, filesystem: pafs.FileSystem | None = None) -> list[str]:
    """All index part files under ``<index_dir>/run=*/part-*.parquet``, sorted."""
    fs, root = _fs(index_dir, filesystem)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    out = []
    for info in infos:
        rel = info.path[len(root.rstrip("/")) + 1 :]
        parts = rel.split("/")
        if (
            info.type == pafs.FileType.File
            and len(parts) == 2
            and parts[0].startswith("run=")
            and parts[1].startswith("part-")
            and parts[1].endswith(".parquet")
        ):
            out.append(posixpath.join(index_dir.rstrip("/"), rel))
    return sorted(out)
