"""Phase 3, per input file: drop duplicates -> PII scrub -> tokenize -> final shards.

Plain Python (no Ray). Writes every file of an input's output (text shards, token shards,
rejected shards, the released-signature index part) with atomic renames and returns what the
driver needs to commit lineage. The driver's lineage row is the commit record: files without
one are rewritten byte-identically by a re-run.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.config import PipelineConfig
from pipeline.phase1 import AUDIT_PII_MARGIN, REJECTED_SCHEMA, scrub_table
from pipeline.work import Layout
from stages.pii import PiiScrubber, sum_pii_counts
from stages.token_shards import write_indexed_dataset_bytes
from stages.tokenize import Tokenize

SIGNATURE_COLUMNS = ["doc_id", "warc_date", "text_hash", "minhash_bands"]
# Columns of the final text shard that are internal to the pipeline.
_INTERNAL = ("tokens", "minhash_bands")
NO_BUCKET = "all"
NO_LANG = "und"


def _read_parquets(uris: list[str]) -> pa.Table | None:
    tables = []
    for u in uris:
        if storage.exists(u):
            fs, path = storage.resolve(u)
            tables.append(pq.read_table(path, filesystem=fs))
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def _cast_like(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pc.cast(table.column(f.name), f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        ],
        schema=schema,
    )


class FileFinisher:
    """Loads the PII engine and tokenizer once (per Ray actor) and finishes input files."""

    def __init__(self, cfg: PipelineConfig, layout: Layout, rkey: str):
        self.cfg = cfg
        self.layout = layout
        self.rkey = rkey
        self.pii = PiiScrubber(cfg.pii)
        self.tokenize = Tokenize(cfg.tokenize)

    def finish(self, item: dict[str, Any]) -> dict[str, Any]:
        """`item`: file_key, source_uri, n_chunks. Returns shard records and counts."""
        file_key, n_chunks = item["file_key"], int(item["n_chunks"])
        prefixes = [self.layout.chunk_prefix(self.rkey, file_key, i) for i in range(n_chunks)]
        kept = _read_parquets([p + ".kept.parquet" for p in prefixes])
        rejected = _read_parquets([p + ".rejected.parquet" for p in prefixes])
        counts: Counter[str] = Counter()
        dedup_rejected = None
        if kept is not None and kept.num_rows:
            kept, dedup_rejected = self._drop_duplicates(kept)
            if dedup_rejected is not None:
                counts.update(dedup_rejected.column("drop_reason").to_pylist())
        shards: list[dict[str, Any]] = []
        pii_by_shard: dict[str, dict[str, int]] = {}
        if kept is not None and kept.num_rows:
            if "pii_counts" not in kept.column_names:  # staged by phase 1 before it scrubbed
                kept = scrub_table(self.pii, kept)
            kept = self.tokenize(kept)
            shards += self._write_text_and_tokens(kept, file_key, item["source_uri"], pii_by_shard)
            self._write_index_part(kept, file_key)
        if self.cfg.output.write_rejected:
            parts = [t for t in (rejected, dedup_rejected) if t is not None and t.num_rows]
            if parts:
                rej = pa.concat_tables([_cast_like(t, REJECTED_SCHEMA) for t in parts])
                shards += self._write_rejected(rej, file_key, item["source_uri"])
        return {
            "file_key": file_key,
            "source_uri": item["source_uri"],
            "docs_kept": 0 if kept is None else kept.num_rows,
            "dedup_counts": dict(counts),
            "shards": shards,
            "pii": pii_by_shard,
            "n_tokens": int(sum(s.get("n_tokens") or 0 for s in shards if s["kind"] == "tokens")),
        }

    # -- steps ---------------------------------------------------------------------------
    def _drop_duplicates(self, kept: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        path = self.layout.decisions(self.rkey)
        if not storage.exists(path):
            return kept, None
        fs, p = storage.resolve(path)
        ids = kept.column("doc_id")
        dec = pq.read_table(p, filesystem=fs, filters=pc.field("doc_id").isin(ids.unique()))
        if dec.num_rows == 0:
            return kept, None
        is_dup = pc.is_in(ids, value_set=dec.column("doc_id"))
        dups = kept.filter(is_dup)
        pos = pc.index_in(dups.column("doc_id"), value_set=dec.column("doc_id"))
        dec = dec.take(pos)
        dups = dups.append_column("drop_reason", dec.column("reason"))
        dups = dups.append_column("cluster_id", pc.cast(dec.column("cluster_id"), pa.string()))
        dups = dups.append_column("keeper_doc_id", dec.column("keeper_doc_id"))
        n = dups.num_rows
        rej = dups.append_column(
            "drop_detail",
            pc.binary_join_element_wise(
                pa.array(["duplicate of"] * n, pa.string()), dups.column("keeper_doc_id"), " "
            ),
        ).append_column("drop_stage", pa.array(["dedup"] * n, pa.string()))
        rej = rej.set_column(
            rej.column_names.index("text"),
            "text",
            # cut with the PII margin; _write_rejected scrubs, then cuts to the limit
            pc.utf8_slice_codeunits(rej.column("text"), 0,
                                    self.cfg.output.rejected_text_chars + AUDIT_PII_MARGIN),
        )
        return kept.filter(pc.invert(is_dup)), rej

    def _partitions(self, table: pa.Table) -> list[tuple[str, str, pa.Table]]:
        lang = pc.fill_null(table.column("lang"), NO_LANG)
        if "quality_bucket" in table.column_names:
            bucket = pc.fill_null(table.column("quality_bucket"), NO_BUCKET)
        else:
            bucket = pa.array([NO_BUCKET] * table.num_rows, pa.string())
        keys = pc.binary_join_element_wise(lang, bucket, "\x1f")
        out = []
        for key in sorted(set(keys.to_pylist())):
            lg, bk = key.split("\x1f")
            out.append((lg, bk, table.filter(pc.equal(keys, key))))
        return out

    def _write_text_and_tokens(
        self, kept: pa.Table, file_key: str, source_uri: str, pii_by_shard: dict
    ) -> list[dict[str, Any]]:
        records = []
        for lang, bucket, part in self._partitions(kept):
            part = part.sort_by([("source_offset", "ascending")])
            text_uri = self.layout.text_shard(lang, bucket, file_key)
            tok_prefix = self.layout.token_prefix(lang, bucket, file_key)
            bin_b, idx_b = write_indexed_dataset_bytes(part.column("tokens"),
                                                       self.tokenize.vocab_size)
            lengths = np.asarray(part.column("n_tokens").to_numpy(), dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            text_tbl = part.drop_columns([c for c in _INTERNAL if c in part.column_names])
            text_tbl = text_tbl.append_column("token_start", pa.array(starts, pa.int64()))
            text_tbl = text_tbl.append_column(
                "shard_row", pa.array(np.arange(part.num_rows), pa.int64())
            )
            # Token shard first, text shard last: the text shard's presence implies both.
            storage.write_bytes_atomic(tok_prefix + ".bin", bin_b)
            storage.write_bytes_atomic(tok_prefix + ".idx", idx_b)
            n_bytes, sha = storage.write_parquet_atomic(
                text_uri, text_tbl, self.cfg.output.row_group_docs
            )
            text_id = self.layout.relative(text_uri)
            offsets = part.column("source_offset")
            common = {
                "lang": lang,
                "quality_bucket": bucket,
                "crawl_id": part.column("crawl_id")[0].as_py(),
                "n_docs": part.num_rows,
                "source_uri": source_uri,
                "first_offset": pc.min(offsets).as_py(),
                "last_offset": pc.max(offsets).as_py(),
            }
            records.append({**common, "kind": "text", "shard_id": text_id, "path": text_uri,
                            "n_bytes": n_bytes, "sha256": sha,
                            "n_tokens": int(lengths.sum())})
            dtype = "uint16" if len(bin_b) == 2 * int(lengths.sum()) else "int32"
            records.append({**common, "kind": "tokens",
                            "shard_id": self.layout.relative(tok_prefix + ".bin"),
                            "path": tok_prefix + ".bin", "n_bytes": len(bin_b),
                            "sha256": hashlib.sha256(bin_b).hexdigest(),
                            "n_tokens": int(lengths.sum()), "token_dtype": dtype,
                            "tokenizer_hash": self.tokenize.tokenizer_sha256,
                            "mirrors_shard": text_id})
            pii_by_shard[text_id] = sum_pii_counts(part.column("pii_counts"))
        return records

    def _write_index_part(self, kept: pa.Table, file_key: str) -> None:
        sig = kept.select(SIGNATURE_COLUMNS).sort_by([("doc_id", "ascending")])
        storage.write_parquet_atomic(self.layout.index_part(file_key), sig, 100_000)

    def _write_rejected(self, rej: pa.Table, file_key: str, source_uri: str) -> list[dict]:
        # Phase 1 scrubbed and cut its audit rows; dedup rows come from staged (scrubbed) text
        # and were cut with the margin: cut them to the limit.
        rej = rej.set_column(
            rej.column_names.index("text"), "text",
            pc.utf8_slice_codeunits(rej.column("text"), 0, self.cfg.output.rejected_text_chars),
        )
        records = []
        for lang, bucket, part in self._partitions(rej):
            part = part.sort_by([("source_offset", "ascending")])
            uri = self.layout.rejected_shard(lang, bucket, file_key)
            n_bytes, sha = storage.write_parquet_atomic(uri, part, self.cfg.output.row_group_docs)
            offsets = part.column("source_offset")
            records.append({
                "kind": "rejected", "shard_id": self.layout.relative(uri), "path": uri,
                "lang": lang, "quality_bucket": bucket, "crawl_id": part.column("crawl_id")[0].as_py(),
                "n_docs": part.num_rows, "n_bytes": n_bytes, "sha256": sha,
                "source_uri": source_uri, "first_offset": pc.min(offsets).as_py(),
                "last_offset": pc.max(offsets).as_py(),
            })
        return records


def rayon_threads(n: int) -> None:
    """Pin the tokenizer's Rust thread pool to the CPUs an actor owns (set before first use)."""
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, n)))
