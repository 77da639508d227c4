"""Phase 3's first stage: drop the documents phase 2 decided are duplicates.

Why a stage: phase 3 runs its per-document steps (drop duplicates, tokenize) through the same
chain runner as phase 1 (``stages.contract.run_chain``), so the dropped rows come back the
same way as every other stage's: ``drop_reason`` (``dedup.exact`` / ``dedup.minhash`` /
``dedup.record_id``) and ``drop_detail`` (``duplicate of <keeper doc_id>``), plus the cluster
and keeper columns of the audit schema.

The decisions are one input file's rows of phase 2 (doc_id, reason, cluster_id,
keeper_doc_id); the pipeline reads them and builds one stage per file. Plain Arrow.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from stages.contract import StageResult

__all__ = ["DropDuplicates"]


class DropDuplicates:
    """Drop rows whose ``doc_id`` has a phase-2 decision (see the module docstring)."""

    name = "dedup"
    reads = ("doc_id",)
    adds = ("cluster_id", "keeper_doc_id")  # on the dropped rows only

    def __init__(self, decisions: pa.Table) -> None:
        self.decisions = decisions

    def setup(self) -> None:
        """Nothing to load: the decisions come with the stage."""

    def process(self, table: pa.Table) -> StageResult:
        dec = self.decisions
        if dec.num_rows == 0:
            return StageResult(table, table.slice(0, 0))
        is_dup = pc.is_in(table.column("doc_id"), value_set=dec.column("doc_id"))
        dups = table.filter(is_dup)
        dec = dec.take(pc.index_in(dups.column("doc_id"), value_set=dec.column("doc_id")))
        dups = dups.append_column("drop_reason", dec.column("reason"))
        dups = dups.append_column("cluster_id", pc.cast(dec.column("cluster_id"), pa.string()))
        dups = dups.append_column("keeper_doc_id", dec.column("keeper_doc_id"))
        dups = dups.append_column(
            "drop_detail",
            pc.binary_join_element_wise(
                pa.array(["duplicate of"] * dups.num_rows, pa.string()),
                dups.column("keeper_doc_id"),
                " ",
            ),
        )
        return StageResult(table.filter(pc.invert(is_dup)), dups)
