"""Side by side: our pipeline and a peer started together, one core each, same input.

Why: this machine's speed drifts by 20-30 % from one minute to the next (four back-to-back
runs of the same bare extraction took 23.9 to 34.6 s of CPU), so the ratio of two runs made
minutes apart moves as much as the effects being measured. Two single-core processes started
together on a 2-core machine see the same host. Each one's CPU is its own rusage from
``os.wait4``: the process and every descendant it reaped (our extraction child, datatrove's
sandbox).

Each pair runs twice, on the whole input and on its first ``small`` documents; the
difference is each side's steady state (start-up removed, as issue 20 measures). Ours is the
CLI with the in-process engine (one worker, what ``--workers 1`` runs); the peers are
datatrove (1 task, its venv) and a bare ``trafilatura.extract`` loop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.e2e import marginal
from benchmarks.inputs import limit_inputs
from benchmarks.peer import parse_peer_output, peer_command, peer_missing
from benchmarks.stage_timing import _rate, _ratio


@dataclass
class Contender:
    """One process to run: its argv, environment, and how to read its document count."""

    name: str
    cmd: list[str]
    docs: Callable[[str], int]  # stdout -> documents it processed
    env: dict[str, str] | None = None


def _ours_docs(stdout: str) -> int:
    return int(json.loads(stdout)["html_responses"])


def _peer_docs(stdout: str) -> int:
    out = parse_peer_output(stdout)
    if out is None:
        raise ValueError("no DATATROVE_RESULT line")
    return int(out["docs_read"])


def _traf_docs(stdout: str) -> int:
    return int(json.loads(stdout.strip().splitlines()[-1])["docs"])


def ours(profile: str, paths: list[str], out: Path, chunk_records: int) -> Contender:
    cmd = [sys.executable, "-m", "pipeline", "run", *paths, "--output", str(out)]
    cmd += ["--profile", profile, "--workers", "1", "--engine", "local", "--json"]
    cmd += ["--set", f"read.chunk_records={chunk_records}", "--set", "execution.progress=false"]
    return Contender(f"ccpipe {profile}", cmd, _ours_docs)


def datatrove(paths: list[str], workdir: Path, extract_timeout: float) -> Contender:
    cmd, env = peer_command(paths, workdir, extract_timeout)
    return Contender("datatrove", cmd, _peer_docs, env)


def trafilatura_alone(paths: list[str]) -> Contender:
    return Contender(
        "trafilatura alone",
        [sys.executable, "-m", "benchmarks.trafilatura_alone", *paths],
        _traf_docs,
    )


def run_together(contenders: list[Contender], timeout_s: float = 3600) -> list[dict[str, Any]]:
    """Start every contender at once; wall, CPU (own rusage) and docs of each."""
    procs, outs, t0 = [], [], time.perf_counter()
    for c in contenders:
        f = tempfile.TemporaryFile(mode="w+")
        procs.append(
            subprocess.Popen(c.cmd, stdout=f, stderr=subprocess.DEVNULL, env=c.env, text=True)
        )
        outs.append(f)
    done: dict[int, tuple[float, int, Any]] = {}

    def reap(i: int, pid: int) -> None:
        _pid, status, usage = os.wait4(pid, 0)
        done[i] = (time.perf_counter() - t0, os.waitstatus_to_exitcode(status), usage)

    threads = [
        threading.Thread(target=reap, args=(i, p.pid), daemon=True) for i, p in enumerate(procs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    rows = []
    for i, c in enumerate(contenders):
        row: dict[str, Any] = {"name": c.name}
        if i not in done:
            procs[i].kill()
            row["error"] = f"timed out after {timeout_s:.0f} s"
            rows.append(row)
            continue
        wall, code, usage = done[i]
        outs[i].seek(0)
        stdout = outs[i].read()
        outs[i].close()
        try:
            docs = c.docs(stdout) if code == 0 else None
        except (ValueError, KeyError, IndexError):
            docs = None
        if docs is None:
            row["error"] = f"exit {code}: " + stdout.strip()[-300:]
        cpu = usage.ru_utime + usage.ru_stime
        row.update(docs=docs, wall_s=round(wall, 3), cpu_s=round(cpu, 3))
        rows.append(row)
    return rows


def steady(full: dict[str, Any], small: dict[str, Any]) -> dict[str, Any]:
    """Steady state of one side: full run minus small run (as the e2e section computes it),
    plus the small run's CPU as its start-up figure."""
    if full.get("error") or small.get("error"):
        return {"error": full.get("error") or small.get("error")}
    return {**marginal(full, small), "startup_cpu_s": small["cpu_s"]}


def side_by_side(
    paths: list[str],
    tmp: Path,
    small: int,
    chunk_records: int,
    extract_timeout: float,
    peer: bool,
    with_trafilatura: bool = True,
    repeats: int = 4,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Quality profile against datatrove (when ``peer``) and trafilatura alone, side by side.

    Each pair runs ``repeats`` times: the same two processes started together still differ by
    about 5 % from one start to the next (two bare loops side by side measured 1.07x), so a
    ratio is the mean of its repeats and its range is reported with it.
    """
    few = limit_inputs(paths, small, tmp / "side-small")
    res: dict[str, Any] = {"small_docs": small, "pairs": {}}
    peers: list[tuple[str, Callable[[list[str], str], Contender]]] = []
    if with_trafilatura:
        peers.append(("trafilatura", lambda p, _tag: trafilatura_alone(p)))
    if peer:
        missing = peer_missing()
        if missing:
            res["datatrove_error"] = missing
        else:
            peers.insert(
                0, ("datatrove", lambda p, tag: datatrove(p, tmp / f"dt-{tag}", extract_timeout))
            )
    for key, make in peers:
        reps = []
        for rep in range(repeats):
            runs: dict[str, list[dict[str, Any]]] = {}
            for tag, inp in (("full", paths), ("small", few)):
                log(f"side by side {rep + 1}/{repeats}: ccpipe quality and {key}, {tag} input")
                out = tmp / f"side-{key}-{tag}"
                runs[tag] = run_together([ours("quality", inp, out, chunk_records), make(inp, tag)])
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(tmp / f"dt-{tag}", ignore_errors=True)
            us = steady(runs["full"][0], runs["small"][0])
            them = steady(runs["full"][1], runs["small"][1])
            reps.append(
                {
                    "runs": runs,
                    "ours_steady": us,
                    "peer_steady": them,
                    "cpu_ratio": _ratio(us.get("docs_per_cpu_s"), them.get("docs_per_cpu_s")),
                    "wall_ratio": _ratio(us.get("docs_per_s"), them.get("docs_per_s")),
                    "whole_run_cpu_ratio": _ratio(
                        _rate(runs["full"][0].get("docs") or 0, runs["full"][0].get("cpu_s") or 0),
                        _rate(runs["full"][1].get("docs") or 0, runs["full"][1].get("cpu_s") or 0),
                    ),
                }
            )
        res["pairs"][key] = {"reps": reps, **_summary(reps)}
    return res


def _summary(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and range of the per-repeat ratios (None when a repeat has none)."""
    out: dict[str, Any] = {}
    for key in ("cpu_ratio", "wall_ratio", "whole_run_cpu_ratio"):
        vals = [r[key] for r in reps]
        ok = bool(vals) and all(v is not None for v in vals)
        out[key] = round(sum(vals) / len(vals), 3) if ok else None
        if key == "cpu_ratio":
            out["cpu_ratio_range"] = [min(vals), max(vals)] if ok else None
    return out
