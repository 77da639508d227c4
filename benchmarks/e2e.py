"""End-to-end sections of ``python -m benchmarks.run``: the real pipeline, its start-up cost,
and the steady-state rate (the difference of a full and a small run).

Split out of benchmarks/run.py: these are the only sections that run Ray.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.process_tree import TreeSampler
from benchmarks.stage_timing import Timer, _rate


def run_e2e(
    profile: str,
    paths: list[str],
    workers: int,
    chunk_records: int,
    overrides: list[str],
    tmp: Path,
    engine: str = "ray",
) -> dict[str, Any]:
    """The real pipeline on ``paths`` with ``workers`` actors (Ray must already be up), or
    with ``engine="local"`` in this process (one worker, no Ray)."""
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    out = tmp / f"e2e-{profile}-{workers}w-{engine}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(
        None,
        [
            f"input.paths={json.dumps(paths)}",
            f"output.dir={json.dumps(str(out))}",
            f"execution.num_workers={workers}",
            "execution.progress=false",
            f"read.chunk_records={chunk_records}",
            f"execution.engine={engine}",
            *overrides,
        ],
        profile=profile,
    )
    with TreeSampler() as tree, Timer() as t:
        res = run_pipeline(cfg)
    read_drops = sum(v for k, v in res.counts.items() if k.startswith("read."))
    docs = res.records_read - read_drops
    cpu_workers, cpu_other = tree.cpu(workers=True), tree.cpu(workers=False)
    cpu = t.cpu + cpu_workers + cpu_other
    peaks = tree.worker_peaks()
    shutil.rmtree(out, ignore_errors=True)
    return {
        "profile": profile,
        "workers": workers,
        "engine": res.engine,
        "chunk_records": chunk_records,
        "status": res.status,
        "records_read": res.records_read,
        "docs": docs,
        "docs_kept": res.docs_kept,
        "tokens": res.tokens,
        "wall_s": round(t.wall, 3),
        "phase_seconds": res.phase_seconds,
        "cpu_s": round(cpu, 3),
        "cpu_driver_s": round(t.cpu, 3),
        "cpu_ray_workers_s": round(cpu_workers, 3),
        "cpu_ray_system_s": round(cpu_other, 3),
        "docs_per_s": _rate(docs, t.wall),
        "docs_per_cpu_s": _rate(docs, cpu),
        "peak_rss_worker_mb": round(peaks[0][1] / 2**20, 1) if peaks else None,
        "peak_rss_worker_process": peaks[0][0] if peaks else None,
        "worker_processes_seen": len(peaks),
    }


def run_startup(
    profile: str,
    paths: list[str],
    chunk_records: int,
    overrides: list[str],
    tmp: Path,
    engine: str = "auto",
) -> dict[str, Any]:
    """Start-up cost: wall of the CLI on a few records in a fresh process (imports, model
    loads, phase barriers, lineage; with ``engine="ray"`` also Ray init and actors): what a
    run of a few files pays every time. ``auto`` is what the CLI does by default."""
    out = tmp / f"startup-{profile}-{engine}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        *paths,
        "--output",
        str(out),
        "--profile",
        profile,
        "--workers",
        "1",
        "--engine",
        engine,
        "--json",
        "--set",
        f"read.chunk_records={chunk_records}",
        "--set",
        "execution.progress=false",
    ]
    for o in overrides:
        cmd += ["--set", o]
    with TreeSampler() as tree, Timer() as t:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    from stages.warc_reader import ReadConfig, read_warc

    docs = sum(c.docs.num_rows for pth in paths for c in read_warc(pth, ReadConfig()))
    try:
        ran = json.loads(proc.stdout).get("engine") if proc.returncode == 0 else None
    except ValueError:
        ran = None
    return {
        "profile": profile,
        "engine": ran,
        "docs": docs,
        "exit_status": proc.returncode,
        "wall_s": round(t.wall, 3),
        "cpu_s": round(tree.cpu(), 3),
        "error": proc.stderr[-500:] if proc.returncode else None,
    }


def marginal(full: dict[str, Any], small: dict[str, Any]) -> dict[str, Any]:
    """Steady-state e2e rate: (full - small run) docs over (full - small) seconds.

    Both runs pay the same fixed costs (actor start-up and model loads per phase, Ray Data
    planning, lineage open/publish); the difference is what more documents cost, which is
    what a 10 TB run pays almost entirely.
    """
    d = full["docs"] - small["docs"]
    wall = full["wall_s"] - small["wall_s"]
    cpu = full["cpu_s"] - small["cpu_s"]
    return {
        "profile": full.get("profile"),
        "docs": d,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "docs_per_s": _rate(d, wall),
        "docs_per_cpu_s": _rate(d, cpu),
        "fixed_wall_s": round(small["wall_s"] - small["docs"] * wall / d, 3) if d else None,
        "fixed_cpu_s": round(small["cpu_s"] - small["docs"] * cpu / d, 3) if d else None,
    }
