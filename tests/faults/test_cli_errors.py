"""Config and CLI errors: exit status 2, a message naming the problem, no traceback.

Every case runs `python -m pipeline` in its own process (the user's view); the processes run
concurrently because each one only parses and validates (no Ray start).
"""

from __future__ import annotations

import os
import subprocess

import pytest
from faultkit import PY, REPO, assert_clean_usage_error


def _cases(tmp) -> list[tuple[str, list[str], list[str]]]:
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("read: {chunk_records: [1, 2\n")
    unknown = tmp / "unknown.yaml"
    unknown.write_text("read:\n  no_such_field: 3\n")
    wrong_type = tmp / "wrong.yaml"
    wrong_type.write_text("langid:\n  threshold: very-high\n")
    not_map = tmp / "list.yaml"
    not_map.write_text("- a\n- b\n")
    out = str(tmp / "out")
    run = ["run", "--output", out, "--quiet"]
    return [
        ("unknown --set key", run + ["--set", "read.no_such_key=1"], ["read.no_such_key"]),
        ("unknown section", run + ["--set", "nosection.x=1"], ["nosection", "unknown key"]),
        ("wrong type", run + ["--set", "read.chunk_records=many"], ["read.chunk_records"]),
        ("out of range", run + ["--set", "read.chunk_records=0"], ["read.chunk_records"]),
        ("set on a scalar", run + ["--set", "read.chunk_records.x=1"], ["chunk_records"]),
        ("bad YAML", run + ["--config", str(bad_yaml)], ["bad.yaml", "YAML"]),
        ("unknown key in file", run + ["--config", str(unknown)], ["read.no_such_field"]),
        ("wrong type in file", run + ["--config", str(wrong_type)], ["langid.threshold"]),
        ("top level not a mapping", run + ["--config", str(not_map)], ["list.yaml"]),
        ("missing config file", run + ["--config", str(tmp / "nope.yaml")], ["nope.yaml"]),
        ("missing input path", ["run", str(tmp / "no.warc.gz"), "--output", out], ["no.warc.gz"]),
        (
            "glob matching nothing",
            ["run", str(tmp / "*.warc.gz"), "--output", out],
            ["glob matched nothing"],
        ),
        (
            "empty input directory",
            ["run", str(tmp / "emptydir"), "--output", out],
            ["directory holds no WARC files"],
        ),
        ("unknown subcommand", ["frobnicate"], ["frobnicate"]),
        ("unknown profile", run + ["--profile", "turbo"], ["turbo"]),
        (
            "--set without =",
            run + ["--set", "read.chunk_records"],
            ["read.chunk_records", "key=value"],
        ),
        ("--set with empty key", run + ["--set", "=3"], ["empty key"]),
        ("negative workers", run + ["--workers", "-1"], ["num_workers"]),
        ("non-integer workers", run + ["--workers", "two"], ["--workers"]),
        ("missing --output", ["run"], ["--output"]),
        ("config: unknown key", ["config", "--set", "dedup.nope=1"], ["dedup.nope"]),
        ("config: unknown profile", ["config", "--profile", "x"], ["x"]),
    ]


def _run_cli_cases(cases: list[tuple[str, list[str], list[str]]]) -> list[tuple]:
    """Run each case's `python -m pipeline ARGS`, a few at a time (the machine has 2 cores)."""
    env = {k: v for k, v in os.environ.items() if k != "CCPIPE_KILL_AT"}
    env["PYTHONPATH"] = str(REPO)
    procs = []
    for i in range(0, len(cases), 6):
        batch = [
            (
                name,
                subprocess.Popen(
                    [PY, "-m", "pipeline", *args],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
                needles,
            )
            for name, args, needles in cases[i : i + 6]
        ]
        for name, p, needles in batch:
            stdout, stderr = p.communicate(timeout=300)
            procs.append(
                (name, subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr), needles)
            )
    return procs


def _failures(procs: list[tuple]) -> list[str]:
    failures = []
    for name, proc, needles in procs:
        try:
            assert_clean_usage_error(proc, *needles)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    return failures


def test_every_bad_config_or_argument_exits_2_naming_the_problem(tmp_path):
    (tmp_path / "emptydir").mkdir()
    failures = _failures(_run_cli_cases(_cases(tmp_path)))
    assert not failures, "\n\n".join(failures)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def _stage_setting_cases(tmp) -> list[tuple[str, list[str], list[str]]]:
    """Settings only a stage can judge (a vocabulary, a model's labels, a signal name): each
    is refused before the run touches its output, not by a traceback in phase 1 or 3."""
    return [
        (name, ["run", "--output", str(tmp / f"out-{i}"), "--quiet", "--set", setting], needles)
        for i, (name, setting, needles) in enumerate(
            [
                (
                    "tokenizer path missing",
                    f"tokenize.tokenizer_path={tmp}/no-tokenizer",
                    ["tokenize.tokenizer_path", "no-tokenizer"],
                ),
                ("EOS not in vocabulary", "tokenize.eos_token=<eos>", ["eos_token", "<eos>"]),
                ("unknown PII entity", "pii.entities=[EMAIL]", ["pii.entities", "EMAIL"]),
                ("unknown phone region", "pii.phone_regions=[XX]", ["pii.phone_regions", "XX"]),
                (
                    "typo in a per-language override",
                    "quality.per_language={en: {gopher_quality: {min_wordz: 1}}}",
                    ["quality", "per_language.en.gopher_quality.min_wordz", "unknown key"],
                ),
                (
                    "unknown bucket signal",
                    "quality.bucket.soft_min={q_word_cout: 200}",
                    ["quality.bucket", "q_word_cout"],
                ),
                (
                    "language name instead of code",
                    "langid.languages=[en, english]",
                    ["langid.languages", "english"],
                ),
            ]
        )
    ]


def test_stage_settings_are_checked_before_the_run_starts(tmp_path):
    cases = _stage_setting_cases(tmp_path)
    failures = _failures(_run_cli_cases(cases))
    assert not failures, "\n\n".join(failures)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out-"))
    assert not left, f"a refused config left output behind: {left}"


@pytest.mark.parametrize("args", [[], ["quality"], ["tokenizer"]])
def test_bare_commands_print_usage_not_traceback(args):
    env = {k: v for k, v in os.environ.items() if k != "CCPIPE_KILL_AT"}
    p = subprocess.run(
        [PY, "-m", "pipeline", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    assert "usage" in (p.stdout + p.stderr).lower()


def test_zero_workers_is_rejected(monkeypatch, tmp_path):
    """In-process (the bug makes the subprocess run the whole pipeline for minutes)."""
    import pipeline.run
    from pipeline import cli

    seen = {}

    def fake_run(cfg, kind="run"):  # stands in for the run the CLI must not start
        seen["workers"] = cfg.execution.num_workers
        raise SystemExit(0)

    monkeypatch.setattr(pipeline.run, "run_pipeline", fake_run)
    try:
        rc = cli.main(["run", "--output", str(tmp_path / "o"), "--workers", "0"])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2, f"--workers 0 accepted (num_workers={seen.get('workers')})"
