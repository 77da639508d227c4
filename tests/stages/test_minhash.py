"""Signatures: datasketch agreement, normalization, CJK shingling, S-curve vs theory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.minhash import (
    DedupConfig,
    SignatureStage,
    normalize_text,
    shingle_hashes,
    shingle_hashfunc,
    split_words,
    word_hashes,
)
from stages.minhash import _words_flat as words_flat
from tests.real_data import shared_data_dir, skip_reason

LANGID = shared_data_dir() / "langid"


def _sentences() -> list[str]:
    if not LANGID.is_dir():
        pytest.skip(skip_reason())
    out = []
    for lang in ("en", "de", "zh", "ja", "ru", "ar"):
        p = LANGID / f"{lang}.txt"
        if p.exists():
            out.extend(p.read_text(encoding="utf-8").splitlines()[:40])
    return out


def _datasketch_sig(words: list[str], cfg: DedupConfig) -> np.ndarray:
    m = MinHash(
        num_perm=cfg.num_perm,
        seed=cfg.seed,
        scheme=f"affine{cfg.hash_bits}",
        hashfunc=shingle_hashfunc(cfg.hash_bits),
    )
    n = cfg.ngram
    m.update_batch([tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))])
    return m.hashvalues


@pytest.mark.parametrize("bits", [64, 32])
def test_signatures_equal_datasketch(bits: int) -> None:
    sents = _sentences()
    docs = [" ".join(sents[i : i + 7]) for i in range(0, len(sents), 7)]
    docs += ["one two", "a b c d e", "x"]  # shorter than / equal to ngram
    cfg = DedupConfig(hash_bits=bits, seed=7)
    _, sig, has = SignatureStage(cfg).signatures(pa.array(docs))
    words = split_words(normalize_text(pa.array(docs), cfg)).to_pylist()
    assert has.all()
    for i, ws in enumerate(words):
        np.testing.assert_array_equal(sig[i], _datasketch_sig(ws, cfg), err_msg=docs[i][:80])


def test_cjk_is_not_one_shingle() -> None:
    cfg = DedupConfig()
    doc = "我们今天在北京开会讨论新的计划并且决定明年继续合作"
    flat, off = words_flat(normalize_text(pa.array([doc]), cfg))
    _, sh_off = shingle_hashes(word_hashes(flat), off, cfg.ngram)
    assert off[1] == len(doc)  # one word per Han character
    assert sh_off[1] == len(doc) - cfg.ngram + 1


def test_normalization_exact_hash() -> None:
    cfg = DedupConfig()
    t = pa.table(
        {
            "text": [
                "Hello,   World!  It is 2024.",
                "hello world it is 1999",
                "HELLO WORLD — it is 2023!!",
                "hello there",
            ]
        }
    )
    out = SignatureStage(cfg)(t)
    th = out.column("text_hash").to_pylist()
    assert th[0] == th[1] == th[2] != th[3]
    keep_digits = SignatureStage(DedupConfig(digits="keep"))(t).column("text_hash").to_pylist()
    assert keep_digits[0] != keep_digits[1]
    case = SignatureStage(DedupConfig(lowercase=False))(t).column("text_hash").to_pylist()
    assert case[0] != case[1]


def test_stage_nulls_and_types() -> None:
    cfg = DedupConfig()
    t = pa.table(
        {
            "text": ["some words here for a doc", "dropped doc text", None, "", "..."],
            "drop_reason": [None, "lang.low_score", None, None, None],
        }
    )
    out = SignatureStage(cfg)(t)
    assert out.schema.field("text_hash").type == pa.uint64()
    assert out.schema.field("minhash_bands").type == pa.list_(pa.uint64(), cfg.bands)
    th = out.column("text_hash").to_pylist()
    bands = out.column("minhash_bands").to_pylist()
    assert th[0] is not None and len(bands[0]) == cfg.bands
    assert th[1] is None and bands[1] is None  # already dropped
    assert th[2] is None and bands[2] is None  # no text
    assert th[3] is not None and bands[3] is None  # no words: exact dedup only
    assert th[3] == th[4] and bands[4] is None  # punctuation only normalizes to ""
    assert out.column("text").equals(t.column("text"))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from("alpha beta gamma delta eps zeta eta theta 日 本".split()), max_size=30
        ).map(" ".join),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 11),
)
def test_signature_independent_of_batch(docs: list[str], cut: int) -> None:
    """A doc's signature does not depend on which other docs share its batch."""
    stage = SignatureStage(DedupConfig(ngram=3))
    t = pa.table({"text": docs})
    whole = stage(t)
    cut = min(cut, len(docs))
    parts = pa.concat_tables([stage(t.slice(0, cut)), stage(t.slice(cut))])
    assert whole.column("minhash_bands").to_pylist() == parts.column("minhash_bands").to_pylist()
    assert whole.column("text_hash").to_pylist() == parts.column("text_hash").to_pylist()


def test_candidate_rate_matches_s_curve() -> None:
    """300 pairs per level; measured candidate rate within 4 binomial std of theory
    (expected rate = mean over pairs of 1-(1-J^r)^b with each pair's EXACT Jaccard)."""
    if not LANGID.is_dir():
        pytest.skip(skip_reason())
    from benchmarks.dedup_accuracy import s_curve_table

    rows = s_curve_table(DedupConfig(), (0.6, 0.75, 0.85), pairs=300, seed=3)
    for r in rows:
        assert abs(r["mean_J"] - r["target"]) < 0.03, r
        tol = max(4 * r["std"], 0.01)
        assert abs(r["measured"] - r["expected"]) <= tol, r
