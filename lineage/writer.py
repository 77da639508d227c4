"""Lineage commits: run start/finish and the per-work-unit commit record.

`commit_unit` is the commit point of a work unit (a fixed group of input files): it runs
after every output file of the unit is durable, in one transaction that first deletes
whatever an earlier commit may have left for the same unit and input files under the same
config. So a re-run never duplicates rows. Its cost follows the unit: inserts of the unit's
rows, deletes by unit/file key, no view rebuild and (by default in a run) no snapshot copy.
Per-file accounting stays per input file: `input_files` and `stage_stats` rows per file,
and `shard_inputs` says how many documents of each shard came from which file.
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
    store.close()  # publish what a throttled publication left unpublished


def check_conservation(p1: dict[str, Any], dedup_counts: dict[str, int], kept: int) -> None:
    record_drops = sum(v for k, v in p1["counts"].items() if not k.startswith("file."))
    record_drops += sum(dedup_counts.values())
    if p1["records_read"] != kept + record_drops:
        raise InvariantError(
            f"conservation failed for {p1['source_uri']}: records_read={p1['records_read']} "
            f"!= kept {kept} + drops {record_drops}"
        )


def commit_unit(
    store: LineageStore,
    *,
    run_id: str,
    config_hash: str,
    code_version: str,
    unit_id: str,
    files: list[dict[str, Any]],
    shards: list[dict[str, Any]],
    pii: dict[str, dict[str, int]],
) -> None:
    """Record one work unit's outputs and per-file counts atomically (the commit point).

    `files`: per input file `p1` (phase-1 summary), `docs_kept`, `dedup_counts`,
    `size_bytes`. `shards`: records with relative `path`s and an `inputs` list (source_uri,
    n_docs, first/last offset per input file). `pii`: entity counts per text shard.
    """
    for f in files:
        check_conservation(f["p1"], f["dedup_counts"], int(f["docs_kept"]))
    uris = [f["p1"]["source_uri"] for f in files]
    ts = now()
    shard_rows, input_rows = [], []
    for s in shards:
        shard_rows.append(
            {
                "shard_id": s["shard_id"],
                "run_id": run_id,
                "kind": s["kind"],
                "path": s["path"],
                "lang": s["lang"],
                "quality_bucket": s["quality_bucket"],
                "crawl_id": s.get("crawl_id"),
                "n_docs": s["n_docs"],
                "n_bytes": s["n_bytes"],
                "sha256": s["sha256"],
                "n_tokens": s.get("n_tokens"),
                "token_dtype": s.get("token_dtype"),
                "tokenizer_hash": s.get("tokenizer_hash"),
                "mirrors_shard": s.get("mirrors_shard"),
                "config_hash": config_hash,
                "code_version": code_version,
                "version": 1,
                "status": "live",
                "created_at": ts,
                "unit_id": unit_id,
            }
        )
        for i in s["inputs"]:
            input_rows.append(
                {
                    "shard_id": s["shard_id"],
                    "source_uri": i["source_uri"],
                    "n_docs": i["n_docs"],
                    "first_offset": i.get("first_offset"),
                    "last_offset": i.get("last_offset"),
                }
            )
    stats, file_rows = [], []
    for f in files:
        p1, uri = f["p1"], f["p1"]["source_uri"]
        for reason, n in sorted({**p1["counts"], **f["dedup_counts"]}.items()):
            stats.append(
                {
                    "run_id": run_id,
                    "source_uri": uri,
                    "stage": stage_of(reason),
                    "reason": reason,
                    "count": int(n),
                }
            )
        stats.append(
            {
                "run_id": run_id,
                "source_uri": uri,
                "stage": "kept",
                "reason": "kept",
                "count": int(f["docs_kept"]),
            }
        )
        file_errors = {k: v for k, v in p1["counts"].items() if k.startswith("file.")}
        status = "error" if file_errors and p1["records_read"] == 0 else "committed"
        file_rows.append(
            {
                "run_id": run_id,
                "source_uri": uri,
                "file_key": p1["file_key"],
                "config_hash": config_hash,
                "status": status,
                "size_bytes": f.get("size_bytes"),
                "records_read": p1["records_read"],
                "docs_kept": int(f["docs_kept"]),
                "error": "; ".join(p1["errors"])[:2000] or None,
                "committed_at": ts,
                "unit_id": unit_id,
            }
        )
    pii_rows = [
        {"run_id": run_id, "shard_id": sid, "entity": ent, "count": int(n)}
        for sid, ents in sorted(pii.items())
        for ent, n in sorted(ents.items())
    ]
    with store.transaction() as con:
        # An earlier commit of this unit (unit ids derive from the file keys, and the config
        # hash covers the unit caps, so the same files under this config are this unit).
        old = [
            r[0]
            for r in con.execute(
                "SELECT shard_id FROM shards WHERE unit_id = ? AND config_hash = ?",
                [unit_id, config_hash],
            ).fetchall()
        ]
        if old:
            for table in ("shards", "shard_inputs", "pii_stats"):
                con.execute(f"DELETE FROM {table} WHERE shard_id IN (SELECT unnest(?))", [old])
        con.execute(
            "DELETE FROM stage_stats WHERE source_uri IN (SELECT unnest(?)) AND run_id IN "
            "(SELECT run_id FROM runs WHERE config_hash = ?)",
            [uris, config_hash],
        )
        con.execute(
            "DELETE FROM input_files WHERE source_uri IN (SELECT unnest(?)) AND config_hash = ?",
            [uris, config_hash],
        )
        store.insert_rows(con, "shards", shard_rows)
        store.insert_rows(con, "shard_inputs", input_rows)
        store.insert_rows(con, "stage_stats", stats)
        store.insert_rows(con, "pii_stats", pii_rows)
        store.insert_rows(con, "input_files", file_rows)


def record_dedup(
    store: LineageStore, run_id: str, rkey: str, stats: dict, params: dict, decisions_uri: str
) -> None:
    with store.transaction() as con:
        con.execute("DELETE FROM dedup_stats WHERE run_id = ?", [run_id])
        store.insert_rows(
            con,
            "dedup_stats",
            [
                {
                    "run_id": run_id,
                    "docs": stats.get("docs"),
                    "index_docs": stats.get("index_docs"),
                    "exact_dups": stats.get("exact_dups"),
                    "near_dups": stats.get("near_dups"),
                    "clusters": stats.get("clusters"),
                    "seconds": stats.get("seconds"),
                    "params_json": json.dumps(params, sort_keys=True),
                }
            ],
        )
        con.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [f"dedup_decisions:{rkey}", _relative(store.root, decisions_uri)],
        )
    with store.connect() as con:  # the duplicates view lists the (few) archived decisions
        store.refresh_views(con, force=True)
    store.publish()


def _relative(root: str, uri: str) -> str:
    base = root.rstrip("/") + "/"
    return uri[len(base) :] if uri.startswith(base) else uri
