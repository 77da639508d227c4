"""The CLI never attaches to a Ray cluster it did not start, unless asked.

A second, foreign Ray head runs (its own temp dir, free ports, stopped by pid, never
`ray stop`), and the Ray temp dir of the CLI process names it in `ray_current_cluster`, as
`/tmp/ray` does after another user's `ray start`. The CLI must still use an embedded Ray:
no driver of ours shows up in the foreign head's logs. A stale `ray_current_cluster` (a dead
address) must not hang the run either.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.plan import ray_address

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_address_policy(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local"
    assert ray_address("ray://head:10001") == "ray://head:10001"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # what `ray job submit` sets
    assert ray_address(None) == "10.0.0.1:6379"
    assert ray_address("other:6379") == "other:6379"


@pytest.fixture
def short_tmp():
    """Ray's unix sockets live under its temp dir: keep the path short (AF_UNIX: 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="ccr", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def foreign_head():
    """A foreign Ray head; yields (gcs address, its temp dir). Killed by process group."""
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray_bin is None:
        pytest.skip("ray CLI not installed")
    temp = Path(tempfile.mkdtemp(prefix="ccf", dir="/tmp"))
    port = _free_port()
    ports = [str(_free_port()) for _ in range(6)]
    cmd = [
        ray_bin,
        "start",
        "--head",
        "--block",
        f"--temp-dir={temp}",
        f"--port={port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--node-manager-port={ports[0]}",
        f"--object-manager-port={ports[1]}",
        f"--ray-client-server-port={ports[2]}",
        f"--dashboard-agent-listen-port={ports[3]}",
        f"--dashboard-agent-grpc-port={ports[4]}",
        f"--metrics-export-port={ports[5]}",
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = open(temp / "head.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (temp / "ray_current_cluster").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"foreign ray head did not start: {(temp / 'head.log').read_text()}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", temp
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)  # `ray start --block` can sit on SIGTERM for 30 s: then SIGKILL
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _drivers(temp: Path) -> list[Path]:
    return [p for p in temp.glob("session_*/logs/python-core-driver-*")]


def _run_cli(tmp_path: Path, ray_tmpdir: Path) -> subprocess.CompletedProcess:
    sys.path.insert(0, str(REPO / "tests" / "faults"))
    from faultkit import cut_warc

    from pipeline.sample import sample_paths

    warc = cut_warc(sample_paths()[0], tmp_path / "small.warc.gz", 10)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(REPO), RAY_TMPDIR=str(ray_tmpdir))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(warc),
            "--output",
            str(tmp_path / "out"),
            "--workers",
            "1",
            "--engine",
            "ray",  # a 10-record run would otherwise run in-process and never start Ray
            "--quiet",
        ],
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=400,
    )


def test_cli_does_not_join_a_foreign_cluster(foreign_head, tmp_path, short_tmp):
    address, temp = foreign_head
    assert _drivers(temp) == []
    ray_tmpdir = short_tmp
    (ray_tmpdir / "ray").mkdir(parents=True)
    (ray_tmpdir / "ray" / "ray_current_cluster").write_text(address)  # names the foreign head
    r = _run_cli(tmp_path, ray_tmpdir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _drivers(temp) == [], "the CLI connected a driver to the foreign cluster"


@pytest.mark.slow
def test_stale_ray_current_cluster_does_not_hang(tmp_path, short_tmp):
    ray_tmpdir = short_tmp
    (ray_tmpdir / "ray").mkdir(parents=True)
    (ray_tmpdir / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")
    t = time.monotonic()
    r = _run_cli(tmp_path, ray_tmpdir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert time.monotonic() - t < 300
