"""Mixes on hostile but plausible input: numbers that are not real numbers, targets no loader
can index, and CLI paths that are directories, regular files or not DuckDB.

Every such input is a user error: one `error: ...` line on stderr, exit status 2, no
traceback, nothing written. Split out of tests/test_mixes.py (one concern per module); the
lineage store is the same real one with real .bin/.idx token shards.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from lineage.store import open_reader
from mixes.cli import main
from mixes.config import MixError, parse_mix
from mixes.plan import compute_plan, largest_remainder
from tests.mix_helpers import TOK, mix_yaml
from tests.mix_helpers import copy_lineage as _copy_lineage

EN = {"name": "en", "select": {"lang": "en"}, "weight": 1, "max_epochs": 4}


def _raw_yaml(**over) -> str:
    """Mix YAML with values the model would refuse (mix_yaml validates, so it cannot)."""
    d = yaml.safe_load(mix_yaml())
    d.update(over)
    return yaml.safe_dump(d, sort_keys=False)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---- numbers must be real, finite numbers ------------------------------------------------
@pytest.mark.parametrize(
    "text, needle",
    [
        # non-finite weights and weights whose sum overflows (was: ValueError on NaN, exit 1)
        (mix_yaml().replace("weight: 0.5", "weight: .inf"), "finite"),
        (mix_yaml().replace("weight: 0.5", "weight: .nan"), "weight"),
        (
            mix_yaml()
            .replace("weight: 0.5", "weight: 1.0e+308")
            .replace("weight: 0.3", "weight: 1.0e+308"),
            "sum",
        ),
        (mix_yaml().replace("max_epochs: 4.0", "max_epochs: .inf", 1), "finite"),
        # lax-mode coercions: a bool or a string is not a weight (was: accepted as 1.0 / 0.5)
        (mix_yaml().replace("weight: 0.5", "weight: true"), "not a boolean"),
        (mix_yaml().replace("weight: 0.5", "weight: '0.5'"), "not a string"),
        (mix_yaml().replace("max_epochs: 4.0", "max_epochs: true", 1), "not a boolean"),
        (mix_yaml().replace("max_epochs: 4.0", "max_epochs: '4'", 1), "not a string"),
        (_raw_yaml(target_tokens=True), "not a boolean"),
        (_raw_yaml(target_tokens="12000"), "not a string"),
        (_raw_yaml(seq_length=True), "not a boolean"),
        (_raw_yaml(seed="3"), "not a string"),
        # what lineage (BIGINT/INTEGER) and the loader (int64) can hold
        (_raw_yaml(target_tokens=10**23), "target_tokens"),
        (_raw_yaml(seq_length=2**31), "seq_length"),
        (_raw_yaml(seed=2**63), "seed"),
    ],
)
def test_numbers_must_be_real_finite_and_representable(text, needle):
    with pytest.raises(MixError, match=re.escape(needle)):
        parse_mix(text)


def test_integral_floats_and_ints_still_accepted():
    cfg = parse_mix(_raw_yaml(target_tokens=12000.0))
    assert cfg.target_tokens == 12000 and isinstance(cfg.target_tokens, int)
    assert parse_mix(mix_yaml().replace("weight: 0.5", "weight: 2")).sources[0].weight == 2.0


def test_huge_finite_weights_plan_without_overflow(synth_shards):
    """Weights near the largest float: their sum is finite, but total * weight is not."""
    srcs = [
        {"name": "en", "select": {"lang": "en"}, "weight": 1.0e308, "max_epochs": 100},
        {"name": "de", "select": {"lang": "de"}, "weight": 1.0e307, "max_epochs": 100},
    ]
    plan = compute_plan(parse_mix(mix_yaml(sources=srcs, seq_length=16)), synth_shards, TOK)
    assert not plan.problems, plan.problems
    assert sum(sp.n_samples for sp in plan.sources) == plan.n_samples
    assert largest_remainder(10, [1.0e308, 1.0e308 / 3]) in ([8, 2], [7, 3])


def test_cli_refuses_non_finite_weight_with_exit_2(tmp_path, synth, capsys):
    mix = tmp_path / "inf.yaml"
    mix.write_text(mix_yaml().replace("weight: 0.5", "weight: .inf"))
    lin = _copy_lineage(synth, tmp_path / "lin")
    assert main(["plan", str(mix), "--lineage", str(lin)]) == 2
    err = capsys.readouterr().err
    assert "finite" in err and "Traceback" not in err


# ---- a target no loader can index is a build-time error ---------------------------------
@pytest.mark.parametrize("cmd", ["plan", "build"])
def test_target_beyond_the_sample_limit_is_refused_at_build_time(tmp_path, synth, capsys, cmd):
    """9e18 tokens with max_epochs 1e300 passed every check and built a manifest whose
    loader index needs 12 bytes per sample: 7e16 samples = 844 PB ("Unable to allocate")."""
    big = dict(EN, max_epochs=1.0e300)
    mix = tmp_path / "big.yaml"
    mix.write_text(mix_yaml(sources=[big], target_tokens=9 * 10**18, seq_length=128))
    lin = _copy_lineage(synth, tmp_path / "lin")
    out = tmp_path / "out"
    args = [cmd, str(mix), "--lineage", str(lin)] + (["--out", str(out)] if cmd == "build" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "70,312,500,000,000,000 samples" in err and "--max-samples" in err
    assert not out.exists()


def test_max_samples_option_bounds_the_mix(tmp_path, synth, capsys):
    mix = tmp_path / "mix.yaml"
    mix.write_text(mix_yaml())  # 12000 // 64 = 187 samples
    lin = _copy_lineage(synth, tmp_path / "lin")
    out = tmp_path / "out"
    base = ["build", str(mix), "--lineage", str(lin), "--out", str(out), "--no-record"]
    assert main([*base, "--max-samples", "186"]) == 2
    assert "187 samples" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--max-samples", "187"]) == 0
    assert json.loads((out / "manifest.json").read_text())["n_samples"] == 187
    assert main(["plan", str(mix), "--lineage", str(lin), "--max-samples", "0"]) == 2
    _one_error_line(capsys.readouterr().err)


# ---- every path argument: one line, exit 2, nothing written --------------------------------
def _not_duckdb(p: Path) -> None:
    p.write_bytes(b"")


def _junk(p: Path) -> None:
    p.write_bytes(b"not a database\n" * 100)


def _other_duckdb(p: Path) -> None:
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()


@pytest.mark.parametrize("cmd", ["plan", "build"])
@pytest.mark.parametrize(
    "case, needle",
    [
        ("lineage_dir", "not a lineage database: {lin}"),
        ("lineage_empty_file", "not a lineage database: {lin}"),
        ("lineage_junk_file", "not a lineage database: {lin}"),
        ("lineage_other_duckdb", "not a lineage database: {lin}"),
        ("lineage_under_file", "lineage database not found: {lin}"),
        ("mix_dir", "is a directory"),
        ("mix_not_utf8", "not UTF-8"),
        ("output_root_file", "--output-root"),
    ],
)
def test_bad_paths_are_one_line_exit_2(tmp_path, synth, capsys, cmd, case, needle):
    mix = tmp_path / "mix.yaml"
    mix.write_text(mix_yaml())
    lin = _copy_lineage(synth, tmp_path / "lin")
    afile = tmp_path / "afile"
    afile.write_text("")
    extra: list[str] = []
    if case == "lineage_dir":
        lin = tmp_path
    elif case in ("lineage_empty_file", "lineage_junk_file", "lineage_other_duckdb"):
        lin = tmp_path / "bad.duckdb"
        {"lineage_empty_file": _not_duckdb, "lineage_junk_file": _junk}.get(case, _other_duckdb)(
            lin
        )
    elif case == "lineage_under_file":
        lin = afile / "lineage.duckdb"
    elif case == "mix_dir":
        mix = tmp_path / "mixdir"
        mix.mkdir()
    elif case == "mix_not_utf8":
        mix.write_bytes(b"name: \xff\xfe\n")
    elif case == "output_root_file":
        extra = ["--output-root", str(afile)]
    out = tmp_path / "out"
    args = [cmd, str(mix), "--lineage", str(lin), *extra]
    if cmd == "build":
        args += ["--out", str(out)]
    assert main(args) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert needle.format(lin=lin) in line
    assert "--no-record" not in line
    assert not out.exists()


def _rows(lin: Path) -> int:
    con = open_reader(lin)
    try:
        return con.execute("SELECT count(*) FROM mixes").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("case", ["under_file", "is_file", "manifest_is_dir", "blend_is_dir"])
def test_bad_out_is_one_line_exit_2_and_nothing_written(tmp_path, synth, capsys, case):
    mix = tmp_path / "mix.yaml"
    mix.write_text(mix_yaml())
    lin = _copy_lineage(synth, tmp_path / "lin")
    afile = tmp_path / "afile"
    afile.write_text("")
    out = tmp_path / "out"
    if case == "under_file":  # was: NotADirectoryError traceback
        out = afile / "x"
    elif case == "is_file":
        out = afile
    else:
        name = "manifest.json" if case == "manifest_is_dir" else "megatron_blend.txt"
        (out / name).mkdir(parents=True)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["build", str(mix), "--lineage", str(lin), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--out" in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert _rows(lin) == 0
