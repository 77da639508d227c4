"""The driver: resolve inputs, skip committed work, run the three phases, commit lineage.

Resumability comes from three facts: (1) every file name derives from the input URI and the
config hash; (2) phase-1 chunks and phase-2 decisions are kept in a work directory named by
the run key (config hash + input set), so a re-run of the same command reuses them; (3) an
input file counts as done only when its lineage commit exists. A SIGKILL anywhere leaves
either nothing, or complete files without a commit (rewritten identically next time).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from core import faults, storage
from core.output_lock import LOCK_NAME, hold_output_lock
from lineage.location import default_lineage_path, publish_lineage, restore_lineage
from lineage.schema import stage_of
from lineage.store import LineageStore
from lineage.writer import (
    commit_unit,
    committed_file_keys,
    finish_run,
    now,
    record_dedup,
    start_run,
)
from pipeline.config import ConfigError, PipelineConfig
from pipeline.inputs import InputFile, Resolution, resolve_inputs_report
from pipeline.phase1 import merge_file_summaries
from pipeline.progress import Progress
from pipeline.version import code_version
from pipeline.work import Layout, load_or_plan_units, read_json, run_key, write_json_atomic

log = logging.getLogger("ccpipe.run")


@dataclass
class RunResult:
    run_id: str
    output: str
    lineage_path: str
    files_total: int
    files_skipped: int
    files_processed: int
    counts: dict[str, int] = field(default_factory=dict)
    records_read: int = 0
    docs_kept: int = 0
    tokens: int = 0
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    status: str = "succeeded"

    bad_inputs: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        """WARC records (of every type) per second of the whole run."""
        return self.records_read / self.seconds if self.seconds else 0.0


def lineage_path_for(cfg: PipelineConfig) -> str:
    if cfg.output.lineage_path:
        return cfg.output.lineage_path
    assert cfg.output.dir
    return default_lineage_path(cfg.output.dir)


def _log(cfg: PipelineConfig, msg: str) -> None:
    if cfg.execution.progress:
        log.info("%s", msg)


def _inputs(cfg: PipelineConfig) -> Resolution:
    paths = cfg.input.paths
    if not paths:
        from pipeline.sample import sample_paths

        paths = sample_paths()
    return resolve_inputs_report(paths, cfg.input.listing_prefix)


def run_pipeline(
    cfg: PipelineConfig,
    kind: str = "run",
    wait_for_lock: bool = False,
    lock_timeout_s: float | None = None,
) -> RunResult:
    """Run (or resume) the pipeline for `cfg`. Raises ConfigError for user errors and
    OutputLockedError when another writer holds the output (unless `wait_for_lock`)."""
    if not cfg.output.dir:
        raise ConfigError("config error: output.dir: required (use --output DIR)")
    if not storage.is_remote(cfg.output.dir):
        cfg = cfg.model_copy(deep=True)
        cfg.output.dir = os.path.abspath(cfg.output.dir)
    t0 = time.perf_counter()
    resolution = _inputs(cfg)
    new_output = not storage.is_remote(cfg.output.dir) and not os.path.exists(cfg.output.dir)
    _check_output(cfg)  # a user error (exit 2) before the lock needs the directory
    try:
        with hold_output_lock(
            cfg.output.dir, purpose=f"pipeline {kind}", wait=wait_for_lock, timeout_s=lock_timeout_s
        ):
            try:
                return _run_locked(cfg, resolution, kind, t0)
            except BaseException:
                if new_output:
                    _remove_unstarted_output(cfg.output.dir)
                raise
    finally:
        if new_output:
            _remove_if_empty(cfg.output.dir)


def _remove_unstarted_output(out: str) -> None:
    """A run that created its output and failed before staging anything (bad model path,
    Ray that does not start, ...) leaves no directory that looks like output. With staged
    work (`_work/`) everything stays: the same command resumes from it."""
    if os.path.exists(os.path.join(out, "_work")):
        return
    import shutil

    for name in os.listdir(out):
        if name != LOCK_NAME:  # the lock file goes when the lock is released
            path = os.path.join(out, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)


def _run_locked(cfg: PipelineConfig, resolution: Resolution, kind: str, t0: float) -> RunResult:
    files = resolution.files
    assert cfg.output.dir
    layout = Layout(cfg.output.dir, cfg.config_hash)
    quiet = not cfg.execution.progress
    restore_lineage(cfg.output.dir, lineage_path_for(cfg), quiet)
    try:
        return _run(cfg, files, layout, kind, t0, [u for u, _ in resolution.bad])
    finally:
        publish_lineage(cfg.output.dir, lineage_path_for(cfg), quiet)


# errno values that mean the storage (not the data or the code) failed: the run cannot go on
_FATAL_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}


def storage_failure(exc: BaseException) -> str | None:
    """One-line description if `exc` (or its cause chain, e.g. inside a Ray task error) is a
    fatal storage error such as a full disk; None otherwise."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FATAL_ERRNO:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            return f"storage error: {os.strerror(e.errno)}{where}"
        if "[Errno 28] No space left on device" in str(e):  # re-raised as text by Ray
            return "storage error: No space left on device"
        e = e.__cause__ or e.__context__ or getattr(e, "cause", None)
    return None


def _mark_interrupted(store: LineageStore, output_dir: str) -> None:
    """Runs of this output still marked `running` died without a finish record (killed, or
    the storage failed so badly that not even `failed` could be written). The output lock
    guarantees none of them is alive: record them as failed."""
    with store.transaction() as con:
        con.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?, error = "
            "'interrupted: the process died or its storage failed before it could finish' "
            "WHERE status = 'running' AND output_dir = ?",
            [now(), output_dir],
        )


def _run(
    cfg: PipelineConfig,
    files: list[InputFile],
    layout: Layout,
    kind: str,
    t0: float,
    bad_inputs: list[str],
) -> RunResult:
    assert cfg.output.dir
    store = LineageStore(
        lineage_path_for(cfg),
        publish_interval_s=cfg.execution.lineage_publish_interval_s,
        output_root=cfg.output.dir,
    )
    done_keys = committed_file_keys(store, cfg.config_hash)
    todo = [f for f in files if f.file_key not in done_keys]
    skipped = len(files) - len(todo)
    rkey = run_key(cfg.config_hash, [f.uri for f in files])
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    result = RunResult(
        run_id,
        cfg.output.dir,
        str(store.path),
        len(files),
        skipped,
        len(todo),
        bad_inputs=sorted(bad_inputs),
    )
    if skipped:
        _log(
            cfg,
            f"skipping {skipped} of {len(files)} input files already committed "
            f"with config {cfg.config_hash}",
        )
    _mark_interrupted(store, cfg.output.dir)
    start_run(
        store,
        run_id=run_id,
        run_key=rkey,
        kind=kind,
        config_hash=cfg.config_hash,
        config_json=cfg.canonical_json(),
        code_version=code_version(),
        output_dir=cfg.output.dir,
        models_json=json.dumps(model_hashes(cfg)),
        n_inputs=len(files),
    )
    try:
        if todo:
            try:
                _process(cfg, todo, layout, rkey, run_id, store, result)
            finally:
                Progress.close_all()
        else:
            _log(cfg, "nothing to do: every input is committed")
    except BaseException as exc:
        result.status = "failed"
        result.seconds = time.perf_counter() - t0
        msg = storage_failure(exc) or f"{type(exc).__name__}: {exc}"
        try:
            finish_run(store, run_id, "failed", _summary(result), msg[:2000])
        except Exception:  # noqa: BLE001 - never mask the original error
            pass
        raise
    result.seconds = time.perf_counter() - t0
    faults.point("run.before_finish")
    finish_run(store, run_id, "succeeded", _summary(result))
    if todo and not cfg.output.keep_work:
        storage.delete_tree(layout.work_dir(rkey))
        _remove_if_empty(storage.join(cfg.output.dir, "_work"))
    return result


def model_hashes(cfg: PipelineConfig) -> dict[str, dict[str, str]]:
    """Content hashes of every model file the run uses: outputs depend on their bytes."""
    from stages.langid import default_model_path
    from stages.tokenize import tokenizer_hash

    paths = {
        "langid": cfg.langid.model_path or default_model_path(),
        "tokenizer": str(cfg.tokenize.resolved_tokenizer_path()),
    }
    if cfg.quality.model.path:
        paths["quality_model"] = cfg.quality.model.path
    out = {}
    for name, path in paths.items():
        try:
            out[name] = {"path": path, "sha256": tokenizer_hash(path)}
        except OSError as exc:
            raise ConfigError(f"config error: {name} model not readable: {path}: {exc}") from exc
    return out


def _check_output(cfg: PipelineConfig) -> None:
    """Fail early, as a user error, when the output or lineage location is unusable."""
    assert cfg.output.dir
    for what, uri in (
        ("output.dir", cfg.output.dir),
        ("output.lineage_path", os.path.dirname(lineage_path_for(cfg))),
    ):
        try:
            storage.makedirs(uri)
        except OSError as exc:
            raise ConfigError(f"config error: {what}: cannot create {uri}: {exc}") from exc
        if not storage.is_remote(uri) and not os.access(uri, os.W_OK):
            raise ConfigError(f"config error: {what}: not writable: {uri}")


def _summary(r: RunResult) -> dict[str, Any]:
    return {
        "files_total": r.files_total,
        "files_skipped": r.files_skipped,
        "files_processed": r.files_processed,
        "records_read": r.records_read,
        "docs_kept": r.docs_kept,
        "tokens": r.tokens,
        "counts": r.counts,
        **funnel(r),
        "bad_inputs": r.bad_inputs,
        "seconds": round(r.seconds, 3),
        "phase_seconds": r.phase_seconds,
    }


def _process(
    cfg: PipelineConfig,
    todo: list[InputFile],
    layout: Layout,
    rkey: str,
    run_id: str,
    store: LineageStore,
    result: RunResult,
) -> None:
    from pipeline import plan

    _log(cfg, f"starting Ray ({plan.ray_address(cfg.execution.ray_address)})")
    plan.ensure_ray(cfg.execution.ray_address)
    from pipeline.dedup_phase import check_shared_output

    check_shared_output(cfg.output.dir, cfg.execution.output_shared)  # i17: before any work
    workers = cfg.execution.num_workers or plan.cluster_cpus()
    storage.makedirs(layout.work_dir(rkey))

    # ---- phase 1 ------------------------------------------------------------------------
    t = time.perf_counter()
    p1: dict[str, dict] = {}
    pending = []
    for f in todo:
        done = read_json(layout.file_done(rkey, f.file_key))
        if done is not None:
            p1[f.file_key] = done
        else:
            pending.append({"uri": f.uri, "file_key": f.file_key})
    if len(pending) < len(todo):
        _log(cfg, f"phase 1: reusing staged work of {len(todo) - len(pending)} files")
    chunks: dict[str, dict[int, dict]] = defaultdict(dict)
    last: dict[str, int] = {}
    blocked = _blocklist(store)
    if pending:
        sizes = {f["file_key"]: _local_size(f["uri"]) for f in pending}
        prog = Progress(
            "phase 1 (read, extract, filter)",
            len(pending),
            cfg.execution.progress,
            total_bytes=sum(sizes.values()),
        )
        try:
            for s in plan.run_phase1(pending, cfg, layout, rkey, workers, blocked):
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
                    file_bytes=sizes[key] if file_done else 0,
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
        sig_files = [
            (layout.chunk_prefix(rkey, f.file_key, i) + ".kept.parquet", f.file_key)
            for f in todo
            for i in range(p1[f.file_key]["n_chunks"])
        ]
        sig_files = [(p, k) for p, k in sig_files if storage.exists(p)]
        _log(
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
            before_commit=lambda d: _record_id_task(sig_files, d),
        )
        record_dedup(
            store,
            run_id,
            rkey,
            stats,
            cfg.dedup.model_dump(mode="json"),
            layout.decisions_archive(rkey),
        )
        _log(
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
    sizes = {f.file_key: storage.file_size(f.uri) for f in todo}
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
                        }
                        for f in members
                    ],
                }
            )
    _log(cfg, f"phase 3: {len(todo)} files in {len(items)} work units")
    prog = Progress(
        "phase 3 (dedup, PII, tokens, shards)",
        len(todo),
        cfg.execution.progress,
        total_bytes=sum(_local_size(f.uri) for f in todo),
    )
    totals: Counter[str] = Counter()
    cv = code_version()
    for res in plan.run_phase3(items, cfg, layout, rkey, workers):
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
            file_bytes=sum(_local_size(f["p1"]["source_uri"]) for f in files),
        )
    prog.done()
    result.counts = dict(sorted(totals.items()))
    result.phase_seconds["phase3"] = round(time.perf_counter() - t, 3)


def _remove_if_empty(uri: str) -> None:
    """No empty directories left behind (object stores have none)."""
    if not storage.is_remote(uri):
        try:
            os.rmdir(uri)
        except OSError:
            pass  # not empty (another run's staging) or already gone


def _local_size(uri: str) -> int:
    """Size of a local input file (0 for object-store files: no request just for progress)."""
    if storage.is_remote(uri):
        return 0
    try:
        return os.path.getsize(uri)
    except OSError:
        return 0


def _blocklist(store: LineageStore) -> tuple[list[str], list[str]]:
    """URLs and domains removed by deletion requests: they never re-enter the output."""
    from lineage.blocklist import load_blocklist

    urls, domains = load_blocklist(store.path)
    return sorted(urls), sorted(domains)


def _record_id_task(sig_files: list[tuple[str, str]], decisions_dir: str) -> int:
    """add_record_id_duplicates in a Ray task: it reads every staged doc's record id (i17:
    the driver holds no per-document state)."""
    import ray

    return ray.get(
        ray.remote(num_cpus=1)(add_record_id_duplicates).remote(sig_files, decisions_dir)
    )


def add_record_id_duplicates(sig_files: list[tuple[str, str]], decisions_dir: str) -> int:
    """One WARC-Record-ID in several input files is one record (issue 19).

    Among the staged (phase-1 surviving) occurrences, the one in the first input file in URI
    order (then the smallest offset) wins; every other occurrence becomes a
    `dedup.record_id` decision pointing at it, unless dedup already dropped it. Runs after
    either phase-2 engine, on the per-input-file decisions (i17); returns the number of
    decisions added.
    """
    import hashlib

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipeline.dedup_index import decisions_file_uri, decisions_files, read_decisions_uri
    from stages.dedup_cluster import OUTPUT_SCHEMA

    cols = ["doc_id", "warc_record_id", "source_uri", "source_offset"]
    parts = []
    for u, fk in sig_files:
        fs, path = storage.resolve(u)
        names = pq.ParquetFile(fs.open_input_file(path)).schema_arrow.names
        if all(c in names for c in cols):
            t = pq.read_table(path, columns=cols, filesystem=fs)
            parts.append(t.append_column("file_key", pa.array([fk] * t.num_rows, pa.string())))
    if not parts:
        return 0
    occ = pa.concat_tables(parts).filter(pc.is_valid(pc.field("warc_record_id")))
    if occ.num_rows < 2:
        return 0
    occ = occ.sort_by(
        [
            ("warc_record_id", "ascending"),
            ("source_uri", "ascending"),
            ("source_offset", "ascending"),
        ]
    )
    decided = set()
    for u in decisions_files(decisions_dir):
        decided.update(read_decisions_uri(u).column("doc_id").to_pylist())
    rows: dict[str, dict[str, list]] = {}
    winner_rid, winner = None, None
    for rid, doc, fk in zip(
        occ.column("warc_record_id").to_pylist(),
        occ.column("doc_id").to_pylist(),
        occ.column("file_key").to_pylist(),
        strict=True,
    ):
        if rid != winner_rid:
            winner_rid, winner = rid, doc
            continue
        if doc == winner or doc in decided:
            continue
        decided.add(doc)
        r = rows.setdefault(fk, {n: [] for n in OUTPUT_SCHEMA.names})
        r["doc_id"].append(doc)
        r["reason"].append("dedup.record_id")
        r["cluster_id"].append(int.from_bytes(hashlib.sha256(rid.encode()).digest()[:8], "big"))
        r["keeper_doc_id"].append(winner)
    n = 0
    for fk, r in sorted(rows.items()):
        uri = decisions_file_uri(decisions_dir, fk)
        old = read_decisions_uri(uri) if storage.exists(uri) else OUTPUT_SCHEMA.empty_table()
        extra = pa.Table.from_pydict(r, schema=OUTPUT_SCHEMA)
        out = pa.concat_tables([old.cast(OUTPUT_SCHEMA), extra]).sort_by([("doc_id", "ascending")])
        storage.write_parquet_atomic(uri, out, 100_000)
        n += extra.num_rows
    return n


def funnel(r: RunResult) -> dict[str, int]:
    """Records read -> HTML responses -> documents extracted -> documents kept.

    WARC records are not documents: `read.*` reasons count records the reader did not turn
    into documents (requests, metadata, non-HTML, truncated...); `file.*` reasons count files.
    Every other reason counts documents.
    """
    read_drops = sum(n for k, n in r.counts.items() if k.startswith("read."))
    pre_extract = sum(
        n for k, n in r.counts.items() if k.startswith("extract.") or k == "url.deleted"
    )
    html = r.records_read - read_drops
    return {
        "records_read": r.records_read,
        "html_responses": html,
        "documents_extracted": html - pre_extract,
        "documents_kept": r.docs_kept,
    }


def summary_table(r: RunResult) -> str:
    """The summary printed at the end of a run: the funnel, then every drop reason."""
    f = funnel(r)
    lines = [
        f"run {r.run_id}: {r.status} in {r.seconds:,.1f}s "
        f"({r.records_per_s:,.0f} records/s end to end)",
        f"inputs: {r.files_total} files ({r.files_skipped} already committed, "
        f"{r.files_processed} processed)",
        f"  {'records read':<24} {f['records_read']:>12,}  WARC records of every type",
        f"  {'HTML responses':<24} {f['html_responses']:>12,}  records handed to extraction",
        f"  {'documents extracted':<24} {f['documents_extracted']:>12,}  with text after extraction",
        f"  {'documents kept':<24} {f['documents_kept']:>12,}  in output shards",
        f"  {'tokens written':<24} {r.tokens:>12,}",
        "dropped, per reason (read.* count records, file.* files, all others documents):",
        f"  {'stage':<10} {'reason':<40} {'count':>10}  unit",
    ]
    if r.bad_inputs:
        lines.insert(
            2, f"not WARC (skipped): {len(r.bad_inputs)} files: " + ", ".join(r.bad_inputs[:10])
        )
    order = ("read", "extract", "lang", "quality", "dedup")
    items = sorted(
        r.counts.items(),
        key=lambda kv: (
            order.index(stage_of(kv[0])) if stage_of(kv[0]) in order else len(order),
            -kv[1],
            kv[0],
        ),
    )
    for reason, n in items:
        unit = (
            "files"
            if reason.startswith("file.")
            else "records"
            if reason.startswith("read.")
            else "documents"
        )
        lines.append(f"  {stage_of(reason):<10} {reason:<40} {n:>10,}  {unit}")
    for ph, s in r.phase_seconds.items():
        lines.append(f"time {ph:<20} {s:>9,.1f}s")
    lines.append(f"output: {r.output}   lineage: {r.lineage_path}")
    return "\n".join(lines)
