"""docs/adding-a-filter.md works as written: its module + registry line, its config, real data."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "adding-a-filter.md").read_text()
BLOCKS = re.findall(r"```(python|yaml)\n(.*?)```", DOC, re.S)


def _block(lang: str, index: int) -> str:
    return [b for kind, b in BLOCKS if kind == lang][index]


def test_doc_module_and_registry_line_are_the_repository_ones():
    assert _block("python", 0) == (ROOT / "stages" / "digit_ratio.py").read_text()
    line = _block("python", 1).strip()
    registry = (ROOT / "stages" / "registry.py").read_text()
    assert line in registry
    # the recipe touches one module and one registry line: nothing else names the stage
    others = [
        p.relative_to(ROOT).as_posix()
        for pkg in ("pipeline", "stages", "core", "lineage", "jobs")
        for p in (ROOT / pkg).rglob("*.py")
        if "digit_ratio" in p.read_text()
    ]
    assert sorted(others) == ["stages/digit_ratio.py", "stages/registry.py"]


@pytest.fixture
def doc_config(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(_block("yaml", 0))
    return load_config(str(path))


def test_doc_config_loads_and_validates(doc_config):
    assert [s.name for s in doc_config.stages] == [
        "extract",
        "lang",
        "quality",
        "digit_ratio",
        "signatures",
    ]
    assert doc_config.stages[3].params == {"max_digit_ratio": 0.03}
    base = load_config(None)
    assert doc_config.config_hash != base.config_hash  # a different chain, a different output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("{name: digit_ratio, params: {max_digit_ratio: 2}}", "stages.1.params.max_digit_ratio"),
        ("{name: digit_ratio, params: {max_digits: 1}}", "stages.1.params.max_digits"),
        ("{name: digit_ratio_typo}", "stages.1.name: unknown stage 'digit_ratio_typo'"),
    ],
)
def test_bad_stage_settings_name_the_field(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [f"stages=[extract, {override}, signatures]"])


def test_chain_checks_columns():
    with pytest.raises(ConfigError, match=r"stages.0 \(digit_ratio\): reads \['text'\]"):
        load_config(None, ["stages=[digit_ratio, extract, signatures]"])


def test_filter_drops_mostly_digit_documents():
    from stages.digit_ratio import DigitRatioFilter, DigitRatioParams

    stage = DigitRatioFilter(DigitRatioParams(max_digit_ratio=0.5))
    table = pa.table({"text": ["Price list 10 20 30 40 50 60 70 80 90", "plain words here", None]})
    res = stage.process(table)
    assert res.kept.column("text").to_pylist() == ["plain words here", None]
    assert res.dropped.column("drop_reason").to_pylist() == ["digit_ratio.too_high"]
    assert res.dropped.column("drop_detail").to_pylist() == ["digit_ratio=0.667 > 0.5"]


def test_phase1_runs_the_doc_filter_on_the_sample(doc_config, tmp_path):
    """Phase 1's chunk processor (what each Ray actor runs) with the doc's config, real data."""
    from pipeline.phase1 import ChunkProcessor, read_file_chunks
    from pipeline.sample import sample_paths
    from pipeline.work import Layout

    proc = ChunkProcessor(doc_config, Layout(str(tmp_path), doc_config.config_hash), "r")
    uri = sample_paths()[0]
    summaries = [proc.process(row) for row in read_file_chunks(uri, "s0", doc_config)]
    dropped = sum(s["counts"].get("digit_ratio.too_high", 0) for s in summaries)
    assert dropped > 0
    rejected = pa.concat_tables([pq.read_table(p) for p in tmp_path.rglob("*.rejected.parquet")])
    mine = rejected.filter(pa.compute.equal(rejected.column("drop_stage"), "digit_ratio"))
    assert mine.num_rows == dropped
    assert all(r == "digit_ratio.too_high" for r in mine.column("drop_reason").to_pylist())
    assert all(d.startswith("digit_ratio=") for d in mine.column("drop_detail").to_pylist())
    kept = pa.concat_tables([pq.read_table(p) for p in tmp_path.rglob("*.kept.parquet")])
    ratios = kept.column("q_digit_ratio").to_pylist()
    assert ratios and max(ratios) <= 0.03
