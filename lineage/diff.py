"""Compare two runs: which config keys differ and how the per-reason counts moved."""

from __future__ import annotations

import json
from typing import Any

import duckdb


class UnknownRun(LookupError):
    """The run id (or prefix) matches no run, or more than one."""


def resolve_run(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """Exact run id, a unique prefix of one, or `latest` / `latest~N` (N runs before latest)."""
    if ref == "latest" or ref.startswith("latest~"):
        n = int(ref.split("~", 1)[1]) if "~" in ref else 0
        rows = con.execute(
            "SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1 OFFSET ?", [n]
        ).fetchall()
    else:
        rows = con.execute(
            "SELECT run_id FROM runs WHERE run_id = ? UNION SELECT run_id FROM runs WHERE "
            "starts_with(run_id, ?) AND NOT EXISTS (SELECT 1 FROM runs WHERE run_id = ?)",
            [ref, ref, ref],
        ).fetchall()
    if len(rows) != 1:
        what = "no run" if not rows else f"{len(rows)} runs"
        raise UnknownRun(f"{what} match {ref!r}")
    return rows[0][0]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (`quality.gopher.min_words`); lists stay values."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def diff_runs(con: duckdb.DuckDBPyConnection, run_a: str, run_b: str) -> dict[str, Any]:
    """Config differences and per-(stage, reason) count differences of two runs."""
    a, b = resolve_run(con, run_a), resolve_run(con, run_b)
    meta = {}
    for rid in (a, b):
        row = con.execute(
            "SELECT config_hash, config_json, code_version, status, started_at FROM runs "
            "WHERE run_id = ?",
            [rid],
        ).fetchone()
        meta[rid] = {
            "config_hash": row[0],
            "config": flatten(json.loads(row[1] or "{}")),
            "code_version": row[2],
            "status": row[3],
            "started_at": str(row[4]),
        }
    ca, cb = meta[a]["config"], meta[b]["config"]
    config = [
        {"key": k, "a": ca.get(k, "<absent>"), "b": cb.get(k, "<absent>")}
        for k in sorted(set(ca) | set(cb))
        if ca.get(k, "<absent>") != cb.get(k, "<absent>")
    ]
    rows = con.execute(
        "SELECT stage, reason, sum(count) FILTER (WHERE run_id = ?), "
        "sum(count) FILTER (WHERE run_id = ?) FROM stage_stats WHERE run_id IN (?, ?) "
        "GROUP BY stage, reason ORDER BY stage, reason",
        [a, b, a, b],
    ).fetchall()
    counts = [
        {
            "stage": s,
            "reason": r,
            "a": int(x or 0),
            "b": int(y or 0),
            "delta": int(y or 0) - int(x or 0),
        }
        for s, r, x, y in rows
    ]
    files = {
        rid: con.execute(
            "SELECT count(*), coalesce(sum(records_read), 0), coalesce(sum(docs_kept), 0) "
            "FROM input_files WHERE run_id = ?",
            [rid],
        ).fetchone()
        for rid in (a, b)
    }
    return {
        "run_a": a,
        "run_b": b,
        "header": {
            k: {"a": meta[a][k], "b": meta[b][k]}
            for k in ("config_hash", "code_version", "status", "started_at")
        },
        "files": {"a": list(files[a]), "b": list(files[b])},
        "config": config,
        "counts": counts,
    }
