"""Lineage views over shards on object storage (s3://, gs://) for reader connections.

The stored views cover local files only. DuckDB reads s3:// natively only through its httpfs
extension, which it downloads on first use (impossible offline) and which has its own
credential settings. Instead, each reader connection registers pyarrow's filesystems, the
ones the pipeline wrote with, through fsspec's `ArrowFSWrapper`. The same AWS_* variables,
endpoints and credentials then apply. Temporary views over every live shard shadow the stored
empty ones, so `trace`, `explain` and ad-hoc SQL work on an s3:// run as they do on a local
one. Files are read lazily, column by column, only when a query touches a view.
Views read the output through globs (`<root>/data/*/*/*.parquet`), so they need no shard list.
"""

from __future__ import annotations

import logging

import duckdb

__all__ = ["attach_remote_views"]


def _wrapper_for(scheme: str, uri: str) -> object:
    """An fsspec filesystem for `scheme` backed by pyarrow's filesystem for `uri`."""
    from core import storage
    from lineage.duckdb_fs import PositionalArrowFS

    fs, _ = storage.resolve(uri)
    cls = type(f"Arrow{scheme.capitalize()}FS", (PositionalArrowFS,), {"protocol": scheme})
    return cls(fs)


def attach_remote_views(
    con: duckdb.DuckDBPyConnection, root: str, config: str | None = None
) -> list[str]:
    """Views over the published layout under an object-store output root `root`.

    Returns the schemes it registered. When a filesystem cannot be set up (missing
    credentials, unknown scheme), it says so on stderr and leaves the stored (empty) views.
    """
    from lineage.store import create_views

    scheme = root.split("://", 1)[0]
    try:
        con.register_filesystem(_wrapper_for(scheme, root))
        create_views(con, root, config=config, absolute=True, temporary=True)
    except Exception as exc:  # noqa: BLE001 - degrade to empty views, loudly
        logging.getLogger(__name__).warning(
            "lineage: shards on %s are not readable here (%s: %s); documents/rejections/"
            "duplicates are empty",
            scheme,
            type(exc).__name__,
            exc,
        )
        return []
    return [scheme]
