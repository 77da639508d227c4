"""Where the tests find the real (not shipped) data: one environment variable.

The real files (CommonCrawl WARCs, damaged WARCs, labeled text) stay outside the repository.
Tests that need them use the `shared_data` fixture, which skips with a reason naming
`CCPIPE_SHARED_DATA` when the directory is absent; each capability they cover also has a test
on data the project generates, so a clean clone still tests all of it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = "CCPIPE_SHARED_DATA"
DEFAULT_SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data_dir() -> Path:
    """The configured real-data directory (may not exist)."""
    value = os.environ.get(SHARED_DATA_ENV)
    return Path(value).expanduser().resolve() if value else DEFAULT_SHARED_DATA.resolve()


def skip_reason() -> str:
    return (
        f"real test data not found at {shared_data_dir()}: set {SHARED_DATA_ENV} to the "
        "directory holding it (default: shared/data next to the repository)"
    )
