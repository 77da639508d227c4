"""Throughput of the Tokenize stage and the Megatron shard writer on real extracted pages.

Corpus: main text of the 989 real pages in $CCPIPE_SHARED_DATA/extraction/trafilatura-eval.warc.gz
(German-heavy; en, es, fr, pl), extracted once with resiliparse and cached as Parquet in the temp
dir. A byte-level BPE (default vocab 32000) is trained on that corpus with ``train_tokenizer``
(cached per vocab size), then the stage tokenizes the whole corpus as one batch.

Reported: docs/s, tokens/s, MB/s of UTF-8 text, bytes per token, and the share of time spent in
the Rust ``encode_batch_fast`` call vs. the numpy/Arrow assembly; shard write (bytes) MB/s.
Rust threads: set RAYON_NUM_THREADS (e.g. 1 for a per-core figure) before running.

    python -m benchmarks.tokenize_speed [--vocab-size 32000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.corpus import CACHE
from benchmarks.corpus import corpus_path as extracted_corpus
from stages.token_shards import IndexedDataset, write_indexed_dataset, write_indexed_dataset_bytes
from stages.tokenize import Tokenize, TokenizeConfig, train_tokenizer

CACHE_DIR = CACHE.parent


def run(vocab_size: int = 32000, repeat: int = 3, batch_size: int = 1024) -> dict:
    corpus = extracted_corpus()
    table = pq.read_table(corpus)
    text_bytes = sum(len(t.encode("utf-8")) for t in table.column("text").to_pylist())

    tok_path = CACHE_DIR / f"tokenize_bench_bpe{vocab_size}"  # a tokenizer directory
    t0 = time.perf_counter()
    train_stats = train_tokenizer([str(corpus)], vocab_size, str(tok_path), sample_docs=20000)
    train_s = time.perf_counter() - t0

    stage = Tokenize(TokenizeConfig(tokenizer_path=str(tok_path), batch_size=batch_size))
    stage(table.slice(0, 16))  # warm-up (thread pool start)

    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = stage(table)
        best = min(best, time.perf_counter() - t0)

    texts = table.column("text").to_pylist()
    enc_best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for s in range(0, len(texts), batch_size):
            stage.tokenizer.encode_batch_fast(texts[s : s + batch_size], add_special_tokens=False)
        enc_best = min(enc_best, time.perf_counter() - t0)

    n_tokens = int(pa.compute.sum(out.column("n_tokens")).as_py())
    n_docs = table.num_rows
    tokens = out.column("tokens")
    t0 = time.perf_counter()
    bin_b, idx_b = write_indexed_dataset_bytes(tokens, stage.vocab_size)
    ser_s = time.perf_counter() - t0
    prefix = str(CACHE_DIR / "tokenize_bench_shard")
    t0 = time.perf_counter()
    shard = write_indexed_dataset(prefix, tokens, stage.vocab_size)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = IndexedDataset(prefix)
    read_tokens = sum(int(ds[i].size) for i in range(len(ds)))
    read_s = time.perf_counter() - t0
    assert read_tokens == n_tokens

    return {
        "docs": n_docs,
        "text_MB": round(text_bytes / 1e6, 2),
        "tokens": n_tokens,
        "bytes_per_token": round(text_bytes / (n_tokens - n_docs), 3),
        "tokenizer_train_s": round(train_s, 2),
        "tokenizer_vocab": train_stats["vocab_size"],
        "tokenizer_sha256": train_stats["sha256"][:16],
        "stage_s": round(best, 3),
        "stage_docs_per_s": round(n_docs / best, 1),
        "stage_tokens_per_s": round(n_tokens / best),
        "stage_MB_per_s": round(text_bytes / 1e6 / best, 2),
        "encode_batch_only_s": round(enc_best, 3),
        "assembly_overhead_pct": round(100 * (best - enc_best) / best, 1),
        "shard_dtype": shard["dtype"],
        "shard_bin_MB": round(len(bin_b) / 1e6, 2),
        "shard_serialize_s": round(ser_s, 4),
        "shard_write_s": round(write_s, 4),
        "shard_read_all_s": round(read_s, 4),
        "rayon_threads": os.environ.get("RAYON_NUM_THREADS", "default"),
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "unset"),
        "idx_bytes": len(idx_b),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    args = ap.parse_args()
    print(json.dumps(run(args.vocab_size, args.repeat, args.batch_size), indent=2))


if __name__ == "__main__":
    main()
