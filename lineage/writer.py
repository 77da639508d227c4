"""Lineage commits: run start/finish and the per-input-file commit record.

`commit_file` is the commit point of an input file: it runs after every output file of that
input is durable, in one transaction that first deletes whatever an interrupted attempt may
have left for the same (source_uri, config_hash). So a re-run never duplicates rows.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from lineage.schema import stage_of
from lineage.store import LineageStore


class InvariantError(RuntimeError):
    """A run-level invariant failed (counts do not reconcile): the run must not commit."""


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def committed_file_keys(store: LineageStore, config_hash: str) -> set[str]:
    rows = store.query(
        "SELECT DISTINCT file_key FROM input_files WHERE config_hash = ? AND status = 'committed'",
        [config_hash],
    )
    return {r[0] for r in rows}


def start_run(store: LineageStore, **fields: Any) -> None:
    with store.transaction() as con:
        store.insert_rows(con, "runs", [{**fields, "started_at": now(), "status": "running"}])


def finish_run(
    store: LineageStore, run_id: str, status: str, summary: dict, error: str | None = None
) -> None:
    with store.transaction() as con:
        con.execute(
            "UPDATE runs SET finished_at = ?, status = ?, summary_json = ?, error = ? "
            "WHERE run_id = ?",
            [now(), status, json.dumps(summary, sort_keys=True), error, run_id],
        )


def check_conservation(p1: dict[str, Any], dedup_counts: dict[str, int], kept: int) -> None:
    record_drops = sum(v for k, v in p1["counts"].items() if not k.startswith("file."))
    record_drops += sum(dedup_counts.values())
    if p1["records_read"] != kept + record_drops:
        raise InvariantError(
            f"conservation failed for {p1['source_uri']}: records_read={p1['records_read']} "
            f"!= kept {kept} + drops {record_drops}"
        )


def commit_file(
    store: LineageStore,
    *,
    run_id: str,
    config_hash: str,
    code_version: str,
    p1: dict[str, Any],
    result: dict[str, Any],
    size_bytes: int | None,
) -> None:
    """Record one input file's outputs and counts atomically (the commit point)."""
    uri = p1["source_uri"]
    kept = int(result["docs_kept"])
    check_conservation(p1, result["dedup_counts"], kept)
    file_errors = {k: v for k, v in p1["counts"].items() if k.startswith("file.")}
    status = "error" if file_errors and p1["records_read"] == 0 else "committed"
    ts = now()
    with store.transaction() as con:
        old = [r[0] for r in con.execute(
            "SELECT shard_id FROM shard_inputs WHERE source_uri = ? AND shard_id IN "
            "(SELECT shard_id FROM shards WHERE config_hash = ?)", [uri, config_hash]).fetchall()]
        for sid in old:
            con.execute("DELETE FROM shards WHERE shard_id = ?", [sid])
            con.execute("DELETE FROM shard_inputs WHERE shard_id = ?", [sid])
            con.execute("DELETE FROM pii_stats WHERE shard_id = ?", [sid])
        con.execute(
            "DELETE FROM stage_stats WHERE source_uri = ? AND run_id IN "
            "(SELECT run_id FROM runs WHERE config_hash = ?)", [uri, config_hash])
        con.execute("DELETE FROM input_files WHERE source_uri = ? AND config_hash = ?",
                    [uri, config_hash])
        shard_rows, input_rows = [], []
        for s in result["shards"]:
            shard_rows.append({
                "shard_id": s["shard_id"], "run_id": run_id, "kind": s["kind"],
                "path": s["path"], "lang": s["lang"], "quality_bucket": s["quality_bucket"],
                "crawl_id": s.get("crawl_id"), "n_docs": s["n_docs"], "n_bytes": s["n_bytes"],
                "sha256": s["sha256"], "n_tokens": s.get("n_tokens"),
                "token_dtype": s.get("token_dtype"), "tokenizer_hash": s.get("tokenizer_hash"),
                "mirrors_shard": s.get("mirrors_shard"), "config_hash": config_hash,
                "code_version": code_version, "version": 1, "status": "live", "created_at": ts,
            })
            input_rows.append({
                "shard_id": s["shard_id"], "source_uri": uri, "n_docs": s["n_docs"],
                "first_offset": s.get("first_offset"), "last_offset": s.get("last_offset"),
            })
        store.insert_rows(con, "shards", shard_rows)
        store.insert_rows(con, "shard_inputs", input_rows)
        stats = [
            {"run_id": run_id, "source_uri": uri, "stage": stage_of(reason), "reason": reason,
             "count": int(n)}
            for reason, n in sorted({**p1["counts"], **result["dedup_counts"]}.items())
        ]
        stats.append({"run_id": run_id, "source_uri": uri, "stage": "kept", "reason": "kept",
                      "count": kept})
        store.insert_rows(con, "stage_stats", stats)
        pii_rows = [
            {"run_id": run_id, "shard_id": sid, "entity": ent, "count": int(n)}
            for sid, ents in sorted(result["pii"].items()) for ent, n in sorted(ents.items())
        ]
        store.insert_rows(con, "pii_stats", pii_rows)
        store.insert_rows(con, "input_files", [{
            "run_id": run_id, "source_uri": uri, "file_key": p1["file_key"],
            "config_hash": config_hash, "status": status, "size_bytes": size_bytes,
            "records_read": p1["records_read"], "docs_kept": kept,
            "error": "; ".join(p1["errors"])[:2000] or None, "committed_at": ts,
        }])


def record_dedup(store: LineageStore, run_id: str, rkey: str, stats: dict, params: dict,
                 decisions_uri: str) -> None:
    with store.transaction() as con:
        con.execute("DELETE FROM dedup_stats WHERE run_id = ?", [run_id])
        store.insert_rows(con, "dedup_stats", [{
            "run_id": run_id, "docs": stats.get("docs"), "index_docs": stats.get("index_docs"),
            "exact_dups": stats.get("exact_dups"), "near_dups": stats.get("near_dups"),
            "clusters": stats.get("clusters"), "seconds": stats.get("seconds"),
            "params_json": json.dumps(params, sort_keys=True),
        }])
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [f"dedup_decisions:{rkey}", decisions_uri])
