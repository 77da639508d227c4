"""One writer per output: the lock names its holder, waits on request, and a killed holder's
lock is taken over. Holders are real separate processes (flock is per open file, so an
in-process second taker would also conflict, but the contract is about processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.output_lock import LOCK_NAME, OutputLockedError, hold_output_lock
from tests.integration.test_s3 import s3_env  # noqa: F401  (fixture: moto S3 on a free port)

REPO = Path(__file__).resolve().parents[1]


def _holder_proc(
    output: str, hold_s: float, env: dict | None = None, purpose: str = "test holder"
) -> subprocess.Popen:
    """A separate process that takes the lock, prints READY, holds it `hold_s` seconds."""
    code = textwrap.dedent(f"""
        import sys, time
        from core.output_lock import hold_output_lock
        with hold_output_lock({output!r}, purpose={purpose!r}):
            print("READY", flush=True)
            time.sleep({hold_s})
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY", "holder did not take the lock"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    proc.wait(30)


def test_second_writer_fails_at_once_naming_the_holder(tmp_path):
    out = str(tmp_path / "out")
    proc = _holder_proc(out, 60)
    try:
        t = time.monotonic()
        with pytest.raises(OutputLockedError) as err:
            with hold_output_lock(out, purpose="second"):
                pass
        assert time.monotonic() - t < 5
        msg = str(err.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg
        assert "test holder" in msg and "started 20" in msg
    finally:
        _stop(proc)


def test_wait_takes_the_lock_when_the_holder_ends(tmp_path):
    out = str(tmp_path / "out")
    proc = _holder_proc(out, 2)
    try:
        with pytest.raises(OutputLockedError):
            with hold_output_lock(out, purpose="impatient", wait=True, timeout_s=0.5):
                pass
        t = time.monotonic()
        with hold_output_lock(out, purpose="patient", wait=True, timeout_s=60) as holder:
            assert holder["pid"] == os.getpid()
            on_disk = json.loads((Path(out) / LOCK_NAME).read_text())
            assert on_disk["purpose"] == "patient"
        assert time.monotonic() - t < 30
    finally:
        _stop(proc)
    assert not (Path(out) / LOCK_NAME).exists(), "released lock leaves no file"


def test_lock_of_a_killed_process_is_taken_over(tmp_path, caplog):
    out = str(tmp_path / "out")
    proc = _holder_proc(out, 600)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    stale = json.loads((Path(out) / LOCK_NAME).read_text())
    assert stale["pid"] == proc.pid  # what a SIGKILL leaves behind
    with caplog.at_level("WARNING", logger="core.output_lock"):
        with hold_output_lock(out, purpose="after kill") as holder:
            assert holder["purpose"] == "after kill"
    assert f"pid {proc.pid}" in caplog.text and "stale" in caplog.text


def test_released_lock_on_a_new_output_leaves_no_empty_directory(tmp_path):
    out = tmp_path / "never-written"
    with hold_output_lock(str(out), purpose="nothing"):
        assert out.is_dir()
    assert not out.exists()


# ---------------------------------------------------------------------------- s3://
@pytest.fixture(scope="module")
def s3(s3_env):  # noqa: F811
    """The moto S3 server of the s3 integration tests, its env exported to this process."""
    import boto3

    env = s3_env

    boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="lock-test")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_s3_second_writer_fails_then_takes_over_after_kill(s3):
    out = "s3://lock-test/out"
    proc = _holder_proc(out, 600, env=s3, purpose="s3 holder")
    try:
        with pytest.raises(OutputLockedError) as err:
            with hold_output_lock(out, purpose="second"):
                pass
        assert f"pid {proc.pid}" in str(err.value) and "s3 holder" in str(err.value)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    # the killed holder's claim is stale (dead pid on this host): taken over at once
    with hold_output_lock(out, purpose="after kill") as holder:
        assert holder["state"] == "held"
    with hold_output_lock(out, purpose="again"):
        pass


def test_s3_stale_by_heartbeat_age_and_live_claim_blocks(s3):
    import pyarrow.fs as pafs

    from core.output_lock import CLAIMS_DIR

    fs, root = pafs.FileSystem.from_uri("s3://lock-test/out2")
    claim = f"{root}/{CLAIMS_DIR}/claim-foreign.json"
    foreign = {
        "pid": 1,
        "host": "another-host",
        "purpose": "foreign",
        "token": "foreign",
        "started": "2026-01-01T00:00:00+00:00",
        "state": "held",
    }
    with fs.open_output_stream(claim) as f:
        f.write(json.dumps({**foreign, "heartbeat": time.time()}).encode())
    with pytest.raises(OutputLockedError, match="another-host"):
        with hold_output_lock("s3://lock-test/out2", purpose="blocked"):
            pass
    with fs.open_output_stream(claim) as f:
        f.write(json.dumps({**foreign, "heartbeat": time.time() - 3600}).encode())
    with hold_output_lock("s3://lock-test/out2", purpose="after stale"):
        pass


# ---------------------------------------------------------------------------- the CLI
def _cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_cli_run_on_a_locked_output_exits_75_at_once(tmp_path):
    out = tmp_path / "out"
    proc = _holder_proc(str(out), 120, purpose="lineage delete")
    try:
        t = time.monotonic()
        r = _cli(["run", "--output", str(out)], tmp_path)
        assert r.returncode == 75, r.stderr
        assert time.monotonic() - t < 60  # interpreter + imports; no Ray, no processing
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {proc.pid}" in lines[0] and "lineage delete" in lines[0]
        assert "--wait" in lines[0]
    finally:
        _stop(proc)


@pytest.mark.slow
def test_cli_run_wait_proceeds_after_the_holder(tmp_path):
    """A whole CLI run (~45 s); --wait itself is test_wait_takes_the_lock_when_the_holder_ends."""
    sys.path.insert(0, str(REPO / "tests" / "faults"))
    from faultkit import cut_warc

    from pipeline.sample import sample_paths

    warc = cut_warc(sample_paths()[0], tmp_path / "small.warc.gz", 15)
    out = tmp_path / "out"
    proc = _holder_proc(str(out), 4)
    try:
        r = _cli(["run", str(warc), "--output", str(out), "--wait", "--workers", "1"], tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        assert proc.wait(30) == 0
    finally:
        _stop(proc)
    assert not (out / LOCK_NAME).exists()


def test_dedup_compact_on_a_locked_output_exits_75(tmp_path):
    """Compaction rewrites the cross-run index a run reads: it must not run under a writer."""
    out = tmp_path / "out"
    proc = _holder_proc(str(out), 120, purpose="pipeline run")
    try:
        r = _cli(["dedup", "compact", "--output", str(out)], tmp_path)
        assert r.returncode == 75, r.stderr
        assert f"pid {proc.pid}" in r.stderr and "pipeline run" in r.stderr
    finally:
        _stop(proc)
    r = _cli(["dedup", "compact", "--output", str(out)], tmp_path)  # free again: runs
    assert r.returncode == 0, r.stderr
    assert not (out / LOCK_NAME).exists()
