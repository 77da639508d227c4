"""MinHash-LSH accuracy against exact word-5-gram Jaccard, on real sentences.

Pairs: a base document of real sentences ($CCPIPE_SHARED_DATA/langid/<lang>.txt, several
languages) and a copy in which ``k`` words at positions >= ngram apart are replaced by fresh
random letter tokens: each replacement removes ``ngram`` shingles and adds ``ngram`` new ones,
so J = (S - n k) / (S + n k) for S distinct shingles; k is chosen for a target J and the EXACT
Jaccard of every pair is then computed from the shingle hash sets (same normalization).

Reports, per similarity bucket, P(candidate) (pair shares >= 1 band key) vs the theoretical
S-curve 1-(1-s^r)^b averaged over the pairs' exact Jaccard, and precision/recall of
"candidate" against "exact J >= threshold" (pairs with J uniform in [0.3, 1]).

    python -m benchmarks.dedup_accuracy [--pairs 300]
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa

from benchmarks.data import missing, real_data_dir
from stages.minhash import (
    DedupConfig,
    SignatureStage,
    band_keys,
    normalize_text,
    shingle_hashes,
    theoretical_candidate_probability,
    word_hashes,
)
from stages.minhash import _words_flat as words_flat

LANGID = real_data_dir() / "langid"
LANGS = ("en", "de", "fr", "es", "nl", "pl", "it", "pt")


def load_sentences(langs: tuple[str, ...] = LANGS) -> list[str]:
    """Real web sentences (Leipzig via lingua-rs); FileNotFoundError if the data is absent."""
    out: list[str] = []
    for lang in langs:
        p = LANGID / f"{lang}.txt"
        if p.exists():
            out.extend(s for s in p.read_text(encoding="utf-8").splitlines() if s.strip())
    if not out:
        raise FileNotFoundError(missing(LANGID))
    return out


def make_pairs(
    sentences: list[str],
    targets: np.ndarray,
    rng: np.random.Generator,
    min_words: int = 250,
    ngram: int = 5,
) -> tuple[list[str], list[str]]:
    """(docs_a, docs_b): one pair per target Jaccard; b = a with spaced word replacements."""
    a_docs, b_docs = [], []
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    for s in targets:
        words: list[str] = []
        while len(words) < min_words:
            words.extend(sentences[int(rng.integers(len(sentences)))].split())
        n_sh = len(words) - ngram + 1
        k = int(round(n_sh * (1 - s) / (ngram * (1 + s))))
        slots = np.arange(0, len(words), ngram)
        k = min(k, len(slots))
        pos = rng.choice(slots, size=k, replace=False) if k else []
        b = list(words)
        for p in pos:
            b[int(p)] = "".join(rng.choice(letters, size=10))
        a_docs.append(" ".join(words))
        b_docs.append(" ".join(b))
    return a_docs, b_docs


def exact_jaccard(a_docs: list[str], b_docs: list[str], cfg: DedupConfig) -> np.ndarray:
    """Exact Jaccard of word-n-gram shingle (hash) sets, same normalization as the signatures."""
    out = np.empty(len(a_docs))
    for docs, store in ((a_docs, "a"), (b_docs, "b")):
        flat, off = words_flat(normalize_text(pa.array(docs), cfg))
        sh, sh_off = shingle_hashes(word_hashes(flat), off, cfg.ngram)
        if store == "a":
            sets_a = [set(sh[sh_off[i] : sh_off[i + 1]].tolist()) for i in range(len(docs))]
        else:
            sets_b = [set(sh[sh_off[i] : sh_off[i + 1]].tolist()) for i in range(len(docs))]
    for i, (x, y) in enumerate(zip(sets_a, sets_b, strict=True)):
        out[i] = len(x & y) / len(x | y)
    return out


def candidates(a_docs: list[str], b_docs: list[str], cfg: DedupConfig) -> np.ndarray:
    """True where the pair shares at least one LSH band key."""
    st = SignatureStage(cfg)
    _, sa, _ = st.signatures(pa.array(a_docs))
    _, sb, _ = st.signatures(pa.array(b_docs))
    ka, kb = band_keys(sa, cfg.bands, cfg.rows), band_keys(sb, cfg.bands, cfg.rows)
    return (ka == kb).any(axis=1)


def s_curve_table(
    cfg: DedupConfig, levels: tuple[float, ...], pairs: int, seed: int = 0
) -> list[dict]:
    """Per target level: pairs, mean exact J, measured and expected candidate rate, z-score."""
    rng = np.random.default_rng(seed)
    sents = load_sentences()
    rows = []
    for s in levels:
        a, b = make_pairs(sents, np.full(pairs, s), rng, ngram=cfg.ngram)
        j = exact_jaccard(a, b, cfg)
        c = candidates(a, b, cfg)
        p = theoretical_candidate_probability(j, cfg.bands, cfg.rows)
        std = float(np.sqrt((p * (1 - p)).sum())) / pairs
        rows.append(
            {
                "target": s,
                "pairs": pairs,
                "mean_J": float(j.mean()),
                "measured": float(c.mean()),
                "expected": float(p.mean()),
                "std": std,
                "z": (float(c.mean()) - float(p.mean())) / std if std > 0 else 0.0,
            }
        )
    return rows


def precision_recall(cfg: DedupConfig, pairs: int, seed: int = 1) -> dict:
    """Candidate vs exact J >= cfg.threshold over pairs with target J uniform in [0.3, 1]."""
    rng = np.random.default_rng(seed)
    a, b = make_pairs(load_sentences(), rng.uniform(0.3, 1.0, pairs), rng, ngram=cfg.ngram)
    j = exact_jaccard(a, b, cfg)
    c = candidates(a, b, cfg)
    truth = j >= cfg.threshold
    tp = int((c & truth).sum())
    return {
        "threshold": cfg.threshold,
        "pairs": pairs,
        "true_dups": int(truth.sum()),
        "candidates": int(c.sum()),
        "precision": tp / max(1, int(c.sum())),
        "recall": tp / max(1, int(truth.sum())),
    }


def main() -> None:
    """CLI: print the S-curve table and precision/recall."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=300)
    args = ap.parse_args()
    cfg = DedupConfig()
    levels = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    print(f"bands={cfg.bands} rows={cfg.rows} ngram={cfg.ngram}")
    print(f"{'target':>6} {'mean_J':>7} {'measured':>9} {'expected':>9} {'z':>6}")
    for r in s_curve_table(cfg, levels, args.pairs):
        print(
            f"{r['target']:6.2f} {r['mean_J']:7.3f} {r['measured']:9.3f} "
            f"{r['expected']:9.3f} {r['z']:6.2f}"
        )
    for t in (0.75, 0.8):
        print(precision_recall(cfg.model_copy(update={"threshold": t}), 3 * args.pairs))


if __name__ == "__main__":
    main()
