"""Nightly incremental run: process only the listed inputs not yet committed, and report.

    python -m jobs.nightly --listing s3://bucket/crawl/warc.paths.gz --output s3://bucket/out \\
        [--config my.yaml] [--set key=value ...] [--lineage /mnt/lineage/lineage.duckdb]

1. Takes an exclusive lock (`<output>/.nightly.lock` for a local output, next to the lineage
   DB for an object-store output). If another nightly holds it, exits with status 75
   (EX_TEMPFAIL: "try again later") and a one-line message; nothing is touched.
2. Reads the listing (a warc.paths[.gz] file, a directory or an s3:// prefix), asks lineage
   which inputs are already committed under this config hash, and reports the new ones.
3. Runs the pipeline on exactly the new files (frozen into a listing under `_reports/`, so a
   listing that grows while we run cannot change what this run does). Dedup against
   everything released before is automatic: the released-signature index
   (`<output>/_dedup_index/`) always takes part and always wins.
4. Records the run in lineage (kind "nightly") and writes `<output>/_reports/nightly-<run_id>`
   `.json` (machine-readable) and `.txt` (human summary).

Exit status: 0 success (also when there is nothing new), 1 run failed (one-line reason on
stderr, traceback in the report), 2 usage/config error, 75 another nightly is running.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import storage
from jobs.common import add_config_options, job_config, log, publish_lineage, restore_lineage
from pipeline.config import ConfigError, PipelineConfig

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_LOCKED = 75  # sysexits.h EX_TEMPFAIL: another run holds the lock, try again later
STAGES = ("read", "extract", "lang", "quality", "dedup")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.nightly", description=__doc__.splitlines()[0])
    p.add_argument(
        "--listing",
        required=True,
        action="append",
        help="warc.paths[.gz] listing, directory or s3:// prefix holding the crawl (repeatable)",
    )
    p.add_argument(
        "--listing-prefix",
        help="prefix joined to relative listing entries (e.g. s3://commoncrawl/)",
    )
    p.add_argument("--output", "-o", required=True, help="output root (path or s3:// URI)")
    add_config_options(p, lineage_help="lineage DuckDB path (POSIX; see docs/cluster.md)")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a running nightly to finish (default 0: exit 75)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="compute and report the new files, process nothing"
    )
    return p


# ---- lock -------------------------------------------------------------------------------
def lock_path(cfg: PipelineConfig) -> str:
    """`<output>/.nightly.lock` for local outputs, else next to the lineage DB."""
    assert cfg.output.dir and cfg.output.lineage_path
    if not storage.is_remote(cfg.output.dir):
        return os.path.join(cfg.output.dir, ".nightly.lock")
    return cfg.output.lineage_path + ".nightly.lock"


def _holder(lock_file: str) -> str:
    try:
        info = json.loads(Path(lock_file + ".owner").read_text())
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError):
        return "unknown holder"


# ---- new files ------------------------------------------------------------------------
def committed_keys(lineage_path: str, config_hash: str) -> set[str]:
    """File keys committed under `config_hash`, read from the published snapshot."""
    if not os.path.exists(lineage_path):
        return set()
    from lineage.store import open_reader

    con = open_reader(lineage_path)
    try:
        rows = con.execute(
            "SELECT DISTINCT file_key FROM input_files "
            "WHERE config_hash = ? AND status = 'committed'",
            [config_hash],
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def find_new_files(cfg: PipelineConfig) -> tuple[list[str], list[str]]:
    """(all listed URIs, URIs not yet committed under this config), both sorted."""
    from pipeline.inputs import resolve_inputs

    assert cfg.output.lineage_path
    files = resolve_inputs(cfg.input.paths, cfg.input.listing_prefix)
    done = committed_keys(cfg.output.lineage_path, cfg.config_hash)
    return [f.uri for f in files], [f.uri for f in files if f.file_key not in done]


# ---- report -----------------------------------------------------------------------------
def stage_funnel(records_read: int, counts: dict[str, int]) -> list[dict[str, Any]]:
    """Documents into and out of each stage, from the run's drop counts."""
    from lineage.schema import stage_of

    rows, n = [], records_read
    for stage in STAGES:
        dropped = sum(
            v for k, v in counts.items() if stage_of(k) == stage and not k.startswith("file.")
        )
        rows.append({"stage": stage, "docs_in": n, "dropped": dropped, "docs_out": n - dropped})
        n -= dropped
    return rows


def format_report(rep: dict[str, Any]) -> str:
    lines = [
        f"nightly {rep['run_id']}: {rep['status']} in {rep['duration_s']:,.1f}s "
        f"(exit {rep['exit_code']})",
        f"listing: {', '.join(rep['listing'])}",
        f"output:  {rep['output']}",
        f"lineage: {rep['lineage_path']}",
        f"files:   {rep['files_listed']} listed, {rep['files_already_committed']} already "
        f"committed, {len(rep['new_files'])} new, {rep['files_processed']} processed, "
        f"{len(rep['files_failed'])} failed",
    ]
    for uri in rep["new_files"][:50]:
        lines.append(f"  new: {uri}")
    if len(rep["new_files"]) > 50:
        lines.append(f"  ... and {len(rep['new_files']) - 50} more")
    for f in rep["files_failed"]:
        lines.append(f"  failed: {f['source_uri']}: {f['error']}")
    if rep["records_read"]:
        lines.append(f"{'stage':<10} {'docs in':>10} {'dropped':>10} {'docs out':>10}")
        for s in rep["stages"]:
            lines.append(
                f"{s['stage']:<10} {s['docs_in']:>10,} {s['dropped']:>10,} {s['docs_out']:>10,}"
            )
    lines.append(f"documents added: {rep['docs_added']:,}   tokens added: {rep['tokens_added']:,}")
    if rep.get("error"):
        lines.append(f"error: {rep['error']}")
    return "\n".join(lines) + "\n"


def write_report(cfg: PipelineConfig, rep: dict[str, Any]) -> str:
    """`<output>/_reports/nightly-<run_id>.json` and `.txt`; returns the .json URI."""
    assert cfg.output.dir
    base = storage.join(cfg.output.dir, "_reports", f"nightly-{rep['run_id']}")
    storage.write_bytes_atomic(base + ".txt", format_report(rep).encode())
    storage.write_bytes_atomic(
        base + ".json", json.dumps(rep, indent=1, sort_keys=True, default=str).encode()
    )
    return base + ".json"


def _failed_files(lineage_path: str, run_id: str) -> list[dict[str, str]]:
    from lineage.store import open_reader

    if not os.path.exists(lineage_path):
        return []
    con = open_reader(lineage_path)
    try:
        rows = con.execute(
            "SELECT source_uri, error FROM input_files WHERE run_id = ? AND "
            "status <> 'committed' ORDER BY source_uri",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    return [{"source_uri": u, "error": e} for u, e in rows]


def _run_id_since(lineage_path: str, started: datetime) -> str | None:
    """The lineage run id of the nightly that started at/after `started` (we hold the lock)."""
    from lineage.store import open_reader

    if not os.path.exists(lineage_path):
        return None
    con = open_reader(lineage_path)
    try:
        row = con.execute(
            "SELECT run_id FROM runs WHERE kind = 'nightly' AND started_at >= ? "
            "ORDER BY started_at DESC LIMIT 1",
            [started.replace(tzinfo=None)],
        ).fetchone()
    finally:
        con.close()
    return row[0] if row else None


# ---- main -------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = job_config(args, args.listing, args.listing_prefix)
    if cfg is None:
        return EXIT_USAGE

    from filelock import FileLock, Timeout

    lock_file = lock_path(cfg)
    lock = FileLock(lock_file)
    try:
        Path(lock_file).parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=args.lock_timeout)
    except Timeout:
        print(
            f"nightly: another nightly run holds {lock_file} ({_holder(lock_file)}); "
            f"exiting with status {EXIT_LOCKED}",
            file=sys.stderr,
        )
        return EXIT_LOCKED
    except OSError as exc:  # after Timeout, which is an OSError too
        print(f"nightly: failed: cannot take the lock {lock_file}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        Path(lock_file + ".owner").write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
        )
        return _locked_main(args, cfg)
    finally:
        Path(lock_file + ".owner").unlink(missing_ok=True)
        lock.release()


def _locked_main(args: argparse.Namespace, cfg: PipelineConfig) -> int:
    assert cfg.output.dir and cfg.output.lineage_path
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc)
    listing = [u if storage.is_remote(u) else os.path.abspath(u) for u in args.listing]
    rep: dict[str, Any] = {
        "run_id": started.strftime("%Y%m%dT%H%M%S") + "-norun",
        "kind": "nightly",
        "status": "failed",
        "exit_code": EXIT_FAILED,
        "started_at": started.isoformat(timespec="seconds"),
        "listing": listing,
        "output": cfg.output.dir,
        "lineage_path": cfg.output.lineage_path,
        "config_hash": cfg.config_hash,
        "files_listed": 0,
        "files_already_committed": 0,
        "new_files": [],
        "files_processed": 0,
        "files_failed": [],
        "records_read": 0,
        "docs_added": 0,
        "tokens_added": 0,
        "counts": {},
        "stages": [],
        "phase_seconds": {},
        "duration_s": 0.0,
        "error": None,
    }
    code = EXIT_FAILED
    try:
        restore_lineage(cfg.output.dir, cfg.output.lineage_path, args.quiet)
        listed, new = find_new_files(cfg)
        rep.update(
            files_listed=len(listed), files_already_committed=len(listed) - len(new), new_files=new
        )
        log(
            f"nightly: {len(listed)} files listed, {len(listed) - len(new)} already committed, "
            f"{len(new)} new",
            args.quiet,
        )
        if args.dry_run:
            rep.update(status="dry-run", exit_code=EXIT_OK)
            code = EXIT_OK
        else:
            code = _process(cfg, new, rep, args.quiet)
    except ConfigError as exc:
        rep["error"] = str(exc)
        print(f"nightly: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - one line on stderr, the traceback in the report
        rep["error"] = f"{type(exc).__name__}: {exc}"
        rep["traceback"] = traceback.format_exc()
        first = (str(exc).splitlines() or [""])[0]
        print(f"nightly: failed: {type(exc).__name__}: {first}", file=sys.stderr)
        code = EXIT_FAILED
    finally:
        rep["exit_code"] = code
        rep["duration_s"] = round(time.perf_counter() - t0, 3)
        rep["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if rep["run_id"].endswith("-norun"):
            rep["run_id"] = _run_id_since(cfg.output.lineage_path, started) or rep["run_id"]
        rep["files_failed"] = _failed_files(cfg.output.lineage_path, rep["run_id"])
        publish_lineage(cfg.output.dir, cfg.output.lineage_path, args.quiet)
        try:
            uri = write_report(cfg, rep)
            log(f"nightly: report {uri}", args.quiet)
        except OSError as exc:
            print(f"nightly: could not write the report: {exc}", file=sys.stderr)
    if not args.quiet:
        print(format_report(rep), end="", flush=True)
    return code


def _process(cfg: PipelineConfig, new: list[str], rep: dict[str, Any], quiet: bool) -> int:
    from pipeline.run import run_pipeline

    assert cfg.output.dir
    run_cfg = cfg.model_copy(deep=True)
    if new:
        # Freeze the input set: exactly the files reported as new, whatever the listing
        # says by now. Entries stay full URIs, so their file keys match the listing's.
        stamp = datetime.fromisoformat(rep["started_at"]).strftime("%Y%m%dT%H%M%S")
        frozen = storage.join(cfg.output.dir, "_reports", "inputs", f"nightly-{stamp}.paths")
        storage.write_bytes_atomic(frozen, ("\n".join(new) + "\n").encode())
        run_cfg.input.paths = [frozen]
        rep["inputs_listing"] = frozen
    result = run_pipeline(run_cfg, kind="nightly")
    rep.update(
        run_id=result.run_id,
        status=result.status,
        files_processed=result.files_processed,
        records_read=result.records_read,
        docs_added=result.docs_kept,
        tokens_added=result.tokens,
        counts=result.counts,
        stages=stage_funnel(result.records_read, result.counts),
        phase_seconds=result.phase_seconds,
    )
    if new and result.files_total != len(new):
        raise RuntimeError(f"driver saw {result.files_total} inputs, nightly froze {len(new)}")
    return EXIT_OK if result.status == "succeeded" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
