"""Phase-2 clustering at scale: >= 1 M synthetic signatures with planted duplicates.

Synthetic docs: random 64-bit band keys (14 bands) and text_hash; a fraction ``--exact`` are
exact copies of an earlier doc (same text_hash and bands), ``--near`` share ``--shared-bands``
band keys with an earlier doc (a near-duplicate as LSH sees it). Runs the driver-side path of
phase 2 in one process (explode keys -> star edges -> components -> keepers,
``stages.dedup_cluster.dedup_local``) and reports wall time and peak RSS (psutil, sampled
every 50 ms). ``--ray N`` additionally runs ``pipeline.dedup_phase.run_dedup_phase`` on N docs.

    python -m benchmarks.dedup_scale --docs 1000000
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import psutil
import pyarrow as pa

from stages.dedup_cluster import dedup_local


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
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--exact", type=float, default=0.05)
    ap.add_argument("--near", type=float, default=0.10)
    ap.add_argument("--shared-bands", type=int, default=3)
    ap.add_argument("--ray", type=int, default=0, help="also run the Ray phase on N docs")
    args = ap.parse_args()
    t, n_ex, n_nr = synthetic(args.docs, args.exact, args.near, args.shared_bands)
    base = psutil.Process().memory_info().rss
    with PeakRSS() as m:
        t0 = time.perf_counter()
        out, stats = dedup_local(t)
        dt = time.perf_counter() - t0
    print(f"docs={args.docs:,} planted exact={n_ex:,} near={n_nr:,}")
    print(f"clustering: {dt:.1f} s  ({args.docs / dt:,.0f} docs/s)  stats={stats}")
    print(
        f"RSS before={base / 2**20:,.0f} MiB  peak={m.peak / 2**20:,.0f} MiB  "
        f"peak-above-input={(m.peak - base) / args.docs:,.0f} B/doc"
    )
    if args.ray:
        import tempfile

        import pyarrow.parquet as pq
        import ray

        from pipeline.dedup_phase import run_dedup_phase
        from stages.minhash import DedupConfig

        ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
        d = tempfile.mkdtemp()
        sub = t.slice(0, args.ray)
        paths = []
        for k in range(4):
            p = f"{d}/s{k}.parquet"
            pq.write_table(sub.slice(k * (args.ray // 4), args.ray // 4), p)
            paths.append(p)
        for sh in ("groupby", "repartition"):
            s = run_dedup_phase(paths, [], f"{d}/out.parquet", DedupConfig(), shuffle=sh)
            print(f"ray {sh}: {s}")


if __name__ == "__main__":
    main()
