"""The three phases over the inputs not yet committed: stage, dedup, write and commit.

Split out of pipeline/run.py, which owns what surrounds them (inputs, output lock, lineage
run records, failure handling). Each phase keeps its staged results in the run's work
directory, so a re-run resumes where a killed one stopped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict

from core import faults, storage
from lineage.store import LineageStore
from lineage.writer import commit_unit, record_dedup
from pipeline.config import PipelineConfig
from pipeline.inputs import InputFile
from pipeline.phase1 import kept_chunk_indexes, merge_file_summaries
from pipeline.progress import Progress
from pipeline.run_summary import RunResult
from pipeline.version import code_version
from pipeline.work import Layout, load_or_plan_units, read_jsons, write_json_atomic

log = logging.getLogger("ccpipe.run")


def progress_log(cfg: PipelineConfig, msg: str) -> None:
    """A progress line, unless the run is quiet (execution.progress=false)."""
    if cfg.execution.progress:
        log.info("%s", msg)


def input_sizes(todo: list[InputFile]) -> dict[str, int | None]:
    """file_key -> bytes: what the input listing said, the rest asked (concurrently on an
    object store; None for a file that is gone)."""
    ask = [f for f in todo if f.size is None]
    asked = dict(
        zip([f.file_key for f in ask], storage.file_sizes([f.uri for f in ask]), strict=True)
    )
    return {f.file_key: f.size if f.size is not None else asked[f.file_key] for f in todo}


def process_inputs(
    cfg: PipelineConfig,
    todo: list[InputFile],
    layout: Layout,
    rkey: str,
    run_id: str,
    store: LineageStore,
    result: RunResult,
) -> None:
    from pipeline import local_engine, plan

    # every input's size, known once: the engine choice, progress and phase 3's work units
    sizes = input_sizes(todo)
    total_bytes = sum(n or 0 for n in sizes.values())
    engine = local_engine.choose_engine(cfg, total_bytes, len(todo))
    if engine == "ray":
        progress_log(cfg, f"starting Ray ({plan.ray_address(cfg.execution.ray_address)})")
        plan.ensure_ray(cfg.execution.ray_address)
        from pipeline.dedup_phase import check_shared_output

        check_shared_output(cfg.output.dir, cfg.execution.output_shared)  # i17: before any work
        workers = cfg.execution.num_workers or plan.cluster_cpus()
    else:
        progress_log(cfg, "running in this process (execution.engine: local)")
        workers = 1
    result.engine = engine
    storage.makedirs(layout.work_dir(rkey))

    # ---- phase 1 ------------------------------------------------------------------------
    t = time.perf_counter()
    p1: dict[str, dict] = {}
    pending = []
    dones = read_jsons([layout.file_done(rkey, f.file_key) for f in todo])
    for f, done in zip(todo, dones, strict=True):
        if done is not None:
            p1[f.file_key] = done
        else:
            pending.append({"uri": f.uri, "file_key": f.file_key})
    if len(pending) < len(todo):
        progress_log(cfg, f"phase 1: reusing staged work of {len(todo) - len(pending)} files")
    chunks: dict[str, dict[int, dict]] = defaultdict(dict)
    last: dict[str, int] = {}
    blocked = _blocklist(store)
    if pending:
        prog = Progress(
            "phase 1 (read, extract, filter)",
            len(pending),
            cfg.execution.progress,
            total_bytes=sum(sizes[f["file_key"]] or 0 for f in pending),
        )
        summaries = (
            plan.run_phase1(pending, cfg, layout, rkey, workers, blocked)
            if engine == "ray"
            else local_engine.run_phase1_local(pending, cfg, layout, rkey, blocked)
        )
        try:
            for s in summaries:
                key = s["file_key"]
                chunks[key][s["chunk_index"]] = s
                if s["is_last"]:
                    last[key] = s["chunk_index"]
                file_done = key in last and len(chunks[key]) == last[key] + 1
                if file_done:
                    merged = merge_file_summaries([chunks[key][i] for i in range(last[key] + 1)])
                    write_json_atomic(layout.file_done(rkey, key), merged)
                    p1[key] = merged
                prog.update(
                    files=int(file_done),
                    records=s["records_read"],
                    docs=s.get("docs_in", 0),
                    file_bytes=(sizes[key] or 0) if file_done else 0,
                )
                faults.point("phase1.chunk_done")
        finally:
            prog.close()
    faults.point("phase1.done")
    result.bad_inputs = sorted(
        {
            *result.bad_inputs,
            *(v["source_uri"] for v in p1.values() if v.get("counts", {}).get("file.not_warc")),
        }
    )
    missing = [f.uri for f in todo if f.file_key not in p1]
    if missing:
        raise RuntimeError(f"phase 1 did not complete for {len(missing)} files: {missing[:3]}")
    result.phase_seconds["phase1"] = round(time.perf_counter() - t, 3)

    # ---- phase 2 ------------------------------------------------------------------------
    t = time.perf_counter()
    decisions_dir = layout.decisions_dir(rkey)
    from pipeline.dedup_index import decisions_done_uri

    if not storage.exists(decisions_done_uri(decisions_dir)):
        from pipeline.dedup_phase import run_dedup_phase

        # i17: phase 2 runs on Ray (one task for small runs, shuffles above); the driver only
        # sees counts. Decisions land per input file; phase 3 reads its file's only.
        sig_files = _signature_files(todo, p1, layout, rkey)
        progress_log(
            cfg,
            f"phase 2: dedup {sum(v['docs_kept'] for v in p1.values())} docs against "
            "the released index",
        )
        stats = run_dedup_phase(
            sig_files,
            layout.index_dir(),
            decisions_dir,
            cfg.dedup,
            local_max_docs=cfg.execution.dedup_local_max_docs,
            archive_uri=layout.decisions_archive(rkey),
            record_ids=True,
            in_process=engine == "local",
            ray_address=cfg.execution.ray_address,
            # equally dated copies (one WARC under two names) keep the first file's, URI order
            file_order=[f.file_key for f in sorted(todo, key=lambda f: f.uri)],
        )
        record_dedup(
            store,
            run_id,
            rkey,
            stats,
            cfg.dedup.model_dump(mode="json"),
            layout.decisions_archive(rkey),
        )
        progress_log(
            cfg,
            f"phase 2: {stats.get('exact_dups', 0)} exact and "
            f"{stats.get('near_dups', 0)} near duplicates in {stats.get('clusters', 0)} "
            f"clusters ({stats.get('engine')}, {stats.get('rounds', 0)} rounds)",
        )
    faults.point("phase2.done")
    result.phase_seconds["phase2"] = round(time.perf_counter() - t, 3)

    # ---- phase 3: fixed work units, one lineage commit each ---------------------------
    t = time.perf_counter()
    by_key = {f.file_key: f for f in todo}
    units = load_or_plan_units(
        layout.units_plan(rkey),
        [(f.uri, f.file_key, sizes[f.file_key]) for f in todo],
        cfg.output.unit_max_files,
        cfg.output.unit_max_bytes,
    )
    items = []
    for u in units:
        members = [by_key[k] for k in u.file_keys if k in by_key]
        if members:
            items.append(
                {
                    "unit_id": u.unit_id,
                    "files": [
                        {
                            "file_key": f.file_key,
                            "source_uri": f.uri,
                            "n_chunks": p1[f.file_key]["n_chunks"],
                            "kept_chunks": p1[f.file_key].get("kept_chunks"),
                        }
                        for f in members
                    ],
                }
            )
    progress_log(cfg, f"phase 3: {len(todo)} files in {len(items)} work units")
    prog = Progress(
        "phase 3 (dedup, PII, tokens, shards)",
        len(todo),
        cfg.execution.progress,
        total_bytes=total_bytes,
    )
    totals: Counter[str] = Counter()
    cv = code_version()
    results = (
        plan.run_phase3(items, cfg, layout, rkey, workers)
        if engine == "ray"
        else local_engine.run_phase3_local(items, cfg, layout, rkey)
    )
    for res in results:
        faults.point("phase3.files_written")
        files = [
            {
                "p1": p1[f["file_key"]],
                "docs_kept": f["docs_kept"],
                "dedup_counts": f["dedup_counts"],
                "size_bytes": sizes[f["file_key"]] if p1[f["file_key"]]["records_read"] else None,
            }
            for f in res["files"]
        ]
        commit_unit(
            store,
            run_id=run_id,
            config_hash=cfg.config_hash,
            code_version=cv,
            unit_id=res["unit_id"],
            files=files,
            shards=res["shards"],
            pii=res["pii"],
        )
        for f in files:
            totals.update(f["p1"]["counts"])
            totals.update(f["dedup_counts"])
            result.records_read += f["p1"]["records_read"]
        result.docs_kept += res["docs_kept"]
        result.tokens += res["n_tokens"]
        faults.point("phase3.committed")
        prog.update(
            files=len(files),
            records=sum(f["p1"]["records_read"] for f in files),
            docs=sum(f["p1"]["docs_kept"] for f in files),
            file_bytes=sum(sizes[f["file_key"]] or 0 for f in res["files"]),
        )
    prog.done()
    result.counts = dict(sorted(totals.items()))
    result.phase_seconds["phase3"] = round(time.perf_counter() - t, 3)


def _signature_files(
    todo: list[InputFile], p1: dict[str, dict], layout: Layout, rkey: str
) -> list[tuple[str, str]]:
    """(staged kept chunk, file key) of every chunk that kept documents, in input order. The
    file summaries name them; one from before `kept_chunks` existed makes us ask the store
    which exist, concurrently (one request per chunk: ~200,000 for a 10 TB crawl)."""
    items: list[tuple[str, str]] = []
    ask: list[int] = []  # positions in `items` whose existence is unknown
    for f in todo:
        chunks, known = kept_chunk_indexes(p1[f.file_key])
        for i in chunks:
            if not known:
                ask.append(len(items))
            items.append((layout.chunk_prefix(rkey, f.file_key, i) + ".kept.parquet", f.file_key))
    there = storage.map_uris(storage.exists, [items[k][0] for k in ask])
    missing = {k for k, ok in zip(ask, there, strict=True) if not ok}
    return [item for k, item in enumerate(items) if k not in missing]


def _blocklist(store: LineageStore) -> tuple[list[str], list[str]]:
    """URLs and domains removed by deletion requests: they never re-enter the output."""
    from lineage.blocklist import load_blocklist

    urls, domains = load_blocklist(store.path)
    return sorted(urls), sorted(domains)
