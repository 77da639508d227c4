"""Per-stage timing for ``python -m benchmarks.run``: the chain runner over read batches.

Split out of benchmarks/run.py (one concern per module): reading the inputs as the
pipeline's chunks, building the configured chain (phase 1 + PII + tokenize), and adding up
wall/CPU time, docs and HTML bytes per stage through ``stages.contract.run_chain``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class Timer:
    """Wall and CPU seconds of a block (CPU: this process, all threads)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Timer:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def _rate(n: float, s: float) -> float | None:
    return round(n / s, 3) if s > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def html_bytes(table: pa.Table) -> int:
    if table.num_rows == 0 or "html" not in table.column_names:
        return 0
    return int(pc.sum(pc.binary_length(table.column("html"))).as_py() or 0)


# --------------------------------------------------------------------------- stages
@dataclass
class StageTime:
    docs_in: int = 0
    docs_out: int = 0
    html_bytes_in: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def row(self) -> dict[str, Any]:
        mb = self.html_bytes_in / 1e6
        return {
            **asdict(self),
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "docs_per_s": _rate(self.docs_in, self.wall_s),
            "docs_per_cpu_s": _rate(self.docs_in, self.cpu_s),
            "html_mb_per_s": _rate(mb, self.wall_s),
            "html_mb_per_cpu_s": _rate(mb, self.cpu_s),
        }


def read_batches(paths: list[str], read_cfg: Any) -> tuple[list[pa.Table], StageTime, int]:
    """Read all inputs as the pipeline's chunks; (doc batches, read timing, records read)."""
    from stages.warc_reader import read_warc

    batches: list[pa.Table] = []
    st = StageTime()
    records = 0
    for path in paths:
        it = read_warc(path, read_cfg)
        while True:
            with Timer() as t:
                chunk = next(it, None)
            st.wall_s += t.wall
            st.cpu_s += t.cpu
            if chunk is None:
                break
            records += chunk.records_read
            if chunk.docs.num_rows:
                batches.append(chunk.docs)
    st.docs_in = st.docs_out = sum(b.num_rows for b in batches)
    st.html_bytes_in = sum(html_bytes(b) for b in batches)
    return batches, st, records


def build_stages(cfg: Any) -> list[Any]:
    """The configured phase-1 chain plus the phase-3 PII and tokenize stages, set up."""
    from pipeline.phase1 import build_chain
    from stages.builtin import PiiStage, TokenizeStage

    stages = [*build_chain(cfg), PiiStage(cfg.pii), TokenizeStage(cfg.tokenize)]
    for stage in stages:
        stage.setup()
    return stages


def _children_cpu() -> float:
    """User+system CPU seconds of this process's live child processes."""
    import psutil

    total = 0.0
    for c in psutil.Process().children(recursive=True):
        try:
            t = c.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


_HTML_LEN = "_bench_html_len"  # carried through the chain for the MB/s columns


def run_batch(
    batch: pa.Table,
    stages: list[Any],
    acc: dict[str, StageTime] | None,
    extracted: list[pa.Table] | None = None,
) -> None:
    """One batch through the chain runner (stages.contract.run_chain), adding up timings."""
    from stages.contract import run_chain

    html_in: dict[str, int] = {}
    # CPU of child processes (the extraction watchdog runs the library in one) is not in
    # process_time: sample the live children around each stage and add it to that stage
    child_cpu: dict[str, float] = {}
    last = [_children_cpu()]

    def observe(name: str, table: pa.Table, res: Any) -> None:
        now = _children_cpu()
        child_cpu[name] = child_cpu.get(name, 0.0) + max(0.0, now - last[0])
        last[0] = now
        # HTML bytes of the documents this stage saw (extraction consumes the html column)
        html_in[name] = int(pc.sum(table.column(_HTML_LEN)).as_py() or 0) if table.num_rows else 0
        if name in ("extract", "trafilatura", "resiliparse") and extracted is not None:
            out = pa.concat_tables([res.kept, res.dropped], promote_options="permissive")
            extracted.append(out.select(["url", "text", "drop_reason"]))

    if batch.num_rows and "html" in batch.column_names:
        lens = pc.binary_length(batch.column("html"))
    else:
        lens = pa.nulls(batch.num_rows, pa.int64())
    chain = run_chain(batch.append_column(_HTML_LEN, lens), stages, observe)
    if acc is None:
        return
    for name, st in chain.stats.items():
        s = acc[name]
        s.docs_in += st.docs_in
        s.html_bytes_in += html_in[name]
        s.docs_out += st.docs_out
        s.wall_s += st.wall_s
        s.cpu_s += st.cpu_s + child_cpu.get(name, 0.0)


def time_stages(cfg: Any, batches: list[pa.Table], read: StageTime) -> tuple[dict, pa.Table]:
    """Per-stage timing of one profile on ``batches``; also returns the extraction output."""
    from benchmarks.dedup_scale import PeakRSS

    with PeakRSS() as mem:
        with Timer() as load:
            stages = build_stages(cfg)
        # warm-up (first calls compile regexes, fill caches): excluded from the timing
        run_batch(batches[0].slice(0, 16), stages, None)
        acc = {stage.name: StageTime() for stage in stages}
        extracted: list[pa.Table] = []
        for b in batches:
            run_batch(b, stages, acc, extracted)
    rows = {"read": read.row(), **{k: v.row() for k, v in acc.items()}}
    docs = read.docs_in
    wall = sum(r["wall_s"] for r in rows.values())
    cpu = sum(r["cpu_s"] for r in rows.values())
    chain = {
        "docs": docs,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "docs_per_s": _rate(docs, wall),
        "docs_per_cpu_s": _rate(docs, cpu),
        "html_mb_per_cpu_s": _rate(read.html_bytes_in / 1e6, cpu),
        "model_load_s": round(load.wall, 3),
        "peak_rss_mb": round(mem.peak / 2**20, 1),
    }
    ext = pa.concat_tables(extracted) if extracted else None
    return {"stages": rows, "chain": chain}, ext


def time_trafilatura_alone(batches: list[pa.Table], cfg: Any) -> dict[str, Any]:
    """A bare trafilatura.extract loop (same settings as the quality profile), one core."""
    import trafilatura

    from stages.text_decode import decode_html

    kw = {
        "favor_precision": cfg.extract.favor_precision,
        "include_comments": cfg.extract.include_comments,
        "deduplicate": cfg.extract.deduplicate,
        "include_tables": cfg.extract.include_tables,
    }
    pages = [
        (h, c)
        for b in batches
        for h, c in zip(b["html"].to_pylist(), b["charset"].to_pylist(), strict=True)
    ]
    trafilatura.extract(decode_html(pages[0][0], pages[0][1])[0], **kw)  # warm-up
    with Timer() as t:
        for h, c in pages:
            trafilatura.extract(decode_html(h, c)[0], **kw)
    return {
        "docs": len(pages),
        "wall_s": round(t.wall, 3),
        "cpu_s": round(t.cpu, 3),
        "docs_per_s": _rate(len(pages), t.wall),
        "docs_per_cpu_s": _rate(len(pages), t.cpu),
        "settings": kw,
    }
