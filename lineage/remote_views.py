"""Lineage views over shards on object storage (s3://, gs://) for reader connections.

The stored views cover local files only. DuckDB reads s3:// natively only through its httpfs
extension, which it downloads on first use (impossible offline) and which has its own
credential settings. Instead, each reader connection registers pyarrow's filesystems, the
ones the pipeline wrote with, through fsspec's `ArrowFSWrapper`. The same AWS_* variables,
endpoints and credentials then apply. Temporary views over every live shard shadow the stored
empty ones, so `trace`, `explain` and ad-hoc SQL work on an s3:// run as they do on a local
one. Files are read lazily, column by column, only when a query touches a view.
"""

from __future__ import annotations

import logging

import duckdb

__all__ = ["attach_remote_views"]


def _wrapper_for(scheme: str, uri: str) -> object:
    """An fsspec filesystem for `scheme` backed by pyarrow's filesystem for `uri`."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    from core import storage

    fs, _ = storage.resolve(uri)
    cls = type(f"Arrow{scheme.capitalize()}FS", (ArrowFSWrapper,), {"protocol": scheme})
    return cls(fs)


def attach_remote_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Shadow the stored views with views over all live shards when some are remote.

    Returns the schemes it registered ([] when every shard is local). When a filesystem
    cannot be set up (missing credentials, unknown scheme), it says so on stderr and leaves
    the stored views, which then cover the local shards only.
    """
    from lineage.store import create_views, view_sources

    try:
        sources = view_sources(con, remote=True)
    except duckdb.Error:  # not a lineage database (yet): nothing to attach
        return []
    remote = {p.split("://", 1)[0]: p for ps in sources.values() for p in ps if "://" in p}
    if not remote:
        return []
    try:
        for scheme, uri in sorted(remote.items()):
            con.register_filesystem(_wrapper_for(scheme, uri))
        create_views(con, sources, temporary=True)
    except Exception as exc:  # noqa: BLE001 - degrade to local views, loudly
        logging.getLogger(__name__).warning(
            "lineage: shards on %s are not readable here (%s: %s); documents/rejections/"
            "duplicates cover local shards only", ", ".join(sorted(remote)),
            type(exc).__name__, exc)
        return []
    return sorted(remote)
