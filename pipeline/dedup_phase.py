"""Phase 2: global exact + MinHash-LSH dedup as Ray Data shuffles; the driver holds O(1) state.

Why this shape: at 300 M documents the graph does not fit one process, so every step is a
Ray Data shuffle of 64-bit keys and the driver only sees counts (one integer per round and
one small row per input file). Plan (every shuffle = ``groupby("part").map_groups`` where
``part`` is the top ``bits`` bits of the 64-bit key the step needs together):

1. **Keys** (map_batches over the input files): per document ``node = xxh64(doc_id)`` and one
   ``gkey`` per LSH band plus one for ``text_hash``; 24 B per record, 15 records per doc.
2. **Band groups** (shuffle by gkey range): each partition also reads the released index's
   (gkey, node) rows of its key range that match one of its keys (``pipeline/dedup_index.py``),
   then star edges member -> smallest member per group
   (:func:`stages.dedup_cluster.star_edges`).
3. **Connected components**: alternating large-star / small-star (Kiveris et al. 2014), each
   a shuffle by node range, materialized in the object store, until a round changes nothing
   (``changed`` is summed per step: O(1) in the driver); rounds are logged. The result is
   star edges (node -> root = smallest node key of its component).
4. **Attributes** (shuffle by node range): component members joined with this run's
   (fidx, doc_id, warc_date, text_hash, record-id key) and, for members that are released,
   the index's docs rows. Two different doc_ids with the same 64-bit key raise (never a
   silent merge).
5. **Keepers** (shuffle by root range): per component, released first, then earliest
   warc_date (null last), then the earliest input file in URI order, then smallest doc_id
   (:func:`stages.dedup_cluster.pick_keepers`): the rule of
   :func:`stages.dedup_cluster.dedup_local` (which sees one file).
6. **Decisions by input file** (groupby fidx): ``<decisions_dir>/<file_key>.parquet`` (doc_id,
   reason, cluster_id, keeper_doc_id; sorted by doc_id), then ``_SUCCESS.json`` with the stats.
   Phase 3 reads only its file's decisions (:func:`pipeline.dedup_index.read_decisions`).

Record ids (``record_ids``): a WARC-Record-ID staged from several input files is one more
group key of step 1, so its copies form a component with any exact/near copies and share
their one keeper (reason ``dedup.record_id``). It used to be a separate step with its own
keeper rule (first file in URI order): where the two rules chose different keepers, both
copies of a document were dropped. Record ids are not looked up in the released index.

Runs with at most ``local_max_docs`` documents (this run + index) do the same steps in ONE Ray
task (scipy components instead of star rounds; identical decisions, no shuffle overhead).

Everything in flight lives in the Ray object store (spilled by Ray when needed), and every
file under the output URI: nothing is written to a node-local path, so the phase is safe on
a multi-node cluster as long as the output is shared storage (:func:`check_shared_output`).

Released documents already in the index are never dropped; a doc_id present in the run and in
the index is one node (released): re-running an input against its own index entries is a
no-op. Released-to-released edges are not searched (only keys this run holds are looked up),
so a cluster made only of released documents is not reported again.

This module is the Ray side (shuffles, the components loop, the one-task engine); what each
step does to one block or group is in ``pipeline/dedup_steps.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from core import storage
from pipeline.config import ConfigError
from pipeline.dedup_index import (
    DOC_SCHEMA,
    decisions_done_uri,
    index_doc_count,
    read_docs,
    read_keys,
    write_decisions_archive,
)
from pipeline.dedup_steps import (
    EDGE_SCHEMA,
    SIGNATURE_COLUMNS,
    _attrs_batch,
    _attrs_table,
    _band_edges,
    _join_fn,
    _keeper_fn,
    _keys_batch,
    _large_star_fn,
    _read_sig,
    _roots_batch,
    _small_star_fn,
    _write_fn,
    write_file_decisions,
)
from stages.dedup_cluster import (
    components,
    dedupe_pairs,
    merge_node_attrs,
    pick_keepers,
    star_edges,
)
from stages.minhash import DedupConfig

__all__ = [
    "run_dedup_phase",
    "connected_components",
    "check_shared_output",
    "MultiNodeStorageError",
    "SIGNATURE_COLUMNS",
    "EDGE_SCHEMA",
]

log = logging.getLogger(__name__)

MAX_ROUNDS = 64
DOCS_PER_PARTITION = 1_000_000
# Ray Data's sort shuffle keeps metadata of (input blocks x partitions) pieces in the driver:
# both are kept proportional to the data with large constants (measured: 200 x 64 pieces at
# 10 M docs grew the driver by ~150 MB; 20 x 8 at 1 M did not).
BLOCKS_PER_PARTITION = 2


class MultiNodeStorageError(ConfigError):
    """The Ray cluster has several nodes but the output is a node-local path."""


def check_shared_output(output: str, declared_shared: bool = False) -> int:
    """Stop before any work when a multi-node cluster would write to a node-local path.

    Every intermediate of the pipeline (phase-1 chunks, dedup decisions, the index) lives
    under the output URI; on a node-local path each node would see only its own files.
    Returns the number of alive Ray nodes.
    """
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if nodes > 1 and not storage.is_remote(output) and not declared_shared:
        raise MultiNodeStorageError(
            f"the Ray cluster has {nodes} nodes but --output {output} is a local path: every "
            "node must see the same files. Use shared storage (s3://bucket/prefix, gs://...) "
            "or, if this path is on a shared filesystem mounted at the same place on every "
            "node (NFS, Lustre), say so with --shared-output "
            "(execution.output_shared=true)."
        )
    return nodes


def _bits_for(n_docs: int, cfg: DedupConfig) -> int:
    if cfg.num_partitions:
        return max(0, math.ceil(math.log2(cfg.num_partitions)))
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    want = max(4 * cpus, math.ceil(n_docs / DOCS_PER_PARTITION))
    return min(16, max(1, math.ceil(math.log2(want))))


# ----------------------------------------------------------------- connected components


HASH_SHUFFLE_MIN_PARTITIONS = 64


@contextlib.contextmanager
def _shuffle_strategy(nparts: int) -> Iterator[None]:
    """Task-based sort shuffle below HASH_SHUFFLE_MIN_PARTITIONS partitions, Ray's hash
    shuffle above.

    Measured on the 2-core box (200k rows, 8 groups, warm): ``sort_shuffle_pull_based``
    0.7 s per groupby, Ray 2.60's default ``shuffle_v2`` / ``hash_shuffle`` 32-37 s (they
    start a pool of aggregator actors for every shuffle; phase 2 runs 2 per round). But the
    sort shuffle's driver state grows with input blocks x partitions, the hash shuffle's
    only with their sum: at crawl scale (hundreds of partitions) the fixed actor start-up
    is the smaller cost.
    """
    ctx = ray.data.DataContext.get_current()
    saved = ctx.shuffle_strategy
    ctx.shuffle_strategy = (
        ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        if nparts < HASH_SHUFFLE_MIN_PARTITIONS
        else ray.data.context.ShuffleStrategy.SHUFFLE_V2
    )
    try:
        yield
    finally:
        ctx.shuffle_strategy = saved


@ray.remote(num_cpus=0.25)
def _block_sum(block: pa.Table, column: str) -> int:
    return int(pc.sum(block.column(column)).as_py() or 0) if block.num_rows else 0


def _column_sum(ds: ray.data.Dataset, column: str) -> int:
    """Sum of one column of a MATERIALIZED dataset, one small task per block.

    ``Dataset.sum`` starts a whole Ray Data execution (measured ~3 s each on 2 cores, 2 per
    round); a task per block reads the block in place and sends back one integer.
    """
    return sum(ray.get([_block_sum.remote(ref, column) for ref in ds.to_arrow_refs()]))


def connected_components(
    edges: ray.data.Dataset, bits: int, on_round: Any = None
) -> tuple[ray.data.Dataset, int, int]:
    """Large-star / small-star until no change. ``edges``: EDGE_SCHEMA rows holding both
    directions of every edge, ``part`` = partition of ``a``. Returns (converged star edges in
    both directions, rounds, distinct edges in). Each step is a shuffle by node range whose
    output is materialized in the object store; the driver keeps two integers per round."""
    nparts = 1 << bits
    with _shuffle_strategy(nparts):  # callers other than run_dedup_phase get it too
        return _star_rounds(edges, bits, nparts, on_round)


def _star_rounds(
    edges: ray.data.Dataset, bits: int, nparts: int, on_round: Any
) -> tuple[ray.data.Dataset, int, int]:
    """The round loop of :func:`connected_components` (under its shuffle strategy)."""
    e = edges.materialize()
    n_edges = _column_sum(e, "chg")
    if n_edges == 0:
        return e, 0, 0
    rounds = 0
    while True:
        rounds += 1
        t0 = time.perf_counter()
        ls = (
            e.groupby("part", num_partitions=nparts)
            .map_groups(_large_star_fn, fn_kwargs={"bits": bits}, batch_format="pyarrow")
            .materialize()
        )
        c_ls = _column_sum(ls, "chg")
        ss = (
            ls.groupby("part", num_partitions=nparts)
            .map_groups(_small_star_fn, fn_kwargs={"bits": bits}, batch_format="pyarrow")
            .materialize()
        )
        c_ss = _column_sum(ss, "chg")
        del ls
        e = ss
        log.info(
            "dedup components: round %d: large-star changed %d, small-star changed %d (%.1fs)",
            rounds,
            c_ls,
            c_ss,
            time.perf_counter() - t0,
        )
        if on_round:
            on_round(rounds, c_ls, c_ss)
        if c_ls == 0 and c_ss == 0:
            return e, rounds, n_edges
        if rounds >= MAX_ROUNDS:
            raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


# ---------------------------------------------------------------------------- phase 2


# Up to this many documents (run + index) phase 2 runs in the driver even on Ray: a bounded
# ~20 MB, against the ~2 s a fresh Ray worker process takes to start and import when the
# phase-1 actors hold every pooled worker (what a small run on 2 workers paid).
DRIVER_MAX_DOCS = 20_000


def run_dedup_phase(
    sig_files: list[tuple[str, str]],
    index_dir: str | None,
    decisions_dir: str,
    cfg: DedupConfig,
    local_max_docs: int = 0,
    on_round: Any = None,
    archive_uri: str | None = None,
    record_ids: bool = False,
    in_process: bool = False,
    ray_address: str | None = None,
    driver_max_docs: int = DRIVER_MAX_DOCS,
    file_order: list[str] | None = None,
) -> dict[str, Any]:
    """Global dedup of this run's signature files against itself and the released index.

    ``sig_files``: (uri, file_key) of every phase-1 signature file (several per input file
    allowed). Writes one decisions file per input file with drops under ``decisions_dir``,
    (``record_ids``: a WARC-Record-ID seen in several input files joins the same graph), and
    (``archive_uri``) all of them concatenated into one file; then ``_SUCCESS.json`` (the
    stats, also returned: docs,
    index_docs, edges, rounds, clusters, exact_dups, near_dups, record_id_dups, dropped,
    engine, seconds).

    Up to ``local_max_docs`` documents (run + index) are one partition: one Ray task, or
    this process (``in_process``, the local engine; or at most ``driver_max_docs``, a bounded
    few MB). Above that the Ray Data shuffles run, on the cluster ``ray_address`` names
    (started here if the run had not needed Ray before). ``file_order``: the input files'
    keys in URI order (default: sorted keys); equally dated copies keep the earlier file's.
    """
    t0 = time.perf_counter()
    present = {fk for _, fk in sig_files}
    file_keys = [fk for fk in file_order or sorted(present) if fk in present]
    if len(set(file_keys)) != len(present):
        raise ValueError("file_order must name every input file of sig_files once")
    fidx_of = {fk: i for i, fk in enumerate(file_keys)}
    items = [{"uri": u, "fidx": fidx_of[fk]} for u, fk in sig_files]
    docs = _count_rows([u for u, _ in sig_files])
    index_docs = index_doc_count(index_dir)
    storage.delete_tree(decisions_dir)
    stats: dict[str, Any] = {"docs": docs, "index_docs": index_docs}
    if docs == 0:
        res = {
            "edges": 0,
            "rounds": 0,
            "clusters": 0,
            "exact_dups": 0,
            "near_dups": 0,
            "record_id_dups": 0,
            "dropped": 0,
            "engine": "none",
        }
        if archive_uri:
            write_decisions_archive(decisions_dir, archive_uri)
    elif docs + index_docs <= local_max_docs:
        args = (items, file_keys, index_dir, decisions_dir, record_ids, archive_uri)
        if in_process or docs + index_docs <= driver_max_docs:
            res = {**_one_partition(*args), "engine": "in-process"}
        else:
            res = ray.get(_one_partition_task.remote(*args))
    else:
        if in_process:
            from pipeline.plan import ensure_ray

            ensure_ray(ray_address)
        res = _distributed(
            items, file_keys, index_dir, decisions_dir, docs, cfg, on_round, record_ids
        )
        if archive_uri:  # in a task: the archive reads every file's decisions
            ray.get(_archive_task.remote(decisions_dir, archive_uri))
    stats.update(res)
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    storage.write_bytes_atomic(
        decisions_done_uri(decisions_dir), json.dumps(stats, sort_keys=True).encode()
    )
    return stats


def _count_rows(uris: list[str]) -> int:
    total = 0
    for u in uris:
        fs, path = storage.resolve(u)
        with fs.open_input_file(path) as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def _distributed(
    items: list[dict],
    file_keys: list[str],
    index_dir: str | None,
    decisions_dir: str,
    docs: int,
    cfg: DedupConfig,
    on_round: Any,
    record_ids: bool = False,
) -> dict[str, Any]:
    bits = _bits_for(docs, cfg)
    nparts = 1 << bits
    with _shuffle_strategy(nparts):
        return _distributed_steps(
            items, file_keys, index_dir, decisions_dir, docs, bits, on_round, record_ids
        )


def _files_dataset(items: list[dict], nparts: int) -> ray.data.Dataset:
    """The signature files (uri, fidx) as a dataset: a few blocks per partition, so the
    first step of every shuffle reads them in parallel."""
    nblocks = max(1, min(len(items), BLOCKS_PER_PARTITION * nparts))
    return ray.data.from_items(items, override_num_blocks=nblocks)


def _distributed_steps(
    items: list[dict],
    file_keys: list[str],
    index_dir: str | None,
    decisions_dir: str,
    docs: int,
    bits: int,
    on_round: Any,
    record_ids: bool = False,
) -> dict[str, Any]:
    nparts = 1 << bits
    files = _files_dataset(items, nparts)
    rk = {"bits": bits, "record_ids": record_ids}
    keys = files.map_batches(_keys_batch, fn_kwargs=rk, batch_format="pyarrow", batch_size=None)
    edges = keys.groupby("part", num_partitions=nparts).map_groups(
        _band_edges, fn_kwargs={"bits": bits, "index_dir": index_dir}, batch_format="pyarrow"
    )
    comp, rounds, n_edges = connected_components(edges, bits, on_round)
    log.info(
        "dedup: %d docs, %d edges, %d partitions, converged in %d rounds",
        docs,
        n_edges,
        nparts,
        rounds,
    )
    roots = comp.map_batches(_roots_batch, fn_kwargs={"bits": bits}, batch_format="pyarrow")
    attrs = files.map_batches(_attrs_batch, fn_kwargs=rk, batch_format="pyarrow", batch_size=None)
    members = (
        roots.union(attrs)
        .groupby("part", num_partitions=nparts)
        .map_groups(
            _join_fn, fn_kwargs={"bits": bits, "index_dir": index_dir}, batch_format="pyarrow"
        )
    )
    drops = members.groupby("part", num_partitions=nparts).map_groups(
        _keeper_fn, batch_format="pyarrow"
    )
    written = drops.groupby("fidx", num_partitions=nparts).map_groups(
        _write_fn,
        fn_kwargs={"decisions_dir": decisions_dir, "file_keys": file_keys},
        batch_format="pyarrow",
    )
    rows = written.take_all()  # one small row per input file with drops
    return {
        "edges": n_edges,
        "rounds": rounds,
        "partitions": nparts,
        "clusters": sum(r["clusters"] for r in rows),
        "exact_dups": sum(r["exact"] for r in rows),
        "near_dups": sum(r["near"] for r in rows),
        "record_id_dups": sum(r["rid"] for r in rows),
        "dropped": sum(r["dropped"] for r in rows),
        "engine": "ray-data",
    }


_archive_task = ray.remote(num_cpus=1)(write_decisions_archive)


def _one_partition(
    items: list[dict],
    file_keys: list[str],
    index_dir: str | None,
    decisions_dir: str,
    record_ids: bool = False,
    archive_uri: str | None = None,
) -> dict[str, Any]:
    """Small runs: the same steps on one partition (scipy components), then the archive."""
    res = _local_steps(items, file_keys, index_dir, decisions_dir, record_ids)
    if archive_uri:
        write_decisions_archive(decisions_dir, archive_uri)
    return res


# one Ray task (i17: not the driver), unless the run is in-process or under driver_max_docs
_one_partition_task = ray.remote(num_cpus=1)(_one_partition)


def _local_steps(
    items: list[dict],
    file_keys: list[str],
    index_dir: str | None,
    decisions_dir: str,
    record_ids: bool = False,
) -> dict[str, Any]:
    keys, attrs = [], []
    for it in items:
        sig = _read_sig(it["uri"], record_ids)
        if sig.num_rows:
            keys.append(_keys_batch(pa.table({"uri": [it["uri"]]}), 0, record_ids))
            attrs.append(_attrs_table(sig, it["fidx"]))
    k = pa.concat_tables(keys)
    gkey = k.column("gkey").to_numpy()
    node = k.column("node").to_numpy()
    rel = read_keys(index_dir, 0, 0, gkey)
    gkey = np.concatenate([gkey, rel.column("gkey").to_numpy()])
    node = np.concatenate([node, rel.column("node").to_numpy()])
    src, dst = dedupe_pairs(*star_edges(gkey, node))
    if len(src) == 0:
        return {
            "edges": 0,
            "rounds": 0,
            "partitions": 1,
            "clusters": 0,
            "exact_dups": 0,
            "near_dups": 0,
            "record_id_dups": 0,
            "dropped": 0,
            "engine": "ray-task",
        }
    uniq, inv = np.unique(np.concatenate([src, dst]), return_inverse=True)
    ncomp, labels = components(len(uniq), inv[: len(src)], inv[len(src) :])
    root_of = np.full(ncomp, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(root_of, labels, uniq)
    members = pa.table(
        {"node": pa.array(uniq, pa.uint64()), "root": pa.array(root_of[labels], pa.uint64())}
    )
    released = read_docs(index_dir, 0, 0, uniq) if len(uniq) else DOC_SCHEMA.empty_table()
    mem = merge_node_attrs(members, pa.concat_tables(attrs), released)
    out, st = pick_keepers(mem)
    fidx = out.column("fidx").to_numpy()
    exact = near = rid = 0
    for f in np.unique(fidx):
        e, n, r = write_file_decisions(
            decisions_dir, file_keys[int(f)], out.filter(pa.array(fidx == f))
        )
        exact, near, rid = exact + e, near + n, rid + r
    return {
        "edges": len(src),
        "rounds": 0,
        "partitions": 1,
        "clusters": st["clusters"],
        "exact_dups": exact,
        "near_dups": near,
        "record_id_dups": rid,
        "dropped": out.num_rows,
        "engine": "ray-task",
    }
