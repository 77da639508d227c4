"""Concurrent readers and worker faults, on real runs with the session Ray.

- An analyst process (reader_child.py) queries the published lineage snapshot in a loop while
  a pipeline run commits: it must never see a lock error or half a commit.
- Ray worker processes running phase-1 / phase-3 actors are SIGKILLed mid-stage: the run must
  still complete (Ray restarts actors and retries their calls) with byte-identical outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from faultkit import REPO, check_lineage, leftovers, small_cfg, tree_digest

pytestmark = pytest.mark.ray
HERE = Path(__file__).resolve().parent


def _run_in_thread(cfg) -> tuple[threading.Thread, dict]:
    from pipeline.run import run_pipeline

    box: dict = {}

    def target():
        try:
            box["result"] = run_pipeline(cfg)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def test_reader_never_sees_lock_errors_or_half_commits(small_inputs, small_ref, tmp_path):
    out = tmp_path / "out"
    stop = tmp_path / "STOP"
    reader = subprocess.Popen(
        [sys.executable, str(HERE / "reader_child.py"), str(out / "lineage.duckdb"), str(stop)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    t, box = _run_in_thread(small_cfg(small_inputs, out))
    t.join(timeout=1800)
    stop.write_text("")
    stdout, stderr = reader.communicate(timeout=120)
    assert "error" not in box, box.get("error")
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["n_errors"] == 0, stats["errors"]
    assert stats["snapshots"] >= 5, stats
    assert stats["max_files"] == len(small_inputs), stats
    assert tree_digest(out) == small_ref["digest"]


def _actor_pids(name: str) -> list[int]:
    """Actor worker processes of OUR Ray (descendants of this process), never anyone else's."""
    pids = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if name in " ".join(p.cmdline()):
                pids.append(p.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


@pytest.mark.parametrize(
    "actor,ready_glob",
    [("_Phase1Actor", "_work/*/p1/*/chunk-*.json"), ("_Phase3Actor", "*/*/*.parquet")],
)
def test_killed_actor_worker_is_retried(actor, ready_glob, small_inputs, small_ref, tmp_path):
    out = tmp_path / "out"
    t, box = _run_in_thread(small_cfg(small_inputs, out))
    killed = None
    deadline = time.monotonic() + 1500
    while t.is_alive() and killed is None and time.monotonic() < deadline:
        pids = _actor_pids(actor)
        if pids and (actor == "_Phase3Actor" or list(out.glob(ready_glob))):
            try:
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    t.join(timeout=1800)
    assert killed is not None, f"no {actor} process seen during the run"
    assert "error" not in box, f"run failed after killing {actor} pid {killed}: {box['error']!r}"
    assert box["result"].status == "succeeded"
    assert tree_digest(out) == small_ref["digest"]
    check_lineage(out)
    assert not leftovers(out)
