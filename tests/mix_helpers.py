"""What the mixes tests share: the sample tokenizer's hash, a small valid mix config and a real
lineage store over real Megatron .bin/.idx token shards (no Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lineage.store import LineageStore
from mixes.config import MixConfig
from stages.token_shards import write_indexed_dataset
from stages.tokenize import SAMPLE_TOKENIZER, tokenizer_hash

TOK = tokenizer_hash(SAMPLE_TOKENIZER)
VOCAB = 5000


def mix_yaml(**over) -> str:
    d = {
        "name": "t",
        "tokenizer": TOK,
        "target_tokens": 12000,
        "seq_length": 64,
        "seed": 3,
        "sources": [
            {"name": "en", "select": {"lang": "en"}, "weight": 0.5, "max_epochs": 4},
            {"name": "de", "select": {"lang": "de"}, "weight": 0.3, "max_epochs": 4},
            {"name": "fr", "select": {"lang": "fr"}, "weight": 0.2, "max_epochs": 4},
        ],
    }
    d.update(over)
    return MixConfig.model_validate(d).to_yaml()


OTHER_TOK = "f" * 64

# (lang, bucket, file, n_docs, tokenizer) -> shards of the synthetic lineage
PARTS = [
    ("en", "high", "a", 30, TOK),
    ("en", "high", "b", 20, TOK),
    ("en", "mid", "a", 40, TOK),
    ("de", "mid", "a", 25, TOK),
    ("fr", "mid", "a", 10, TOK),
    ("xx", "mid", "a", 10, OTHER_TOK),
]


def write_synth_lineage(root: Path) -> Path:
    """Lineage with real token shards in `root`: 5 partitions of the sample tokenizer, 1 of
    another; returns `root`."""
    rng = np.random.default_rng(7)
    rows = []
    for lang, bucket, f, n_docs, tok in PARTS:
        docs = [rng.integers(0, VOCAB, rng.integers(20, 120)) for _ in range(n_docs)]
        # the published layout; lineage paths are relative to the output root
        part = Path(f"lang={lang}") / f"bucket={bucket}" / f"part-{f}-cfg-00000"
        prefix = root / "tokens" / part
        prefix.parent.mkdir(parents=True, exist_ok=True)
        (root / "data" / part).parent.mkdir(parents=True, exist_ok=True)
        info = write_indexed_dataset(str(prefix), docs, VOCAB)
        # the mirrored text shard (same documents, same order), for the documents view
        ids = [f"{lang}-{bucket}-{f}-{i}" for i in range(n_docs)]
        text_id = f"data/{part.as_posix()}.parquet"
        text_path = root / text_id
        pq.write_table(
            pa.table(
                {
                    "doc_id": ids,
                    "url": [f"https://{lang}.example/{i}" for i in ids],
                    "warc_record_id": [f"<urn:uuid:{i}>" for i in ids],
                    "source_uri": ["test.warc.gz"] * n_docs,
                    "source_offset": pa.array(range(n_docs), pa.int64()),
                    "n_tokens": pa.array([len(d) for d in docs], pa.int32()),
                }
            ),
            text_path,
        )
        rows.append(
            {
                "shard_id": text_id,
                "run_id": "run1",
                "kind": "text",
                "path": text_id,
                "lang": lang,
                "quality_bucket": bucket,
                "crawl_id": "CC-TEST",
                "n_docs": n_docs,
                "version": 1,
                "status": "live",
            }
        )
        rows.append(
            {
                "shard_id": f"tokens/{part.as_posix()}.bin",
                "run_id": "run1",
                "kind": "tokens",
                "path": f"tokens/{part.as_posix()}.bin",
                "lang": lang,
                "quality_bucket": bucket,
                "crawl_id": "CC-TEST",
                "n_docs": n_docs,
                "n_tokens": info["n_tokens"],
                "token_dtype": info["dtype"],
                "tokenizer_hash": tok,
                "sha256": info["bin_sha256"],
                "version": 1,
                "status": "live",
                "mirrors_shard": text_id,
            }
        )
    store = LineageStore(root / "lineage.duckdb")
    with store.transaction() as con:
        for kind in ("tokens", "text"):  # insert_rows takes its columns from the first row
            store.insert_rows(con, "shards", [r for r in rows if r["kind"] == kind])
    return root


def copy_lineage(src_dir: Path, dst: Path) -> Path:
    """The lineage alone, elsewhere: it records `src_dir` as the output root it describes."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_dir / "lineage.duckdb", dst / "lineage.duckdb")
    LineageStore(dst / "lineage.duckdb", output_root=str(src_dir))
    return dst / "lineage.duckdb"
