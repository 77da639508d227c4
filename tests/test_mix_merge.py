"""Mixes over Megatron's 32,767-prefix limit: a source's shards are merged (mixes/merge.py).

Split out of tests/test_mixes.py (one concern per module). Real Megatron .bin/.idx files
written by stages.token_shards, a real lineage store, the real CLI.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage.store import LineageStore, open_reader
from mixes.cli import main
from mixes.loader import MixLoader
from mixes.merge import group_shards, merge_indexed_datasets, prefix_budgets
from stages.token_shards import IndexedDataset, write_indexed_dataset
from tests.mix_helpers import TOK, VOCAB, mix_yaml


# ---- Megatron's 32,767-prefix limit: merge a source's shards ----------------------------
@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 10_000), min_size=1, max_size=300),
    budget=st.integers(1, 400),
)
def test_group_shards_stays_within_budget_and_keeps_order(sizes, budget):
    groups = group_shards(sizes, budget)
    assert len(groups) <= budget
    assert [i for g in groups for i in g] == list(range(len(sizes)))  # contiguous, in order
    if len(sizes) <= budget:
        assert all(len(g) == 1 for g in groups)  # nothing merged when it fits


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(1, 5000), min_size=1, max_size=20),
    cap=st.integers(20, 40000),
)
def test_prefix_budgets_sum_under_the_cap(counts, cap):
    b = prefix_budgets(counts, cap)
    assert sum(b) <= cap
    assert all(1 <= x <= c for x, c in zip(b, counts, strict=True))
    if sum(counts) <= cap:
        assert b == counts


def test_merge_concatenates_documents(tmp_path):
    rng = np.random.default_rng(1)
    docs = [[rng.integers(0, VOCAB, rng.integers(0, 40)) for _ in range(k)] for k in (3, 0, 5)]
    prefixes = []
    for i, d in enumerate(docs):
        write_indexed_dataset(str(tmp_path / f"p{i}"), d, VOCAB)
        prefixes.append(str(tmp_path / f"p{i}"))
    info = merge_indexed_datasets(prefixes, tmp_path / "m")
    merged = IndexedDataset(tmp_path / "m")
    flat = [x for d in docs for x in d]
    assert len(merged) == len(flat) == info["n_docs"] == 8
    assert all(np.array_equal(a, b) for a, b in zip(merged, flat, strict=True))
    # byte-identical to writing the documents as one shard
    write_indexed_dataset(str(tmp_path / "one"), flat, VOCAB)
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"m{ext}").read_bytes() == (tmp_path / f"one{ext}").read_bytes()


def _register_tiny_shards(root: Path, n_shards: int, langs: tuple[str, ...], seed: int = 0) -> Path:
    """A lineage with `n_shards` real tiny token shards (as a 10k-WARC run would register
    per WARC x language x bucket), written without fsync and inserted columnar for speed."""
    from stages.token_shards import write_indexed_dataset_bytes

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_shards):
        lang = langs[i % len(langs)]
        rel = f"{lang}/mid/w{i:06d}"
        prefix = root / rel
        prefix.parent.mkdir(parents=True, exist_ok=True)
        docs = [rng.integers(0, VOCAB, rng.integers(2, 12)) for _ in range(int(rng.integers(1, 4)))]
        b, x = write_indexed_dataset_bytes(docs, VOCAB)
        (root / f"{rel}.bin").write_bytes(b)
        (root / f"{rel}.idx").write_bytes(x)
        rows.append(
            {
                "shard_id": f"{rel}.bin",
                "run_id": "run1",
                "kind": "tokens",
                # relative to the output root, as lineage records paths after issue 18
                "path": f"{rel}.bin",
                "lang": lang,
                "quality_bucket": "mid",
                "crawl_id": "CC-TEST",
                "n_docs": len(docs),
                "n_tokens": sum(len(d) for d in docs),
                "token_dtype": "uint16",
                "tokenizer_hash": TOK,
                "sha256": f"{i:064x}",
                "version": 1,
                "status": "live",
            }
        )
    store = LineageStore(root / "lineage.duckdb")
    with store.transaction() as con:
        con.register("_new_shards", pa.Table.from_pylist(rows))
        con.execute("INSERT INTO shards BY NAME SELECT * FROM _new_shards")
        con.unregister("_new_shards")
    return root / "lineage.duckdb"


def _check_blend(out: Path, lin: Path, cap: int) -> dict:
    """The blend stays under `cap`, every prefix is a real dataset holding exactly its
    members' documents, and the per-source weights equal the unmerged ones."""
    manifest = json.loads((out / "manifest.json").read_text())
    parts = (out / "megatron_blend.txt").read_text().split()
    weights, prefixes = [float(w) for w in parts[0::2]], parts[1::2]
    assert len(prefixes) == manifest["blend"]["n_prefixes"] <= cap
    assert len(set(prefixes)) == len(prefixes)
    assert math.isclose(sum(weights), 1.0, rel_tol=1e-6)
    by_prefix = {p["prefix"]: p for p in manifest["blend"]["prefixes"]}
    shards = {e["shard_id"]: e for e in manifest["shards"]}
    per_source: dict[str, float] = {}
    for w, p in zip(weights, prefixes, strict=True):
        b = by_prefix[p]
        ds = IndexedDataset(p)
        members = [shards[s] for s in b["shards"]]
        assert ds.n_tokens == b["n_tokens"] == sum(m["n_tokens"] for m in members)
        assert len(ds) == sum(m["n_docs"] for m in members)
        assert math.isclose(w, sum(m["sampling_weight"] for m in members), rel_tol=1e-6)
        assert all(m["blend_prefix"] == p for m in members)
        per_source[b["source"]] = per_source.get(b["source"], 0.0) + w
    for src in manifest["sources"]:
        want = sum(e["sampling_weight"] for e in manifest["shards"] if e["source"] == src["name"])
        assert math.isclose(per_source[src["name"]], want, rel_tol=1e-6)
    con = open_reader(lin)
    try:
        n, n_pref = con.execute(
            "SELECT count(*), count(DISTINCT blend_prefix) FROM mix_components"
        ).fetchone()
    finally:
        con.close()
    assert (n, n_pref) == (len(shards), len(prefixes))
    return manifest


def test_blend_over_the_prefix_limit_merges_shards_per_source(tmp_path, capsys):
    """300 shards with a limit of 40 prefixes (the default suite's stand-in for 50k / 32,766)."""
    lin = _register_tiny_shards(tmp_path / "run", 300, ("en", "de", "fr"))
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        mix_yaml(
            target_tokens=4000,
            seq_length=8,
            sources=[
                {"name": "en", "select": {"lang": "en"}, "weight": 0.5, "max_epochs": 10},
                {"name": "de", "select": {"lang": "de"}, "weight": 0.3, "max_epochs": 10},
                {"name": "fr", "select": {"lang": "fr"}, "weight": 0.2, "max_epochs": 10},
            ],
        )
    )
    out = tmp_path / "mix"
    args = ["build", str(mix), "--lineage", str(lin), "--out", str(out), "--max-prefixes", "40"]
    assert main(args) == 0, capsys.readouterr().err
    assert re.search(
        r"blend: \d+ Megatron prefixes for 300 shards \(limit 40\)", capsys.readouterr().out
    )
    manifest = _check_blend(out, lin, 40)
    assert manifest["blend"]["n_merged"] > 0
    merged = sorted((out / "merged").iterdir())
    assert len(merged) == 2 * manifest["blend"]["n_merged"]
    # the loader still streams the original shards
    assert len(MixLoader(out / "manifest.json")) == 500
    # a rebuild reuses the merged files (content-addressed), and a bigger limit drops them
    stamps = {f.name: f.stat().st_mtime_ns for f in merged}
    assert main(args) == 0
    assert {f.name: f.stat().st_mtime_ns for f in (out / "merged").iterdir()} == stamps
    assert main(args[:-1] + ["1000"]) == 0
    assert list((out / "merged").iterdir()) == []
    assert len((out / "megatron_blend.txt").read_text().split()) == 600


def test_relative_shard_paths_resolve_against_the_output_root(tmp_path, capsys):
    """Lineage records shard paths relative to the output root: a lineage file kept elsewhere
    needs --output-root, and a wrong root is a refusal naming it, not a blend of missing files."""
    lin = _register_tiny_shards(tmp_path / "run", 12, ("en",))
    elsewhere = tmp_path / "elsewhere" / "lineage.duckdb"  # a bare copy: no recorded root
    elsewhere.parent.mkdir()
    shutil.copyfile(lin, elsewhere)
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        mix_yaml(
            target_tokens=40,
            seq_length=4,
            sources=[{"name": "en", "select": {"lang": "en"}, "weight": 1, "max_epochs": 10}],
        )
    )
    out = tmp_path / "mix"
    args = ["build", str(mix), "--lineage", str(elsewhere), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "12 selected token shard(s) not found" in err and str(tmp_path / "elsewhere") in err
    assert main([*args, "--output-root", str(tmp_path / "run")]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(e["prefix"].startswith(str(tmp_path / "run")) for e in manifest["shards"])
    assert all(not Path(e["path"]).is_absolute() for e in manifest["shards"])
    assert len(MixLoader(out / "manifest.json")) == 10


@pytest.mark.slow
def test_blend_at_10k_warc_scale_stays_under_megatron_limit(tmp_path, capsys):
    """50,000 tiny token shards (a 10k-WARC run at ~5 token shards per WARC) with Megatron's
    real limit: the blend has at most 32,766 prefixes over real .bin/.idx files."""
    lin = _register_tiny_shards(tmp_path / "run", 50_000, ("en", "de", "fr", "zh", "ja"))
    mix = tmp_path / "mix.yaml"
    mix.write_text(
        mix_yaml(
            target_tokens=200_000,
            seq_length=64,
            sources=[
                {"name": "en", "select": {"lang": "en"}, "weight": 0.4, "max_epochs": 10},
                {"name": "de", "select": {"lang": "de"}, "weight": 0.2, "max_epochs": 10},
                {
                    "name": "rest",
                    "select": {"lang": ["fr", "zh", "ja"]},
                    "weight": 0.4,
                    "max_epochs": 10,
                },
            ],
        )
    )
    out = tmp_path / "mix"
    assert main(["build", str(mix), "--lineage", str(lin), "--out", str(out)]) == 0
    manifest = _check_blend(out, lin, 32_766)
    assert len(manifest["shards"]) == 50_000
    assert manifest["blend"]["n_merged"] > 0
