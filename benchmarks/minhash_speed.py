"""MinHash signatures/s INCLUDING shingling: our vectorized SignatureStage vs datasketch 2.x.

Corpus: main text of the 989 real pages in $CCPIPE_SHARED_DATA/extraction/trafilatura-eval.warc.gz
(extracted once with resiliparse, cached as Parquet in the temp dir). One core: numpy/BLAS
threads pinned to 1 before numpy is imported. 112 permutations (14 x 8), word 5-grams.

datasketch paths measured (its fastest CPU paths): ``MinHash.bulk`` (= copy + ``update_batch``
per doc) with the default sha1 hashfunc on utf-8 shingle bytes, and with xxh64 as hashfunc.
Shingling for datasketch uses the same normalized word lists (Python slicing + join).

    python -m benchmarks.minhash_speed [--docs N] [--bits 64]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import pyarrow as pa  # noqa: E402

from benchmarks.corpus import load_texts  # noqa: E402


def load_corpus(min_chars: int = 1) -> list[str]:
    """Extracted main text of the eval WARC (cached); raises FileNotFoundError if absent."""
    return load_texts(min_chars)


def bench(n_docs: int | None = None, bits: int = 64, repeat: int = 3) -> dict:
    """Return docs/s for ours and datasketch paths on the same documents."""
    import xxhash
    from datasketch import MinHash

    from stages.minhash import DedupConfig, SignatureStage, normalize_text, split_words

    texts = load_corpus()
    if n_docs:
        texts = (texts * (n_docs // len(texts) + 1))[:n_docs]
    cfg = DedupConfig(hash_bits=bits)
    stage = SignatureStage(cfg)
    table = pa.table({"text": texts})
    res: dict = {"docs": len(texts), "num_perm": cfg.num_perm, "hash_bits": bits}
    words_total = sum(len(w) for w in split_words(normalize_text(table["text"], cfg)).to_pylist())
    res["mean_words"] = words_total / len(texts)

    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for s in range(0, len(texts), 1000):  # realistic batch size
            stage(table.slice(s, 1000))
        best = min(best, time.perf_counter() - t0)
    res["ours_docs_per_s"] = len(texts) / best

    def ds_run(hashfunc) -> float:
        t0 = time.perf_counter()
        # shingling included: same normalization (Arrow), then Python n-gram byte strings
        words = split_words(normalize_text(table["text"], cfg)).to_pylist()
        n = cfg.ngram
        shingles = [
            [" ".join(ws[i : i + n]).encode("utf-8") for i in range(max(1, len(ws) - n + 1))]
            for ws in words
        ]
        kw = {"num_perm": cfg.num_perm, "seed": cfg.seed, "scheme": f"affine{bits}"}
        if hashfunc is not None:
            kw["hashfunc"] = hashfunc
        MinHash.bulk(shingles, **kw)
        return time.perf_counter() - t0

    from datasketch.hashfunc import sha1_hash32, sha1_hash64

    sha = sha1_hash64 if bits == 64 else sha1_hash32
    xx = xxhash.xxh64_intdigest if bits == 64 else xxhash.xxh32_intdigest
    res["datasketch_bulk_sha1_docs_per_s"] = len(texts) / min(ds_run(sha) for _ in range(repeat))
    res["datasketch_bulk_xxhash_docs_per_s"] = len(texts) / min(ds_run(xx) for _ in range(repeat))
    fastest = max(res["datasketch_bulk_sha1_docs_per_s"], res["datasketch_bulk_xxhash_docs_per_s"])
    res["speedup_vs_fastest_datasketch"] = res["ours_docs_per_s"] / fastest
    return res


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--docs", type=int, default=None)
    p.add_argument("--bits", type=int, default=64, choices=(32, 64))
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    for k, v in bench(args.docs, args.bits, args.repeat).items():
        print(f"{k:40s} {v:,.2f}" if isinstance(v, float) else f"{k:40s} {v}")


if __name__ == "__main__":
    main()
