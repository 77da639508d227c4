"""Phase-2 dedup at scale: the real Ray code over N synthetic documents with planted duplicates.

Why: the driver must stay flat in the number of documents and the answer must be exact.
Synthetic signature files (doc_id, warc_date, text_hash, minhash_bands with 14 random 64-bit
band keys) are written by Ray tasks (not the driver) with planted clusters whose removal count
is known in advance:

* exact groups of 2 (same text_hash and bands): 1 removed each;
* near-duplicate chains of ``--chain`` docs (member j shares one band key with j-1 and another
  with j+1; the ends share nothing): ``chain - 1`` removed each, found only transitively;
* near-duplicate stars of ``--star`` docs (each leaf shares one band with the centre):
  ``star - 1`` removed each.

Members are scattered over all files by a fixed permutation of the document index. Then
``pipeline.dedup_phase.run_dedup_phase`` runs (``--ray``: the distributed Ray Data path,
``local_max_docs=0``) while a thread samples the driver's RSS and the summed RSS of the Ray
worker processes every 0.2 s.

    python -m benchmarks.dedup_scale --docs 1000000 --ray --json /tmp/dedup_1m.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import threading
import time

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

BANDS = 14
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of (x, salt): deterministic, well-spread 64-bit values."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(
            (salt * 0xD1B54A32D192ED03 + 1) % 2**64
        )
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def plan(
    n: int, exact: float, near_chain: float, near_star: float, chain: int, star: int
) -> dict[str, int]:
    """Cluster counts for n docs: fractions are of all docs that sit in each cluster kind."""
    e = int(n * exact) // 2
    c = int(n * near_chain) // chain
    s = int(n * near_star) // star
    a = 1_000_003
    while math.gcd(a, n) != 1:
        a += 2
    return {
        "n": n,
        "exact_groups": e,
        "chains": c,
        "stars": s,
        "chain": chain,
        "star": star,
        "perm_a": a,
        "expected_removed": e + c * (chain - 1) + s * (star - 1),
    }


RID_EVERY = 1000  # one doc in this many carries the record id of a doc in the previous file


def _singleton(i: np.ndarray, p: dict[str, int]) -> np.ndarray:
    """Docs in no planted cluster (dedup keeps every one of them)."""
    slot = (i * np.uint64(p["perm_a"]) + np.uint64(12345)) % np.uint64(p["n"])
    ends = 2 * p["exact_groups"] + p["chains"] * p["chain"] + p["stars"] * p["star"]
    return slot >= np.uint64(ends)


def rid_source(i: np.ndarray, p: dict[str, int], step: int) -> np.ndarray:
    """Whose record id doc ``i`` carries: its own, or (one doc in RID_EVERY in the odd-numbered
    files, both singletons) that of the doc one file earlier, which keeps it (the keeper rule:
    earliest WARC-Date, then first input file in URI order; an even-numbered file's docs keep
    their own ids)."""
    src = i.copy()
    cand = (i % np.uint64(RID_EVERY) == 0) & ((i // np.uint64(step)) % np.uint64(2) == 1)
    cand &= _singleton(i, p) & _singleton(i - np.uint64(step) * cand, p)
    src[cand] = i[cand] - np.uint64(step)
    return src


def expected_rid_dups(p: dict[str, int], step: int) -> int:
    i = np.arange(0, p["n"], RID_EVERY, dtype=np.uint64)
    return int((rid_source(i, p, step) != i).sum())


def synthetic_docs(p: dict[str, int], lo: int, hi: int, uri: str = "", step: int = 0) -> pa.Table:
    """Docs [lo, hi) of the plan as a signature table (pure numpy; runs in a Ray task), with
    record-id columns when ``step`` (docs per file) is given."""
    i = np.arange(lo, hi, dtype=np.uint64)
    n = np.uint64(p["n"])
    slot = (i * np.uint64(p["perm_a"]) + np.uint64(12345)) % n
    bands = np.stack([mix(i, b + 1) for b in range(BANDS)], axis=1)
    th = mix(i, 99)
    e2 = np.uint64(2 * p["exact_groups"])
    c_end = e2 + np.uint64(p["chains"] * p["chain"])
    s_end = c_end + np.uint64(p["stars"] * p["star"])
    ex = slot < e2
    if ex.any():
        g = slot[ex] // np.uint64(2)
        bands[ex] = np.stack([mix(g, 1000 + b) for b in range(BANDS)], axis=1)
        th[ex] = mix(g, 1099)
    ch = (slot >= e2) & (slot < c_end)
    if ch.any():
        k = slot[ch] - e2
        L = np.uint64(p["chain"])
        c, j = k // L, k % L
        rows = np.flatnonzero(ch)
        base = c * L
        has_prev = j > 0
        has_next = j < L - np.uint64(1)
        col_p = (j % np.uint64(BANDS)).astype(np.int64)
        col_n = ((j + np.uint64(1)) % np.uint64(BANDS)).astype(np.int64)
        bands[rows[has_prev], col_p[has_prev]] = mix(base[has_prev] + j[has_prev], 2000)
        bands[rows[has_next], col_n[has_next]] = mix(
            base[has_next] + j[has_next] + np.uint64(1), 2000
        )
    st = (slot >= c_end) & (slot < s_end)
    if st.any():
        k = slot[st] - c_end
        S = np.uint64(p["star"])
        s, j = k // S, k % S
        rows = np.flatnonzero(st)
        leaf = j > 0
        col = (j % np.uint64(BANDS)).astype(np.int64)
        bands[rows[leaf], col[leaf]] = mix(s[leaf] * S + j[leaf], 3000)
        centre = np.flatnonzero(~leaf)
        for t in range(1, p["star"]):
            bands[rows[centre], t % BANDS] = mix(s[~leaf] * S + np.uint64(t), 3000)
    hi_id = mix(i, 7)
    doc_id = pa.array(
        [f"{a:016x}-{b:019d}" for a, b in zip(hi_id.tolist(), i.tolist(), strict=True)]
    )
    date = (mix(i, 8) % np.uint64(100_000_000)).astype(np.int64) + 1_600_000_000
    t = pa.table(
        {
            "doc_id": doc_id,
            "warc_date": pa.array(date, pa.int64()),
            "text_hash": pa.array(th, pa.uint64()),
            "minhash_bands": pa.FixedSizeListArray.from_arrays(
                pa.array(bands.reshape(-1), pa.uint64()), BANDS
            ),
        }
    )
    if not step:
        return t
    rid = [f"<urn:uuid:{v:032x}>" for v in rid_source(i, p, step).tolist()]
    return (
        t.append_column("warc_record_id", pa.array(rid, pa.string()))
        .append_column("source_uri", pa.array([uri] * len(rid), pa.string()))
        .append_column("source_offset", pa.array(i.astype(np.int64)))
    )


def write_synthetic(p: dict[str, int], out_dir: str, files: int) -> list[tuple[str, str]]:
    """Write the plan as ``files`` Parquet files from Ray tasks; returns (uri, file_key)."""
    import ray

    os.makedirs(out_dir, exist_ok=True)
    step = -(-p["n"] // files)

    @ray.remote(num_cpus=1)
    def _one(k: int, lo: int, hi: int) -> str:
        path = os.path.join(out_dir, f"sig-{k:05d}.parquet")
        pq.write_table(synthetic_docs(p, lo, hi, path, step), path)
        return path

    refs = [
        _one.remote(k, k * step, min(p["n"], (k + 1) * step))
        for k in range(files)
        if k * step < p["n"]
    ]
    return [(u, f"f{k:05d}") for k, u in enumerate(ray.get(refs))]


class Sampler:
    """Sample the driver's RSS and the Ray worker processes' (``ray::``) memory every 0.2 s.

    Reported per process, because a Ray worker's RSS includes the object-store pages it has
    mapped (shared memory, counted again in every process that maps them): ``worker_peak`` is
    the largest RSS of one worker, ``worker_private_peak`` the largest RSS minus shared pages
    of one worker, ``workers_private_sum_peak`` the largest sum of private memory over all
    workers at one instant (what the node must hold besides the object store), and
    ``workers_rss_sum_peak`` the old summed RSS (double-counts the object store).
    """

    def __init__(self, every: float = 0.2) -> None:
        self.driver_peak = 0
        self.worker_peak = 0
        self.worker_private_peak = 0
        self.workers_private_sum_peak = 0
        self.workers_rss_sum_peak = 0
        self.every = every
        self._stop = threading.Event()
        self._me = psutil.Process()

    def _sample_workers(self) -> None:
        rss_sum = private_sum = 0
        for p in psutil.process_iter(["cmdline", "ppid"]):
            try:
                cmd = p.info["cmdline"] or []
                if cmd and (cmd[0].startswith("ray::") or "default_worker.py" in " ".join(cmd)):
                    if _descends_from(p, self._me.pid):
                        m = p.memory_info()
                        private = m.rss - m.shared
                        rss_sum += m.rss
                        private_sum += private
                        self.worker_peak = max(self.worker_peak, m.rss)
                        self.worker_private_peak = max(self.worker_private_peak, private)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.workers_rss_sum_peak = max(self.workers_rss_sum_peak, rss_sum)
        self.workers_private_sum_peak = max(self.workers_private_sum_peak, private_sum)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.driver_peak = max(self.driver_peak, self._me.memory_info().rss)
            self._sample_workers()
            time.sleep(self.every)

    def __enter__(self) -> Sampler:
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def _object_store_summary() -> str:
    """Ray's one-line object-store summary (plasma use, spilled bytes) after the run."""
    try:
        from ray._private.internal_api import memory_summary

        text = memory_summary(stats_only=True)
    except Exception as e:  # noqa: BLE001 - a private API: report, never fail the benchmark
        return f"unavailable ({type(e).__name__})"
    keep = [ln.strip() for ln in text.splitlines() if "Spilled" in ln or "Plasma" in ln]
    return "; ".join(keep)


def _descends_from(p: psutil.Process, pid: int) -> bool:
    try:
        for parent in p.parents():
            if parent.pid == pid:
                return True
    except psutil.NoSuchProcess:
        return False
    return False


# -- used by benchmarks/run.py (single-process clustering micro-benchmark) --------------


def synthetic(n: int, exact: float, near: float, shared_bands: int, bands: int = 14, seed: int = 0):
    """(table, n_exact_planted, n_near_planted) with doc_id, warc_date, text_hash, bands."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 2**63, (n, bands), dtype=np.uint64)
    th = rng.integers(0, 2**63, n, dtype=np.uint64)
    n_ex, n_nr = int(n * exact), int(n * near)
    dup = rng.choice(np.arange(n // 10, n), size=n_ex + n_nr, replace=False)
    src = rng.integers(0, n // 10, size=n_ex + n_nr)  # originals among the first 10 %
    ex, nr = dup[:n_ex], dup[n_ex:]
    keys[ex] = keys[src[:n_ex]]
    th[ex] = th[src[:n_ex]]
    cols = np.argsort(rng.random((n_nr, bands)), axis=1)[:, :shared_bands]
    rows = np.repeat(nr, shared_bands)
    keys[rows, cols.reshape(-1)] = keys[np.repeat(src[n_ex:], shared_bands), cols.reshape(-1)]
    t = pa.table(
        {
            "doc_id": pa.array([f"{i:012x}" for i in range(n)]),
            "warc_date": pa.array(rng.integers(1_600_000_000, 1_700_000_000, n), pa.int64()),
            "text_hash": pa.array(th, pa.uint64()),
            "minhash_bands": pa.FixedSizeListArray.from_arrays(
                pa.array(keys.reshape(-1), pa.uint64()), bands
            ),
        }
    )
    return t, n_ex, n_nr


class PeakRSS:
    """Sample this process's RSS in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._p = psutil.Process()

    def __enter__(self) -> PeakRSS:
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._p.memory_info().rss)
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._p.memory_info().rss)


def main() -> None:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument(
        "--ray",
        action="store_true",
        help="run the distributed Ray Data path (default: the one-task path)",
    )
    ap.add_argument("--json", help="write the result JSON here")
    ap.add_argument("--files", type=int, default=0, help="input files (default docs/50k)")
    ap.add_argument("--exact", type=float, default=0.05)
    ap.add_argument("--chain-frac", type=float, default=0.05)
    ap.add_argument("--star-frac", type=float, default=0.05)
    ap.add_argument("--chain", type=int, default=8)
    ap.add_argument("--star", type=int, default=6)
    ap.add_argument("--cpus", type=int, default=None)
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()

    import ray

    from pipeline.dedup_phase import run_dedup_phase
    from pipeline.plan import ensure_ray
    from stages.minhash import DedupConfig

    for attempt in range(3):  # an overloaded machine can miss Ray's 30 s raylet start window
        try:
            ensure_ray(num_cpus=args.cpus)
            break
        except Exception:  # noqa: BLE001
            if attempt == 2:
                raise
            ray.shutdown()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("pipeline.dedup_phase").setLevel(logging.INFO)
    p = plan(args.docs, args.exact, args.chain_frac, args.star_frac, args.chain, args.star)
    work = args.workdir or tempfile.mkdtemp(prefix="dedup_scale_")
    files = args.files or max(2, args.docs // 50_000)
    t = time.perf_counter()
    sig = write_synthetic(p, os.path.join(work, "sig"), files)
    gen_s = time.perf_counter() - t
    rounds_log: list[tuple[int, int, int]] = []
    with Sampler() as s:
        t0 = time.perf_counter()
        stats = run_dedup_phase(
            sig,
            None,
            os.path.join(work, "decisions"),
            DedupConfig(),
            local_max_docs=0 if args.ray else args.docs,
            on_round=lambda r, a, b: rounds_log.append((r, a, b)),
            record_ids=True,
        )
        secs = time.perf_counter() - t0
    out = {
        "docs": args.docs,
        "files": files,
        "seconds": round(secs, 2),
        "generate_seconds": round(gen_s, 2),
        "driver_peak_rss_bytes": s.driver_peak,
        "worker_peak_rss_bytes": s.worker_peak,
        "worker_private_peak_bytes": s.worker_private_peak,
        "workers_private_sum_peak_bytes": s.workers_private_sum_peak,
        "workers_rss_sum_peak_bytes": s.workers_rss_sum_peak,
        "object_store": _object_store_summary(),
        "removed": stats["dropped"],
        "expected_removed": p["expected_removed"] + expected_rid_dups(p, -(-p["n"] // files)),
        "record_id_dups": stats["record_id_dups"],
        "expected_record_id_dups": expected_rid_dups(p, -(-p["n"] // files)),
        "rounds": stats["rounds"],
        "round_changes": rounds_log,
        "edges": stats["edges"],
        "partitions": stats.get("partitions"),
        "engine": stats["engine"],
        "cpus": int(ray.cluster_resources().get("CPU", 0)),
        "plan": p,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if not args.workdir:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
