"""Phase 2 on real local Ray: equals the in-process reference, cross-run index, idempotence."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from pipeline.dedup_phase import index_paths, run_dedup_phase, write_index  # noqa: E402
from stages.dedup_cluster import dedup_local  # noqa: E402
from stages.minhash import DedupConfig, SignatureStage  # noqa: E402

pytestmark = pytest.mark.ray

WORDS = (
    "river stone bright market window garden silver morning cloud paper harbor lantern "
    "valley engine forest quiet letter candle bridge summer winter orange meadow signal"
).split()


@pytest.fixture(scope="module")
def ray_ctx(request):
    """The lead's session fixture if it exists, else a module-scoped local Ray."""
    try:
        yield request.getfixturevalue("ray_session")
        return
    except pytest.FixtureLookupError:
        pass
    started = not ray.is_initialized()
    ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    yield None
    if started:
        ray.shutdown()


def _docs(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=60)) + f" {prefix}" for _ in range(n)]


def _write_sigs(tmp, name: str, ids, texts, dates, n_files: int = 2) -> list[str]:
    t = pa.table(
        {
            "doc_id": ids,
            "warc_date": pa.array(dates, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "text": texts,
        }
    )
    sig = SignatureStage(DedupConfig())(t).drop_columns(["text"])
    paths, step = [], -(-sig.num_rows // n_files)
    for k in range(n_files):
        p = str(tmp / f"{name}-{k}.parquet")
        pq.write_table(sig.slice(k * step, step), p)
        paths.append(p)
    return paths


def test_cross_run_index_and_noop(ray_ctx, tmp_path) -> None:
    rng = np.random.default_rng(5)
    cfg = DedupConfig(num_partitions=2)
    # run A: 30 unique docs + 5 exact copies + 5 one-word edits of its own docs
    base_a = _docs(rng, 30, "")
    near = []
    for t in base_a[5:10]:
        w = t.split()
        w[30] = "zebra"
        near.append(" ".join(w))
    texts_a = base_a + base_a[:5] + near
    ids_a = [f"a{i:03d}" for i in range(len(texts_a))]
    dates_a = [100 + i for i in range(len(texts_a))]
    sig_a = _write_sigs(tmp_path, "a", ids_a, texts_a, dates_a)

    stats_a = run_dedup_phase(sig_a, [], str(tmp_path / "drop_a.parquet"), cfg)
    drop_a = pq.read_table(tmp_path / "drop_a.parquet")
    # the Ray phase equals the single-process reference
    ref, _ = dedup_local(pa.concat_tables([pq.read_table(p) for p in sig_a]))
    assert drop_a.equals(ref)
    assert stats_a["docs"] == 40 and stats_a["exact_dups"] == 5 and stats_a["near_dups"] >= 4
    assert set(drop_a.column("doc_id").to_pylist()) >= {f"a{i:03d}" for i in range(30, 35)}
    assert set(drop_a.column("keeper_doc_id").to_pylist()) <= {f"a{i:03d}" for i in range(30)}

    idx_dir = str(tmp_path / "index")
    written = write_index(sig_a, idx_dir, "A", dropped_path=str(tmp_path / "drop_a.parquet"))
    assert index_paths(idx_dir) == written and written[0].endswith("run=A/part-00000.parquet")
    assert pq.read_table(written[0]).num_rows == 40 - drop_a.num_rows

    # run B = copies of A's docs (EARLIER dates: released still wins) + new docs + A's own
    # files again (same doc_ids as the index: must be a no-op for them)
    texts_b = base_a[10:15] + _docs(rng, 10, "fresh")
    ids_b = [f"b{i:03d}" for i in range(len(texts_b))]
    sig_b = _write_sigs(tmp_path, "b", ids_b, texts_b, [1] * len(texts_b))
    out_b = str(tmp_path / "drop_b.parquet")
    stats_b = run_dedup_phase(sig_b + sig_a, index_paths(idx_dir), out_b, cfg)
    drop_b = pq.read_table(out_b)
    b_rows = drop_b.filter(pa.compute.starts_with(drop_b.column("doc_id"), "b"))
    assert b_rows.column("doc_id").to_pylist() == ids_b[:5]
    assert b_rows.column("keeper_doc_id").to_pylist() == [f"a{i:03d}" for i in range(10, 15)]
    assert set(b_rows.column("reason").to_pylist()) == {"dedup.exact"}
    assert stats_b["index_docs"] == 40 - drop_a.num_rows
    # A's docs: released ones untouched; A's own never-released copies dropped as before
    a_rows = drop_b.filter(pa.compute.starts_with(drop_b.column("doc_id"), "a"))
    assert a_rows.equals(drop_a)


@pytest.mark.slow
def test_repartition_shuffle_equals_groupby(ray_ctx, tmp_path) -> None:
    rng = np.random.default_rng(9)
    texts = _docs(rng, 20, "")
    texts += texts[:6]
    ids = [f"d{i:03d}" for i in range(len(texts))]
    sig = _write_sigs(tmp_path, "s", ids, texts, list(range(len(texts))), n_files=3)
    cfg = DedupConfig(num_partitions=3)
    run_dedup_phase(sig, [], str(tmp_path / "g.parquet"), cfg, shuffle="groupby")
    run_dedup_phase(sig, [], str(tmp_path / "r.parquet"), cfg, shuffle="repartition")
    g, r = pq.read_table(tmp_path / "g.parquet"), pq.read_table(tmp_path / "r.parquet")
    assert g.num_rows == 6 and g.equals(r)
