"""Where the benchmarks find real data that the repository does not ship.

One place, one variable: `CCPIPE_SHARED_DATA` (the directory holding `extraction/`,
`langid/`, `warc/`, ...). In a repository checkout the tests' default applies when it is unset
(`tests/real_data.py`); benchmarks that need real data say which variable to set when it is
missing, and `benchmarks.run` falls back to the shipped sample crawl.
"""

from __future__ import annotations

import os
from pathlib import Path

REAL_DATA_ENV = "CCPIPE_SHARED_DATA"


def real_data_dir() -> Path:
    """The configured real-data directory (it may not exist)."""
    value = os.environ.get(REAL_DATA_ENV)
    if value:
        return Path(value).expanduser().resolve()
    try:  # a repository checkout: the same default as the tests
        from tests.real_data import shared_data_dir
    except ImportError:
        return Path(os.devnull) / "unset"  # nowhere: callers report REAL_DATA_ENV
    return shared_data_dir()


def missing(path: Path) -> str:
    """The message for a real-data file that is not there."""
    return f"{path} not found: set {REAL_DATA_ENV} to the directory holding the real data"
