"""The token-shard inventory a mix is planned against: live token shards from lineage.

Split out of mixes/build.py: the one place mixes read shard rows and turn lineage paths
into files; no shard file is opened here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb

from mixes.config import MixError

#: A DuckDB database file has these bytes at offset 8 (after the header checksum).
_DUCKDB_MAGIC = b"DUCK"

SHARD_COLUMNS = (
    "shard_id",
    "path",
    "run_id",
    "lang",
    "quality_bucket",
    "crawl_id",
    "n_docs",
    "n_tokens",
    "token_dtype",
    "tokenizer_hash",
    "mirrors_shard",
    "version",
    "sha256",
)


def resolve_shard_path(path: str, root: str | os.PathLike[str] | None) -> str:
    """Where a lineage shard path is on disk: URIs and absolute paths as they are, relative
    paths (lineage records them relative to the output root) joined to `root`.

    The one place mixes turn lineage paths into files, so a moved or copied output (with its
    lineage) builds mixes over its own shards.
    """
    from lineage.store import resolve_path  # the store's one rule (URIs, absolute, relative)

    if root is None:
        return path
    return resolve_path(os.fspath(root), path)


def open_lineage(path: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """Read-only connection to a lineage snapshot, or a MixError naming what `path` is.

    Checked before `lineage.store.open_reader` so that a directory, a FIFO or a file that is
    not DuckDB is a one-line user error (exit 2) rather than an IsADirectoryError, a hang, or
    a DuckDB IOException that reads like a locked writer.
    """
    from lineage.store import open_reader

    p = Path(path)
    if not p.exists():
        raise MixError(f"lineage database not found: {p}")
    if p.is_dir():
        raise MixError(f"not a lineage database: {p} (a directory)")
    if not p.is_file():
        raise MixError(f"not a lineage database: {p} (not a regular file)")
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise MixError(f"cannot read lineage database {p}: {e.strerror or e}") from e
    if head[8:12] != _DUCKDB_MAGIC:
        raise MixError(f"not a lineage database: {p} (not a DuckDB file)")
    try:
        return open_reader(p)
    except duckdb.Error as e:  # e.g. written by an incompatible DuckDB version
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MixError(f"not a lineage database: {p} ({first})") from e


def read_token_shards(
    con: duckdb.DuckDBPyConnection, root: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Live token shards from lineage, one dict per shard, ordered by shard_id.

    `file` is the shard's `path` resolved against the output root `root`.
    """
    rows = con.execute(
        f"SELECT {', '.join(SHARD_COLUMNS)} FROM shards "
        "WHERE kind = 'tokens' AND status = 'live' ORDER BY shard_id"
    ).fetchall()
    out = [dict(zip(SHARD_COLUMNS, r, strict=True)) for r in rows]
    for s in out:
        s["file"] = resolve_shard_path(s["path"], root)
    return out


def prefix_of(path: str) -> str:
    """Megatron dataset prefix of a token shard: its path without `.bin`."""
    return path[: -len(".bin")] if path.endswith(".bin") else path
