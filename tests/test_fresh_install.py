"""README command 1, verbatim, on a fresh copy of the repository with a fresh venv and the pip
that `python3 -m venv` ships (no upgrade): it installs, processes the sample crawl and prints
the summary the README promises. .ci/run does the same install on every CI run; this test
runs the README's exact command line (slow: a full dependency install, ~5-10 min)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from readme_check import check  # noqa: E402


def readme_command(n: int) -> str:
    """The n-th (1-based) command of the README's "Two commands" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.S)[n - 1].strip()


def _copy_clone(dest: Path) -> None:
    """The files a clone would have (tracked + new, not ignored), nothing else."""
    names = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, names):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def test_readme_command_1_names_the_stock_steps():
    cmd = readme_command(1)
    assert cmd.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e .")
    assert "upgrade" not in cmd and cmd.endswith("python -m pipeline run --output out")


@pytest.mark.slow
def test_readme_command_1_on_a_fresh_venv(tmp_path):
    clone = tmp_path / "ccpipe"
    clone.mkdir()
    _copy_clone(clone)
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "RAY_ADDRESS")
    }
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not p.startswith(sys.prefix))
    with open(clone / "stdout.txt", "wb") as out, open(clone / "stderr.txt", "wb") as err:
        r = subprocess.run(
            ["bash", "-c", readme_command(1)],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=err,
            timeout=3600,
        )
    stderr = (clone / "stderr.txt").read_text(errors="replace")
    assert r.returncode == 0, stderr[-5000:]
    pip_version = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
    ).stdout
    bundled = subprocess.run(
        ["python3", "-c", "import ensurepip; print(ensurepip.version())"],
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    assert pip_version.split()[1] == bundled, (pip_version, bundled)  # pip was not upgraded
    assert check(clone) == [], stderr[-3000:]
