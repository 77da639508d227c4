"""Where the lineage database lives, for local and object-store outputs.

DuckDB writes only to a POSIX file (it cannot write to s3://). For a local (or shared-mount)
output the database lives in the output. For an object-store output it lives on a POSIX path
of the driver's node (`output.lineage_path`, else `$CCPIPE_LINEAGE_DIR/<hash of the output
URI>/lineage.duckdb`, else the same under `~/.cache/ccpipe/lineage/`), and every run mirrors
the published snapshot to `<output>/_lineage/lineage.duckdb` when it ends (success or
failure). A driver that starts without a local copy (new head node, fresh pod) first restores
it from that mirror, so "skip what is committed" survives the loss of the driver's disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from core import storage

MIRROR_NAME = "_lineage/lineage.duckdb"


_log = logging.getLogger("ccpipe.lineage_location")


def log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        _log.info("%s", msg)


def default_lineage_path(output: str) -> str:
    """POSIX path of the lineage DB for `output` (see the module docstring)."""
    if not storage.is_remote(output):
        return os.path.join(os.path.abspath(output), "lineage.duckdb")
    root = os.environ.get("CCPIPE_LINEAGE_DIR") or str(
        Path.home() / ".cache" / "ccpipe" / "lineage"
    )
    key = hashlib.sha256(output.rstrip("/").encode()).hexdigest()[:12]
    return os.path.join(os.path.abspath(root), key, "lineage.duckdb")


def mirror_uri(output: str) -> str:
    return storage.join(output.rstrip("/"), MIRROR_NAME)


def restore_lineage(output: str, lineage_path: str, quiet: bool = False) -> bool:
    """Fetch the object-store mirror when the driver has no local lineage yet."""
    if not storage.is_remote(output):
        return False
    from lineage.store import writer_path

    local = Path(lineage_path)
    if local.exists() or writer_path(local).exists():
        return False
    mirror = mirror_uri(output)
    if not storage.exists(mirror):
        return False
    local.parent.mkdir(parents=True, exist_ok=True)
    storage.write_bytes_atomic(str(local), storage.read_bytes(mirror))
    log(f"lineage: restored {local} from {mirror}", quiet)
    return True


def publish_lineage(output: str, lineage_path: str, quiet: bool = False) -> str | None:
    """Copy the published lineage snapshot next to an object-store output (one atomic PUT)."""
    if not storage.is_remote(output) or not os.path.exists(lineage_path):
        return None
    mirror = mirror_uri(output)
    try:
        storage.write_bytes_atomic(mirror, Path(lineage_path).read_bytes())
    except OSError as exc:  # the local copy is intact; the next run mirrors again
        log(f"warning: lineage mirror to {mirror} failed: {exc}")
        return None
    log(f"lineage: mirrored {lineage_path} to {mirror}", quiet)
    return mirror
