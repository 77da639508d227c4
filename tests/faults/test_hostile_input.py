"""Hostile input (issue 19): symlink loops, huge URLs, same record id twice, reader parity."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.sample import sample_paths

REPO = Path(__file__).resolve().parents[2]


def _resolve_in_child(path: str, timeout: float = 60) -> list[str]:
    code = ("import sys; from pipeline.inputs import resolve_inputs; "
            "print('\\n'.join(f.uri for f in resolve_inputs([sys.argv[1]])))")
    try:
        r = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"resolving inputs under {path} did not finish in {timeout:.0f} s")
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


def test_symlink_loops_in_an_input_directory(tmp_path):
    """A loop (`sub/up -> ..`, `self -> .`) hung the listing or read files dozens of times;
    a second link to the same file is the same input."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    shutil.copy(sample_paths()[0], d / "a.warc.gz")
    os.symlink("..", d / "sub" / "up")
    os.symlink(str(d), d / "self")
    os.symlink("a.warc.gz", d / "alias.warc.gz")
    assert _resolve_in_child(str(d)) == [str((d / "a.warc.gz").resolve())]
