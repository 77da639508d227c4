"""Phase 3, per work unit: drop duplicates -> PII scrub -> tokenize -> rolling shard writers.

Plain Python (no Ray). A work unit is a fixed, sorted group of input files (pipeline.work).
Its files are finished one after another, in order, and their documents flow into one
rolling writer per (language, bucket) that cuts a new shard when the Parquet file reaches
`output.shard_max_bytes`; the token files (.bin/.idx) are cut at exactly the same rows. So
the shard count follows the data volume: per unit and partition, one shard per cap plus a
tail. Every file is written to a temporary name and renamed when complete; the driver's
lineage commit of the unit is the commit record: files without one are rewritten
byte-identically by a re-run (names derive from unit id, config hash and sequence number).
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

from core import storage
from pipeline.config import PipelineConfig
from pipeline.dedup_index import read_decisions, write_index_part
from pipeline.phase1 import REJECTED_SCHEMA, kept_chunk_indexes, scrub_table, to_rejected
from pipeline.work import Layout
from stages.builtin import TokenizeStage
from stages.contract import Stage, StageResult, run_chain
from stages.dedup_drop import DropDuplicates
from stages.pii import PiiConfig, PiiScrubber, sum_pii_counts
from stages.token_shards import (
    best_fitting_dtype,
    build_index_bytes,
    write_indexed_dataset_bytes,
)

SIGNATURE_COLUMNS = ["doc_id", "warc_date", "text_hash", "minhash_bands"]
# Columns of the final text shard that are internal to the pipeline.
_INTERNAL = ("tokens", "minhash_bands")
NO_BUCKET = "all"
NO_LANG = "und"


def _read_parquet(uri: str, known: bool) -> pa.Table | None:
    if not known and not storage.exists(uri):
        return None
    fs, path = storage.resolve(uri)
    return pq.read_table(path, filesystem=fs)


def _read_parquets(uris: list[str], known: bool = False) -> pa.Table | None:
    """The staged chunk files `uris`, concatenated in order (None: no rows). `known`: they
    all exist (the file summary says so), so nothing is asked before reading; an object
    store is read concurrently."""
    tables = storage.map_uris(lambda u: _read_parquet(u, known), uris)
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def _cast_like(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pc.cast(table.column(f.name), f.type)
            if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        ],
        schema=schema,
    )


class _Sink(storage.AtomicOutput):
    """A shard file written in pieces (core.storage.AtomicOutput: visible under its final
    name only once complete) that also counts its bytes and hashes them for lineage."""

    def __init__(self, uri: str):
        super().__init__(uri)
        self.sha = hashlib.sha256()
        self.n_bytes = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self.sha.update(data)
        self.n_bytes += len(data)

    def close(self) -> tuple[int, str]:
        self.commit()
        return self.n_bytes, self.sha.hexdigest()


class _HashingFile:
    """File-like wrapper so pyarrow's ParquetWriter streams through a `_Sink`."""

    def __init__(self, sink: _Sink):
        self.sink = sink
        self.closed = False

    def write(self, data: bytes) -> int:
        b = bytes(data)
        self.sink.write(b)
        return len(b)

    def tell(self) -> int:
        return self.sink.n_bytes

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class RollingWriter:
    """Shards of one (language, bucket) partition of one unit, cut at a Parquet size cap.

    Rows arrive in a deterministic order; they are written in row groups of
    `row_group_docs` rows, and after each row group the shard is closed if the Parquet file
    has reached `max_bytes` (bytes written plus the estimated size of the row group Arrow
    still buffers). With `tokenize`, each text shard gets a token shard with exactly
    the same rows (`token_start`/`shard_row` restart at 0 in every shard).
    """

    def __init__(
        self,
        layout: Layout,
        kind: str,
        lang: str,
        bucket: str,
        unit_id: str,
        max_bytes: int,
        row_group_docs: int,
        vocab_size: int | None = None,
        tokenizer_hash: str | None = None,
    ):
        self.layout, self.kind, self.lang, self.bucket = layout, kind, lang, bucket
        self.unit_id, self.max_bytes, self.rg = unit_id, max_bytes, row_group_docs
        self.vocab_size, self.tokenizer_hash = vocab_size, tokenizer_hash
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.seq = 0
        self.schema: pa.Schema | None = None
        self.records: list[dict[str, Any]] = []
        self.pii: dict[str, dict[str, int]] = {}
        self._open: dict[str, Any] | None = None
        # Compressed bytes per in-memory byte of the row groups flushed so far.
        self.flushed_mem = 0
        self.flushed_bytes = 0

    # -- public --------------------------------------------------------------------------
    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = _cast_like(table, self.schema)
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= self.rg:
            self._write_group(self.rg)

    def finish(self) -> list[dict[str, Any]]:
        if self.pending_rows:
            self._write_group(self.pending_rows)
        self._close()
        return self.records

    def abort(self) -> None:
        if self._open is not None:
            for s in self._open["sinks"]:
                s.abort()
            self._open = None

    # -- internals -----------------------------------------------------------------------
    def _take(self, n: int) -> pa.Table:
        table = pa.concat_tables(self.pending)
        head, rest = table.slice(0, n), table.slice(n)
        self.pending = [rest] if rest.num_rows else []
        self.pending_rows = rest.num_rows
        return head

    def _start(self, schema: pa.Schema) -> dict[str, Any]:
        if self.kind == "text":
            uri = self.layout.text_part(self.lang, self.bucket, self.unit_id, self.seq)
        else:
            uri = self.layout.rejected_part(self.lang, self.bucket, self.unit_id, self.seq)
        text = _Sink(uri)
        st: dict[str, Any] = {
            "uri": uri,
            "text": text,
            "sinks": [text],
            "rows": 0,
            "n_tokens": 0,
            "lengths": [],
            "inputs": {},
            "pii": Counter(),
            "crawl_id": None,
            "last_mem": 0,
        }
        st["writer"] = pq.ParquetWriter(
            _HashingFile(text),
            schema,
            compression="zstd",
            compression_level=3,
            write_statistics=True,
            use_dictionary=True,
        )
        if self.kind == "text":
            prefix = self.layout.token_part(self.lang, self.bucket, self.unit_id, self.seq)
            st["prefix"] = prefix
            st["bin"] = _Sink(prefix + ".bin")
            st["sinks"].append(st["bin"])
        return st

    def _write_group(self, n: int) -> None:
        part = self._take(n)
        if self.kind == "text":
            bin_b, _ = write_indexed_dataset_bytes(part.column("tokens"), self.vocab_size)
            lengths = np.asarray(part.column("n_tokens").to_numpy(), dtype=np.int64)
            out = part.drop_columns([c for c in _INTERNAL if c in part.column_names])
            if self._open is None:
                self._open = self._start(self._text_schema(out.schema))
            st = self._open
            starts = st["n_tokens"] + np.concatenate([[0], np.cumsum(lengths)[:-1]])
            out = out.append_column("token_start", pa.array(starts.astype(np.int64), pa.int64()))
            out = out.append_column(
                "shard_row", pa.array(np.arange(st["rows"], st["rows"] + n), pa.int64())
            )
            st["bin"].write(bin_b)
            st["lengths"].append(lengths)
            st["n_tokens"] += int(lengths.sum())
            st["pii"].update(sum_pii_counts(part.column("pii_counts")))
        else:
            out = part
            if self._open is None:
                self._open = self._start(out.schema)
            st = self._open
        before = st["text"].n_bytes
        st["writer"].write_table(out, row_group_size=n)
        # Arrow flushes a row group when the next one starts (or at close), so the file
        # holds every row group but this one: estimate its compressed size from the ratio
        # seen so far (deterministic: it depends only on the rows).
        if st["last_mem"]:
            self.flushed_mem += st["last_mem"]
            self.flushed_bytes += st["text"].n_bytes - before
        st["last_mem"] = out.nbytes
        ratio = self.flushed_bytes / self.flushed_mem if self.flushed_mem else 1.0
        st["rows"] += n
        st["crawl_id"] = st["crawl_id"] or part.column("crawl_id")[0].as_py()
        src = part.column("source_uri").to_pylist()
        off = part.column("source_offset").to_pylist()
        for u, o in zip(src, off, strict=True):
            cur = st["inputs"].get(u)
            if cur is None:
                st["inputs"][u] = [1, o, o]
            else:
                cur[0] += 1
                cur[1] = o if cur[1] is None or (o is not None and o < cur[1]) else cur[1]
                cur[2] = o if cur[2] is None or (o is not None and o > cur[2]) else cur[2]
        if st["text"].n_bytes + ratio * st["last_mem"] >= self.max_bytes:
            self._close()

    @staticmethod
    def _text_schema(schema: pa.Schema) -> pa.Schema:
        return schema.append(pa.field("token_start", pa.int64())).append(
            pa.field("shard_row", pa.int64())
        )

    def _close(self) -> None:
        st, self._open = self._open, None
        if st is None:
            return
        st["writer"].close()
        inputs = [
            {"source_uri": u, "n_docs": v[0], "first_offset": v[1], "last_offset": v[2]}
            for u, v in sorted(st["inputs"].items())
        ]
        common = {
            "lang": self.lang,
            "quality_bucket": self.bucket,
            "crawl_id": st["crawl_id"],
            "n_docs": st["rows"],
            "inputs": inputs,
        }
        try:
            if self.kind == "text":
                # Token files first, text shard last: the text shard's presence implies both.
                n_bin, sha_bin = st["bin"].close()
                lengths = np.concatenate(st["lengths"])
                dtype = best_fitting_dtype(self.vocab_size)
                storage.write_bytes_atomic(st["prefix"] + ".idx", build_index_bytes(lengths, dtype))
            n_bytes, sha = st["text"].close()
        except BaseException:
            for s in st["sinks"]:
                s.abort()
            raise
        text_id = self.layout.relative(st["uri"])
        if self.kind == "text":
            self.records.append(
                {
                    **common,
                    "kind": "text",
                    "shard_id": text_id,
                    "path": text_id,
                    "n_bytes": n_bytes,
                    "sha256": sha,
                    "n_tokens": st["n_tokens"],
                }
            )
            tok_id = self.layout.relative(st["prefix"] + ".bin")
            self.records.append(
                {
                    **common,
                    "kind": "tokens",
                    "shard_id": tok_id,
                    "path": tok_id,
                    "n_bytes": n_bin,
                    "sha256": sha_bin,
                    "n_tokens": st["n_tokens"],
                    "token_dtype": dtype.name,
                    "tokenizer_hash": self.tokenizer_hash,
                    "mirrors_shard": text_id,
                }
            )
            self.pii[text_id] = dict(sorted(st["pii"].items()))
        else:
            self.records.append(
                {
                    **common,
                    "kind": "rejected",
                    "shard_id": text_id,
                    "path": text_id,
                    "n_bytes": n_bytes,
                    "sha256": sha,
                }
            )
        self.seq += 1


class _ScrubStage:
    """phase1.scrub_table as a stage (text, URL and title), for chunks staged unscrubbed.

    Phase 1 scrubs before it stages, so only work staged by versions before issue 19 needs
    this: Presidio and spaCy (1-3 s of imports per worker) load on its first use, not with
    every phase-3 worker.
    """

    name = "pii"
    reads = ("text", "url", "title")
    adds = ("pii_counts", "pii_total")

    def __init__(self, cfg: PiiConfig) -> None:
        self.cfg = cfg
        self.pii: PiiScrubber | None = None

    def setup(self) -> None:
        if self.pii is None:
            self.pii = PiiScrubber(self.cfg)

    def process(self, table: pa.Table) -> StageResult:
        self.setup()
        assert self.pii is not None
        return StageResult(scrub_table(self.pii, table), table.slice(0, 0))


class UnitFinisher:
    """Loads the PII engine and tokenizer once (per Ray actor) and finishes work units."""

    def __init__(self, cfg: PipelineConfig, layout: Layout, rkey: str):
        self.cfg = cfg
        self.layout = layout
        self.rkey = rkey
        self.pii = _ScrubStage(cfg.pii)
        self.tokenize = TokenizeStage(cfg.tokenize)
        self.tokenize.setup()  # once per worker (actor), as phase 1's chain

    def finish_unit(self, unit: dict[str, Any]) -> dict[str, Any]:
        """`unit`: unit_id and files (file_key, source_uri, n_chunks, kept_chunks), in order.

        Returns the unit's shard records (each with its per-input-file rows), per-file
        counts (kept + dedup drops) and PII counts per text shard.
        """
        unit_id = unit["unit_id"]
        writers: dict[tuple[str, str, str], RollingWriter] = {}
        files: list[dict[str, Any]] = []
        try:
            for item in unit["files"]:
                files.append(self._finish_file(item, unit_id, writers))
            shards: list[dict[str, Any]] = []
            pii: dict[str, dict[str, int]] = {}
            for key in sorted(writers):
                shards += writers[key].finish()
                pii.update(writers[key].pii)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        return {
            "unit_id": unit_id,
            "files": files,
            "shards": shards,
            "pii": pii,
            "docs_kept": sum(f["docs_kept"] for f in files),
            "n_tokens": int(sum(s.get("n_tokens") or 0 for s in shards if s["kind"] == "tokens")),
        }

    def _writer(
        self, writers: dict, kind: str, lang: str, bucket: str, unit_id: str
    ) -> RollingWriter:
        key = (kind, lang, bucket)
        if key not in writers:
            writers[key] = RollingWriter(
                self.layout,
                kind,
                lang,
                bucket,
                unit_id,
                self.cfg.output.shard_max_bytes,
                self.cfg.output.row_group_docs,
                self.tokenize.tokenizer.vocab_size if kind == "text" else None,
                self.tokenize.tokenizer.tokenizer_sha256 if kind == "text" else None,
            )
        return writers[key]

    def _finish_file(self, item: dict[str, Any], unit_id: str, writers: dict) -> dict[str, Any]:
        file_key, n_chunks = item["file_key"], int(item["n_chunks"])
        prefixes = [self.layout.chunk_prefix(self.rkey, file_key, i) for i in range(n_chunks)]
        # every summarised chunk staged its audit rows, and kept docs where kept_chunks says
        # (summaries from before kept_chunks: ask which exist)
        kept_idx, known = kept_chunk_indexes(item)
        kept = _read_parquets([prefixes[i] + ".kept.parquet" for i in kept_idx], known)
        rejected = _read_parquets([p + ".rejected.parquet" for p in prefixes], known)
        counts: Counter[str] = Counter()
        dedup_rejected = None
        if kept is not None and kept.num_rows:
            chain = run_chain(kept, self._chain(kept, file_key))
            kept = chain.kept
            for name, dropped in chain.dropped:  # only dedup drops; the other stages add
                counts.update(dropped.column("drop_reason").to_pylist())
                dedup_rejected = to_rejected(dropped, name, self.cfg.output.rejected_text_chars)
        if kept is not None and kept.num_rows:
            for lang, bucket, part in self._partitions(kept):
                part = part.sort_by([("source_offset", "ascending")])
                self._writer(writers, "text", lang, bucket, unit_id).add(part)
            self._write_index_part(kept, file_key)
        if self.cfg.output.write_rejected:
            parts = [t for t in (rejected, dedup_rejected) if t is not None and t.num_rows]
            if parts:
                rej = pa.concat_tables([_cast_like(t, REJECTED_SCHEMA) for t in parts])
                rej = self._cut_rejected(rej)
                for lang, bucket, part in self._partitions(rej):
                    part = part.sort_by([("source_offset", "ascending")])
                    self._writer(writers, "rejected", lang, bucket, unit_id).add(part)
        return {
            "file_key": file_key,
            "source_uri": item["source_uri"],
            "docs_kept": 0 if kept is None else kept.num_rows,
            "dedup_counts": dict(counts),
        }

    # -- steps ---------------------------------------------------------------------------
    def _chain(self, kept: pa.Table, file_key: str) -> list[Stage]:
        """Phase 3's per-document stages for one input file: drop its duplicates (i17: the
        decisions are partitioned by input file; read only this file's), scrub if phase 1
        did not (outputs staged by older versions), tokenize."""
        dec = read_decisions(self.layout.decisions_dir(self.rkey), file_key)
        stages: list[Stage] = [DropDuplicates(dec)]
        if "pii_counts" not in kept.column_names:
            stages.append(self.pii)
        return [*stages, self.tokenize]

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

    def _write_index_part(self, kept: pa.Table, file_key: str) -> None:
        # i17: append this file's released docs to the range-partitioned cross-run index.
        write_index_part(self.layout.index_dir(), file_key, kept.select(SIGNATURE_COLUMNS))

    def _cut_rejected(self, rej: pa.Table) -> pa.Table:
        # Phase 1 scrubbed and cut its audit rows; dedup rows come from staged (scrubbed) text
        # and were cut with the margin: cut them to the limit.
        return rej.set_column(
            rej.column_names.index("text"),
            "text",
            pc.utf8_slice_codeunits(rej.column("text"), 0, self.cfg.output.rejected_text_chars),
        )


def rayon_threads(n: int) -> None:
    """Pin the tokenizer's Rust thread pool to the CPUs an actor owns (set before first use)."""
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, n)))
