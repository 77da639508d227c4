"""Tables added by later capabilities (mixes, deletion requests), created with the rest."""

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS mixes (
        mix_id       VARCHAR PRIMARY KEY,   -- name + hash
        name         VARCHAR,
        mix_hash     VARCHAR,
        config_yaml  VARCHAR,
        tokenizer_hash VARCHAR,
        target_tokens BIGINT,
        created_at   TIMESTAMP,
        manifest_path VARCHAR,
        stale        BOOLEAN DEFAULT false, -- set when a shard it used was superseded
        seq_length   INTEGER,               -- training sequence length of the mix
        seed         BIGINT,                -- loader seed
        n_shards     INTEGER                -- token shards in the mix (= its mix_components rows)
    )""",
    """CREATE TABLE IF NOT EXISTS mix_components (
        mix_id       VARCHAR,
        source       VARCHAR,
        shard_id     VARCHAR,
        shard_version INTEGER,
        n_tokens     BIGINT,
        weight       DOUBLE,                -- Megatron blend weight (share of the mix's tokens)
        epochs       DOUBLE,                -- passes over this shard (its source's epochs)
        budget_tokens DOUBLE,               -- the source's token budget
        tokens_contributed DOUBLE,          -- epochs * n_tokens
        blend_prefix VARCHAR                -- Megatron prefix holding it (merged file or itself)
    )""",
    """CREATE TABLE IF NOT EXISTS deletions (
        deletion_id  VARCHAR,
        requested_at TIMESTAMP,
        selector     VARCHAR,               -- 'urls:<file>' or 'domain:<d>'
        doc_id       VARCHAR,
        url          VARCHAR,               -- as stored (PII-scrubbed)
        url_hash     VARCHAR,               -- core.urls.url_hash of the original url
        old_shard_id VARCHAR,
        new_shard_id VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS url_blocklist (
        url          VARCHAR,               -- as stored (scrubbed); NULL for unmatched requests
        url_hash     VARCHAR,               -- what runs match on (core.urls.url_hash)
        domain       VARCHAR,
        added_at     TIMESTAMP,
        deletion_id  VARCHAR
    )""",
]
