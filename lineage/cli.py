"""`python -m lineage <verb>`: trace, explain, diff, delete, sql, queries.

Plain aligned text by default, `--json` for machines. User errors (missing database, unknown
document or run, bad SQL) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import duckdb

DEFAULT_DB = "lineage.duckdb"


EXIT_LOCKED = 75  # sysexits.h EX_TEMPFAIL, as `pipeline run`: the output is locked, retry later


class UserError(Exception):
    """Printed as one line; exit status 2."""


# ---- formatting ------------------------------------------------------------------------------
def _jsonable(v: Any) -> Any:
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return int(v) if v == int(v) else float(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(_jsonable(v))


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned text columns; numbers right-aligned."""
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(r[i], (int, float, decimal.Decimal)) or r[i] is None for r in rows)
        and bool(rows)
        for i in range(len(columns))
    ]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(vals, widths, numeric, strict=True)
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def format_kv(pairs: Sequence[tuple[str, Any]], indent: str = "") -> str:
    w = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{indent}{k.ljust(w)}  {_cell(v)}".rstrip() for k, v in pairs)


def _emit_json(obj: Any) -> None:
    print(json.dumps(_jsonable(obj), indent=1, sort_keys=False))


# ---- database ------------------------------------------------------------------------------------
def error_line(e: BaseException) -> str:
    """One meaningful line of a DuckDB error. An error raised inside a Python filesystem (the
    analyst sandbox's refusals) arrives as a whole traceback: use its last line."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if lines and lines[0].startswith("Traceback"):
        tail = [ln for ln in lines if "Error:" in ln or "Violation:" in ln]
        return tail[-1] if tail else lines[-1]
    return lines[0] if lines else type(e).__name__


def resolve_db(args: argparse.Namespace) -> str:
    """--lineage, else --output/lineage.duckdb, else $CCPIPE_LINEAGE, else ./lineage.duckdb.

    For an object-store --output (s3://...): the driver's local copy when this machine has
    it, else a fresh download of the snapshot every run mirrors to <output>/_lineage/.
    """
    if getattr(args, "lineage", None):
        return args.lineage
    if getattr(args, "output", None):
        return _output_db(args.output)
    return os.environ.get("CCPIPE_LINEAGE") or DEFAULT_DB


def _output_db(output: str) -> str:
    from core import storage
    from lineage.location import default_lineage_path, mirror_uri

    if not storage.is_remote(output):
        return os.path.join(output, DEFAULT_DB)
    local = default_lineage_path(output)
    if os.path.exists(local):
        return local
    mirror = mirror_uri(output)
    try:
        data = storage.read_bytes(mirror)
    except (OSError, ValueError) as e:
        raise UserError(f"no lineage for {output}: cannot read {mirror} ({e})") from e
    copy = os.path.join(os.path.dirname(local), "reader-copy", DEFAULT_DB)
    storage.write_bytes_atomic(copy, data)
    print(f"lineage: reading the snapshot mirrored at {mirror}", file=sys.stderr)
    return copy


def _reader(args: argparse.Namespace) -> duckdb.DuckDBPyConnection:
    """Every verb reads through the analyst sandbox: read-only, files of the views only."""
    from lineage.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_THREADS, open_analyst_connection

    path = resolve_db(args)
    if not os.path.exists(path):
        raise UserError(f"lineage database not found: {path} (use --lineage DB or --output DIR)")
    try:
        return open_analyst_connection(
            path,
            config=getattr(args, "config", None),
            all_configs=bool(getattr(args, "all_configs", False)),
            memory_limit=getattr(args, "memory_limit", None) or DEFAULT_MEMORY_LIMIT,
            threads=getattr(args, "threads", None) or DEFAULT_THREADS,
        )
    except ValueError as e:
        raise UserError(str(e)) from e
    except duckdb.Error as e:
        raise UserError(f"cannot open lineage database {path}: {error_line(e)}") from e


# ---- verbs -------------------------------------------------------------------------------------
def cmd_trace(args: argparse.Namespace) -> int:
    from lineage.trace import describe, fetch, trace

    con = _reader(args)
    try:
        items = trace(con, args.key)
        gone = (
            None
            if items
            else con.execute(
                "SELECT deletion_id, requested_at, old_shard_id FROM deletions "
                "WHERE doc_id = ? OR url = ? ORDER BY requested_at LIMIT 1",
                [args.key.strip(), args.key.strip()],
            ).fetchone()
        )
    finally:
        con.close()
    if gone:
        raise UserError(
            f"{args.key!r} was deleted from {gone[2]} by deletion request {gone[0]} at {gone[1]}"
        )
    if not items:
        raise UserError(
            f"no document with doc_id or URL {args.key!r} in this lineage "
            "(try: python -m lineage explain URL)"
        )
    if args.fetch:
        for it in items:
            try:
                it["fetched"] = fetch(it)
            except (OSError, ValueError) as e:
                it["fetched"] = {"error": f"{type(e).__name__}: {e}"}
    if args.json:
        _emit_json(items)
        return 0
    blocks = []
    for it in items:
        text = format_kv(describe(it))
        f = it.get("fetched")
        if f:
            if "error" in f:
                text += f"\nfetch failed: {f['error']}"
            else:
                text += "\n\nWARC headers (re-read from the byte range):\n"
                text += format_kv(list(f["warc_headers"].items()), "  ")
                text += "\nHTTP headers:\n" + format_kv(list(f["http_headers"].items()), "  ")
                text += f"\nbody: {f['body_bytes']} bytes"
        blocks.append(text)
    print("\n\n".join(blocks))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from lineage.explain import explain, render

    con = _reader(args)
    try:
        info = explain(con, args.url)
    finally:
        con.close()
    if args.json:
        _emit_json(info)
    else:
        print("\n".join(render(info)))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from lineage.diff import UnknownRun, diff_runs

    con = _reader(args)
    try:
        d = diff_runs(con, args.run_a, args.run_b)
    except UnknownRun as e:
        raise UserError(str(e)) from e
    finally:
        con.close()
    if args.json:
        _emit_json(d)
        return 0
    print(f"a = {d['run_a']}\nb = {d['run_b']}\n")
    print(
        format_table(
            ["", "a", "b"],
            [[k, v["a"], v["b"]] for k, v in d["header"].items()]
            + [
                [
                    "files / records / kept",
                    " / ".join(map(str, d["files"]["a"])),
                    " / ".join(map(str, d["files"]["b"])),
                ]
            ],
        )
    )
    print("\nconfig differences:")
    if d["config"]:
        print(
            format_table(
                ["key", "a", "b"],
                [[c["key"], json.dumps(c["a"]), json.dumps(c["b"])] for c in d["config"]],
            )
        )
    else:
        print("  (none)")
    print("\ncounts per stage and reason (files committed by each run):")
    print(
        format_table(
            ["stage", "reason", "a", "b", "delta"],
            [[c["stage"], c["reason"], c["a"], c["b"], c["delta"]] for c in d["counts"]],
        )
    )
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from core import storage
    from lineage.delete import DeletionError, UrlFileError, delete_documents, read_url_file
    from lineage.location import default_lineage_path, publish_lineage

    remote_output = bool(getattr(args, "output", None)) and storage.is_remote(args.output)
    if remote_output and not args.lineage:
        # Never the downloaded mirror: a deletion recorded only in a copy would be lost, and
        # its URLs would come back in the next nightly run.
        path = default_lineage_path(args.output)
        if not os.path.exists(path):
            raise UserError(
                f"the lineage of {args.output} is not on this machine ({path}); run "
                "delete on the driver's node or pass --lineage DB"
            )
    else:
        path = resolve_db(args)
    if not os.path.exists(path):
        raise UserError(f"lineage database not found: {path} (use --lineage DB or --output DIR)")
    if args.urls:
        if not os.path.exists(args.urls):
            raise UserError(f"URL file not found: {args.urls}")
        try:
            urls = read_url_file(args.urls)
        except UrlFileError as e:
            raise UserError(str(e)) from e
        except OSError as e:
            raise UserError(f"cannot read URL file {args.urls}: {e.strerror or e}") from e
        if not urls:
            raise UserError(f"no URLs in {args.urls}")
        kw: dict[str, Any] = {"urls": urls, "selector": f"urls:{os.path.abspath(args.urls)}"}
    else:
        kw = {"domain": args.domain, "force": args.force}
    from core.output_lock import OutputLockedError

    try:
        res = delete_documents(
            path, dry_run=args.dry_run, wait=args.wait, lock_timeout_s=args.wait_timeout, **kw
        )
    except (DeletionError, ValueError) as e:
        raise UserError(str(e)) from e
    except OutputLockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_LOCKED
    if remote_output and not args.dry_run:
        publish_lineage(args.output, path)
    if args.json:
        _emit_json(res.as_dict())
        return 0
    head = "DRY RUN: would delete" if args.dry_run else "deleted"
    print(
        f"{head} {res.docs_deleted} documents ({res.docs_by_kind.get('text', 0)} kept, "
        f"{res.docs_by_kind.get('rejected', 0)} in audit shards); deletion {res.deletion_id} "
        f"({res.selector}) in {res.seconds:.2f} s"
    )
    if res.shards_rewritten:
        print(
            format_table(
                ["old shard", "new shard"],
                [[o, n or "(none: no documents left)"] for o, n in res.shards_rewritten],
            )
        )
    if res.unmatched_urls:
        print(
            f"{len(res.unmatched_urls)} URLs matched no stored document (matched by the "
            "normalised original URL or the URL as stored); blocklisted anyway:"
        )
        print("\n".join(f"  {u}" for u in res.unmatched_urls[:20]))
    if not args.dry_run:
        print(
            f"blocklisted: {len(res.blocklisted)} entr{'y' if len(res.blocklisted) == 1 else 'ies'}"
            " (later runs drop them as url.deleted)"
        )
        print(f"stale mixes: {', '.join(res.stale_mixes) or '(none)'}")
        print(f"superseded files removed from disk: {len(res.files_removed)}")
        for p in res.files_removed:
            print(f"  {p}")
    return 0


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise UserError(f"--param expects name=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v
    return out


def _bind(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> Any:
    """The parameters of `sql`, the one statement it must be, as DuckDB wants them.

    Why: `execute` of `SELECT 1; SELECT 2` runs both and shows only the last result, and the
    README's examples use `?` (positional), which a name=value dict cannot bind. `?` (or `$1`)
    placeholders take the --param values in the order given; `$name` takes them by name.
    """
    try:
        stmts = con.extract_statements(sql)
    except duckdb.Error as e:
        raise UserError(f"query failed: {error_line(e)}") from e
    if len(stmts) != 1:
        raise UserError(
            f"give one SQL statement at a time (got {len(stmts)}); run each with its own "
            "`lineage sql`"
            if stmts
            else "give a query or --named NAME"
        )
    wanted = set(stmts[0].named_parameters)
    if not wanted:
        if params:
            raise UserError(f"the query has no parameters; --param {next(iter(params))} unused")
        return None
    if all(w.isdigit() for w in wanted):  # ? / $1: positional, in --param order
        if len(params) != len(wanted):
            raise UserError(
                f"the query has {len(wanted)} ? parameter{'s' if len(wanted) != 1 else ''}; "
                f"give {len(wanted)} --param name=value, in order (got {len(params)})"
            )
        return list(params.values())
    missing = sorted(wanted - params.keys())
    if missing:
        raise UserError(
            "the query needs "
            + ", ".join(f"--param {m}=VALUE" for m in missing)
            + f" (for ${', $'.join(missing)})"
        )
    extra = sorted(params.keys() - wanted)
    if extra:
        raise UserError(f"--param {extra[0]} is not a parameter of the query")
    return params


DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MAX_ROWS = 10_000


def _check_bounds(args: argparse.Namespace) -> None:
    """The resource flags of `sql`, refused as one line before anything runs."""
    from lineage.sandbox import check_memory_limit

    if args.timeout <= 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.max_rows < 1:
        raise UserError(f"--max-rows must be at least 1, got {args.max_rows}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    try:
        check_memory_limit(args.memory_limit)
    except ValueError as e:
        raise UserError(f"--memory-limit: {e}") from e


def cmd_sql(args: argparse.Namespace) -> int:
    from lineage.queries import QUERIES
    from lineage.sandbox import QueryTimeout, fetch_bounded

    if args.named and args.query:
        raise UserError("give a query or --named NAME, not both")
    if args.named:
        if args.named not in QUERIES:
            raise UserError(f"unknown query {args.named!r}; see: python -m lineage queries")
        sql = QUERIES[args.named].sql
    elif args.query:
        sql = args.query
    else:
        raise UserError("give a query or --named NAME")
    params = _parse_params(args.param or [])
    _check_bounds(args)
    con = _reader(args)
    try:
        bound = _bind(con, sql, params)
        cols, rows, more = fetch_bounded(
            con, sql, bound, timeout_s=args.timeout, max_rows=args.max_rows
        )
    except QueryTimeout as e:
        raise UserError(f"{e} (--timeout SECONDS allows more)") from e
    except duckdb.OutOfMemoryException as e:
        raise UserError(
            f"query failed: {error_line(e)} (memory limit {args.memory_limit}; "
            "--memory-limit SIZE allows more)"
        ) from e
    except duckdb.Error as e:
        raise UserError(f"query failed: {error_line(e)}") from e
    finally:
        con.close()
    note = f"first {len(rows)} rows of more; --max-rows N shows more"
    if args.json:
        _emit_json([dict(zip(cols, r, strict=True)) for r in rows])
        if more:
            print(f"lineage: {note}", file=sys.stderr)
    else:
        print(format_table(cols, rows))
        print(f"({note})" if more else f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


def cmd_queries(args: argparse.Namespace) -> int:
    from lineage.queries import QUERIES

    if args.json:
        _emit_json(
            [
                {
                    "name": q.name,
                    "description": q.description,
                    "params": list(q.params),
                    "sql": q.sql.strip(),
                }
                for q in QUERIES.values()
            ]
        )
        return 0
    print(
        format_table(
            ["name", "params", "description"],
            [[q.name, ",".join(q.params), q.description] for q in QUERIES.values()],
        )
    )
    print("\nrun one: python -m lineage sql --named NAME [--param name=value]")
    return 0


# ---- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from lineage.sandbox import DEFAULT_MEMORY_LIMIT

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--lineage",
        metavar="DB",
        help="lineage database (default: $CCPIPE_LINEAGE or ./lineage.duckdb)",
    )
    common.add_argument("--output", metavar="DIR", help="pipeline output dir: DIR/lineage.duckdb")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument(
        "--config",
        metavar="HASH",
        help="answer for this config (hash prefix); default: the latest run's",
    )
    common.add_argument(
        "--all-configs",
        action="store_true",
        help="answer across every config written into this output",
    )
    p = argparse.ArgumentParser(
        prog="python -m lineage", description="Query the pipeline's lineage store."
    )
    sub = p.add_subparsers(dest="verb", required=True)
    t = sub.add_parser("trace", parents=[common], help="provenance of a doc_id or URL")
    t.add_argument("key", help="doc_id, WARC-Record-ID or URL (as stored)")
    t.add_argument(
        "--fetch",
        action="store_true",
        help="re-read the original WARC record and print its headers",
    )
    t.set_defaults(func=cmd_trace)
    e = sub.add_parser("explain", parents=[common], help="what happened to a URL")
    e.add_argument("url")
    e.set_defaults(func=cmd_explain)
    d = sub.add_parser("diff", parents=[common], help="config and count differences of 2 runs")
    d.add_argument("run_a", help="run id, unique prefix, 'latest' or 'latest~N'")
    d.add_argument("run_b")
    d.set_defaults(func=cmd_diff)
    x = sub.add_parser(
        "delete", parents=[common], help="remove documents from every shard (deletion request)"
    )
    g = x.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--urls",
        metavar="FILE",
        help="file with one URL per line: the original URL (any spelling) or the "
        "URL as stored (PII-scrubbed)",
    )
    g.add_argument("--domain", help="a domain; its subdomains are included")
    x.add_argument(
        "--force",
        action="store_true",
        help="allow --domain to be a public suffix (com, co.uk, github.io...)",
    )
    x.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    x.add_argument(
        "--wait",
        action="store_true",
        help="wait for a running pipeline to release the output lock (default: "
        "exit 75 at once, naming the holder)",
    )
    x.add_argument(
        "--wait-timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: give up (exit 75) after this long",
    )
    x.set_defaults(func=cmd_delete)
    s = sub.add_parser("sql", parents=[common], help="run a read-only SQL query")
    s.add_argument("query", nargs="?")
    s.add_argument("--named", metavar="NAME", help="run a named query (see `queries`)")
    s.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="bind $NAME in the query; a query with ? placeholders takes the values in order",
    )
    s.add_argument(
        "--memory-limit",
        metavar="SIZE",
        default=DEFAULT_MEMORY_LIMIT,
        help=f"DuckDB memory limit of the session (default: {DEFAULT_MEMORY_LIMIT}; no "
        "spilling to disk)",
    )
    s.add_argument(
        "--threads", type=int, metavar="N", help="DuckDB threads (default: min(4, CPUs))"
    )
    s.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"interrupt the query after this long (default: {DEFAULT_TIMEOUT_S:g})",
    )
    s.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"fetch and print at most N rows (default: {DEFAULT_MAX_ROWS})",
    )
    s.set_defaults(func=cmd_sql)
    q = sub.add_parser("queries", parents=[common], help="list the named example queries")
    q.set_defaults(func=cmd_queries)
    return p


def _stderr_notices() -> None:
    """Notices (lineage mirrored, waiting for the output lock) go through logging: show our
    loggers' INFO lines on stderr unless the caller configured logging already."""
    import logging

    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        for name in ("ccpipe", "core", "lineage"):
            logging.getLogger(name).setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _stderr_notices()
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
