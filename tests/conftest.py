"""Shared fixtures: one embedded Ray per test session, paths to shipped and shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real WARCs etc.); tests that need it skip visibly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


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
