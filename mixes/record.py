"""Recording a built mix in lineage: the `mixes` row and one `mix_components` row per shard.

Split out of mixes/build.py: the only lineage writes of the mixes package, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pyarrow as pa

from mixes.plan import MixPlan

_EXTRA_COLUMNS = (
    "ALTER TABLE mixes ADD COLUMN IF NOT EXISTS seq_length INTEGER",
    "ALTER TABLE mixes ADD COLUMN IF NOT EXISTS seed BIGINT",
    "ALTER TABLE mixes ADD COLUMN IF NOT EXISTS n_shards INTEGER",
    "ALTER TABLE mix_components ADD COLUMN IF NOT EXISTS budget_tokens DOUBLE",
    "ALTER TABLE mix_components ADD COLUMN IF NOT EXISTS tokens_contributed DOUBLE",
    "ALTER TABLE mix_components ADD COLUMN IF NOT EXISTS blend_prefix VARCHAR",
)


_COMPONENTS_SCHEMA = pa.schema(
    [
        ("mix_id", pa.string()),
        ("source", pa.string()),
        ("shard_id", pa.string()),
        ("shard_version", pa.int32()),
        ("n_tokens", pa.int64()),
        ("weight", pa.float64()),
        ("epochs", pa.float64()),
        ("budget_tokens", pa.float64()),
        ("tokens_contributed", pa.float64()),
        ("blend_prefix", pa.string()),
    ]
)


def record_mix(
    lineage_path: str | os.PathLike[str],
    plan: MixPlan,
    config_yaml: str,
    manifest_path: str,
    blend: list[dict[str, Any]] | None = None,
) -> None:
    """Write the mix and one `mix_components` row per shard in one lineage transaction.

    Rebuilding the same mix against the same shards (same mix_id) replaces its rows.
    """
    from lineage.store import LineageStore

    store = LineageStore(lineage_path)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    entries = plan.shard_entries()
    budgets = {sp.name: sp.budget_tokens for sp in plan.sources}
    blend = blend if blend is not None else plan.blend()
    mix_id = plan.mix_id  # hashes every shard: compute once, not per row
    prefix_of_shard = {sid: b["prefix"] for b in blend for sid in b["shards"]}
    with store.transaction() as con:
        for ddl in _EXTRA_COLUMNS:  # older lineage files predate these columns
            con.execute(ddl)
        con.execute("DELETE FROM mix_components WHERE mix_id = ?", [mix_id])
        con.execute("DELETE FROM mixes WHERE mix_id = ?", [mix_id])
        store.insert_rows(
            con,
            "mixes",
            [
                {
                    "mix_id": mix_id,
                    "name": plan.cfg.name,
                    "mix_hash": plan.mix_hash,
                    "config_yaml": config_yaml,
                    "tokenizer_hash": plan.tokenizer_hash,
                    "target_tokens": plan.cfg.target_tokens,
                    "created_at": now,
                    "manifest_path": manifest_path,
                    "stale": False,
                    "seq_length": plan.cfg.seq_length,
                    "seed": plan.cfg.seed,
                    "n_shards": len(entries),
                }
            ],
        )
        components = pa.Table.from_pylist(  # one columnar insert: 50k rows in well under 1 s
            [
                {
                    "mix_id": mix_id,
                    "source": e["source"],
                    "shard_id": e["shard_id"],
                    "shard_version": e["version"],
                    "n_tokens": e["n_tokens"],
                    "weight": e["sampling_weight"],
                    "epochs": e["epochs"],
                    "budget_tokens": budgets[e["source"]],
                    "tokens_contributed": e["tokens_contributed"],
                    "blend_prefix": prefix_of_shard.get(e["shard_id"]),
                }
                for e in entries
            ],
            schema=_COMPONENTS_SCHEMA,
        )
        con.register("_mix_components_new", components)
        try:
            con.execute("INSERT INTO mix_components BY NAME SELECT * FROM _mix_components_new")
        finally:
            con.unregister("_mix_components_new")
