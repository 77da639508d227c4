"""Phase 1, per chunk of an input file: extract -> language -> quality -> signatures.

Plain Python (no Ray): `pipeline/plan.py` runs `read_file_chunks` in Ray tasks and
`ChunkProcessor` in an actor pool; the benchmark and tests call them directly.

A chunk's staging files are committed in order: kept Parquet, rejected Parquet, then the
summary JSON, which is the commit marker. A re-run finds the marker and skips the chunk.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core import storage
from lineage.blocklist import blocked_mask
from pipeline.config import PipelineConfig
from pipeline.work import Layout, read_json, write_json_atomic
from stages.contract import TableStage, run_chain
from stages.pii import PiiScrubber
from stages.registry import stage_class
from stages.warc_reader import DOC_SCHEMA, read_warc

# Columns every rejected (audit) row carries, whatever stage dropped it: the reader's
# provenance columns, then what the later stages know and why the row was dropped.
_PROVENANCE = (
    "doc_id",
    "url",
    "url_hash",
    "warc_date",
    "crawl_id",
    "source_uri",
    "source_offset",
    "source_length",
    "content_type",
)
REJECTED_SCHEMA = pa.schema(
    [DOC_SCHEMA.field(name) for name in _PROVENANCE]
    + [
        ("lang", pa.string()),
        ("lang_score", pa.float32()),
        ("quality_bucket", pa.string()),
        ("drop_stage", pa.string()),
        ("drop_reason", pa.string()),
        ("drop_detail", pa.string()),
        ("cluster_id", pa.string()),
        ("keeper_doc_id", pa.string()),
        ("text", pa.string()),
    ]
)

_NOT_STAGED = ("html", "drop_reason", "drop_detail")


def table_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_to_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def read_file_chunks(
    uri: str, file_key: str, cfg: PipelineConfig, as_ipc: bool = True
) -> Iterator[dict[str, Any]]:
    """Read one WARC file as chunk rows for the actor pool: records as Arrow IPC bytes
    (``records_ipc``), or, for a processor in this process, the table itself (``records``).

    The last chunk carries `is_last`, so the driver knows when a file's phase 1 is complete.
    """
    opener = storage.opener(uri) if storage.is_remote(uri) else None
    pending = None
    for chunk in read_warc(uri, cfg.read, open_stream=opener, crawl_id=cfg.input.crawl_id):
        if pending is not None:
            yield _chunk_row(uri, file_key, pending, False, as_ipc)
        pending = chunk
    if pending is not None:
        yield _chunk_row(uri, file_key, pending, True, as_ipc)


def _chunk_row(uri: str, file_key: str, chunk: Any, is_last: bool, as_ipc: bool) -> dict[str, Any]:
    records = {"records_ipc": table_to_ipc(chunk.docs)} if as_ipc else {"records": chunk.docs}
    return {
        "source_uri": uri,
        "file_key": file_key,
        "chunk_index": chunk.chunk_index,
        "is_last": is_last,
        "records_read": chunk.records_read,
        "counts_json": json.dumps(chunk.counts, sort_keys=True),
        "errors_json": json.dumps(chunk.errors),
        **records,
    }


def build_chain(cfg: PipelineConfig) -> list[TableStage]:
    """The configured phase-1 stages (``cfg.stages``), each with its settings, not yet set up."""
    chain = []
    for entry in cfg.stages:
        klass = stage_class(entry.name)
        if klass.section is not None:
            params = getattr(cfg, klass.section)
        else:
            params = klass.Params.model_validate(entry.params)
        chain.append(klass(params))
    return chain


# Audit text is scrubbed first and only then cut to `output.rejected_text_chars`; until then
# it keeps this many extra characters, so PII straddling the cut is whole when scrubbed
# (longer than any e-mail, 254, or phone/IBAN/card).
AUDIT_PII_MARGIN = 1024


def scrub_table(pii: PiiScrubber, table: pa.Table) -> pa.Table:
    """PII out of text (adds pii_counts/pii_total) and of metadata that can carry it (URL,
    title). Phase 1 runs it before anything is staged, so `_work/` never holds unscrubbed text
    or URLs, whether the run finishes, fails or is killed (issue 19)."""
    table = pii(table)
    for col in ("url", "title"):
        if col in table.column_names:
            idx = table.column_names.index(col)
            table = table.set_column(
                idx, col, pii.scrub_metadata_array(table.column(col).combine_chunks())
            )
    return table


def scrub_rejected(pii: PiiScrubber, rej: pa.Table, text_chars: int) -> pa.Table:
    """Audit rows: scrub (text with its margin, URL), then cut the text to the limit."""
    if rej.num_rows == 0:
        return rej
    rej = scrub_table(pii, rej.append_column("lang_hint", rej.column("lang")))
    rej = rej.drop_columns(
        [c for c in ("pii_counts", "pii_total", "lang_hint") if c in rej.column_names]
    )
    return rej.set_column(
        rej.column_names.index("text"),
        "text",
        pc.utf8_slice_codeunits(rej.column("text"), 0, text_chars),
    )


def to_rejected(table: pa.Table, stage: str, text_chars: int) -> pa.Table:
    """Project dropped rows onto the fixed audit schema (text cut to the limit plus the PII
    margin; phase 3 scrubs, then cuts to the limit)."""
    text_chars += AUDIT_PII_MARGIN
    n = table.num_rows
    cols = []
    for f in REJECTED_SCHEMA:
        if f.name == "drop_stage":
            arr = pa.array([stage] * n, pa.string())
        elif f.name == "text" and "text" in table.column_names:
            arr = pc.utf8_slice_codeunits(table.column("text"), 0, text_chars)
        elif f.name in table.column_names:
            arr = table.column(f.name)
        else:
            arr = pa.nulls(n, f.type)
        cols.append(pc.cast(arr, f.type) if arr.type != f.type else arr)
    return pa.Table.from_arrays(cols, schema=REJECTED_SCHEMA)


class ChunkProcessor:
    """Loads every phase-1 model once (per Ray actor) and processes chunk rows."""

    def __init__(
        self,
        cfg: PipelineConfig,
        layout: Layout,
        rkey: str,
        blocked_urls: list[str] | None = None,  # url hashes (core.urls)
        blocked_domains: list[str] | None = None,
    ):
        self.cfg = cfg
        self.layout = layout
        self.rkey = rkey
        self.blocked_urls = frozenset(blocked_urls or [])
        self.blocked_domains = frozenset(blocked_domains or [])
        self.stages = build_chain(cfg)
        for stage in self.stages:
            stage.setup()  # once per worker (actor), before the first chunk
        self.pii = PiiScrubber(cfg.pii)  # phase 1 scrubs before staging (issue 19)

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        prefix = self.layout.chunk_prefix(self.rkey, row["file_key"], row["chunk_index"])
        done = read_json(prefix + ".json")
        if done is not None:
            return done
        t0 = time.perf_counter()
        docs = row["records"] if "records" in row else ipc_to_table(row["records_ipc"])
        counts: Counter[str] = Counter(json.loads(row["counts_json"]))
        rejected = []
        kept = docs
        if (self.blocked_urls or self.blocked_domains) and docs.num_rows:
            gone = blocked_mask(docs, self.blocked_urls, self.blocked_domains)
            n_gone = int(pc.sum(gone).as_py() or 0)
            if n_gone:
                counts["url.deleted"] += n_gone
                kept = docs.filter(pc.invert(gone))  # never written anywhere, not even audit
        chain = run_chain(kept, self.stages)
        kept = chain.kept
        seconds = {name: st.wall_s for name, st in chain.stats.items()}
        for name, dropped in chain.dropped:
            counts.update(dropped.column("drop_reason").to_pylist())
            rejected.append(to_rejected(dropped, name, self.cfg.output.rejected_text_chars))
        kept = kept.drop_columns([c for c in _NOT_STAGED if c in kept.column_names])
        if kept.num_rows:  # an empty chunk has no staged docs (and no signature columns)
            # signatures above saw the original text; what is staged is already scrubbed
            ts = time.perf_counter()
            kept = scrub_table(self.pii, kept)
            seconds["pii"] = time.perf_counter() - ts
            storage.write_parquet_atomic(prefix + ".kept.parquet", kept)
        rej = pa.concat_tables(rejected) if rejected else REJECTED_SCHEMA.empty_table()
        rej = scrub_rejected(self.pii, rej, self.cfg.output.rejected_text_chars)
        storage.write_parquet_atomic(prefix + ".rejected.parquet", rej)
        html_bytes = (
            int(pc.sum(pc.binary_length(docs.column("html"))).as_py() or 0)
            if (docs.num_rows)
            else 0
        )
        summary = {
            "source_uri": row["source_uri"],
            "file_key": row["file_key"],
            "chunk_index": row["chunk_index"],
            "is_last": bool(row["is_last"]),
            "records_read": int(row["records_read"]),
            "docs_in": docs.num_rows,
            "docs_kept": kept.num_rows,
            "html_bytes": html_bytes,
            "counts": dict(sorted(counts.items())),
            "errors": json.loads(row["errors_json"]),
            "seconds": round(time.perf_counter() - t0, 4),
            "stage_seconds": {k: round(v, 4) for k, v in seconds.items()},
        }
        write_json_atomic(prefix + ".json", summary)
        return summary


def kept_chunk_indexes(summary: dict[str, Any]) -> tuple[list[int], bool]:
    """Chunks of a file summary (or a phase-3 unit item) that may have staged kept docs, and
    whether that is known: the summary names them (`kept_chunks`), or it predates that field
    and every chunk must be asked about."""
    kept = summary.get("kept_chunks")
    if kept is None:
        return list(range(int(summary["n_chunks"]))), False
    return list(kept), True


def merge_file_summaries(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold chunk summaries of one file into the file's phase-1 record."""
    counts: Counter[str] = Counter()
    errors: list[str] = []
    for c in chunks:
        counts.update(c["counts"])
        errors.extend(c["errors"])
    first = chunks[0]
    return {
        "source_uri": first["source_uri"],
        "file_key": first["file_key"],
        "n_chunks": len(chunks),
        # chunks that staged kept docs (a .kept.parquet): phase 2 reads their signatures
        # without asking the store which exist
        "kept_chunks": [i for i, c in enumerate(chunks) if c["docs_kept"]],
        "records_read": sum(c["records_read"] for c in chunks),
        "docs_in": sum(c["docs_in"] for c in chunks),
        "docs_kept": sum(c["docs_kept"] for c in chunks),
        "html_bytes": sum(c.get("html_bytes", 0) for c in chunks),
        "counts": dict(sorted(counts.items())),
        "errors": errors,
    }
