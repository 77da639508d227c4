"""Explain what happened to a URL: kept (where), dropped (stage, reason, measured value,
keeper of a duplicate), deleted on request, or never seen as an HTML document.

URLs in outputs are PII-scrubbed (e-mails, tokens in query strings replaced). A document
matches when its stored URL equals the given one or its `url_hash` (hash of the normalised
ORIGINAL url, core/urls.py) equals the hash of the given one, so the original spelling, any
equivalent spelling and the stored form all work; when nothing matches, URLs with the same
host and path are offered, which is how a scrubbed query string shows up.
"""

from __future__ import annotations

from typing import Any

import duckdb

from core.urls import url_hash
from lineage.blocklist import is_blocked
from lineage.trace import _has_column, _rows

NOT_STORED_NOTE = (
    "records dropped while reading (non-HTML, non-200, revisits, truncated...) are only "
    "counted per input file, not stored per document, so such a URL may have been read"
)


def _strip_query(url: str) -> str:
    return url.split("#", 1)[0].split("?", 1)[0]


def explain(con: duckdb.DuckDBPyConnection, url: str) -> dict[str, Any]:
    """Everything lineage knows about `url`; `verdict` is kept | dropped | deleted | not_seen."""
    url = url.strip()
    h = url_hash(url)

    def match(view: str, alias: str) -> str:
        if _has_column(con, view, "url_hash"):
            return f"({alias}.url = $url OR {alias}.url_hash = $h)"
        return f"{alias}.url = $url"

    kept: list[dict[str, Any]] = []
    if _has_column(con, "documents", "shard_row"):
        kept = _rows(
            con,
            "SELECT d.doc_id, d.crawl_id, d.warc_date, d.lang, d.quality_bucket, d.n_tokens, "
            "s.shard_id, s.run_id FROM documents d LEFT JOIN shards s ON s.path = d.filename "
            f"WHERE {match('documents', 'd')} ORDER BY d.warc_date, d.doc_id",
            {"url": url, "h": h},
        )
    dropped: list[dict[str, Any]] = []
    if _has_column(con, "rejections", "drop_reason"):
        dropped = _rows(
            con,
            "SELECT r.doc_id, r.crawl_id, r.warc_date, r.lang, r.drop_stage, r.drop_reason, "
            "r.drop_detail, r.cluster_id, r.keeper_doc_id, k.url AS keeper_url, "
            "s.shard_id AS audit_shard, s.run_id "
            "FROM rejections r LEFT JOIN shards s ON s.path = r.filename "
            "LEFT JOIN (SELECT DISTINCT doc_id, url FROM documents) k "
            f"ON k.doc_id = r.keeper_doc_id WHERE {match('rejections', 'r')} "
            "ORDER BY r.warc_date, r.doc_id",
            {"url": url, "h": h},
        )
    del_match = (
        "url = $url OR url_hash = $h" if _has_column(con, "deletions", "url_hash") else "url = $url"
    )
    deleted = _rows(
        con,
        "SELECT deletion_id, requested_at, selector, doc_id, old_shard_id FROM deletions "
        f"WHERE {del_match} ORDER BY requested_at",
        {"url": url, "h": h},
    )
    bl_hash = "url_hash" if _has_column(con, "url_blocklist", "url_hash") else "NULL"
    rows = con.execute(f"SELECT {bl_hash}, url, domain FROM url_blocklist").fetchall()
    hashes = frozenset(x or url_hash(u) for x, u, _ in rows if x or u)
    domains = frozenset(d for _, _, d in rows if d)
    blocked = is_blocked(url, hashes, domains, h) or url in {u for _, u, _ in rows}
    if kept:
        verdict = "kept"
    elif dropped:
        verdict = "dropped"
    elif deleted:
        verdict = "deleted"
    else:
        verdict = "not_seen"
    out: dict[str, Any] = {
        "url": url,
        "verdict": verdict,
        "kept": kept,
        "dropped": dropped,
        "deleted": deleted,
        "blocklisted": bool(blocked),
    }
    if verdict == "not_seen":
        base = _strip_query(url)
        similar = (
            [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT url FROM (SELECT url FROM documents UNION ALL "
                    "SELECT url FROM rejections) WHERE url IS NOT NULL AND (url = ? OR "
                    "starts_with(url, ? || '?') OR starts_with(url, ? || '#')) ORDER BY url LIMIT 5",
                    [base, base, base],
                ).fetchall()
            ]
            if base
            else []
        )
        # Responses dropped while reading (requests, metadata, warcinfo are not documents).
        read_drops = con.execute(
            "SELECT reason, sum(count) FROM stage_stats WHERE stage = 'read' AND reason NOT IN "
            "('read.warcinfo', 'read.request', 'read.metadata') AND NOT starts_with(reason, "
            "'file.') GROUP BY reason ORDER BY 2 DESC, 1"
        ).fetchall()
        out["similar_urls"] = similar
        out["read_stage_drops"] = {r: int(n) for r, n in read_drops}
        out["note"] = NOT_STORED_NOTE
    return out


def render(info: dict[str, Any]) -> list[str]:
    """Plain-text answer, one fact per line."""
    url, lines = info["url"], []
    for k in info["kept"]:
        lines.append(
            f"KEPT     {url}\n  doc {k['doc_id']} ({k['crawl_id']}, {k['lang']}/"
            f"{k['quality_bucket']}, {k['n_tokens']} tokens) in {k['shard_id']}, run {k['run_id']}"
        )
    for d in info["dropped"]:
        lines.append(
            f"DROPPED  {url}\n  doc {d['doc_id']} ({d['crawl_id']}) in run {d['run_id']}\n"
            f"  stage:  {d['drop_stage']}\n  reason: {d['drop_reason']}\n"
            f"  value:  {d['drop_detail']}"
        )
        if d.get("keeper_doc_id"):
            keeper_url = d.get("keeper_url") or "(keeper not in a live shard)"
            lines.append(
                f"  duplicate of {d['keeper_doc_id']} (cluster {d['cluster_id']}): {keeper_url}"
            )
    for x in info["deleted"]:
        lines.append(
            f"DELETED  {url}\n  doc {x['doc_id']} removed from {x['old_shard_id']} by deletion "
            f"{x['deletion_id']} ({x['selector']}) at {x['requested_at']}"
        )
    if info["blocklisted"]:
        lines.append("  blocklisted: later runs drop this URL (url.deleted)")
    if info["verdict"] == "not_seen":
        drops = ", ".join(f"{r} {n}" for r, n in info["read_stage_drops"].items()) or "none"
        lines.append(
            f"NOT SEEN {url}\n  not seen as an HTML document in any run recorded in this "
            f"lineage.\n  Note: {info['note']} (response records dropped that way, all runs: "
            f"{drops})."
        )
        if info.get("similar_urls"):
            lines.append(
                "  URLs stored with the same host and path (query strings are "
                "PII-scrubbed in outputs):"
            )
            lines += [f"    {u}" for u in info["similar_urls"]]
    return lines
