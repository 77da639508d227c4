"""The Ray Data plan: the only module that knows the execution engine.

Phase 1: `from_items(files)` -> read tasks (one per file, yielding one row per chunk of
records) -> actor pool of `ChunkProcessor` (models loaded once per actor, one chunk per call).
Phase 2 lives in `pipeline/dedup_phase.py` (a Ray Data shuffle of band keys).
Phase 3: `from_items(units)` -> actor pool of `UnitFinisher` (one work unit per call).

Readers take no CPU reservation (`num_cpus=0`): they are I/O and cheap decompression, and a
fractional reservation next to a full actor pool deadlocks a small machine. Their concurrency
is capped instead, and Ray Data's backpressure bounds the chunks in flight.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import ray

from pipeline.config import PipelineConfig
from pipeline.work import Layout

CHUNK_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),
        ("file_key", pa.string()),
        ("chunk_index", pa.int64()),
        ("is_last", pa.bool_()),
        ("records_read", pa.int64()),
        ("counts_json", pa.string()),
        ("errors_json", pa.string()),
        ("records_ipc", pa.large_binary()),
    ]
)


def ray_address(address: str | None = None) -> str:
    """Which Ray to use: an explicit address (--address / execution.ray_address), else
    RAY_ADDRESS (set by `ray job submit` inside a job), else "local": an embedded Ray started
    for this process. Never None: `ray.init()` without an address would join whatever cluster
    `/tmp/ray/ray_current_cluster` or a running `gcs_server` names (another user's, or a dead
    one that hangs the driver)."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the cluster `ray_address` names, or start an embedded local Ray."""
    if ray.is_initialized():
        return
    address = ray_address(address)
    env: dict[str, Any] | None = {
        "env_vars": {"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1"}
    }
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        env = None  # inside `ray job submit`: the job's runtime_env (jobs/runtime_env.yaml) rules
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="ray")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if address != "local":
        ray.init(address=address, runtime_env=env, logging_level=logging.WARNING)
    else:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=env,
            logging_level=logging.WARNING,
        )
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # ray.init reconfigures it
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_progress = False
    ctx.print_on_execution_start = False


def cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _read_chunks(batch: pa.Table, cfg_json: str) -> Iterator[pa.Table]:
    from pipeline.phase1 import read_file_chunks

    cfg = PipelineConfig.model_validate_json(cfg_json)
    for row in batch.to_pylist():
        for chunk in read_file_chunks(row["uri"], row["file_key"], cfg):
            yield pa.Table.from_pylist([chunk], schema=CHUNK_SCHEMA)


class _Phase1Actor:
    def __init__(
        self,
        cfg_json: str,
        out: str,
        config_hash: str,
        rkey: str,
        blocked: tuple[list[str], list[str]] = ([], []),
    ):
        from pipeline.phase1 import ChunkProcessor

        cfg = PipelineConfig.model_validate_json(cfg_json)
        self.proc = ChunkProcessor(cfg, Layout(out, config_hash), rkey, *blocked)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [json.dumps(self.proc.process(r)) for r in batch.to_pylist()]
        return pa.table({"summary_json": pa.array(rows, pa.string())})


class _Phase3Actor:
    def __init__(self, cfg_json: str, out: str, config_hash: str, rkey: str):
        from pipeline.phase3 import UnitFinisher

        cfg = PipelineConfig.model_validate_json(cfg_json)
        self.fin = UnitFinisher(cfg, Layout(out, config_hash), rkey)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [
            json.dumps(self.fin.finish_unit(json.loads(r["unit_json"]))) for r in batch.to_pylist()
        ]
        return pa.table({"result_json": pa.array(rows, pa.string())})


def _map_with_actors(
    ds: ray.data.Dataset,
    actor: type,
    cfg: PipelineConfig,
    layout: Layout,
    rkey: str,
    size: int,
    **extra: Any,
) -> ray.data.Dataset:
    """One call per row on a fixed-size actor pool (one CPU each; models load once per actor).

    Ray Data restarts a dead actor and retries its call (max_restarts / max_task_retries
    default to unlimited for system failures such as a killed worker process); an exception
    raised by our code is not retried, because the same input would fail the same way.
    """
    return ds.map_batches(
        actor,
        batch_size=1,
        batch_format="pyarrow",
        fn_constructor_kwargs={
            "cfg_json": cfg.model_dump_json(),
            "out": layout.out,
            "config_hash": layout.config_hash,
            "rkey": rkey,
            **extra,
        },
        num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, size)),
    )


def run_phase1(
    files: list[dict[str, str]],
    cfg: PipelineConfig,
    layout: Layout,
    rkey: str,
    workers: int,
    blocked: tuple[list[str], list[str]] = ([], []),
) -> Iterator[dict[str, Any]]:
    """Stream chunk summaries as actors finish them (any order).

    Every chunk must travel as its own block: Ray Data hands whole blocks to actors and would
    otherwise pack a task's consecutive chunks into one block (up to 128 MiB), so one actor
    would get a whole file while the others idle. A tiny target block size for this dataset
    makes each yielded chunk row a block of its own.
    """
    ctx = ray.data.DataContext.get_current()
    saved = ctx.target_max_block_size
    ctx.target_max_block_size = 1
    try:
        yield from _phase1_rows(files, cfg, layout, rkey, workers, blocked)
    finally:
        ctx.target_max_block_size = saved


def _phase1_rows(
    files: list[dict[str, str]],
    cfg: PipelineConfig,
    layout: Layout,
    rkey: str,
    workers: int,
    blocked: tuple[list[str], list[str]],
) -> Iterator[dict[str, Any]]:
    ds = ray.data.from_items(files, override_num_blocks=max(1, len(files)))
    ds = ds.map_batches(
        _read_chunks,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"cfg_json": cfg.model_dump_json()},
        num_cpus=0,
        compute=ray.data.TaskPoolStrategy(size=max(1, workers)),
    )
    ds = _map_with_actors(ds, _Phase1Actor, cfg, layout, rkey, workers, blocked=blocked)
    for row in ds.iter_rows():
        yield json.loads(row["summary_json"])


def run_phase3(
    items: list[dict[str, Any]], cfg: PipelineConfig, layout: Layout, rkey: str, workers: int
) -> Iterator[dict[str, Any]]:
    """Stream per-unit results (shards written, per-file counts) as actors finish them."""
    items = [{"unit_json": json.dumps(u)} for u in items]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = _map_with_actors(ds, _Phase3Actor, cfg, layout, rkey, min(workers, len(items)))
    for row in ds.iter_rows():
        yield json.loads(row["result_json"])
