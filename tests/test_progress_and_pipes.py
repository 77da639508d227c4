"""Progress through logging (a bar on a TTY, periodic lines otherwise) and quiet pipes."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.progress import Progress

REPO = Path(__file__).resolve().parents[1]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_non_tty_progress_is_periodic_log_lines(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="ccpipe.progress"):
        p = Progress("phase 1", total_files=4, every_s=0.2, total_bytes=400, stream=stream)
        p.update(files=1, records=1000, docs=300, file_bytes=100)
        time.sleep(0.7)  # the ticker logs while the driver waits, without update() calls
        p.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "ccpipe.progress"]
    assert lines[0] == "phase 1: 4 input files, 0.0 MB"
    ticks = [ln for ln in lines if "files 1/4" in ln]
    assert len(ticks) >= 3, lines  # >= 2 periodic + the final line
    last = ticks[-1]
    for part in ("records 1,000", "documents 300", "docs/s", "ETA "):
        assert part in last, last
    assert "ETA ?" not in last  # a quarter of the bytes is done: an estimate exists
    assert stream.getvalue() == "", "no bar drawing when stderr is not a terminal"


def test_tty_progress_redraws_one_line():
    stream = _Tty()
    p = Progress("phase 3", total_files=2, stream=stream)
    p.update(files=1, records=10, docs=5)
    time.sleep(1.2)
    p.close()
    out = stream.getvalue()
    assert out.count("\r") >= 2 and out.endswith("\n") and out.count("\n") == 1
    assert "files 2/2" not in out and "files 1/2" in out


def _shell(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", cmd],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_output_piped_into_head_ends_quietly():
    # `true` exits before Python writes (as `head` does after its lines on a long output)
    r = _shell(
        f"{sys.executable} -m pipeline config --reference | true; echo status=${{PIPESTATUS[0]}}"
    )
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert "status=141" in r.stdout, r.stdout
