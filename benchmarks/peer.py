"""The peer run of ``python -m benchmarks.run --peer datatrove``: datatrove in its own venv.

Split out of benchmarks/run.py; the peer never shares our interpreter (its dependencies clash).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-datatrove"
PEER_SCRIPT = HERE / "datatrove_peer.py"


def peer_missing() -> str | None:
    """Why the peer cannot run here, or None."""
    if not (PEER_VENV / "bin" / "python").is_file():
        return (
            f"peer venv missing: {PEER_VENV} (create it with "
            "`bash benchmarks/setup_datatrove.sh`; needs PyPI only)"
        )
    return None


def peer_command(
    paths: list[str], workdir: Path, extract_timeout: float
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of one datatrove_peer.py run in the peer's venv."""
    from stages.langid import default_model_path

    cmd = [
        str(PEER_VENV / "bin" / "python"),
        str(PEER_SCRIPT),
        "--lid-model",
        default_model_path(),
        "--workdir",
        str(workdir),
        "--timeout",
        str(extract_timeout),
    ]
    for p in paths:
        cmd += ["--input", p]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return cmd, env


def parse_peer_output(stdout: str) -> dict[str, Any] | None:
    """The peer's result line, or None."""
    for line in stdout.splitlines():
        if line.startswith("DATATROVE_RESULT "):
            return json.loads(line.split(" ", 1)[1])
    return None


def run_peer_datatrove(
    paths: list[str], tmp: Path, timeout_s: float, extract_timeout: float
) -> dict[str, Any]:
    """datatrove_peer.py in its own venv; an ``error`` key says why it could not run."""
    missing = peer_missing()
    if missing:
        return {"engine": "datatrove", "error": missing}
    cmd, env = peer_command(paths, tmp / "datatrove", extract_timeout)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"engine": "datatrove", "error": f"timed out after {timeout_s:.0f} s"}
    out = parse_peer_output(proc.stdout)
    if out is not None:
        shutil.rmtree(tmp / "datatrove", ignore_errors=True)
        return out
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"engine": "datatrove", "error": f"exit {proc.returncode}: " + " | ".join(tail)}
