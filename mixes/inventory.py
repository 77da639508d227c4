"""The token-shard inventory a mix is planned against: live token shards from lineage.

Split out of mixes/build.py: the one place mixes read shard rows and turn lineage paths
into files; no shard file is opened here.
"""

from __future__ import annotations

import os
from typing import Any

import duckdb

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
