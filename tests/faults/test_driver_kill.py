"""Driver faults: SIGKILL the driver at named points, resume, compare with an undisturbed run.

The killed run is a real `python -m pipeline run` subprocess (`CCPIPE_KILL_AT=<point>[:n]`, see
core/faults.py); the resume runs in this process with the session Ray and WITHOUT the env
var (a fresh Ray start per resume would triple the cost). After the resume the data files
(text/token/audit shards, dedup decisions and index) must be byte-identical to the reference
run, and lineage must hold its invariants (faultkit.check_lineage).

The small run puts each input file in its own work unit (faultkit.SMALL_SET), so lineage
transactions are, in order: start_run (1), record_dedup (2), commit of unit 1 (3), commit of
unit 2 (4), finish_run (5); `lineage.in_transaction:3` dies inside the first unit commit and
`lineage.in_transaction:4` inside the second, with the first one committed (resume must
skip exactly that unit and rewrite the second one's rolled shards byte-identically).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest
from faultkit import (
    PY,
    REPO,
    assert_killed,
    check_lineage,
    leftovers,
    run_args,
    run_cli,
    small_cfg,
    tree_digest,
)

pytestmark = pytest.mark.ray

CI_POINTS = ["phase3.files_written", "lineage.in_transaction:3"]
SLOW_POINTS = [
    "lineage.in_transaction:4",
    "lineage.before_publish:4",
    "phase1.chunk_done",
    "phase1.chunk_done:3",
    "phase1.done",
    "phase2.done",
    "phase3.files_written:2",
    "lineage.in_transaction",
    "lineage.in_transaction:2",
    "lineage.in_transaction:5",
    "lineage.before_publish",
    "lineage.before_publish:3",
    "lineage.before_publish:5",
    "phase3.committed",
    "run.before_finish",
]


def _resume_and_check(inputs, out, ref) -> None:
    from lineage.store import open_reader
    from pipeline.run import run_pipeline

    result = run_pipeline(small_cfg(inputs, out))
    assert result.status == "succeeded"
    assert tree_digest(out) == ref["digest"], "outputs differ from the undisturbed run"
    counts = check_lineage(out)
    assert counts["files"] == len(inputs)
    assert not leftovers(out), leftovers(out)
    con = open_reader(out / "lineage.duckdb")
    try:
        n = con.execute("SELECT count(*) FROM documents").fetchone()[0]
        kept = con.execute("SELECT sum(docs_kept) FROM input_files").fetchone()[0]
        # One work unit per input file here, each committed once, with rolled shards.
        units = con.execute(
            "SELECT count(DISTINCT unit_id), count(*) FROM input_files WHERE unit_id IS NOT NULL"
        ).fetchone()
        rolled = con.execute(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM shards WHERE "
            "kind = 'text' GROUP BY unit_id, lang, quality_bucket)"
        ).fetchone()
    finally:
        con.close()
    assert n == kept == ref["result"].docs_kept
    assert units == (len(inputs), len(inputs))
    assert rolled[0] > 1, "the shard cap should have rolled a partition over"
    # A further re-run is a no-op: everything is committed.
    again = run_pipeline(small_cfg(inputs, out))
    assert again.files_skipped == len(inputs) and again.files_processed == 0
    assert tree_digest(out) == ref["digest"]


def _kill_and_resume(point, small_inputs, small_ref, tmp_path) -> None:
    out = tmp_path / "out"
    proc = run_cli(run_args(small_inputs, out), {"CCPIPE_KILL_AT": point})
    assert_killed(proc)
    _resume_and_check(small_inputs, out, small_ref)


@pytest.mark.parametrize("point", CI_POINTS)
def test_kill_driver_then_resume(point, small_inputs, small_ref, tmp_path):
    _kill_and_resume(point, small_inputs, small_ref, tmp_path)


@pytest.mark.parametrize("point", ["phase1.chunk_done:2", "phase3.files_written"])
def test_kill_in_process_run_then_resume_on_ray(point, small_inputs, small_ref, tmp_path):
    """The in-process engine (execution.engine=local) killed mid-phase, resumed by a Ray run:
    same bytes as the undisturbed run, nothing lost or doubled (the staged work of either
    engine is the other's to reuse)."""
    out = tmp_path / "out"
    proc = run_cli(
        run_args(small_inputs, out, ["execution.engine=local"]), {"CCPIPE_KILL_AT": point}
    )
    assert_killed(proc)
    _resume_and_check(small_inputs, out, small_ref)


@pytest.mark.slow
@pytest.mark.parametrize("point", SLOW_POINTS)
def test_kill_driver_then_resume_all_points(point, small_inputs, small_ref, tmp_path):
    _kill_and_resume(point, small_inputs, small_ref, tmp_path)


@pytest.mark.slow
def test_kill_driver_twice_then_resume(small_inputs, small_ref, tmp_path):
    """Crash, crash again while resuming at a later point, then finish."""
    out = tmp_path / "out"
    for point in ("phase1.chunk_done:2", "lineage.in_transaction:3"):
        assert_killed(run_cli(run_args(small_inputs, out), {"CCPIPE_KILL_AT": point}))
    _resume_and_check(small_inputs, out, small_ref)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_driver_at_random_time(seed, small_inputs, small_ref, tmp_path):
    """SIGKILL after a seeded random delay (Ray start included), then resume."""
    import os

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("CCPIPE_KILL_AT", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO)
    delay = random.Random(seed).uniform(5, 60)
    p = subprocess.Popen(
        [PY, "-m", "pipeline", *run_args(small_inputs, out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < delay:
        time.sleep(0.2)
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    _resume_and_check(small_inputs, out, small_ref)
