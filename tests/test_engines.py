"""The in-process engine (execution.engine: local) and the Ray engine write the same bytes,
and `auto` picks the in-process one only for small runs with no cluster in sight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import storage
from pipeline.config import load_config
from pipeline.inputs import InputFile
from pipeline.local_engine import choose_engine, engine_for
from pipeline.sample import sample_paths
from tests.test_config_effects import _output_bytes


@pytest.mark.ray
def test_local_engine_writes_the_ray_runs_bytes(sample_run, tmp_path):
    from pipeline.run import run_pipeline

    cfg = load_config(
        None,
        [f"output.dir={tmp_path / 'out'}", "execution.progress=false", "execution.engine=local"],
    )
    res = run_pipeline(cfg)
    assert res.status == "succeeded" and res.engine == "local"
    ray_bytes = _output_bytes(Path(sample_run.output))
    local_bytes = _output_bytes(tmp_path / "out")
    assert any(k.startswith("data/") for k in ray_bytes)
    assert local_bytes == ray_bytes
    assert (res.counts, res.docs_kept, res.tokens) == (
        sample_run.counts,
        sample_run.docs_kept,
        sample_run.tokens,
    )


def _files(n: int = 2) -> list[InputFile]:
    return [InputFile(p, f"k{i}") for i, p in enumerate(sample_paths()[:n])]


def _sized(n: int = 2) -> tuple[int, int]:
    """(total bytes, file count) of the first `n` sample files, as `process_inputs` passes."""
    return sum(storage.file_sizes([f.uri for f in _files(n)])), n


def _cfg(*sets: str):
    return load_config(None, ["output.dir=/tmp/unused", *sets])


def test_auto_runs_a_small_input_in_process(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert engine_for(_cfg(), *_sized(), ray_connected=False) == "local"
    # one worker asked for: in-process whatever the size (Ray would only add its own cost)
    big = _cfg("execution.num_workers=1", "execution.local_max_bytes=1000")
    assert engine_for(big, *_sized(), ray_connected=False) == "local"
    # a Ray this process is already connected to (a notebook, the test session) is used
    assert engine_for(_cfg(), *_sized(), ray_connected=True) == "ray"


@pytest.mark.parametrize(
    "sets,env",
    [
        (["execution.num_workers=2"], {}),  # more than one worker asked for
        (['execution.ray_address="127.0.0.1:6379"'], {}),  # a cluster named
        ([], {"RAY_ADDRESS": "127.0.0.1:6379"}),  # inside `ray job submit`
        (["execution.local_max_bytes=1000"], {}),  # bigger than the in-process limit
        (["execution.engine=ray"], {}),
    ],
)
def test_auto_uses_ray_otherwise(sets, env, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert engine_for(_cfg(*sets), *_sized(), ray_connected=False) == "ray"


def test_explicit_local_wins(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    cfg = _cfg("execution.engine=local", "execution.local_max_bytes=0")
    assert choose_engine(cfg, *_sized()) == "local"


def test_cli_reports_the_engine(tmp_path):
    """A small CLI run says which engine ran; --json carries it for scripts."""
    import sys

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "tests" / "faults"))
    from faultkit import cut_warc, run_cli

    warc = cut_warc(sample_paths()[0], tmp_path / "small.warc.gz", 30)
    r = run_cli(["run", str(warc), "--output", str(tmp_path / "out"), "--json", "--quiet"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["engine"] == "local"
    assert "starting Ray" not in r.stderr
