"""The driver: resolve inputs, skip committed work, run the three phases, commit lineage.

Resumability comes from three facts: (1) every file name derives from the input URI and the
config hash; (2) phase-1 chunks and phase-2 decisions are kept in a work directory named by
the run key (config hash + input set), so a re-run of the same command reuses them; (3) an
input file counts as done only when its lineage commit exists. A SIGKILL anywhere leaves
either nothing, or complete files without a commit (rewritten identically next time).

The phases themselves are in ``pipeline/phases.py``; the result record and the printed
summary in ``pipeline/run_summary.py``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
import uuid
from datetime import datetime, timezone

from core import faults, storage
from core.output_lock import LOCK_NAME, hold_output_lock
from lineage.location import default_lineage_path, publish_lineage, restore_lineage
from lineage.store import LineageStore
from lineage.writer import committed_file_keys, finish_run, now, start_run
from pipeline.config import ConfigError, PipelineConfig
from pipeline.inputs import InputFile, Resolution, resolve_inputs_report
from pipeline.phases import process_inputs, progress_log
from pipeline.preflight import preflight
from pipeline.progress import Progress
from pipeline.run_summary import RunResult, run_summary
from pipeline.version import code_version
from pipeline.work import Layout, run_key


def lineage_path_for(cfg: PipelineConfig) -> str:
    if cfg.output.lineage_path:
        return cfg.output.lineage_path
    assert cfg.output.dir
    return default_lineage_path(cfg.output.dir)


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
    models = preflight(cfg)  # settings only a model file can judge, before the output is touched
    resolution = _inputs(cfg)
    new_output = not storage.is_remote(cfg.output.dir) and not os.path.exists(cfg.output.dir)
    _check_output(cfg)  # a user error (exit 2) before the lock needs the directory
    try:
        with hold_output_lock(
            cfg.output.dir, purpose=f"pipeline {kind}", wait=wait_for_lock, timeout_s=lock_timeout_s
        ):
            try:
                return _run_locked(cfg, resolution, kind, t0, models)
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


def _run_locked(
    cfg: PipelineConfig,
    resolution: Resolution,
    kind: str,
    t0: float,
    models: dict[str, dict[str, str]],
) -> RunResult:
    files = resolution.files
    assert cfg.output.dir
    layout = Layout(cfg.output.dir, cfg.config_hash)
    quiet = not cfg.execution.progress
    restore_lineage(cfg.output.dir, lineage_path_for(cfg), quiet)
    try:
        return _run(cfg, files, layout, kind, t0, [u for u, _ in resolution.bad], models)
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
    models: dict[str, dict[str, str]],
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
        progress_log(
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
        models_json=json.dumps(models),
        n_inputs=len(files),
    )
    try:
        if todo:
            try:
                process_inputs(cfg, todo, layout, rkey, run_id, store, result)
            finally:
                Progress.close_all()
        else:
            progress_log(cfg, "nothing to do: every input is committed")
    except BaseException as exc:
        result.status = "failed"
        result.seconds = time.perf_counter() - t0
        msg = storage_failure(exc) or f"{type(exc).__name__}: {exc}"
        try:
            finish_run(store, run_id, "failed", run_summary(result), msg[:2000])
        except Exception:  # noqa: BLE001 - never mask the original error
            pass
        raise
    result.seconds = time.perf_counter() - t0
    faults.point("run.before_finish")
    finish_run(store, run_id, "succeeded", run_summary(result))
    if todo and not cfg.output.keep_work:
        storage.delete_tree(layout.work_dir(rkey))
        _remove_if_empty(storage.join(cfg.output.dir, "_work"))
    return result


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


def _remove_if_empty(uri: str) -> None:
    """No empty directories left behind (object stores have none)."""
    if not storage.is_remote(uri):
        try:
            os.rmdir(uri)
        except OSError:
            pass  # not empty (another run's staging) or already gone
