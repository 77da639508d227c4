"""The in-process engine: the same phase work as `pipeline/plan.py`, without Ray.

A run over a few files spends most of its wall on starting Ray (GCS, raylet, dashboard
agent: ~4.5 s) and its worker processes, each importing and loading every model again per
phase (~3 s each). Here one process loads each model once and calls the very objects the
Ray actors call (`ChunkProcessor`, `UnitFinisher`), in input order, so the output bytes are
the same as a Ray run's; resumability and progress stay in `pipeline/phases.py`, which does
not care where the iterators run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.work import Layout

# Above this many files `auto` picks Ray whatever their size.
_AUTO_MAX_FILES = 64


def choose_engine(cfg: PipelineConfig, total_bytes: int, n_files: int) -> str:
    """ "ray" or "local" for this run (`execution.engine`, see its description)."""
    import ray

    return engine_for(cfg, total_bytes, n_files, ray_connected=ray.is_initialized())


def engine_for(cfg: PipelineConfig, total_bytes: int, n_files: int, ray_connected: bool) -> str:
    """The rule of `choose_engine`, given whether this process is already connected to Ray."""
    ex = cfg.execution
    if ex.engine != "auto":
        return ex.engine
    if ray_connected or ex.ray_address or os.environ.get("RAY_ADDRESS"):
        return "ray"
    if ex.num_workers == 1:
        return "local"  # one worker asked for on this machine: Ray would add only its cost
    if (ex.num_workers or 1) > 1 or n_files > _AUTO_MAX_FILES:
        return "ray"
    return "ray" if total_bytes > ex.local_max_bytes else "local"


def run_phase1_local(
    files: list[dict[str, str]],
    cfg: PipelineConfig,
    layout: Layout,
    rkey: str,
    blocked: tuple[list[str], list[str]] = ([], []),
) -> Iterator[dict[str, Any]]:
    """Chunk summaries, file by file in order: read, then the chunk processor of the actors."""
    from pipeline.phase1 import ChunkProcessor, read_file_chunks

    proc = ChunkProcessor(cfg, layout, rkey, *blocked)
    for f in files:
        for row in read_file_chunks(f["uri"], f["file_key"], cfg, as_ipc=False):
            yield _as_sent(proc.process(row))


def run_phase3_local(
    items: list[dict[str, Any]], cfg: PipelineConfig, layout: Layout, rkey: str
) -> Iterator[dict[str, Any]]:
    """Per-unit results in unit order, from the unit finisher of the actors."""
    from pipeline.phase3 import UnitFinisher

    fin = UnitFinisher(cfg, layout, rkey)
    for unit in items:
        yield _as_sent(fin.finish_unit(unit))


def _as_sent(result: dict[str, Any]) -> dict[str, Any]:
    """The result as the driver gets it from an actor (through JSON: tuples become lists,
    keys strings), so lineage records the same values whichever engine ran."""
    return json.loads(json.dumps(result))
