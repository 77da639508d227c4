"""One benchmark command: per-stage and end-to-end throughput, memory, dedup scale, peer run.

    python -m benchmarks.run [--input WARC ...] [--profile quality|fast|both] [--limit N]
                             [--json out.json] [--peer datatrove] [--workers 1,2]

What it measures (README.md beside this file explains each number):

* **stages** (per profile, one process, one core): the stage classes of ``stages/`` run on the
  same batches in sequence (read -> extract -> lang -> quality -> signatures -> PII ->
  tokenize; each stage sees what the previous one kept), models loaded once, a warm-up batch
  excluded. Wall (perf_counter) and CPU (process_time) seconds, docs/s and MB/s of HTML.
* **trafilatura alone**: a bare ``trafilatura.extract`` loop over the same pages (the
  baseline of the "quality e2e >= 0.8x trafilatura alone" target).
* **e2e**: the real ``pipeline.run.run_pipeline`` on 1 and 2 workers (``execution.num_workers``),
  output to a temp dir, Ray started once, ``read.chunk_records`` small enough that phase 1 has
  chunks to share out. CPU time = driver + every process of the Ray tree (psutil), peak RSS of
  each Ray worker process sampled every 0.2 s.
* **dedup**: phase-2 clustering on synthetic signatures (``benchmarks.dedup_scale``), time and
  peak memory per million documents.
* **extraction quality**: snippet precision/recall on trafilatura-eval (the stage run's
  extraction output when the input is that WARC, else ``benchmarks.extraction_quality.score``).
* **peer** (``--peer datatrove``): ``benchmarks/datatrove_peer.py`` in benchmarks/.venv-datatrove
  (``bash benchmarks/setup_datatrove.sh``) on the same input, and the ratio ours/datatrove.

The machine may be shared: every docs/s is given on wall time and on CPU time.

This module is the command (arguments, section order, JSON saving); each section lives in its
own module: ``inputs`` (default input, cutting to N docs), ``stage_timing``, ``e2e`` (pipeline
runs, start-up, steady state), ``peer``, ``extraction_quality`` (snippet scores), ``verdict``
(targets, CPU budget, projection) and ``report`` (the printed tables).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from benchmarks.e2e import marginal, run_e2e, run_startup
from benchmarks.extraction_quality import snippet_scores
from benchmarks.inputs import EVAL_WARC, default_inputs, limit_inputs
from benchmarks.peer import run_peer_datatrove
from benchmarks.report import format_report
from benchmarks.side_by_side import side_by_side
from benchmarks.stage_timing import (
    StageTime,
    Timer,
    read_batches,
    time_stages,
    time_trafilatura_alone,
)
from benchmarks.verdict import PROFILES, budget, evaluate_targets, projection

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core per process, as in Ray
os.environ.setdefault("RAYON_NUM_THREADS", "1")

# The stage rows of a profile: reading, then the default chain (stage names as in
# stages/registry.py), then the phase-3 stages.
STAGES = ("read", "extract", "lang", "quality", "signatures", "pii", "tokenize")


# --------------------------------------------------------------------------- dedup phase 2
def dedup_scale(n_docs: int) -> dict[str, Any]:
    """Phase-2 clustering of ``n_docs`` synthetic signatures (5 % exact, 10 % near dups)."""
    from benchmarks.dedup_scale import PeakRSS, synthetic
    from stages.dedup_cluster import dedup_local

    table, n_ex, n_nr = synthetic(n_docs, 0.05, 0.10, 3)
    base = psutil.Process().memory_info().rss
    with PeakRSS() as mem, Timer() as t:
        _, stats = dedup_local(table)
    per_m = 1e6 / n_docs
    return {
        "docs": n_docs,
        "planted_exact": n_ex,
        "planted_near": n_nr,
        "wall_s": round(t.wall, 3),
        "cpu_s": round(t.cpu, 3),
        "input_mb": round(table.nbytes / 2**20, 1),
        "peak_rss_mb": round(mem.peak / 2**20, 1),
        "peak_above_input_mb": round((mem.peak - base) / 2**20, 1),
        "wall_s_per_million": round(t.wall * per_m, 2),
        "cpu_s_per_million": round(t.cpu * per_m, 2),
        "peak_above_input_mb_per_million": round((mem.peak - base) / 2**20 * per_m, 1),
        "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float, str))},
    }


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--input", nargs="+", help="WARC files (default: trafilatura-eval, else the shipped sample)"
    )
    ap.add_argument(
        "--profile",
        choices=[*PROFILES, "all", "both"],
        default="all",
        help="one profile, or all of them (`both` is the old name of `all`)",
    )
    ap.add_argument("--limit", type=int, help="first N HTML documents of the input only")
    ap.add_argument("--json", help="write the results here (default: a file in the temp dir)")
    ap.add_argument("--peer", choices=["datatrove"], help="also run the peer in its venv")
    ap.add_argument("--workers", default="1,2", help="e2e worker counts, comma-separated")
    ap.add_argument(
        "--chunk-records",
        type=int,
        default=100,
        help="read.chunk_records for the stage batches and the e2e runs",
    )
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for the e2e runs",
    )
    ap.add_argument(
        "--marginal",
        type=int,
        default=100,
        help="also run e2e (1 worker) on the first N docs; the difference to the "
        "full run is the steady-state cost without Ray/actor start-up (0 = skip)",
    )
    ap.add_argument(
        "--startup",
        type=int,
        default=12,
        help="also run e2e (1 worker) on the first N docs per profile: its wall is "
        "the start-up cost, reported apart from steady state (0 = skip)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small run: --limit 40 (unless given), 1 worker, no marginal run, "
        "3,000 dedup docs, no trafilatura-alone baseline",
    )
    ap.add_argument(
        "--dedup-docs",
        type=int,
        default=1_000_000,
        help="synthetic docs for the phase-2 measurement (0 = skip)",
    )
    ap.add_argument("--no-stages", action="store_true", help="skip the per-stage timing")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs")
    ap.add_argument(
        "--no-local-e2e",
        dest="local_e2e",
        action="store_false",
        help="skip the in-process (--engine local) end-to-end run per profile",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip trafilatura alone")
    ap.add_argument(
        "--no-side-by-side",
        dest="side_by_side",
        action="store_false",
        help="skip the side-by-side runs (quality profile and each peer at the same time, one "
        "core each, on the whole input and on the first --marginal docs)",
    )
    ap.add_argument(
        "--side-by-side-repeats",
        type=int,
        default=4,
        help="times each side-by-side pair runs (its ratio is the mean; 2 pairs gave 1.93x "
        "datatrove where 4 gave 1.84x on this host)",
    )
    ap.add_argument("--no-extraction-quality", action="store_true")
    ap.add_argument("--peer-timeout", type=float, default=3600.0, help="seconds")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return ap


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    """--quick: a run of a minute or two (smoke tests, a first look), same sections."""
    if args.quick:
        args.limit = args.limit or 40
        args.workers, args.marginal, args.no_baseline = "1", 0, True
        args.local_e2e = args.side_by_side = False
        args.dedup_docs = min(args.dedup_docs, 3000)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; prints the table, writes JSON, returns the result dict."""
    args = apply_quick(build_parser().parse_args(argv))
    from pipeline.config import load_config

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    profiles = list(PROFILES) if args.profile in ("all", "both") else [args.profile]
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="ccpipe-bench-"))
    paths = [str(Path(p).resolve()) for p in (args.input or default_inputs())]
    for p in paths:
        if not Path(p).is_file():
            raise SystemExit(f"input not found: {p}")
    if args.limit:
        paths = limit_inputs(paths, args.limit, tmp / "input")
    eval_input = [Path(p).name for p in (args.input or default_inputs())] == [EVAL_WARC.name]
    out = (
        Path(args.json)
        if args.json
        else Path(tempfile.gettempdir()) / (f"ccpipe-bench-{time.strftime('%Y%m%dT%H%M%S')}.json")
    )

    def save() -> None:  # after every section: a long run that is stopped keeps its numbers
        out.write_text(json.dumps(res, indent=2, default=str))

    res: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "inputs": paths,
        "limit": args.limit,
        "profiles": {},
        "e2e": [],
        "e2e_local": [],
    }
    try:
        # ---- read once per distinct read config; stages per profile
        cache: dict[str, tuple[list[pa.Table], StageTime, int]] = {}
        for p in profiles:
            cfg = load_config(None, [f"read.chunk_records={args.chunk_records}"], profile=p)
            key = cfg.read.model_dump_json()
            if key not in cache:
                log(f"reading {len(paths)} input file(s) ({cfg.read.library})")
                cache[key] = read_batches(paths, cfg.read)
            batches, read, records = cache[key]
            res.update(
                docs=read.docs_in, html_mb=round(read.html_bytes_in / 1e6, 3), records=records
            )
            if args.no_stages or not batches:
                continue
            log(f"profile {p}: timing stages on {read.docs_in} docs")
            prof, extracted = time_stages(cfg, batches, read)
            if p == "quality" and not args.no_baseline:
                log("trafilatura alone")
                prof["trafilatura_alone"] = time_trafilatura_alone(batches, cfg)
            if not args.no_extraction_quality:
                prof["extraction_quality"] = snippet_scores(
                    cfg.extract, extracted, args.limit, eval_input
                )
            res["profiles"][p] = prof
            save()
        cache.clear()

        # ---- peer
        if args.peer == "datatrove":
            log("datatrove peer")
            cfg = load_config(None, [], profile="quality")
            res["peer"] = run_peer_datatrove(paths, tmp, args.peer_timeout, cfg.extract.timeout_s)
            save()
        if (
            args.side_by_side
            and "quality" in profiles
            and args.marginal
            and res.get("docs", 0) >= 2 * args.marginal
            and (args.peer or not args.no_baseline)
        ):
            cfg = load_config(None, [], profile="quality")
            res["side_by_side"] = side_by_side(
                paths,
                tmp,
                args.marginal,
                args.chunk_records,
                cfg.extract.timeout_s,
                peer=args.peer == "datatrove",
                with_trafilatura=not args.no_baseline,
                repeats=args.side_by_side_repeats,
                log=log,
            )
            save()

        # ---- end to end
        if not args.no_e2e and workers:
            import ray

            from pipeline.plan import ensure_ray

            if args.startup:
                res["e2e_startup"], res["e2e_startup_ray"] = {}, {}
                few = limit_inputs(paths, args.startup, tmp / "startup")
                for p in profiles:
                    log(
                        f"e2e {p} start-up: `python -m pipeline run` on the first "
                        f"{args.startup} docs (fresh process, default engine)"
                    )
                    res["e2e_startup"][p] = run_startup(
                        p, few, args.chunk_records, args.overrides, tmp
                    )
                    save()
                # the same run forced onto a fresh embedded Ray: what `--engine ray` costs
                log(f"e2e {profiles[0]} start-up on a fresh embedded Ray (--engine ray)")
                res["e2e_startup_ray"][profiles[0]] = run_startup(
                    profiles[0], few, args.chunk_records, args.overrides, tmp, engine="ray"
                )
                save()
            started = not ray.is_initialized()
            log("starting Ray" if started else "using the running Ray")
            ensure_ray(num_cpus=max(max(workers), 2) if started else None)
            try:
                for p in profiles:
                    for w in workers:
                        log(f"e2e {p} with {w} worker(s)")
                        res["e2e"].append(
                            run_e2e(p, paths, w, args.chunk_records, args.overrides, tmp)
                        )
                        save()
                if args.local_e2e:
                    for p in profiles:
                        log(f"e2e {p} in-process (--engine local, no Ray)")
                        res["e2e_local"].append(
                            run_e2e(p, paths, 1, args.chunk_records, args.overrides, tmp, "local")
                        )
                        save()
                if args.marginal and res.get("docs", 0) >= 2 * args.marginal:
                    small = limit_inputs(paths, args.marginal, tmp / "marginal")
                    res["e2e_small"], res["e2e_marginal"], by_w = [], {}, {}
                    for p in profiles:
                        for w in workers:
                            log(f"e2e {p} with {w} worker(s) on the first {args.marginal} docs")
                            r = run_e2e(p, small, w, args.chunk_records, args.overrides, tmp)
                            res["e2e_small"].append(r)
                            full = [x for x in res["e2e"] if (x["profile"], x["workers"]) == (p, w)]
                            if full:
                                by_w.setdefault(p, {})[str(w)] = marginal(full[0], r)
                        if "1" in by_w.get(p, {}):
                            res["e2e_marginal"][p] = by_w[p]["1"]
                    res["e2e_marginal_by_workers"] = by_w
                    res["e2e_marginal_local"] = {}
                    for full in res["e2e_local"]:
                        p = full["profile"]
                        log(f"e2e {p} in-process on the first {args.marginal} docs")
                        r = run_e2e(p, small, 1, args.chunk_records, args.overrides, tmp, "local")
                        res["e2e_small"].append(r)
                        res["e2e_marginal_local"][p] = marginal(full, r)
            finally:
                if started:
                    ray.shutdown()

        # ---- dedup phase 2
        if args.dedup_docs:
            log(f"dedup phase 2 on {args.dedup_docs:,} synthetic docs")
            res["dedup"] = dedup_scale(args.dedup_docs)
            save()

        res["targets"] = evaluate_targets(res)
        res["projection"] = projection(res)
        res["budget"] = budget(res)
        res["host"]["load_avg_end"] = os.getloadavg()
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save()
    print(format_report(res))
    print(f"\nJSON: {out}")
    res["json_path"] = str(out)
    return res


if __name__ == "__main__":
    main()
