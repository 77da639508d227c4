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


def run_peer_datatrove(
    paths: list[str], tmp: Path, timeout_s: float, extract_timeout: float
) -> dict[str, Any]:
    """datatrove_peer.py in its own venv; an ``error`` key says why it could not run."""
    from stages.langid import default_model_path

    py = PEER_VENV / "bin" / "python"
    if not py.is_file():
        return {
            "engine": "datatrove",
            "error": f"peer venv missing: {PEER_VENV} (create it with "
            "`bash benchmarks/setup_datatrove.sh`; needs PyPI only)",
        }
    cmd = [
        str(py),
        str(PEER_SCRIPT),
        "--lid-model",
        default_model_path(),
        "--workdir",
        str(tmp / "datatrove"),
        "--timeout",
        str(extract_timeout),
    ]
    for p in paths:
        cmd += ["--input", p]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"engine": "datatrove", "error": f"timed out after {timeout_s:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("DATATROVE_RESULT "):
            out = json.loads(line.split(" ", 1)[1])
            shutil.rmtree(tmp / "datatrove", ignore_errors=True)
            return out
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"engine": "datatrove", "error": f"exit {proc.returncode}: " + " | ".join(tail)}
