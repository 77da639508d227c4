"""Mixes: config validation, budget math, refusals (exit 2), lineage record, loader.

Merging shards over Megatron's prefix limit: tests/test_mix_merge.py.

Most tests run on a small lineage store whose token shards are real Megatron .bin/.idx files
written by stages.token_shards (no Ray). One test builds the shipped example mix against the
session's sample-crawl run, through the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineage.store import open_reader
from mixes.build import build_mix
from mixes.cli import main
from mixes.config import MixError, parse_mix
from mixes.loader import MixLoader
from mixes.plan import compute_plan, largest_remainder
from stages.token_shards import IndexedDataset
from stages.tokenize import SAMPLE_TOKENIZER
from tests.mix_helpers import OTHER_TOK, TOK, mix_yaml
from tests.mix_helpers import copy_lineage as _copy_lineage

REPO = Path(__file__).resolve().parents[1]


def _shards_query() -> str:
    """The 'which shards fed mix X' query as documented in mixes/README.md."""
    text = (REPO / "mixes" / "README.md").read_text()
    m = re.search(r"```sql\n(-- which shards fed mix.*?)```", text, re.S)
    assert m, "mixes/README.md must document the 'which shards fed mix' query"
    return m.group(1)


def _build(tmp_path: Path, synth: Path, text: str, *, record: bool = True):
    lin = _copy_lineage(synth, tmp_path / "lin")
    mix = tmp_path / "mix.yaml"
    mix.write_text(text)
    return build_mix(mix, lin, tmp_path / "out", record=record), lin


# ---- config --------------------------------------------------------------------------------
def test_example_yaml_validates_and_round_trips():
    cfg = parse_mix((REPO / "mixes" / "example.yaml").read_text())
    assert parse_mix(cfg.to_yaml()) == cfg
    assert cfg.sources[0].select.lang == ["en"]  # scalar coerced to a list


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: x\ntokenizer: a\ntarget_tokens: 1\nseq_length: 1\nsorces: []\n", "sorces"),
        ("name: [unclosed\n", "invalid YAML"),
        (mix_yaml().replace("max_epochs", "max_epoch"), "max_epoch"),
        (mix_yaml().replace("lang:", "language:", 1), "language"),
        (mix_yaml().replace("weight: 0.5", "weight: -1"), "weight"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_invalid_config_names_the_problem(text, needle):
    with pytest.raises(MixError, match=re.escape(needle)):
        parse_mix(text)


# ---- budget math ---------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 10**6), weights=st.lists(st.floats(0.01, 100), min_size=1, max_size=8))
def test_largest_remainder_sums_exactly_and_stays_within_one(total, weights):
    out = largest_remainder(total, weights)
    assert sum(out) == total
    wsum = sum(weights)
    assert all(abs(o - total * w / wsum) < 1 for o, w in zip(out, weights, strict=True))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    weights=st.lists(st.floats(0.05, 10), min_size=3, max_size=3),
    target=st.integers(10000, 50000),
)
def test_budgets_epochs_and_blend_weights_are_consistent(synth_shards, weights, target):
    shards = synth_shards
    cfg = parse_mix(
        mix_yaml(
            target_tokens=target,
            seq_length=8,  # >= 1250 samples: even the smallest weight gets some
            sources=[
                {"name": lang, "select": {"lang": lang}, "weight": w, "max_epochs": 1000}
                for lang, w in zip(("en", "de", "fr"), weights, strict=True)
            ],
        )
    )
    plan = compute_plan(cfg, shards, TOK)
    assert not plan.problems
    entries = plan.shard_entries()
    assert math.isclose(sum(e["sampling_weight"] for e in entries), 1.0, rel_tol=1e-9)
    assert math.isclose(sum(e["tokens_contributed"] for e in entries), target, rel_tol=1e-9)
    for sp in plan.sources:
        avail = sum(s["n_tokens"] for s in shards if s["lang"] == sp.name)
        assert sp.available_tokens == avail
        assert math.isclose(sp.budget_tokens, target * sp.weight / sum(weights), rel_tol=1e-9)
        assert math.isclose(sp.epochs, sp.budget_tokens / avail, rel_tol=1e-9)
        got = sum(e["tokens_contributed"] for e in entries if e["source"] == sp.name)
        assert math.isclose(got, sp.budget_tokens, rel_tol=1e-9)
    # Megatron blend: "w prefix" pairs, weights parse back to the manifest's
    parts = plan.megatron_blend().split()
    assert len(parts) == 2 * len(entries)
    assert [p for p in parts[1::2]] == [e["prefix"] for e in entries]
    assert np.allclose([float(w) for w in parts[0::2]], [e["sampling_weight"] for e in entries])


# ---- refusals: exit status 2 with a clear message -----------------------------------------
@pytest.mark.parametrize(
    "case, needle",
    [
        ("empty", "selects no live token shard"),
        ("tokenizer", "tokenizer mismatch"),
        ("tokenizer_path", "tokenizer mismatch"),
        ("epochs", "max_epochs is 1"),
        ("overlap", "make the selectors disjoint"),
        ("unknown_key", "unknown key"),
        ("bad_yaml", "invalid YAML"),
        ("no_lineage", "lineage database not found"),
    ],
)
def test_refusals_exit_2(tmp_path, synth, capsys, case, needle):
    srcs = [{"name": "en", "select": {"lang": "en"}, "weight": 1, "max_epochs": 4}]
    text = mix_yaml(sources=srcs)
    if case == "empty":
        srcs.append({"name": "ko", "select": {"lang": "ko"}, "weight": 1})
        text = mix_yaml(sources=srcs)
    elif case == "tokenizer":
        text = mix_yaml(sources=srcs, tokenizer=OTHER_TOK)
    elif case == "tokenizer_path":  # the shards of lang xx were made with another tokenizer
        srcs[0]["select"] = {"lang": "xx"}
        text = mix_yaml(sources=srcs, tokenizer=str(SAMPLE_TOKENIZER))
    elif case == "epochs":
        srcs[0]["max_epochs"] = 1
        text = mix_yaml(sources=srcs, target_tokens=10**6)
    elif case == "overlap":
        srcs.append({"name": "hq", "select": {"quality_bucket": "high"}, "weight": 1})
        text = mix_yaml(sources=srcs)
    elif case == "unknown_key":
        text = mix_yaml(sources=srcs) + "epochs: 3\n"
    elif case == "bad_yaml":
        text = "name: t\nsources: [\n"
    mix = tmp_path / "mix.yaml"
    mix.write_text(text)
    lin = tmp_path / "none.duckdb" if case == "no_lineage" else _copy_lineage(synth, tmp_path)
    rc = main(["build", str(mix), "--lineage", str(lin), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err
    assert not (tmp_path / "out" / "manifest.json").exists()
    if case != "no_lineage":
        con = open_reader(lin)
        assert con.execute("SELECT count(*) FROM mixes").fetchone()[0] == 0
        con.close()


# ---- lineage record ------------------------------------------------------------------------
def test_lineage_records_mix_and_documented_query_finds_its_shards(tmp_path, synth):
    res, lin = _build(tmp_path, synth, mix_yaml())
    manifest = json.loads(res.manifest_path.read_text())
    con = open_reader(lin)
    rows = con.execute(_shards_query().replace("'example'", "'t'")).fetchall()
    cols = [d[0] for d in con.description]
    got = sorted((r[cols.index("source")], r[cols.index("shard_id")]) for r in rows)
    assert got == sorted((e["source"], e["shard_id"]) for e in manifest["shards"])
    m = con.execute("SELECT mix_id, mix_hash, tokenizer_hash, n_shards FROM mixes").fetchall()
    assert m == [(manifest["mix_id"], manifest["mix_hash"], TOK, len(manifest["shards"]))]
    con.close()
    # rebuilding the same mix on the same shards replaces its rows (idempotent)
    build_mix(tmp_path / "mix.yaml", lin, tmp_path / "out")
    con = open_reader(lin)
    assert con.execute("SELECT count(*) FROM mixes").fetchone()[0] == 1
    n = con.execute("SELECT count(*) FROM mix_components").fetchone()[0]
    assert n == len(manifest["shards"])
    con.close()


def test_every_readme_query_runs(tmp_path, synth):
    _, lin = _build(tmp_path, synth, mix_yaml(name="example"))
    blocks = re.findall(r"```sql\n(.*?)```", (REPO / "mixes" / "README.md").read_text(), re.S)
    assert len(blocks) >= 3
    con = open_reader(lin)
    try:
        for sql in blocks:
            con.execute(sql).fetchall()
        assert con.execute(blocks[0]).fetchall()  # the mix just built has shards
        mix_id = con.execute("SELECT mix_id FROM mixes").fetchone()[0]
        docs_sql = next(b for b in blocks if "JOIN documents" in b)
        docs_sql = re.sub(r"c\.mix_id = '[^']*'", f"c.mix_id = '{mix_id}'", docs_sql)
        n_docs = con.execute(
            "SELECT sum(n_docs) FROM shards WHERE kind = 'tokens' AND lang IN ('en', 'de', 'fr')"
        ).fetchone()[0]
        assert len(con.execute(docs_sql).fetchall()) == n_docs  # every document behind the mix
    finally:
        con.close()


def test_mix_hash_tracks_config_and_shard_versions(synth_shards):
    shards = synth_shards
    cfg = parse_mix(mix_yaml())
    h = compute_plan(cfg, shards, TOK).mix_hash
    assert compute_plan(cfg, shards, TOK).mix_hash == h
    bumped = [dict(s, version=2) if s["lang"] == "de" else s for s in shards]
    assert compute_plan(cfg, bumped, TOK).mix_hash != h
    assert compute_plan(parse_mix(mix_yaml(seed=4)), shards, TOK).mix_hash != h


# ---- loader --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory, synth):
    """A built mix (12k tokens, seq_length 16: 750 samples): en is downsampled, de and fr upsampled."""
    tmp = tmp_path_factory.mktemp("built")
    text = mix_yaml(seq_length=16)
    res, _ = _build(tmp, synth, text, record=False)
    return json.loads(res.manifest_path.read_text())


def test_loader_full_stream_has_exact_proportions_and_valid_samples(built):
    loader = MixLoader(built)
    n = len(loader)
    assert n == built["target_tokens"] // built["seq_length"]
    samples = list(loader)
    assert [s.index for s in samples] == list(range(n))
    assert all(s.tokens.shape == (built["seq_length"] + 1,) for s in samples)
    counts = {name: 0 for name in loader.source_names}
    for s in samples:
        counts[s.source] += 1
    for src in built["sources"]:
        # largest-remainder apportionment: exact to within one sample of weight share
        assert counts[src["name"]] == src["n_samples"]
        assert abs(counts[src["name"]] - n * src["share"]) < 1
    # each sample is the window that locate() names of its source's documents, concatenated
    # in shard order (epoch 0) or in the epoch's seeded document permutation (later epochs)
    L = built["seq_length"]
    flats: dict[tuple[str, int], np.ndarray] = {}
    for s in samples[::3]:
        name, epoch, k = loader.locate(s.index)
        if (name, epoch) not in flats:
            docs = [
                np.asarray(d, dtype=np.int64)
                for e in built["shards"]
                if e["source"] == name
                for d in IndexedDataset(e["prefix"])
            ]
            if epoch:
                src = loader.source_names.index(name)
                perm = np.random.default_rng([loader.seed, 2, src, epoch]).permutation(len(docs))
                docs = [docs[d] for d in perm]
            flats[name, epoch] = np.concatenate(docs)
        assert np.array_equal(s.tokens, flats[name, epoch][k * L : k * L + L + 1])
    assert any(epoch for _, epoch in flats)  # later epochs were checked too


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_loader_prefix_proportions_within_sampling_tolerance(built, seed):
    """Over the first n samples each source's count is hypergeometric around n * share.

    Tolerance: 4 standard deviations, sd = sqrt(n p (1 - p) (N - n) / (N - 1)), plus 1 for
    rounding of the per-source totals (a 4-sigma miss has probability < 1e-4 per check).
    """
    loader = MixLoader(built, seed=seed)
    N = len(loader)
    for n in (50, 200, N // 2):
        names = loader.sources(0, n)
        for src in built["sources"]:
            p = src["n_samples"] / N
            sd = math.sqrt(n * p * (1 - p) * (N - n) / (N - 1))
            c = int((names == src["name"]).sum())
            assert abs(c - n * p) <= 4 * sd + 1, (seed, n, src["name"], c, n * p, sd)


def test_loader_epochs_up_and_downsampling(built):
    loader = MixLoader(built)
    draws: dict[str, list[tuple[int, int]]] = {}
    for i in range(len(loader)):
        name, epoch, k = loader.locate(i)
        draws.setdefault(name, []).append((epoch, k))
    for src in built["sources"]:
        d = draws[src["name"]]
        a = src["available_samples"]
        ks = [k for _, k in d]
        # no sample repeats before every sample was used once (a permutation per epoch)
        for e in range(max(ep for ep, _ in d) + 1):
            block = [k for ep, k in d if ep == e]
            assert len(set(block)) == len(block)
        if src["n_samples"] <= a:
            assert src["epochs"] < 1.05 and len(set(ks)) == len(ks)
        else:
            assert set(ks) == set(range(a))


def _windows_by_epoch(loader: MixLoader) -> dict[str, dict[int, list[bytes]]]:
    out: dict[str, dict[int, list[bytes]]] = {}
    for s in loader:
        _, epoch, _ = loader.locate(s.index)
        out.setdefault(s.source, {}).setdefault(epoch, []).append(s.tokens.tobytes())
    return out


@pytest.fixture(scope="module")
def built64(tmp_path_factory, synth):
    """The same mix at seq_length 64 (about one document per window, as at seq_length 4096
    on web text): de is upsampled ~2x and fr ~3.4x."""
    res, _ = _build(tmp_path_factory.mktemp("built64"), synth, mix_yaml(), record=False)
    return json.loads(res.manifest_path.read_text())


@pytest.mark.parametrize("fixture", ["built", "built64"])
def test_upsampled_epochs_reshuffle_documents_so_windows_differ(fixture, request):
    """Like Megatron's GPTDataset: an extra epoch re-cuts windows over shuffled documents.

    The old loader re-read the same windows in every epoch: every window of epoch 1+ repeated
    one of epoch 0. Now no window repeats within an epoch and every later epoch differs from
    the earlier ones. A later window can still equal an earlier one when it lies inside one
    document that starts at the same offset modulo seq_length in both epochs; with about one
    document per window (seq_length 64 here) that stays under 20% of the later windows.
    """
    built = request.getfixturevalue(fixture)
    loader = MixLoader(built)
    windows = _windows_by_epoch(loader)
    upsampled = [s["name"] for s in built["sources"] if s["n_samples"] > s["available_samples"]]
    assert len(upsampled) == 2, "the fixture must upsample de and fr"
    for name in upsampled:
        epochs = windows[name]
        assert len(epochs) >= 3
        seen: set[bytes] = set()
        again = later = 0
        for e in sorted(epochs):
            block = epochs[e]
            assert len(set(block)) == len(block), (name, e)  # no repeat within an epoch
            if e:
                assert not set(block) <= seen, (name, e)  # each epoch brings new windows
                again += sum(w in seen for w in block)
                later += len(block)
            seen.update(block)
        if fixture == "built64":
            assert again <= 0.2 * later, (name, again, later)
    # the per-epoch document order is seeded: another seed re-cuts epoch 1 differently
    other = _windows_by_epoch(MixLoader(built, seed=built["seed"] + 1))
    assert set(other[upsampled[0]][1]) != set(windows[upsampled[0]][1])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), frac=st.floats(0, 1))
def test_resume_from_k_gives_exactly_the_stream_from_k(built, seed, frac):
    full = MixLoader(built, seed=seed)
    k = int(frac * len(full))
    ref = [full[i] for i in range(k, min(k + 40, len(full)))]
    restarted = MixLoader(built, seed=seed)  # a fresh process after a restart
    got = []
    for s in restarted.iter_from(k):
        got.append(s)
        if len(got) == len(ref):
            break
    assert [(s.index, s.source) for s in got] == [(s.index, s.source) for s in ref]
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(got, ref, strict=True))


def test_seed_changes_the_order_but_not_the_counts(built):
    a, b = MixLoader(built, seed=1), MixLoader(built, seed=2)
    assert list(a.sources()) != list(b.sources())
    assert sorted(a.sources()) == sorted(b.sources())
    assert [a.locate(i) for i in range(30)] == [
        MixLoader(built, seed=1).locate(i) for i in range(30)
    ]


def test_loader_refuses_a_changed_shard(built, tmp_path):
    m = json.loads(json.dumps(built))
    m["shards"][0]["n_tokens"] += 1
    with pytest.raises(ValueError, match="changed since the mix was built"):
        MixLoader(m)


# ---- the shipped example against a real run of the sample crawl ---------------------------
@pytest.mark.ray
def test_example_mix_builds_on_sample_run(sample_run, tmp_path):
    lin = _copy_lineage(Path(sample_run.lineage_path).parent, tmp_path / "lin")
    out = tmp_path / "mix"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mixes",
            "build",
            str(REPO / "mixes" / "example.yaml"),
            "--lineage",
            str(lin),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    blend = (out / "megatron_blend.txt").read_text().strip()
    assert blend in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tokenizer_hash"] == TOK
    con = open_reader(lin)
    live = dict(
        con.execute(
            "SELECT shard_id, n_tokens FROM shards WHERE kind='tokens' AND status='live'"
        ).fetchall()
    )
    rows = con.execute(_shards_query()).fetchall()
    con.close()
    # every shard of the sample run falls in exactly one source of the example
    assert sorted(e["shard_id"] for e in manifest["shards"]) == sorted(live)
    assert len(rows) == len(live)
    assert {e["shard_id"]: e["n_tokens"] for e in manifest["shards"]} == live
    for e in manifest["shards"]:
        ds = IndexedDataset(e["prefix"])
        assert ds.n_tokens == e["n_tokens"]
    summary = (out / "summary.txt").read_text()
    for src in manifest["sources"]:
        assert re.search(rf"^{src['name']}\s", summary, re.M)
        assert src["epochs"] <= src["max_epochs"]
    loader = MixLoader(out / "manifest.json")
    assert len(loader) == manifest["target_tokens"] // manifest["seq_length"] > 0
    first = [s.source for s in loader.iter_from(0)]
    assert len(first) == len(loader)
