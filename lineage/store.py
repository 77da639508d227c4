"""The lineage store: a DuckDB database that analysts query while runs write.

DuckDB lets one process hold a database file read-write and then nobody else may open it,
not even read-only. So the writer never touches the file analysts open:

- the driver writes into a private working copy (`<name>.writer.duckdb` next to it), one
  short transaction per commit (a work unit), and closes it;
- it publishes by copying the working file to a temporary name and atomically renaming it
  over the published file (`lineage.duckdb`): after every transaction by default, and at
  most every `publish_interval_s` seconds for a pipeline run's unit commits (plus always at
  run start and finish), so a commit's cost does not grow with the store.

A reader opens the published file read-only; a rename never changes a file a reader already
has open (POSIX keeps the old inode), so every reader sees a complete snapshot: never a lock
error, never half a commit. Document-level provenance stays in the Parquet shards; the
`documents` / `rejections` views read them through globs over the published layout
(`data/lang=*/bucket=*/*.parquet`, `_rejected/...`), defined once, not rebuilt per commit,
and filtered to live shards of one config (the latest run's, unless a reader asks for
another or for all). Paths in the store are relative to the output root, so a copied or
moved output is self-contained: readers resolve them against the copy (`output_root`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from core import storage
from lineage.schema import TABLES


def _fault(name: str) -> None:
    """Fault-injection hook (see core/faults.py); lineage stays importable without it."""
    if os.environ.get("CCPIPE_KILL_AT"):
        from core import faults

        faults.point(name)


# Views over shard files: the glob (relative to the output root) and the shard kind.
_VIEW_SOURCES = {
    "documents": "text",
    "rejections": "rejected",
}
_VIEW_GLOBS = {
    "documents": "data/*/*/*.parquet",
    "rejections": "_rejected/*/*/*.parquet",
}
# `filename` in the views is the shard's path relative to the output root (= shards.path),
# whatever root the files were read under.
_REL_FILENAME = r"regexp_extract(filename, '((data|_rejected)/[^/]*/[^/]*/[^/]*)$', 1) AS filename"
# The config a view shows by default: the latest run's.
LATEST_CONFIG = "(SELECT config_hash FROM runs ORDER BY started_at DESC LIMIT 1)"
_PROVENANCE = (
    "NULL::VARCHAR AS doc_id, NULL::VARCHAR AS warc_record_id, NULL::VARCHAR AS url, "
    "NULL::VARCHAR AS url_hash, "
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


# Columns added after the first schema version (older stores are migrated on open).
_MIGRATIONS = (
    "ALTER TABLE shards ADD COLUMN IF NOT EXISTS unit_id VARCHAR",
    "ALTER TABLE input_files ADD COLUMN IF NOT EXISTS unit_id VARCHAR",
)


def output_root(db_path: str | os.PathLike[str], con: duckdb.DuckDBPyConnection) -> str:
    """The output root that relative paths in this store are relative to.

    `meta.output_root` is `.` when the database lives in the output (the default for local
    outputs): the root is then the database's own directory, so a copied or moved output
    resolves every path inside the copy. Otherwise (object-store outputs, whose database
    lives on the driver) it is the output URI.
    """
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'output_root'").fetchone()
    except duckdb.Error:
        row = None
    if row is None or row[0] in (None, "", "."):
        return str(Path(db_path).resolve().parent)
    return str(row[0])


def resolve_path(root: str, path: str) -> str:
    """Absolute path / URI of a stored (relative) path; absolute legacy rows pass through."""
    if "://" in path or os.path.isabs(path):
        return path
    if "://" in root:
        return root.rstrip("/") + "/" + path
    return os.path.join(root, path)


def _has_files(root: str, pattern: str) -> bool:
    if "://" in root:
        return True  # probed by binding the view instead
    return next(glob.iglob(os.path.join(glob.escape(root), pattern)), None) is not None


def _config_filter(config: str | None) -> str:
    """SQL condition on `shards.config_hash`: latest run's (default), a hash prefix, or all."""
    if config is None:  # (no runs recorded: nothing to choose between)
        return f"({LATEST_CONFIG} IS NULL OR config_hash = {LATEST_CONFIG})"
    if config == ALL_CONFIGS:
        return "true"
    return "starts_with(config_hash, '" + config.replace("'", "''") + "')"


ALL_CONFIGS = "*"


class UnknownConfig(ValueError):
    """A `--config` prefix that names no config of this store, or more than one."""


def check_config(con: duckdb.DuckDBPyConnection, config: str) -> str:
    """The one config hash (`runs` / `shards.config_hash`) that prefix `config` names.

    Why: views filter with `starts_with(config_hash, prefix)`, so a typo answered every
    query with empty results and exit 0, and a short prefix could mix two configs.
    """
    try:
        known = [
            r[0]
            for r in con.execute(
                "SELECT config_hash FROM (SELECT config_hash, started_at FROM runs UNION ALL "
                "SELECT config_hash, NULL FROM shards) WHERE config_hash IS NOT NULL "
                "GROUP BY 1 ORDER BY max(started_at) DESC NULLS LAST, 1"
            ).fetchall()
        ]
    except duckdb.Error:  # not a lineage database (yet): no configs
        known = []
    matches = [h for h in known if config and h.startswith(config)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(known[:10]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
    if not matches:
        raise UnknownConfig(f"unknown config {config or repr(config)}; known: {listed or '(none)'}")
    raise UnknownConfig(
        f"config {config} is ambiguous: it starts {len(matches)} config hashes "
        f"({', '.join(matches[:10])}); give more characters"
    )


def create_views(
    con: duckdb.DuckDBPyConnection,
    root: str,
    *,
    config: str | None = None,
    absolute: bool = False,
    temporary: bool = False,
) -> None:
    """(Re)create the documents / rejections / duplicates views.

    `documents` and `rejections` read the published layout through globs (relative to the
    output root unless `absolute`; a relative glob needs `file_search_path` = root) and keep
    rows of live shards of `config` only (default: the latest run's config; `ALL_CONFIGS`
    for all). No files gives an empty view of the documented shape, so queries always bind.
    """
    kind_sql = "TEMP VIEW" if temporary else "VIEW"
    cond = _config_filter(config)
    for view, kind in _VIEW_SOURCES.items():
        pattern = _VIEW_GLOBS[view]
        src = resolve_path(root, pattern) if absolute else pattern
        body = None
        if _has_files(root, pattern):
            body = (
                f"SELECT * FROM (SELECT * EXCLUDE (filename), {_REL_FILENAME} FROM read_parquet("
                f"'{_q(src)}', filename = true, union_by_name = true, hive_partitioning = false))"
                f" WHERE filename IN (SELECT path FROM shards WHERE kind = '{kind}' AND "
                f"status = 'live' AND {cond})"
            )
            try:
                con.execute(f"CREATE OR REPLACE {kind_sql} {view} AS {body}")
                continue
            except duckdb.Error:
                if "://" not in root:
                    raise
        con.execute(
            f"CREATE OR REPLACE {kind_sql} {view} AS SELECT {_EMPTY_VIEW[view]} WHERE false"
        )
    # Dedup decisions: one archived file per run (few), listed in meta.
    rows = con.execute(
        "SELECT value FROM meta WHERE key LIKE 'dedup_decisions:%' AND ("
        + (
            "true"
            if config == ALL_CONFIGS
            else "substr(key, length('dedup_decisions:') + 1) IN (SELECT run_key FROM runs WHERE "
            f"{cond})"
        )
        + ") ORDER BY key"
    ).fetchall()
    files = [resolve_path(root, r[0]) for r in rows]
    files = [f for f in files if "://" in f or os.path.exists(f)]
    empty = f"SELECT {_EMPTY_VIEW['duplicates']} WHERE false"
    if files:
        lst = ", ".join(f"'{_q(f)}'" for f in files)
        try:
            con.execute(
                f"CREATE OR REPLACE {kind_sql} duplicates AS SELECT * FROM "
                f"read_parquet([{lst}], union_by_name = true)"
            )
            return
        except duckdb.Error:
            if "://" not in root:
                raise
            # object-store files: this (writer) connection has no filesystem for them and
            # must not download httpfs; reader connections bind them (lineage.remote_views)
    con.execute(f"CREATE OR REPLACE {kind_sql} duplicates AS {empty}")


def _output_root(db_path: str | os.PathLike[str], con: duckdb.DuckDBPyConnection) -> str:
    return output_root(db_path, con)


def _q(s: str) -> str:
    return s.replace("'", "''")


class LineageStore:
    """Writer side. One instance per driver process; every method is one short transaction.

    `publish_interval_s` > 0 publishes the snapshot at most that often (a pipeline run's
    unit commits); `publish()` and `close()` always publish. `output_root` (given by the
    pipeline) is recorded once, as `.` when the database lives in the output.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        publish_interval_s: float = 0.0,
        output_root: str | None = None,
    ):
        root_arg = output_root
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wpath = writer_path(self.path)
        self.publish_interval_s = publish_interval_s
        self._last_publish = 0.0
        self._dirty = False
        self._views_live: set[str] = set()
        if not self.wpath.exists() and self.path.exists():
            # Recover from a lost working copy: the published snapshot is the latest commit.
            shutil.copyfile(self.path, self.wpath)
        with self.connect() as con:
            for ddl in TABLES.values():
                con.execute(ddl)
            self._ensure_extra_tables(con)
            for ddl in _MIGRATIONS:
                con.execute(ddl)
            if root_arg is not None:
                here = str(self.path.resolve().parent)
                value = (
                    "." if "://" not in root_arg and os.path.abspath(root_arg) == here else root_arg
                )
                con.execute("INSERT OR REPLACE INTO meta VALUES ('output_root', ?)", [value])
            self.root = _output_root(self.path, con)
            self.refresh_views(con, force=True)
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
        """One atomic commit; the snapshot is published after it (see publish_interval_s)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                _fault("lineage.in_transaction")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            self._dirty = True
            due = time.monotonic() - self._last_publish >= self.publish_interval_s
            if due:
                self.refresh_views(con)
        _fault("lineage.before_publish")
        if due:
            self.publish()

    def refresh_views(self, con: duckdb.DuckDBPyConnection, force: bool = False) -> None:
        """Define the views once their files exist (cheap: a directory probe, no shard list)."""
        live = {v for v, g in _VIEW_GLOBS.items() if _has_files(self.root, g)}
        if force or live != self._views_live:
            con.execute(f"SET file_search_path = '{_q(self.root)}'")
            create_views(con, self.root, absolute=False)
            con.execute("RESET file_search_path")
            self._views_live = live

    def publish(self) -> None:
        """Atomically replace the published snapshot with the working copy."""
        with storage.atomic_path(self.path, hidden=True) as tmp:
            shutil.copyfile(self.wpath, tmp)
        self._last_publish = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        """Publish whatever a throttled publication left unpublished."""
        if self._dirty:
            with self.connect() as con:
                self.refresh_views(con)
            self.publish()

    # ---- convenience writers -------------------------------------------------------------
    @staticmethod
    def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]):
        """One INSERT ... SELECT over an Arrow table (executemany costs ~1 ms per row)."""
        if not rows:
            return
        import pyarrow as pa

        cols = list(rows[0].keys())
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ?",
                [table],
            ).fetchall()
        )
        data = pa.table({c: pa.array([r.get(c) for r in rows]) for c in cols})
        name = f"_rows_{uuid.uuid4().hex[:8]}"
        con.register(name, data)
        try:
            sel = ", ".join(f'CAST("{c}" AS {types.get(c, "VARCHAR")})' for c in cols)
            con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {sel} FROM {name}")
        finally:
            con.unregister(name)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.connect() as con:
            return con.execute(sql, params or []).fetchall()


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


def open_reader(
    path: str | os.PathLike[str], config: str | None = None, all_configs: bool = False
) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the published snapshot (never blocks a running writer).

    Views answer for one config: the latest run's by default, `config` (a config-hash
    prefix, `UnknownConfig` unless it names exactly one) if given, every config with
    `all_configs`. Relative paths resolve against the output root (`output_root`): the database's own directory for a local output, so a
    copy of an output reads only the copy. Shards on object storage get views through
    pyarrow's filesystems (`lineage.remote_views`).
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"lineage database not found: {path}")
    con = connect_snapshot(path)
    root = output_root(path, con)
    sel = ALL_CONFIGS if all_configs else config
    if sel is not None and sel != ALL_CONFIGS:
        try:
            check_config(con, sel)
        except UnknownConfig:
            con.close()
            raise
    if "://" in root:
        from lineage.remote_views import attach_remote_views

        attach_remote_views(con, root, config=sel)
        return con
    con.execute(f"SET file_search_path = '{_q(root)}'")
    try:
        create_views(con, root, config=sel, absolute=True, temporary=True)
    except duckdb.Error:  # not a lineage database (yet): plain connection
        pass
    return con
