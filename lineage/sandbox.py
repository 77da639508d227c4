"""Read-only analyst sessions: the one way analyst-facing code opens the lineage store.

`python -m lineage sql`, the other lineage verbs and the notebook helpers run whatever SQL a
person types. A plain DuckDB connection would let that SQL read any file (`read_text`), write
anywhere (`COPY ... TO`, over shards too), attach the writer database read-write (and delete
`url_blocklist` rows, bringing deleted pages back) or install extensions. An analyst
connection instead:

- opens a pinned snapshot of the published database read-only (`store.connect_snapshot`), so
  tables cannot change (`CREATE TABLE`, `DELETE`, `ATTACH ... READ_WRITE` of the same file fail);
- reads shard files only through a read-only filesystem (`ccpipe-ro-file://`, `ccpipe-ro-s3://`
  ...) that opens, lists and globs only the output's `data/`, `_rejected/` and `_dedup/`
  folders (what the `documents` / `rejections` / `duplicates` views read) and refuses every
  write and every other path;
- then sets `enable_external_access = false` (no other file, no `COPY`, `EXPORT`, `INSTALL`,
  `LOAD`, no new database), allows only those read-only protocols, turns off extension
  autoloading and sets `lock_configuration = true` (no `SET`/`RESET`/`PRAGMA` that changes a
  setting).
- bounds resources before the lock, so analyst SQL cannot lift them: `memory_limit`, `threads`
  and no spilling (`temp_directory = ''`: a query over the limit fails with DuckDB's
  out-of-memory error instead of filling a disk). `fetch_bounded` adds a wall-clock timeout
  (a timer that interrupts the connection) and a cap on the rows fetched.

The one normaliser's SQL functions (`url_host`, `url_hash`, `url_normalize`, `url_domain`;
lineage/blocklist.py) are registered before the lock. DuckDB enforces all of this itself, so
it holds for `con.cursor()` and anything else reached from the connection.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

__all__ = [
    "open_analyst_connection",
    "fetch_bounded",
    "check_memory_limit",
    "QueryTimeout",
    "RO_PREFIX",
    "SandboxViolation",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_THREADS",
]

RO_PREFIX = "ccpipe-ro-"
# Resource bounds of an analyst session: one careless cross join must not take the machine
# (a 3M x 3M join reached 8.5 GB in 30 s unbounded).
DEFAULT_MEMORY_LIMIT = "2GB"
DEFAULT_THREADS = min(4, os.cpu_count() or 1)
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)$", re.IGNORECASE)


class SandboxViolation(PermissionError):
    """An analyst session tried to touch a file it may not."""


def _read_only_fs(scheme: str, inner: Any, prefixes: tuple[str, ...]) -> Any:
    """An fsspec filesystem over `inner` that reads, lists and globs only under `prefixes`
    (the output's data, audit and dedup-decision folders) and refuses every write."""
    from lineage.duckdb_fs import PositionalArrowFS

    protocol = RO_PREFIX + scheme

    class ReadOnlyFS(PositionalArrowFS):
        @classmethod
        def _strip_protocol(cls, path: str) -> str:
            # fsspec's default would split an object-store URI into host and path.
            path = str(path)
            return path.split("://", 1)[1] if "://" in path else path

        def _check(self, path: str) -> str:
            p = self._strip_protocol(path)
            parts = p.split("/")
            if ".." in parts or not any(p == x.rstrip("/") or p.startswith(x) for x in prefixes):
                raise SandboxViolation(
                    f"analyst session: {path} is not a file of this output's views"
                )
            return p

        def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
            if any(m in mode for m in "wax+"):
                raise SandboxViolation(f"analyst session is read-only: cannot write {path}")
            return super()._open(self._check(path), mode, *args, **kwargs)

        def info(self, path: str, **kwargs: Any) -> Any:
            return super().info(self._check(path), **kwargs)

        def ls(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
            return super().ls(self._check(path), detail=detail, **kwargs)

        def glob(self, path: str, **kwargs: Any) -> Any:
            return super().glob(self._check(path), **kwargs)

        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise SandboxViolation("analyst session is read-only")

        rm = rm_file = _rm = mkdir = makedirs = mv = cp_file = copy = put_file = _refuse
        touch = rmdir = pipe_file = _refuse

    cls = type(f"ReadOnly{scheme.capitalize()}FS", (ReadOnlyFS,), {"protocol": protocol})
    return cls(inner)


# Folders under the output root an analyst may read (the views' files).
READABLE = ("data/", "_rejected/", "_dedup/")


def check_memory_limit(value: str) -> str:
    """`2GB`, `500 MiB`...; refused otherwise (the value goes into a SET statement)."""
    if not _MEMORY.match(value.strip()):
        raise ValueError(f"memory limit {value!r}: give a size such as 2GB or 500MB")
    return value.strip()


def open_analyst_connection(
    path: str | os.PathLike[str],
    config: str | None = None,
    all_configs: bool = False,
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int = DEFAULT_THREADS,
) -> duckdb.DuckDBPyConnection:
    """A locked-down, read-only DuckDB connection to the lineage snapshot at `path`.

    Only the lineage tables and the output's data files (the folders behind the views) can
    be read; see the module docstring for what is refused and why. Views answer for one
    config as `store.open_reader`'s do (`config`, `all_configs`; `store.UnknownConfig` for a
    prefix that names no config or several). Normal queries, the named
    queries and the documented examples work unchanged. `memory_limit` and `threads` bound
    the session; they are set before the configuration is locked, so its SQL cannot raise
    them.
    """
    memory_limit = check_memory_limit(memory_limit)
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if not Path(path).exists():
        raise FileNotFoundError(f"lineage database not found: {path}")
    from lineage.blocklist import register_url_functions
    from lineage.store import (
        ALL_CONFIGS,
        check_config,
        connect_snapshot,
        create_views,
        output_root,
    )

    con = connect_snapshot(path)
    try:
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(f"SET threads = {int(threads)}")
        # No spilling: a query over the limit fails instead of writing temp files.
        con.execute("SET temp_directory = ''")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        register_url_functions(con)
        root = output_root(path, con).rstrip("/")
        if "://" in root:
            from core import storage

            scheme = root.split("://", 1)[0]
            inner = storage.resolve(root + "/")[0]
            base = root.split("://", 1)[1]
        else:
            import pyarrow.fs as pafs

            scheme, inner, base = "file", pafs.LocalFileSystem(), os.path.abspath(root)
        prefixes = tuple(f"{base}/{d}" for d in READABLE)
        con.register_filesystem(_read_only_fs(scheme, inner, prefixes))
        ro_root = f"{RO_PREFIX}{scheme}://{base}"
        sel = ALL_CONFIGS if all_configs else config
        if sel is not None and sel != ALL_CONFIGS:
            check_config(con, sel)  # UnknownConfig: a typo must not answer "nothing"
        try:
            create_views(con, ro_root, config=sel, absolute=True, temporary=True)
        except duckdb.Error:  # not a lineage database (yet): tables only
            pass
        con.execute(f"SET allowed_directories = ['{RO_PREFIX}{scheme}://']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


class QueryTimeout(TimeoutError):
    """An analyst query ran past its wall-clock limit and was interrupted."""


def fetch_bounded(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    timeout_s: float,
    max_rows: int,
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """(columns, at most `max_rows` rows, whether more rows exist) of one query.

    Why: DuckDB has no statement timeout and `fetchall` materialises any result in Python
    memory. A timer interrupts the connection after `timeout_s` (raises `QueryTimeout`), and
    only `max_rows + 1` rows are fetched from the streaming result.
    """
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        cur = con.execute(sql, params) if params else con.execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchmany(max_rows + 1) if cols else []
    except duckdb.Error as e:
        if fired.is_set():
            raise QueryTimeout(f"query took longer than {timeout_s:g} s") from e
        raise
    finally:
        timer.cancel()
    return cols, rows[:max_rows], len(rows) > max_rows
