"""DuckDB lineage schema: one place that says what every table and column means."""

from __future__ import annotations

SCHEMA_VERSION = 1

TABLES: dict[str, str] = {
    "runs": """
        CREATE TABLE IF NOT EXISTS runs (
            run_id        VARCHAR PRIMARY KEY,  -- unique per invocation
            run_key       VARCHAR,              -- hash(config_hash, input set): resume identity
            kind          VARCHAR,              -- run | nightly | job
            started_at    TIMESTAMP,
            finished_at   TIMESTAMP,
            status        VARCHAR,              -- running | succeeded | failed
            config_hash   VARCHAR,
            config_json   VARCHAR,              -- canonical config (the hashed part)
            code_version  VARCHAR,              -- package version + git commit
            output_dir    VARCHAR,
            models_json   VARCHAR,              -- content hashes of langid/quality models, tokenizer
            n_inputs      INTEGER,
            summary_json  VARCHAR,
            error         VARCHAR
        )""",
    "input_files": """
        CREATE TABLE IF NOT EXISTS input_files (
            run_id        VARCHAR,
            source_uri    VARCHAR,
            file_key      VARCHAR,
            config_hash   VARCHAR,
            status        VARCHAR,              -- committed | error
            size_bytes    BIGINT,
            records_read  BIGINT,
            docs_kept     BIGINT,
            error         VARCHAR,
            committed_at  TIMESTAMP,
            unit_id       VARCHAR               -- work unit the file was finished and committed in
        )""",
    "shards": """
        CREATE TABLE IF NOT EXISTS shards (
            shard_id        VARCHAR PRIMARY KEY, -- path of the shard file relative to the output
            run_id          VARCHAR,
            kind            VARCHAR,            -- text | tokens | rejected
            path            VARCHAR,            -- relative to the output root (lineage.store.output_root)
            lang            VARCHAR,
            quality_bucket  VARCHAR,
            crawl_id        VARCHAR,
            n_docs          BIGINT,
            n_bytes         BIGINT,
            sha256          VARCHAR,
            n_tokens        BIGINT,
            token_dtype     VARCHAR,
            tokenizer_hash  VARCHAR,
            mirrors_shard   VARCHAR,            -- for token shards: the text shard_id
            config_hash     VARCHAR,
            code_version    VARCHAR,
            version         INTEGER,            -- bumped by deletion rewrites
            status          VARCHAR,            -- live | superseded
            created_at      TIMESTAMP,
            unit_id         VARCHAR             -- work unit that wrote it (the commit unit)
        )""",
    "shard_inputs": """
        CREATE TABLE IF NOT EXISTS shard_inputs (
            shard_id      VARCHAR,
            source_uri    VARCHAR,
            n_docs        BIGINT,
            first_offset  BIGINT,
            last_offset   BIGINT
        )""",
    "stage_stats": """
        CREATE TABLE IF NOT EXISTS stage_stats (
            run_id      VARCHAR,
            source_uri  VARCHAR,
            stage       VARCHAR,                -- read | extract | lang | quality | dedup | kept
            reason      VARCHAR,                -- e.g. gopher_quality.word_count; 'kept' for kept
            count       BIGINT
        )""",
    "pii_stats": """
        CREATE TABLE IF NOT EXISTS pii_stats (
            run_id    VARCHAR,
            shard_id  VARCHAR,
            entity    VARCHAR,
            count     BIGINT
        )""",
    "dedup_stats": """
        CREATE TABLE IF NOT EXISTS dedup_stats (
            run_id        VARCHAR,
            docs          BIGINT,
            index_docs    BIGINT,
            exact_dups    BIGINT,
            near_dups     BIGINT,
            clusters      BIGINT,
            seconds       DOUBLE,
            params_json   VARCHAR
        )""",
    "meta": """
        CREATE TABLE IF NOT EXISTS meta (
            key    VARCHAR PRIMARY KEY,
            value  VARCHAR
        )""",
}

# The family prefix of a drop reason names its stage.
STAGE_OF_FAMILY = {
    "read": "read",
    "file": "read",
    "extract": "extract",
    "lang": "lang",
    "url": "quality",  # includes url.deleted (deletion-request blocklist)
    "gopher_quality": "quality",
    "gopher_repetition": "quality",
    "c4": "quality",
    "fineweb": "quality",
    "quality_model": "quality",
    "dedup": "dedup",
    "kept": "kept",
}


def stage_of(reason: str) -> str:
    return STAGE_OF_FAMILY.get(reason.split(".", 1)[0], reason.split(".", 1)[0])
