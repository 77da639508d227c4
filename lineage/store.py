"""The lineage store: a DuckDB database that analysts query while runs write.

DuckDB lets one process hold a database file read-write and then nobody else may open it,
not even read-only. So the writer never touches the file analysts open:

- the driver writes into a private working copy (`<name>.writer.duckdb` next to it), one
  short transaction per commit, and closes it;
- after every commit it copies the working file to a temporary name and atomically renames it
  over the published file (`lineage.duckdb`).

A reader opens the published file read-only; a rename never changes a file a reader already
has open (POSIX keeps the old inode), so every reader sees a complete snapshot: never a lock
error, never half a commit. Document-level provenance stays in the Parquet shards; the
database holds per-run / per-file / per-shard rows and views over the shard files, so it stays
small (about 1 KB per shard) and the copy per commit is cheap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from lineage.schema import TABLES


def _fault(name: str) -> None:
    """Fault-injection hook (see core/faults.py); lineage stays importable without it."""
    if os.environ.get("CCPIPE_KILL_AT"):
        from core import faults

        faults.point(name)

# Views over shard files. Rebuilt after each commit from the live shard list in `shards`.
_VIEW_SOURCES = {
    "documents": "text",
    "rejections": "rejected",
}
_PROVENANCE = (
    "NULL::VARCHAR AS doc_id, NULL::VARCHAR AS warc_record_id, NULL::VARCHAR AS url, "
    "NULL::TIMESTAMPTZ AS warc_date, NULL::VARCHAR AS crawl_id, NULL::VARCHAR AS source_uri, "
    "NULL::BIGINT AS source_offset, NULL::BIGINT AS source_length, "
    "NULL::VARCHAR AS content_type, NULL::VARCHAR AS lang, NULL::FLOAT AS lang_score, "
    "NULL::VARCHAR AS quality_bucket, NULL::VARCHAR AS text"
)
# Column shapes of the views while no shard exists yet, so documented queries always bind.
_EMPTY_VIEW = {
    "documents": _PROVENANCE + ", NULL::INTEGER AS http_status, NULL::VARCHAR AS charset, "
    "NULL::UBIGINT AS text_hash, NULL::INTEGER AS n_tokens, NULL::BIGINT AS token_start, "
    "NULL::BIGINT AS shard_row, NULL::VARCHAR AS pii_counts, NULL::VARCHAR AS filename",
    "rejections": _PROVENANCE + ", NULL::VARCHAR AS drop_stage, NULL::VARCHAR AS drop_reason, "
    "NULL::VARCHAR AS drop_detail, NULL::VARCHAR AS cluster_id, "
    "NULL::VARCHAR AS keeper_doc_id, NULL::VARCHAR AS filename",
    "duplicates": "NULL::VARCHAR AS doc_id, NULL::VARCHAR AS reason, NULL::UBIGINT AS "
    "cluster_id, NULL::VARCHAR AS keeper_doc_id",
}


def writer_path(published: str | os.PathLike[str]) -> Path:
    p = Path(published)
    return p.with_name(p.stem + ".writer" + p.suffix)


class LineageStore:
    """Writer side. One instance per driver process; every method is one short transaction."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wpath = writer_path(self.path)
        if not self.wpath.exists() and self.path.exists():
            # Recover from a lost working copy: the published snapshot is the latest commit.
            shutil.copyfile(self.path, self.wpath)
        with self.connect() as con:
            for ddl in TABLES.values():
                con.execute(ddl)
            self._ensure_extra_tables(con)
            self._rebuild_views(con)
        self.publish()

    def _ensure_extra_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        """Hook for other lineage modules (mixes, deletions) to add their tables."""
        from lineage import extra_tables

        for ddl in extra_tables.DDL:
            con.execute(ddl)

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(str(self.wpath))
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic commit; the snapshot is published after it succeeds."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                _fault("lineage.in_transaction")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._rebuild_views(con)
        _fault("lineage.before_publish")
        self.publish()

    def publish(self) -> None:
        """Atomically replace the published snapshot with the working copy."""
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            shutil.copyfile(self.wpath, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _rebuild_views(self, con: duckdb.DuckDBPyConnection) -> None:
        # Stored views cover local files only: a view over s3:// paths would fail in any
        # connection that has not registered a filesystem for them (see `open_reader`).
        create_views(con, view_sources(con, remote=False))

    # ---- convenience writers -------------------------------------------------------------
    @staticmethod
    def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]):
        if not rows:
            return
        cols = list(rows[0].keys())
        placeholders = ", ".join("?" for _ in cols)
        con.executemany(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({placeholders})",
            [[r.get(c) for c in cols] for r in rows],
        )

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.connect() as con:
            return con.execute(sql, params or []).fetchall()


def view_sources(con: duckdb.DuckDBPyConnection, remote: bool) -> dict[str, list[str]]:
    """Files behind each view: live text / rejected shards, and archived dedup decisions.

    Local files that no longer exist are left out; object-store URIs only with `remote`.
    """
    out = {
        view: [r[0] for r in con.execute(
            "SELECT path FROM shards WHERE kind = ? AND status = 'live' ORDER BY path", [kind]
        ).fetchall()]
        for view, kind in _VIEW_SOURCES.items()
    }
    out["duplicates"] = [r[0] for r in con.execute(
        "SELECT value FROM meta WHERE key LIKE 'dedup_decisions:%' ORDER BY key"
    ).fetchall()]
    return {v: [p for p in ps if ("://" in p and remote) or ("://" not in p and os.path.exists(p))]
            for v, ps in out.items()}


def create_views(con: duckdb.DuckDBPyConnection, paths: dict[str, list[str]],
                 temporary: bool = False) -> None:
    """(Re)create the documents / rejections / duplicates views over `paths`.

    No files gives an empty view of the documented shape, so queries never fail to bind.
    """
    kind = "TEMP VIEW" if temporary else "VIEW"
    for view, files in paths.items():
        if files:
            lst = ", ".join("'" + p.replace("'", "''") + "'" for p in files)
            opts = "union_by_name = true" if view == "duplicates" else (
                "filename = true, union_by_name = true")
            body = f"SELECT * FROM read_parquet([{lst}], {opts})"
        else:
            body = f"SELECT {_EMPTY_VIEW[view]} WHERE false"
        con.execute(f"CREATE OR REPLACE {kind} {view} AS {body}")


def connect_snapshot(path: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """Read-only DuckDB connection to the snapshot that `path` names right now.

    Why not `duckdb.connect(path)`: DuckDB opens the file three times while connecting (magic
    bytes, headers, then blocks). A publish (rename over `path`) between two of those opens
    hands it the headers of one snapshot and the blocks of another; CI saw "Could not read
    enough bytes from file". A private hard link to the current inode pins one snapshot (where
    the directory is not writable, a private copy does); it is removed as soon as DuckDB has
    its file open, and the unique path also keeps DuckDB's per-path instance cache from
    handing back an older snapshot.
    """
    src = Path(path)
    pin_dir: Path | None = None
    try:
        if os.access(src.parent, os.W_OK):
            try:
                pin_dir = Path(tempfile.mkdtemp(prefix=f".{src.name}.reader-", dir=src.parent))
                os.link(src, pin_dir / src.name)
            except OSError:  # no hard links here (some mounts): fall back to a copy
                if pin_dir is not None:
                    shutil.rmtree(pin_dir, ignore_errors=True)
                pin_dir = None
        if pin_dir is None:
            pin_dir = Path(tempfile.mkdtemp(prefix="ccpipe-lineage-reader-"))
            shutil.copyfile(src, pin_dir / src.name)  # one open of the source: one snapshot
        return duckdb.connect(str(pin_dir / src.name), read_only=True)
    finally:
        if pin_dir is not None:
            shutil.rmtree(pin_dir, ignore_errors=True)


def open_reader(path: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the published snapshot (never blocks a running writer).

    When shards live on object storage, the connection also gets views over them
    (`lineage.remote_views`), so analysts query s3:// runs like local ones.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"lineage database not found: {path}")
    con = connect_snapshot(path)
    from lineage.remote_views import attach_remote_views

    attach_remote_views(con)
    return con
