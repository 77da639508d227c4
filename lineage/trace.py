"""Trace one output document back to its WARC record, run, config, code and shard position.

A document's provenance lives in its text-shard row (source file, byte range, record id,
`shard_row`, `token_start`, `n_tokens`); the shard's lineage row adds the run, config hash,
code version and the mirroring token shard. Dropped documents are traced too (from the audit
shards), so the same command answers "where did this come from" for anything stored.
"""

from __future__ import annotations

from typing import Any

import duckdb

_DOC_COLUMNS = (
    "doc_id, url, warc_record_id, warc_date, crawl_id, source_uri, source_offset, "
    "source_length, lang, quality_bucket, filename"
)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _has_column(con: duckdb.DuckDBPyConnection, view: str, column: str) -> bool:
    cur = con.execute(f"SELECT * FROM {view} LIMIT 0")
    return column in [d[0] for d in cur.description]


def trace(con: duckdb.DuckDBPyConnection, key: str) -> list[dict[str, Any]]:
    """Every stored occurrence of a doc_id or URL (exact match), kept ones first.

    Kept documents carry shard, row and token range; dropped ones carry the drop reason.
    An empty list means the key is not in any live shard of this lineage.
    """
    from stages.warc_records import record_id_column

    key = key.strip()
    rid_hash = record_id_column(key, keep_raw=False)  # the column is hashed by default
    out: list[dict[str, Any]] = []
    if _has_column(con, "documents", "shard_row"):
        kept = _rows(
            con,
            f"SELECT {_DOC_COLUMNS}, shard_row, token_start, n_tokens FROM documents "
            "WHERE doc_id = ? OR url = ? OR warc_record_id IN (?, ?) "
            "ORDER BY warc_date, doc_id",
            [key, key, key, rid_hash],
        )
        for d in kept:
            d["status"] = "kept"
            d.update(_shard_info(con, d["filename"]))
            out.append(d)
    if _has_column(con, "rejections", "drop_reason"):
        dropped = _rows(
            con,
            f"SELECT {_DOC_COLUMNS.replace('warc_record_id, ', '')}, drop_stage, drop_reason, "
            "drop_detail, keeper_doc_id FROM rejections WHERE doc_id = ? OR url = ? "
            "ORDER BY warc_date, doc_id",
            [key, key],
        )
        for d in dropped:
            d["status"] = "dropped"
            d["warc_record_id"] = None  # audit shards do not store the record id
            d.update(_shard_info(con, d["filename"]))
            out.append(d)
    return out


def _shard_info(con: duckdb.DuckDBPyConnection, path: str) -> dict[str, Any]:
    rows = _rows(
        con,
        "SELECT s.shard_id, s.version AS shard_version, s.run_id, s.config_hash, "
        "s.code_version, r.started_at AS run_started_at, r.kind AS run_kind, "
        "t.shard_id AS token_shard_id, t.path AS token_shard_path, t.token_dtype, "
        "t.tokenizer_hash "
        "FROM shards s LEFT JOIN runs r ON r.run_id = s.run_id "
        "LEFT JOIN shards t ON t.mirrors_shard = s.shard_id AND t.kind = 'tokens' "
        "AND t.status = 'live' WHERE s.path = ?",
        [path],
    )
    return rows[0] if rows else {}


def describe(item: dict[str, Any]) -> list[tuple[str, Any]]:
    """Ordered (label, value) pairs for the text rendering of one traced document."""
    end = None
    if item.get("source_offset") is not None and item.get("source_length") is not None:
        end = item["source_offset"] + item["source_length"]
    pairs: list[tuple[str, Any]] = [
        ("doc_id", item.get("doc_id")),
        ("status", item["status"]),
        ("url", item.get("url")),
        ("warc_record_id", item.get("warc_record_id")),
        ("warc_date", item.get("warc_date")),
        ("crawl_id", item.get("crawl_id")),
        ("source file", item.get("source_uri")),
        ("byte range", f"{item.get('source_offset')}-{end} ({item.get('source_length')} bytes)"),
        ("run", item.get("run_id")),
        ("config hash", item.get("config_hash")),
        ("code version", item.get("code_version")),
        ("lang / bucket", f"{item.get('lang')} / {item.get('quality_bucket')}"),
    ]
    if item["status"] == "kept":
        start, n = item.get("token_start"), item.get("n_tokens")
        pairs += [
            ("text shard", f"{item.get('shard_id')} (v{item.get('shard_version')})"),
            ("shard path", item.get("filename")),
            ("shard row", item.get("shard_row")),
            ("token shard", item.get("token_shard_path")),
            (
                "token range",
                f"[{start}, {start + n}) ({n} tokens, {item.get('token_dtype')})"
                if start is not None and n is not None
                else None,
            ),
        ]
    else:
        pairs += [
            ("dropped at", item.get("drop_stage")),
            ("reason", item.get("drop_reason")),
            ("detail", item.get("drop_detail")),
            ("audit shard", item.get("shard_id")),
        ]
    return pairs


def fetch(item: dict[str, Any]) -> dict[str, Any]:
    """Re-read the original record with one range read: its WARC and HTTP headers.

    Through pyarrow.fs, so s3:// and gs:// sources work like local files.
    """
    from core import storage
    from stages.warc_reader import fetch_record

    uri = item["source_uri"]
    warc_headers, http_headers, body = fetch_record(
        uri, int(item["source_offset"]), int(item["source_length"]), storage.opener(uri)
    )
    return {
        "warc_headers": dict(warc_headers),
        "http_headers": dict(http_headers),
        "body_bytes": len(body),
    }
