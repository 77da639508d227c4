"""Clustering: exact/near dup detection, keeper rule, released docs, order independence."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.dedup_cluster import dedup_local, star_edges
from stages.minhash import DedupConfig, SignatureStage
from tests.real_data import shared_data_dir, skip_reason

LANGID = shared_data_dir() / "langid"
BASE = (
    "the committee met on tuesday to discuss the budget for the new library and after a long "
    "debate the members agreed to postpone the vote until more information about costs could "
    "be collected from the city planning office and the regional council of elders"
)


def _sig_table(texts: list[str], dates: list[int | None], ids: list[str] | None = None):
    ids = ids or [f"doc{i:03d}" for i in range(len(texts))]
    t = pa.table(
        {
            "doc_id": ids,
            "warc_date": pa.array(dates, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            "text": texts,
        }
    )
    return SignatureStage(DedupConfig())(t).drop_columns(["text"])


def test_star_edges() -> None:
    keys = np.array([5, 5, 5, 7, 9, 9, 5], dtype=np.uint64)
    mem = np.array([3, 1, 2, 4, 6, 6, 1])
    src, dst = star_edges(keys, mem)
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(2, 1), (3, 1)]


def test_exact_dups_and_keeper_rule() -> None:
    texts = [BASE, BASE.upper(), BASE + "!!", "something else entirely different here"]
    dates = [200, 100, 100, None]
    out, stats = dedup_local(_sig_table(texts, dates))
    # doc001 and doc002 share the earliest date: smallest doc_id wins
    assert out.column("doc_id").to_pylist() == ["doc000", "doc002"]
    assert set(out.column("keeper_doc_id").to_pylist()) == {"doc001"}
    assert out.column("reason").to_pylist() == ["dedup.exact", "dedup.exact"]
    assert len(set(out.column("cluster_id").to_pylist())) == 1
    assert stats == {"clusters": 1, "exact_dups": 2, "near_dups": 0}


def test_null_date_loses() -> None:
    out, _ = dedup_local(_sig_table([BASE, BASE], [None, 500]))
    assert out.column("doc_id").to_pylist() == ["doc000"]


def test_released_always_wins() -> None:
    t = _sig_table([BASE, BASE, BASE.replace("tuesday", "monday")], [1, 999, 2])
    out, _ = dedup_local(t, released=np.array([False, True, False]))
    assert out.column("doc_id").to_pylist() == ["doc000", "doc002"]
    assert set(out.column("keeper_doc_id").to_pylist()) == {"doc001"}
    assert out.column("reason").to_pylist() == ["dedup.exact", "dedup.minhash"]
    # two released duplicates: neither is ever dropped
    out2, _ = dedup_local(t, released=np.array([True, True, False]))
    assert out2.column("doc_id").to_pylist() == ["doc002"]
    assert out2.column("keeper_doc_id").to_pylist() == ["doc000"]


def test_same_doc_id_is_not_its_own_duplicate() -> None:
    t = _sig_table([BASE, BASE], [1, 1], ids=["same", "same"])
    out, stats = dedup_local(t, released=np.array([True, False]))
    assert out.num_rows == 0 and stats["clusters"] == 0


def test_near_dups_found_at_09_not_at_03() -> None:
    if not LANGID.is_dir():
        pytest.skip(skip_reason())
    from benchmarks.dedup_accuracy import exact_jaccard, load_sentences, make_pairs

    rng = np.random.default_rng(11)
    sents = load_sentences(("en", "de"))
    found = {}
    for s in (0.9, 0.3):
        a, b = make_pairs(sents, np.full(20, s), rng)
        j = exact_jaccard(a, b, DedupConfig())
        assert abs(j.mean() - s) < 0.05
        n = len(a)
        t = _sig_table(a + b, [1] * n + [2] * n)
        out, _ = dedup_local(t)
        dropped = set(out.column("doc_id").to_pylist())
        found[s] = sum(f"doc{n + i:03d}" in dropped for i in range(n))
        if s == 0.9:
            assert set(out.column("reason").to_pylist()) == {"dedup.minhash"}
    assert found[0.9] == 20  # P(candidate | 0.9) = 0.9996 per pair
    assert found[0.3] == 0  # P(candidate | 0.3) = 0.0009 per pair


_TEXTS = [BASE, BASE.upper(), BASE.replace("tuesday", "friday"), "other words entirely", ""]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(_TEXTS) - 1), st.one_of(st.none(), st.integers(0, 3)), st.booleans()
        ),
        min_size=1,
        max_size=14,
    ),
    st.randoms(use_true_random=False),
)
def test_output_independent_of_row_order(rows, rnd) -> None:
    texts = [_TEXTS[i] for i, _, _ in rows]
    dates = [d for _, d, _ in rows]
    rel = np.array([r for _, _, r in rows])
    t = _sig_table(texts, dates)
    out, _ = dedup_local(t, released=rel)
    perm = list(range(len(rows)))
    rnd.shuffle(perm)
    out2, _ = dedup_local(t.take(pa.array(perm, pa.int64())), released=rel[perm])
    assert out.equals(out2)
    assert not set(out.column("doc_id").to_pylist()) & {f"doc{i:03d}" for i in np.flatnonzero(rel)}
