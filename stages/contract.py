"""The one contract every per-document stage implements, and the one chain runner.

Why: extractors, language id, quality filters, signatures (and any filter someone adds) all
take a batch of documents as a ``pyarrow.Table`` and either add columns or drop rows with a
reason. With one small protocol the pipeline (phase 1), the benchmarks and tools run the same
chain through :func:`run_chain`, and adding a filter is one module plus one registry entry
(docs/adding-a-filter.md).

A stage has a ``name``, declares the columns it ``reads``, ``adds`` and ``consumes`` (uses up:
they leave the batch with it, as the raw HTML does after extraction), loads its models in
``setup()`` (once per worker, never at import or construction), and ``process(table)`` returns
the kept rows plus the dropped rows, each dropped row carrying ``drop_reason`` (the rule, e.g.
``gopher_quality.word_count``) and ``drop_detail`` (the measured value, e.g.
``word_count=12 < 50``); the runner records which stage dropped it.

Plain Python: no Ray, no DuckDB.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

__all__ = [
    "ChainResult",
    "Stage",
    "StageResult",
    "StageStats",
    "TableStage",
    "mark_dropped",
    "run_chain",
    "split_dropped",
]


@dataclass(frozen=True)
class StageResult:
    """What a stage returns: rows kept, rows dropped (with drop_reason / drop_detail)."""

    kept: pa.Table
    dropped: pa.Table


@runtime_checkable
class Stage(Protocol):
    """A per-document stage (see the module docstring)."""

    name: str
    reads: tuple[str, ...]
    adds: tuple[str, ...]

    def setup(self) -> None: ...

    def process(self, table: pa.Table) -> StageResult: ...


def split_dropped(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(kept rows, dropped rows) by the ``drop_reason`` contract column.

    No copy when a batch lost no row (most stages, most batches) or lost every row.
    """
    if "drop_reason" not in table.column_names or table.num_rows == 0:
        return table, table.slice(0, 0)
    reasons = table.column("drop_reason")
    if reasons.null_count == table.num_rows:
        return table, table.slice(0, 0)
    if reasons.null_count == 0:
        return table.slice(0, 0), table
    dropped = pc.is_valid(reasons)
    return table.filter(pc.invert(dropped)), table.filter(dropped)


def mark_dropped(
    table: pa.Table, drop: np.ndarray, rule: str, details: Sequence[str | None]
) -> pa.Table:
    """Set ``drop_reason=rule`` and ``drop_detail`` on rows where ``drop`` is True.

    ``details`` has one entry per row (ignored where ``drop`` is False). Rows already dropped
    keep their first reason.
    """
    n = table.num_rows
    reason = (
        table.column("drop_reason").to_pylist()
        if "drop_reason" in table.column_names
        else [None] * n
    )
    detail = (
        table.column("drop_detail").to_pylist()
        if "drop_detail" in table.column_names
        else [None] * n
    )
    for i in np.flatnonzero(drop):
        if reason[i] is None:
            reason[i], detail[i] = rule, details[i]
    for name, values in (("drop_reason", reason), ("drop_detail", detail)):
        arr = pa.array(values, pa.string())
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


class TableStage:
    """Base for stages written as ``apply(table) -> table`` that mark drops in place.

    Subclasses set ``name``, ``reads``, ``adds``, ``Params`` (a pydantic model of the stage's
    settings) and, for stages configured by a section of the pipeline config, ``section``.
    """

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]] = ()
    adds: ClassVar[tuple[str, ...]] = ()
    # columns no later stage or writer needs once this stage ran: dropped from its output so
    # later stages do not copy them in every filter (the HTML is ~20x the size of the text)
    consumes: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[BaseModel]]
    section: ClassVar[str | None] = None  # e.g. "quality": params come from cfg.quality

    def __init__(self, params: BaseModel | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self._ready = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's ``setup`` runs once however often it is called: workers call it
        ahead of the first batch (model loads at start-up), ``process`` calls it in case
        nobody did, and a model must not be loaded twice."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("setup")
        if own is None:
            return

        @functools.wraps(own)
        def setup(self: TableStage) -> None:
            if not self._ready:
                own(self)
                self._ready = True

        cls.setup = setup  # type: ignore[method-assign]

    def setup(self) -> None:
        """Load models/tokenizers; called once per worker before the first batch."""

    def apply(self, table: pa.Table) -> pa.Table:
        """The stage itself: add columns, mark dropped rows (drop_reason / drop_detail)."""
        raise NotImplementedError

    def process(self, table: pa.Table) -> StageResult:
        self.setup()  # once (see __init_subclass__)
        out = self.apply(table)
        if self.consumes:
            out = out.drop_columns([c for c in self.consumes if c in out.column_names])
        kept, dropped = split_dropped(out)
        return StageResult(kept, dropped)


@dataclass
class StageStats:
    """Per-stage totals over the batches of a chain run."""

    docs_in: int = 0
    docs_out: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class ChainResult:
    """Rows that passed every stage, rows each stage dropped, and per-stage stats."""

    kept: pa.Table
    dropped: list[tuple[str, pa.Table]] = field(default_factory=list)
    stats: dict[str, StageStats] = field(default_factory=dict)


Observer = Callable[[str, pa.Table, StageResult], Any]


def run_chain(
    table: pa.Table, stages: Sequence[Stage], observe: Observer | None = None
) -> ChainResult:
    """One batch through ``stages`` in order, each seeing only the rows the previous kept.

    ``observe(name, input_table, result)`` is called after each stage (benchmarks use it to
    measure bytes or keep an extractor's output). Stops early when no row is left.
    """
    result = ChainResult(kept=table)
    kept = table
    for stage in stages:
        if kept.num_rows == 0:
            break
        w0, c0 = time.perf_counter(), time.process_time()
        res = stage.process(kept)
        st = result.stats.setdefault(stage.name, StageStats())
        st.wall_s += time.perf_counter() - w0
        st.cpu_s += time.process_time() - c0
        st.docs_in += kept.num_rows
        st.docs_out += res.kept.num_rows
        if observe is not None:
            observe(stage.name, kept, res)
        if res.dropped.num_rows:
            result.dropped.append((stage.name, res.dropped))
        kept = res.kept
    result.kept = kept
    return result
