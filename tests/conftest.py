"""Shared fixtures: one embedded Ray per test session, paths to shipped and real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.real_data import shared_data_dir, skip_reason

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real WARCs etc. from $CCPIPE_SHARED_DATA; tests that need them skip visibly without."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(skip_reason())
    return path


@pytest.fixture(scope="session")
def ray_session():
    """Start Ray once for the whole session (import + init costs ~13 s)."""
    from pipeline.plan import ensure_ray

    ensure_ray(num_cpus=2)
    import ray

    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_run(ray_session, tmp_path_factory):
    """One pipeline run over the shipped sample crawl, shared by read-only tests."""
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    out = tmp_path_factory.mktemp("sample_run")
    cfg = load_config(None, [f"output.dir={out}", "execution.progress=false"])
    result = run_pipeline(cfg)
    return result


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """Mix tests: lineage with real token shards (5 partitions of the sample tokenizer, 1 of
    another), built by tests.mix_helpers.write_synth_lineage."""
    from tests.mix_helpers import write_synth_lineage

    return write_synth_lineage(tmp_path_factory.mktemp("mixlin"))


@pytest.fixture(scope="module")
def synth_shards(synth) -> list[dict]:
    """Mix tests: the token shards of `synth`, as the mix planner reads them."""
    from lineage.store import open_reader
    from mixes.inventory import read_token_shards

    con = open_reader(synth / "lineage.duckdb")
    try:
        return read_token_shards(con)
    finally:
        con.close()
