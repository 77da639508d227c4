"""Named example queries over the lineage store (documented in docs/lineage.md).

Each is DuckDB SQL; `url_host`, `url_domain`, `url_hash` and `url_normalize` are the one URL
normaliser (core/urls.py) registered on analyst connections (lineage/sandbox.py). Parameters
are `$name` placeholders bound with a dict, e.g.
`con.execute(DOCS_FROM_DOMAIN, {"domain": "example.net"})`. Run them from the shell with
`python -m lineage sql --named NAME --param domain=example.net`.
"""

from __future__ import annotations

from dataclasses import dataclass

TOKENS_PER_LANGUAGE_PER_CRAWL = """
SELECT crawl_id, lang, count(*) AS shards, sum(n_docs) AS docs, sum(n_tokens) AS tokens
FROM shards
WHERE kind = 'tokens' AND status = 'live'
GROUP BY crawl_id, lang
ORDER BY crawl_id, tokens DESC
"""

DROP_REASONS_PER_RUN = """
SELECT run_id, stage, reason, sum(count) AS docs
FROM stage_stats
WHERE reason <> 'kept'
GROUP BY run_id, stage, reason
ORDER BY run_id, docs DESC, reason
"""

SHARDS_OF_MIX = """
SELECT c.source, c.shard_id, c.shard_version, s.status, s.version AS current_version,
       c.n_tokens, c.weight, c.epochs, s.path
FROM mix_components c
LEFT JOIN shards s USING (shard_id)
WHERE c.mix_id = $mix_id OR c.mix_id IN (SELECT mix_id FROM mixes WHERE name = $mix_id)
ORDER BY c.source, c.shard_id
"""

DOCS_FROM_DOMAIN = """
SELECT doc_id, url, crawl_id, lang, quality_bucket, n_tokens, filename AS shard_path
FROM documents
WHERE url_host(url) = url_domain($domain)
   OR ends_with(url_host(url), '.' || url_domain($domain))
ORDER BY url
"""

DUPLICATE_OF = """
SELECT r.doc_id, r.url, r.drop_reason, r.drop_detail, r.cluster_id,
       r.keeper_doc_id, k.url AS keeper_url, k.filename AS keeper_shard
FROM rejections r
LEFT JOIN documents k ON k.doc_id = r.keeper_doc_id
WHERE r.doc_id = $doc_id AND r.drop_stage = 'dedup'
"""

DOC_PROVENANCE = """
SELECT d.doc_id, d.url, d.source_uri, d.source_offset, d.source_length, d.warc_record_id,
       s.run_id, s.config_hash, s.code_version, s.shard_id, d.shard_row, d.token_start,
       d.n_tokens, t.path AS token_shard
FROM documents d
JOIN shards s ON s.path = d.filename
LEFT JOIN shards t ON t.mirrors_shard = s.shard_id AND t.kind = 'tokens' AND t.status = 'live'
WHERE d.doc_id = $doc_id
"""

RUNS = """
SELECT run_id, kind, status, started_at, finished_at, config_hash, code_version, n_inputs
FROM runs
ORDER BY started_at
"""

DELETIONS = """
SELECT deletion_id, min(requested_at) AS requested_at, any_value(selector) AS selector,
       count(*) AS docs, count(DISTINCT old_shard_id) AS shards
FROM deletions
GROUP BY deletion_id
ORDER BY requested_at
"""


@dataclass(frozen=True)
class NamedQuery:
    name: str
    sql: str
    description: str
    params: tuple[str, ...] = ()


QUERIES: dict[str, NamedQuery] = {
    q.name: q
    for q in (
        NamedQuery(
            "tokens_per_language_per_crawl",
            TOKENS_PER_LANGUAGE_PER_CRAWL,
            "live tokens, docs and shards per crawl and language (from shards rows only)",
        ),
        NamedQuery(
            "drop_reasons_per_run",
            DROP_REASONS_PER_RUN,
            "documents dropped per run, stage and reason",
        ),
        NamedQuery(
            "shards_of_mix",
            SHARDS_OF_MIX,
            "which shards (and versions) fed a mix; by mix_id or name",
            ("mix_id",),
        ),
        NamedQuery(
            "docs_from_domain",
            DOCS_FROM_DOMAIN,
            "all kept documents from a domain and its subdomains",
            ("domain",),
        ),
        NamedQuery(
            "duplicate_of",
            DUPLICATE_OF,
            "what a dropped duplicate duplicated: keeper doc and URL",
            ("doc_id",),
        ),
        NamedQuery(
            "doc_provenance",
            DOC_PROVENANCE,
            "source record, run, config, code, shard row and token range of a doc",
            ("doc_id",),
        ),
        NamedQuery("runs", RUNS, "all runs with config hash and code version"),
        NamedQuery("deletions", DELETIONS, "deletion requests carried out"),
    )
}
