"""`ray job submit ... -- python -m jobs.run` against a real Ray head started for this module.

The head is a separate Ray instance (`ray start --head`) with its own temp dir and free ports,
so it never collides with the session's embedded Ray (this module does not use `ray_session`)
nor with other Ray instances on the machine. Teardown stops exactly the processes of this
head (by pid: everything whose command line names our temp dir, plus their children): `ray
stop` would kill every Ray process on the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from lineage.sandbox import open_analyst_connection

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "pipeline" / "sample" / "sample-00001.warc.gz"
VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_warc(src: Path, dst: Path, first: int, n: int) -> Path:
    """A valid small WARC: the warcinfo record + `n` records from `first` (one gzip member
    per record, as CommonCrawl writes them)."""
    import zlib

    data, members, pos = src.read_bytes(), [], 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        members.append(data[pos:end])
        pos = end
    dst.write_bytes(members[0] + b"".join(members[first : first + n]))
    return dst


def stop_head(temp_dir: str) -> None:
    """Terminate (then kill) the processes of the head that uses `temp_dir`, by pid."""
    import psutil

    me = psutil.Process()
    skip = {me.pid} | {p.pid for p in me.parents()}
    procs: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid not in skip and any(temp_dir in a for a in p.info["cmdline"] or []):
                procs[p.pid] = p
                for c in p.children(recursive=True):
                    procs[c.pid] = c
        except psutil.Error:
            continue
    for p in procs.values():
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The job's `python` must be this venv's python (a cluster image has it on PATH).
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # Local head on 127.0.0.1 only; token auth would need the token on both sides.
    env["RAY_AUTH_MODE"] = "disabled"
    env.pop("RAY_ADDRESS", None)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head with the dashboard (job API) on free ports: (dashboard URL, temp dir)."""
    temp_dir = tempfile.mkdtemp(prefix="ccrh_", dir="/tmp")  # short: unix socket paths
    dash = free_port()
    cmd = [
        RAY,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={free_port()}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        "--include-dashboard=true",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        "--num-cpus=2",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    try:
        p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            pytest.fail(f"ray start failed ({p.returncode}):\n{p.stderr[-3000:]}")
        yield f"http://127.0.0.1:{dash}", Path(temp_dir)
    finally:
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def submit(
    address: str, entrypoint: list[str], timeout: float = 420
) -> subprocess.CompletedProcess:
    """`ray job submit` (waits for the job), retrying while the head's agent is not up yet."""
    cmd = [
        RAY,
        "job",
        "submit",
        "--address",
        address,
        "--working-dir",
        str(REPO),
        "--runtime-env",
        str(REPO / "jobs" / "runtime_env.yaml"),
        "--",
        *entrypoint,
    ]
    deadline = time.monotonic() + timeout
    while True:
        p = subprocess.run(
            cmd,
            env=_env(),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=max(10.0, deadline - time.monotonic()),
        )
        out = p.stdout + p.stderr
        if "No available agent" in out and time.monotonic() < deadline - 60:
            time.sleep(3)
            continue
        return p


def test_runtime_env_spec_is_valid_for_ray():
    """The shipped runtime_env parses as a Ray RuntimeEnv, with the env vars workers need."""
    from ray.runtime_env import RuntimeEnv

    spec = yaml.safe_load((REPO / "jobs" / "runtime_env.yaml").read_text())
    RuntimeEnv(**spec)  # raises on unknown/invalid fields
    assert spec["env_vars"]["TOKENIZERS_PARALLELISM"] == "false"
    assert spec["env_vars"]["RAYON_NUM_THREADS"] == "1"
    assert ".git" in spec["excludes"]
    assert all(isinstance(v, str) for v in spec["env_vars"].values())


def test_submitted_job_runs_pipeline(ray_head, tmp_path):
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    warc = small_warc(SAMPLE, crawl / "job-part.warc.gz", 1, 45)
    out = tmp_path / "out"
    address, temp_dir = ray_head
    p = submit(
        address,
        [
            "python",
            "-m",
            "jobs.run",
            "--output",
            str(out),
            "--profile",
            "fast",
            "--quiet",
            str(warc),
        ],
    )
    log = p.stdout + p.stderr
    (tmp_path / "job1.log").write_text(log)
    assert p.returncode == 0, log[-4000:]
    assert re.search(r"Job 'raysubmit_\w+' succeeded", log), log[-4000:]
    # The driver connected to our head (RAY_ADDRESS set by Ray, not an embedded Ray) and
    # printed the summary.
    assert re.search(r"jobs\.run: RAY_ADDRESS=[\d.]+:\d+ ", log), log[-4000:]
    assert "inputs: 1 files (0 already committed, 1 processed)" in log
    # The code travelled as the working_dir package, without what runtime_env excludes.
    pkgs = [
        d
        for d in temp_dir.glob("session_*/runtime_resources/working_dir_files/_ray_pkg_*")
        if d.is_dir()
    ]
    assert pkgs, "no working_dir package on the head"
    assert (pkgs[0] / "jobs" / "run.py").is_file()
    assert not (pkgs[0] / ".git").exists() and not list(pkgs[0].rglob("__pycache__"))

    con = open_analyst_connection(out / "lineage.duckdb")  # glob views need the root
    try:
        runs = con.execute("SELECT kind, status, n_inputs FROM runs").fetchall()
        files = con.execute("SELECT source_uri, status, docs_kept FROM input_files").fetchall()
        shards = con.execute(
            "SELECT path, n_docs FROM shards WHERE kind = 'text' AND status = 'live'"
        ).fetchall()
    finally:
        con.close()
    assert runs == [("job", "succeeded", 1)]
    assert files[0][0] == str(warc) and files[0][1] == "committed" and files[0][2] > 0
    assert shards and sum(n for _, n in shards) == files[0][2]
    for path, _ in shards:
        assert (out / path).is_file() and not Path(path).is_absolute()
    # Tokens next to text shards, and the staging dir is gone.
    assert list(out.rglob("*.bin")) and list(out.rglob("*.idx"))
    assert not (out / "_work").exists() or not any((out / "_work").iterdir())

    # Submitting the same job again: the input is committed, nothing is reprocessed.
    p = submit(
        address,
        [
            "python",
            "-m",
            "jobs.run",
            "--output",
            str(out),
            "--profile",
            "fast",
            "--quiet",
            str(warc),
        ],
    )
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]
    assert "inputs: 1 files (1 already committed, 0 processed)" in log, log[-4000:]
    con = open_analyst_connection(out / "lineage.duckdb")  # glob views need the root
    try:
        assert con.execute("SELECT count(*) FROM input_files").fetchone() == (1,)
        ok = con.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'").fetchone()
        assert ok == (2,)
    finally:
        con.close()
