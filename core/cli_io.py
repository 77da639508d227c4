"""Command-line plumbing shared by the CLIs: a closed stdout pipe ends the command quietly.

Why: `python -m lineage sql ... | head` closes the pipe early; Python then raises
BrokenPipeError on the next write and again when it flushes stdout at exit, printing a
traceback and "Exception ignored" noise. Here the rest of the output goes to /dev/null and the
command exits with 141 (128 + SIGPIPE), what a shell reports for a process killed by SIGPIPE.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

EXIT_BROKEN_PIPE = 141


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def run_cli(main: Callable[[], int | None]) -> int:
    """Run `main`, mapping a broken stdout pipe to a quiet exit 141; returns the exit status."""
    try:
        status = main()
        sys.stdout.flush()  # surface a broken pipe here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return int(status or 0)
