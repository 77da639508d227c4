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
        stale        BOOLEAN DEFAULT false  -- set when a shard it used was superseded
    )""",
    """CREATE TABLE IF NOT EXISTS mix_components (
        mix_id       VARCHAR,
        source       VARCHAR,
        shard_id     VARCHAR,
        shard_version INTEGER,
        n_tokens     BIGINT,
        weight       DOUBLE,
        epochs       DOUBLE
    )""",
    """CREATE TABLE IF NOT EXISTS deletions (
        deletion_id  VARCHAR,
        requested_at TIMESTAMP,
        selector     VARCHAR,               -- 'urls:<file>' or 'domain:<d>'
        doc_id       VARCHAR,
        url          VARCHAR,
        old_shard_id VARCHAR,
        new_shard_id VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS url_blocklist (
        url          VARCHAR,
        domain       VARCHAR,
        added_at     TIMESTAMP,
        deletion_id  VARCHAR
    )""",
]
