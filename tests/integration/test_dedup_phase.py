"""Phase 2 on real local Ray: the distributed path equals the one-task path and the
single-process scipy reference, components equal scipy's, the cross-run index is append-only."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from benchmarks.dedup_scale import plan, write_synthetic  # noqa: E402
from pipeline.dedup_index import (  # noqa: E402
    compact,
    decisions_files,
    read_decisions,
    write_index_part,
)
from pipeline.dedup_phase import (  # noqa: E402
    EDGE_SCHEMA,
    connected_components,
    run_dedup_phase,
)
from stages.dedup_cluster import dedup_local, partition_of  # noqa: E402
from stages.minhash import DedupConfig, SignatureStage  # noqa: E402

pytestmark = pytest.mark.ray

WORDS = (
    "river stone bright market window garden silver morning cloud paper harbor lantern "
    "valley engine forest quiet letter candle bridge summer winter orange meadow signal"
).split()


@pytest.fixture(scope="module")
def ray_ctx(request):
    """The session fixture (one embedded Ray for the whole test session)."""
    yield request.getfixturevalue("ray_session")


def _docs(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=60)) + f" {prefix}" for _ in range(n)]


def _sig_table(ids, texts, dates) -> pa.Table:
    t = pa.table(
        {
            "doc_id": ids,
            "warc_date": pa.array(dates, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "text": texts,
        }
    )
    return SignatureStage(DedupConfig())(t).drop_columns(["text"])


def _write_sigs(tmp, name: str, sig: pa.Table, n_files: int = 2) -> list[tuple[str, str]]:
    out, step = [], -(-sig.num_rows // n_files)
    for k in range(n_files):
        p = str(tmp / f"{name}-{k}.parquet")
        pq.write_table(sig.slice(k * step, step), p)
        out.append((p, f"{name}{k}"))
    return out


def _all_decisions(d: str) -> pa.Table:
    tables = [pq.read_table(u) for u in decisions_files(d)]
    t = pa.concat_tables(tables) if tables else pa.table({"doc_id": pa.array([], pa.string())})
    return t.take(pc.sort_indices(t, sort_keys=[("doc_id", "ascending")]))


def test_distributed_equals_one_task_and_reference(ray_ctx, tmp_path) -> None:
    rng = np.random.default_rng(5)
    base = _docs(rng, 30, "")
    near = []
    for t in base[5:10]:
        w = t.split()
        w[30] = "zebra"
        near.append(" ".join(w))
    texts = base + base[:5] + near
    ids = [f"a{i:03d}" for i in range(len(texts))]
    sig = _sig_table(ids, texts, [100 + i for i in range(len(texts))])
    files = _write_sigs(tmp_path, "a", sig)
    ref, _ = dedup_local(sig)
    cfg = DedupConfig(num_partitions=4)
    s_dist = run_dedup_phase(files, None, str(tmp_path / "dist"), cfg, local_max_docs=0)
    s_task = run_dedup_phase(
        files, None, str(tmp_path / "task"), cfg, local_max_docs=10**6, driver_max_docs=0
    )
    s_drv = run_dedup_phase(files, None, str(tmp_path / "drv"), cfg, local_max_docs=10**6)
    assert s_dist["engine"] == "ray-data" and s_task["engine"] == "ray-task"
    assert s_drv["engine"] == "in-process"  # a few docs: no Ray worker to start
    assert _all_decisions(str(tmp_path / "drv")).equals(ref)
    assert s_dist["rounds"] >= 1
    dist, task = _all_decisions(str(tmp_path / "dist")), _all_decisions(str(tmp_path / "task"))
    assert dist.equals(ref) and task.equals(ref)
    names = sorted(os.listdir(tmp_path / "dist"))
    assert names == sorted(os.listdir(tmp_path / "task")) == ["_SUCCESS.json", "a1.parquet"]
    for name in names[1:]:  # the per-file decisions are byte-identical
        a = open(tmp_path / "dist" / name, "rb").read()
        assert a == open(tmp_path / "task" / name, "rb").read()
    # decisions are partitioned by input file: each file holds only its own docs
    for path, fk in files:
        own = set(pq.read_table(path, columns=["doc_id"]).column("doc_id").to_pylist())
        dec = read_decisions(str(tmp_path / "dist"), fk)
        assert set(dec.column("doc_id").to_pylist()) <= own
    assert s_dist["exact_dups"] == 5 and s_dist["near_dups"] >= 4
    assert s_dist["dropped"] == ref.num_rows == s_task["dropped"]


def _mtimes(d) -> dict[str, tuple[int, bytes]]:
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = (os.stat(p).st_mtime_ns, open(p, "rb").read())
    return out


@pytest.mark.parametrize("local_max", [0, 10**6], ids=["shuffle", "one-task"])
def test_cross_run_index_runs_a_b_c(ray_ctx, tmp_path, local_max) -> None:
    """Runs A, B, C into one index: B and C drop copies of A's (and B's) released docs, the
    index only grows by new parts, A's index files stay byte-identical with the same mtime."""
    rng = np.random.default_rng(7)
    cfg = DedupConfig(num_partitions=4)
    idx = str(tmp_path / "index")
    texts_a = _docs(rng, 20, "a")
    sig_a = _sig_table([f"a{i:03d}" for i in range(20)], texts_a, list(range(100, 120)))
    files_a = _write_sigs(tmp_path, "A", sig_a)
    st_a = run_dedup_phase(files_a, idx, str(tmp_path / "dA"), cfg, local_max_docs=local_max)
    assert st_a["dropped"] == 0 and st_a["index_docs"] == 0
    for path, fk in files_a:  # phase 3 commits each file: append its released docs
        write_index_part(idx, fk, pq.read_table(path))
    a_files = _mtimes(idx)
    assert a_files and all("file=A" in k for k in a_files)

    # B: 5 exact copies of A's docs with EARLIER dates (released still wins) + 10 new docs
    texts_b = texts_a[:5] + _docs(rng, 10, "b")
    sig_b = _sig_table([f"b{i:03d}" for i in range(15)], texts_b, [1] * 15)
    files_b = _write_sigs(tmp_path, "B", sig_b)
    st_b = run_dedup_phase(files_b, idx, str(tmp_path / "dB"), cfg, local_max_docs=local_max)
    dec_b = _all_decisions(str(tmp_path / "dB"))
    assert dec_b.column("doc_id").to_pylist() == [f"b{i:03d}" for i in range(5)]
    assert dec_b.column("keeper_doc_id").to_pylist() == [f"a{i:03d}" for i in range(5)]
    assert set(dec_b.column("reason").to_pylist()) == {"dedup.exact"}
    assert st_b["index_docs"] == 20
    kept_b = sig_b.filter(pc.invert(pc.is_in(sig_b.column("doc_id"), dec_b.column("doc_id"))))
    write_index_part(idx, "B0", kept_b)

    # C: near copies of A's docs, a copy of a B doc, A's own docs again (no-op: same ids)
    near = []
    for t in texts_a[10:13]:
        w = t.split()
        w[20] = "zebra"
        near.append(" ".join(w))
    texts_c = near + [texts_b[7]]
    sig_c = _sig_table([f"c{i:03d}" for i in range(4)], texts_c, [1] * 4)
    files_c = _write_sigs(tmp_path, "C", sig_c, n_files=1) + files_a
    st_c = run_dedup_phase(files_c, idx, str(tmp_path / "dC"), cfg, local_max_docs=local_max)
    dec_c = _all_decisions(str(tmp_path / "dC"))
    dropped_c = dec_c.column("doc_id").to_pylist()
    assert [d for d in dropped_c if d.startswith("a")] == []  # released docs never dropped
    assert "c003" in dropped_c  # copy of a B doc released by run B
    kc = dict(zip(dropped_c, dec_c.column("keeper_doc_id").to_pylist(), strict=True))
    assert kc["c003"] == "b007"
    assert sum(d.startswith("c") and kc[d].startswith("a") for d in dropped_c) >= 2
    assert st_c["index_docs"] == 20 + kept_b.num_rows

    after = _mtimes(idx)
    assert {k: v for k, v in after.items() if k in a_files} == a_files  # A untouched on disk
    assert set(after) - set(a_files) and all("file=B0" in k for k in set(after) - set(a_files))

    # compact merges the small parts; lookups give the same answer afterwards
    before = run_dedup_phase(files_c, idx, str(tmp_path / "dC2"), cfg, local_max_docs=local_max)
    stats = compact(idx)
    assert stats["files_after"] < stats["files_before"]
    again = run_dedup_phase(files_c, idx, str(tmp_path / "dC3"), cfg, local_max_docs=local_max)
    assert _all_decisions(str(tmp_path / "dC3")).equals(_all_decisions(str(tmp_path / "dC2")))
    assert again["dropped"] == before["dropped"] == st_c["dropped"]


def _components_check(tmp_path, n_docs: int, bits: int) -> None:
    """Planted exact pairs, chains and stars: distributed phase 2 == scipy reference."""
    p = plan(n_docs, 0.04, 0.05, 0.05, 8, 6)
    files = write_synthetic(p, str(tmp_path / "sig"), max(2, n_docs // 50_000))
    st = run_dedup_phase(
        files, None, str(tmp_path / "dec"), DedupConfig(num_partitions=1 << bits), local_max_docs=0
    )
    assert st["dropped"] == p["expected_removed"]
    sig = pa.concat_tables([pq.read_table(u) for u, _ in files])
    ref, ref_stats = dedup_local(sig)  # scipy connected components in one process
    assert _all_decisions(str(tmp_path / "dec")).equals(ref)
    assert st["clusters"] == ref_stats["clusters"]
    _connected_components_check(n_docs, bits, 2000)


def _connected_components_check(n: int, bits: int, chain_len: int) -> None:
    """The component algorithm itself == scipy on a random graph with a planted long chain
    (the shape that needs the most large-star/small-star rounds) and a star."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_cc

    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(1, 2**63, n, dtype=np.uint64))
    n = len(keys)
    a = rng.integers(0, n, n // 20)
    b = rng.integers(0, n, n // 20)
    chain = rng.permutation(n)[:chain_len]  # one long chain
    star = rng.permutation(n)[:500]
    a = np.concatenate([a, chain[:-1], np.full(499, star[0])])
    b = np.concatenate([b, chain[1:], star[1:]])
    keep = a != b
    a, b = a[keep], b[keep]
    ka, kb = keys[a], keys[b]
    both_a, both_b = np.concatenate([ka, kb]), np.concatenate([kb, ka])
    e = pa.table(
        {
            "part": pa.array(partition_of(both_a, bits)),
            "a": both_a,
            "b": both_b,
            "chg": pa.array(np.r_[len(ka), np.zeros(2 * len(ka) - 1, np.int64)]),
        },
        schema=EDGE_SCHEMA,
    )
    comp, rounds, _ = connected_components(ray.data.from_arrow(e), bits)
    assert rounds >= 2, rounds
    got = pa.concat_tables(ray.get(comp.to_arrow_refs()))
    ga, gb = got.column("a").to_numpy(), got.column("b").to_numpy()
    node = np.concatenate([ga, gb])
    root = np.minimum(np.concatenate([ga, gb]), np.concatenate([gb, ga]))
    ncomp, lab = scipy_cc(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    idx = np.searchsorted(keys, node)
    root_of_label = np.full(ncomp, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(root_of_label, lab[np.concatenate([a, b])], keys[np.concatenate([a, b])])
    assert np.array_equal(root, root_of_label[lab[idx]])  # same partition, root = min key
    # every involved node appears
    assert np.array_equal(np.unique(node), np.unique(np.concatenate([ka, kb])))


@pytest.mark.slow
def test_connected_components_match_scipy_on_a_long_chain(ray_ctx) -> None:
    """~80 s on 2 cores (8 rounds of Ray Data's fixed groupby cost); the default suite checks
    the distributed path against the reference in test_distributed_equals_one_task_and_reference."""
    _connected_components_check(5_000, 2, 300)


@pytest.mark.slow
def test_components_match_scipy_50k(ray_ctx, tmp_path) -> None:
    _components_check(tmp_path, 50_000, 3)


@pytest.mark.slow
def test_components_match_scipy_1m(ray_ctx, tmp_path) -> None:
    _components_check(tmp_path, 1_000_000, 4)


@pytest.mark.ray
def test_record_id_shuffle_equals_the_one_process_steps(ray_ctx, tmp_path) -> None:
    """Planted record ids shared across input files (benchmarks.dedup_scale): the Ray Data
    shuffle (distributed phase 2) and the one-process steps make the same decisions, and
    every planted duplicate is found."""
    from benchmarks.dedup_scale import expected_rid_dups

    n, n_files = 20_000, 4
    p = plan(n, 0.04, 0.05, 0.05, 8, 6)
    files = write_synthetic(p, str(tmp_path / "sig"), n_files)
    want = expected_rid_dups(p, -(-n // n_files))
    assert want > 5
    cfg = DedupConfig(num_partitions=4)
    dist = run_dedup_phase(
        files, None, str(tmp_path / "dist"), cfg, local_max_docs=0, record_ids=True
    )
    one = run_dedup_phase(
        files, None, str(tmp_path / "one"), cfg, local_max_docs=10**6, record_ids=True
    )
    assert dist["engine"] == "ray-data" and one["engine"] == "in-process"
    assert dist["record_id_dups"] == one["record_id_dups"] == want
    assert dist["dropped"] == one["dropped"] == p["expected_removed"] + want
    assert _all_decisions(str(tmp_path / "dist")).equals(_all_decisions(str(tmp_path / "one")))
