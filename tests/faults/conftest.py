"""Fixtures of the fault-injection tests; the helpers live in faultkit.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultkit import cut_warc, small_cfg, tree_digest  # noqa: E402


@pytest.fixture(scope="session")
def small_inputs(tmp_path_factory) -> list[str]:
    """Two small real WARCs (first 120 records of each sample file, ~40 HTML docs each)."""
    from pipeline.sample import sample_paths

    d = tmp_path_factory.mktemp("small_inputs")
    return [str(cut_warc(p, d / Path(p).name, 120)) for p in sample_paths()]


@pytest.fixture(scope="session")
def small_ref(ray_session, small_inputs, tmp_path_factory) -> dict:
    """Undisturbed reference run over `small_inputs` (in-process, session Ray)."""
    from pipeline.run import run_pipeline

    out = tmp_path_factory.mktemp("small_ref")
    result = run_pipeline(small_cfg(small_inputs, out))
    assert result.status == "succeeded"
    return {"out": out, "result": result, "digest": tree_digest(out)}
