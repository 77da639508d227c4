"""Smoke test of `python -m benchmarks.run` on a few documents of the shipped sample.

Runs the real command in-process (Ray from the session fixture, started once) with --limit,
one profile and one worker, and checks the JSON it writes: document counts agree between the
reader, the stage run and the pipeline run, every rate is a positive number, targets and the
10 TB projection are present. The helpers (input cutting, target evaluation) get their own
checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import peer, verdict
from benchmarks import run as bench
from benchmarks.inputs import limit_inputs
from pipeline.sample import sample_paths
from stages.warc_reader import ReadConfig, read_warc


def _doc_ids(path: str) -> list[str]:
    """Raw WARC-Record-IDs: doc_id hashes the source URI too, so a cut copy has other doc_ids."""
    cfg = ReadConfig(keep_record_id=True)
    return [d for c in read_warc(path, cfg) for d in c.docs.column("warc_record_id").to_pylist()]


@pytest.mark.parametrize("limit", [1, 7, 40])
def test_limit_inputs_cuts_at_a_record_boundary(tmp_path: Path, limit: int) -> None:
    src = sample_paths()[0]
    (cut,) = limit_inputs([src], limit, tmp_path)
    assert cut != src and Path(cut).stat().st_size < Path(src).stat().st_size
    assert _doc_ids(cut) == _doc_ids(src)[:limit]  # the same first N documents, nothing broken


def test_limit_inputs_spans_files(tmp_path: Path) -> None:
    a, b = sample_paths()
    n_a = len(_doc_ids(a))
    out = limit_inputs([a, b], n_a + 3, tmp_path)
    assert out[0] == a  # whole first file kept as is
    assert _doc_ids(out[1]) == _doc_ids(b)[:3]


def test_evaluate_targets_judges_each_goal() -> None:
    res = {
        "profiles": {
            "quality": {"trafilatura_alone": {"docs_per_s": 10.0, "docs_per_cpu_s": 20.0}}
        },
        "e2e": [
            {
                "profile": "quality",
                "workers": 1,
                "docs_per_s": 9.0,
                "docs_per_cpu_s": 15.0,
                "peak_rss_worker_mb": 900.0,
            },
            {
                "profile": "quality",
                "workers": 2,
                "docs_per_s": 16.0,
                "docs_per_cpu_s": 15.0,
                "peak_rss_worker_mb": 2000.0,
            },
        ],
        "peer": {"docs_per_s": 3.0, "docs_per_cpu_s": 10.0},
    }
    got = {t["target"]: t for t in verdict.evaluate_targets(res)}
    assert got["quality e2e / trafilatura alone >= 0.8"]["cpu_ratio"] == 0.75
    assert got["quality e2e / trafilatura alone >= 0.8"]["met"] is False
    assert got["quality e2e / datatrove >= 2"]["met"] is False  # cpu 1.5 < 2 (wall 3.0)
    assert got["quality: 2 workers / 1 worker >= 1.8"]["met"] is False  # 16/9 = 1.78
    steady = {"1": {"docs_per_s": 10.0}, "2": {"docs_per_s": 19.0}}
    got = {
        t["target"]: t
        for t in verdict.evaluate_targets({**res, "e2e_marginal_by_workers": {"quality": steady}})
    }
    assert got["quality: 2 workers / 1 worker >= 1.8 (steady)"]["met"] is True  # 1.9
    assert got["peak RSS per worker <= 1 GB"]["met"] is False  # 2000 MB
    assert not any(k.startswith("fast") for k in got)  # no fast run, no fast target
    res["e2e"].append({"profile": "fast", "workers": 1, "docs_per_s": 90.0, "docs_per_cpu_s": 160})
    res["e2e_startup"] = {"quality": {"exit_status": 0, "wall_s": 7.5, "cpu_s": 6, "docs": 12}}
    got = {t["target"]: t for t in verdict.evaluate_targets(res)}
    assert got["fast e2e >= 150 docs/cpu-s"]["met"] is True
    assert got["quality: start-up <= 8 s"]["met"] is True  # 7.5 s wall
    res["e2e_marginal_local"] = {"quality": {"docs_per_s": 17.0, "docs_per_cpu_s": 16.0}}
    got = {t["target"]: t for t in verdict.evaluate_targets(res)}
    assert got["quality in-process steady / trafilatura alone >= 0.8"]["cpu_ratio"] == 0.8
    assert got["quality in-process steady / trafilatura alone >= 0.8"]["met"] is True
    assert got["quality in-process steady / datatrove >= 2"]["met"] is False  # 1.6


def test_missing_peer_venv_says_how_to_create_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(peer, "PEER_VENV", tmp_path / "nope")
    out = peer.run_peer_datatrove(sample_paths()[:1], tmp_path, 10, 1.0)
    assert "setup_datatrove.sh" in out["error"]


def test_benchmark_command_writes_valid_json(ray_session, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    res = bench.main(
        [
            "--input",
            sample_paths()[0],
            "--limit",
            "6",
            "--profile",
            "fast",
            "--workers",
            "1",
            "--marginal",
            "0",
            "--dedup-docs",
            "3000",
            "--no-extraction-quality",
            "--startup",
            "3",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert "== profile fast" in printed and "== end to end" in printed and str(out) in printed
    data = json.loads(out.read_text())
    assert data["docs"] == 6 and data["limit"] == 6
    stages = data["profiles"]["fast"]["stages"]
    assert list(stages) == list(bench.STAGES)
    assert stages["read"]["docs_in"] == stages["extract"]["docs_in"] == 6
    for name, row in stages.items():
        assert row["docs_out"] <= row["docs_in"], name
        assert row["cpu_s"] >= 0 and row["wall_s"] > 0, name
        # MB/s per stage: HTML bytes of the documents each stage saw, after extraction too
        assert (row["html_bytes_in"] > 0) == (row["docs_in"] > 0), name
    (e2e,) = data["e2e"]
    assert e2e["status"] == "succeeded" and e2e["docs"] == 6 and e2e["workers"] == 1
    assert e2e["docs_per_s"] > 0 and e2e["cpu_s"] > 0
    assert e2e["docs_kept"] <= stages["tokenize"]["docs_in"]  # dedup can only remove
    assert data["dedup"]["docs"] == 3000 and data["dedup"]["wall_s_per_million"] > 0
    assert data["projection"]["fast"]["core_hours"] > 0
    assert any(t["target"].startswith("peak RSS") for t in data["targets"])
    assert res["json_path"] == str(out)
    # the per-document CPU budget: every stage, then the overhead outside the stages
    assert "== budget fast: CPU ms per document" in printed
    b = data["budget"]["fast"]
    parts = [r["part"] for r in b["rows"]]
    assert parts == [*bench.STAGES, "overhead"]
    assert all(r["cpu_ms_per_doc"] >= 0 for r in b["rows"][:-1])
    assert b["e2e_cpu_ms_per_doc"] > 0
    total = sum(r["cpu_ms_per_doc"] for r in b["rows"])
    assert abs(total - b["e2e_cpu_ms_per_doc"]) < 0.01 * b["e2e_cpu_ms_per_doc"] + 0.01
    # start-up: a fresh `python -m pipeline run` on the first 3 docs, reported apart
    st = data["e2e_startup"]["fast"]
    assert st["exit_status"] == 0 and st["docs"] == 3 and st["wall_s"] > 0
    assert st["engine"] == "local"  # a 3-doc CLI run skips Ray by default
    assert b["startup_wall_s"] == st["wall_s"] and b["startup_engine"] == "local"
    ray_st = data["e2e_startup_ray"]["fast"]
    assert ray_st["exit_status"] == 0 and ray_st["engine"] == "ray"
    # the in-process end-to-end run next to the Ray one: same documents kept
    (loc,) = data["e2e_local"]
    assert loc["engine"] == "local" and loc["docs_kept"] == e2e["docs_kept"]
    assert "start-up of the same run on a fresh embedded Ray" in printed
    assert "== profiles: extraction quality against speed and memory ==" in printed


def test_quick_mode_is_small() -> None:
    quick = bench.apply_quick(bench.build_parser().parse_args(["--quick"]))
    assert (quick.limit, quick.workers, quick.marginal, quick.no_baseline) == (40, "1", 0, True)
    assert quick.side_by_side is False
    assert quick.dedup_docs == 3000 and quick.startup == 12
    full = bench.apply_quick(bench.build_parser().parse_args([]))
    assert full.limit is None and full.workers == "1,2" and full.dedup_docs == 1_000_000


def test_run_together_charges_each_process_its_own_cpu_with_reaped_children() -> None:
    """Two processes started at once: a CPU burner whose child also burns (and is reaped),
    and a sleeper. Each gets its own CPU; both run at the same time."""
    import sys

    from benchmarks.side_by_side import Contender, run_together

    burn = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.4: pass\n"
    burner = (
        "import subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}])\n" + burn + "print(7)"
    )
    sleeper = "import time; time.sleep(1.0); print(3)"
    rows = run_together(
        [
            Contender("burner", [sys.executable, "-c", burner], lambda out: int(out)),
            Contender("sleeper", [sys.executable, "-c", sleeper], lambda out: int(out)),
        ]
    )
    burner_row, sleeper_row = rows
    assert (burner_row["docs"], sleeper_row["docs"]) == (7, 3)
    assert burner_row["cpu_s"] >= 0.75  # its own 0.4 s and its reaped child's 0.4 s
    assert sleeper_row["cpu_s"] < 0.3 and sleeper_row["wall_s"] >= 1.0
    # started together: the sleeper's wall does not include the burner's
    assert sleeper_row["wall_s"] < 1.0 + burner_row["wall_s"]


def test_run_together_reports_a_failing_contender() -> None:
    import sys

    from benchmarks.side_by_side import Contender, run_together

    (row,) = run_together([Contender("bad", [sys.executable, "-c", "raise SystemExit(3)"], int)])
    assert row["error"].startswith("exit 3") and row["docs"] is None


def test_side_by_side_with_trafilatura_on_the_sample(tmp_path: Path) -> None:
    from benchmarks.report import _side_by_side
    from benchmarks.side_by_side import side_by_side

    paths = limit_inputs(sample_paths()[:1], 30, tmp_path / "in")
    res = side_by_side(paths, tmp_path, 10, 100, 10.0, peer=False, repeats=1)
    pair = res["pairs"]["trafilatura"]
    (rep,) = pair["reps"]
    full, small = rep["runs"]["full"], rep["runs"]["small"]
    assert [r["docs"] for r in full] == [30, 30] and [r["docs"] for r in small] == [10, 10]
    assert rep["ours_steady"]["docs"] == rep["peer_steady"]["docs"] == 20
    assert all(r["cpu_s"] > 0 and r["wall_s"] > 0 for r in full + small)
    assert rep["ours_steady"]["startup_cpu_s"] == small[0]["cpu_s"]
    assert "datatrove" not in res["pairs"]
    assert any("steady ccpipe" in line for line in _side_by_side(res))
    # 20 synthetic pages of ~2 ms each: the steady CPU of the bare loop can be lost in the
    # noise of its start-up; the target row then says n/a instead of a ratio
    us, them = rep["ours_steady"]["docs_per_cpu_s"], rep["peer_steady"]["docs_per_cpu_s"]
    assert pair["cpu_ratio"] == rep["cpu_ratio"] == (round(us / them, 3) if us and them else None)
    targets = {t["target"]: t for t in verdict.evaluate_targets({"side_by_side": res})}
    row = targets.get("quality side by side / trafilatura alone >= 0.8")
    if pair["cpu_ratio"] is None:
        assert row is None
    else:
        assert row["cpu_ratio"] == pair["cpu_ratio"] and row["met"] is (pair["cpu_ratio"] >= 0.8)
    # hand-made pair: the target is judged on the steady-state ratio
    from benchmarks.side_by_side import _summary

    reps = [{**rep, "cpu_ratio": r, "whole_run_cpu_ratio": 1.2} for r in (2.3, 1.9)]
    made = {"pairs": {"datatrove": {"reps": reps, **_summary(reps)}}}
    assert made["pairs"]["datatrove"]["cpu_ratio_range"] == [1.9, 2.3]
    targets = {t["target"]: t for t in verdict.evaluate_targets({"side_by_side": made})}
    assert targets["quality side by side / datatrove >= 2"]["cpu_ratio"] == 2.1
    assert targets["quality side by side / datatrove >= 2"]["met"] is True


def test_tree_sampler_counts_a_workers_child_with_the_worker(tmp_path: Path) -> None:
    """A Ray worker's own child (the extraction watchdog) is that worker's CPU and memory."""
    import subprocess
    import sys

    from benchmarks.process_tree import TreeSampler

    child = (
        "import time\n"
        "b = bytearray(80 << 20)\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.5: pass\n"
    )
    worker = tmp_path / "default_worker.py"  # how the sampler recognises a Ray worker
    worker.write_text(
        f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child!r}])\n"
    )
    # sample only the tree under a parent of our own (the test session's Ray is elsewhere)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; time.sleep(0.3); "
            f"subprocess.run([sys.executable, {str(worker)!r}], check=True)",
        ]
    )
    with TreeSampler(root=parent.pid, interval=0.05) as tree:
        assert parent.wait(60) == 0
    assert tree.cpu(workers=True) >= 0.4  # the child's busy loop
    assert tree.cpu(workers=False) < 0.3
    ((_name, peak),) = tree.worker_peaks()
    assert peak >= 80 << 20  # the child's memory counted with its worker
