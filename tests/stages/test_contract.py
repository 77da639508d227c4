"""The stage contract and the one chain runner (stages/contract.py), phase 3's stages included."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import BaseModel

from stages.builtin import TokenizeStage
from stages.contract import TableStage, run_chain
from stages.dedup_drop import DropDuplicates
from stages.tokenize import TokenizeConfig


class _NoParams(BaseModel):
    pass


class _Counting(TableStage):
    name = "counting"
    Params = _NoParams

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def setup(self) -> None:
        self.loads += 1  # stands for loading a model

    def apply(self, table: pa.Table) -> pa.Table:
        return table


class _Child(_Counting):
    name = "child"

    def setup(self) -> None:
        super().setup()
        self.loads += 10


def test_setup_loads_once_when_the_worker_calls_it_ahead():
    """Workers call setup() before the first batch; process() must not load again."""
    stage = _Counting()
    stage.setup()
    run_chain(pa.table({"text": ["a", "b"]}), [stage])
    run_chain(pa.table({"text": ["c"]}), [stage])
    assert stage.loads == 1


def test_setup_runs_on_first_batch_when_nobody_called_it():
    stage = _Counting()
    assert stage.loads == 0
    run_chain(pa.table({"text": ["a"]}), [stage])
    assert stage.loads == 1


def test_subclass_setup_calling_super_runs_each_part_once():
    stage = _Child()
    stage.setup()
    stage.setup()
    run_chain(pa.table({"text": ["a"]}), [stage])
    assert stage.loads == 11


def _decisions(rows: list[tuple[str, str, int, str]]) -> pa.Table:
    doc, reason, cluster, keeper = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pa.table(
        {
            "doc_id": pa.array(doc, pa.string()),
            "reason": pa.array(reason, pa.string()),
            "cluster_id": pa.array(cluster, pa.uint64()),
            "keeper_doc_id": pa.array(keeper, pa.string()),
        }
    )


def test_phase3_chain_drops_decided_duplicates_then_tokenizes_the_rest():
    docs = pa.table(
        {
            "doc_id": ["d1", "d2", "d3", "d4"],
            "text": ["first page text", "copy of first", "near copy", "another page"],
        }
    )
    dec = _decisions([("d3", "dedup.minhash", 7, "d4"), ("d2", "dedup.exact", 5, "d1")])
    tok = TokenizeStage(TokenizeConfig())
    res = run_chain(docs, [DropDuplicates(dec), tok])
    assert res.kept.column("doc_id").to_pylist() == ["d1", "d4"]
    assert all(n > 0 for n in res.kept.column("n_tokens").to_pylist())
    ((stage, dropped),) = res.dropped
    assert stage == "dedup"
    assert dropped.column("doc_id").to_pylist() == ["d2", "d3"]
    assert dropped.column("drop_reason").to_pylist() == ["dedup.exact", "dedup.minhash"]
    assert dropped.column("drop_detail").to_pylist() == ["duplicate of d1", "duplicate of d4"]
    assert dropped.column("cluster_id").to_pylist() == ["5", "7"]
    assert dropped.column("keeper_doc_id").to_pylist() == ["d1", "d4"]
    assert res.stats["dedup"].docs_in == 4 and res.stats["tokenize"].docs_in == 2


def test_phase3_chain_without_decisions_keeps_everything():
    docs = pa.table({"doc_id": ["d1"], "text": ["hello"]})
    res = run_chain(docs, [DropDuplicates(_decisions([]))])
    assert res.kept.num_rows == 1 and res.dropped == []


class _Consuming(TableStage):
    """Drops rows whose text is "bad" and uses up the ``raw`` column."""

    name = "consuming"
    Params = _NoParams
    reads = ("raw",)
    consumes = ("raw",)

    def apply(self, table: pa.Table) -> pa.Table:
        bad = [t == "bad" for t in table["text"].to_pylist()]
        reasons = pa.array(["consuming.bad" if b else None for b in bad], pa.string())
        return table.append_column("drop_reason", reasons).append_column(
            "drop_detail", pa.nulls(len(bad), pa.string())
        )


def test_a_consumed_column_leaves_kept_and_dropped_rows() -> None:
    table = pa.table({"raw": [b"x" * 100] * 3, "text": ["a", "bad", "c"]})
    res = _Consuming().process(table)
    assert res.kept["text"].to_pylist() == ["a", "c"]
    assert res.dropped["text"].to_pylist() == ["bad"]
    assert "raw" not in res.kept.column_names and "raw" not in res.dropped.column_names


def test_split_without_any_drop_or_with_all_dropped_keeps_every_row_in_order() -> None:
    from stages.contract import split_dropped

    none_dropped = pa.table({"text": ["a", "b"], "drop_reason": pa.nulls(2, pa.string())})
    kept, dropped = split_dropped(none_dropped)
    assert kept.equals(none_dropped) and dropped.num_rows == 0
    assert dropped.schema == none_dropped.schema
    all_dropped = pa.table({"text": ["a", "b"], "drop_reason": ["r1", "r2"]})
    kept, dropped = split_dropped(all_dropped)
    assert dropped.equals(all_dropped) and kept.num_rows == 0


def test_extraction_consumes_the_html_and_the_config_check_knows() -> None:
    from pipeline.config import ConfigError, load_config
    from stages.builtin import ExtractStage
    from stages.extract import ExtractConfig

    page = b"<html><body><p>" + b"Some words of a page. " * 20 + b"</p></body></html>"
    table = pa.table({"html": [page, b""], "charset": ["utf-8", None]})
    res = ExtractStage(ExtractConfig(extractor="resiliparse", timeout_s=0)).process(table)
    assert res.kept.num_rows == 1 and res.dropped.num_rows == 1
    assert "html" not in res.kept.column_names and "html" not in res.dropped.column_names
    assert "Some words" in res.kept["text"][0].as_py()
    with pytest.raises(ConfigError, match=r"stages.1 \(resiliparse\): reads \['html'\]"):
        load_config(None, ["stages=[extract, resiliparse, signatures]"])
