"""Config model: validation names the field, overrides parse as YAML, the hash is stable."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError, load_config


def test_defaults_validate_and_hash_is_stable():
    a, b = load_config(), load_config()
    assert a.config_hash == b.config_hash and len(a.config_hash) == 16


def test_execution_and_inputs_do_not_change_the_hash():
    base = load_config().config_hash
    assert (
        load_config(
            None, ["execution.num_workers=7", "input.paths=[a.warc]", "output.dir=/elsewhere"]
        ).config_hash
        == base
    )
    assert load_config(None, ["langid.threshold=0.5"]).config_hash != base


def test_profile_then_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("extract:\n  timeout_s: 3\n")
    cfg = load_config(str(f), ["extract.min_text_chars=5"], profile="fast")
    assert cfg.extract.extractor == "resiliparse"
    assert cfg.extract.timeout_s == 3 and cfg.extract.min_text_chars == 5


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["nope=1"], "nope: unknown key"),
        (["langid.threshold=high"], "langid.threshold"),
        (["dedup.bands=-3"], "dedup.bands"),
        (["read.library=curl"], "read.library"),
        (["quality.gopher_quality.bogus=1"], "quality.gopher_quality.bogus: unknown key"),
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    assert field in str(e.value)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extract: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--output", "o", "--set", "nope=1"], "nope: unknown key"),
        (["run", "--output", "o", "/definitely/not/here.warc.gz"], "input not found"),
        (["run", "--output", "o", "/tmp/nothing-*-matches.warc"], "glob matched nothing"),
        (["run", "--output", "o", "--set", "noequals"], "expected key=value"),
        (["run", "--output", "o", "--profile", "turbo"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
        (["run"], "--output"),
    ],
)
def test_cli_user_errors_exit_2_with_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("run", "config", "quality", "tokenizer", "sample"):
        assert cmd in out


@pytest.mark.parametrize(
    "prog, argv",
    [
        ("pipeline", ["run", "--output", "o"]),
        ("pipeline", ["config"]),
        ("pipeline", ["dedup", "compact", "--output", "o"]),
        ("jobs.run", ["--output", "o"]),
        ("jobs.nightly", ["--output", "o", "--listing", "l"]),
    ],
)
def test_every_command_reads_config_profile_and_set_alike(prog: str, argv: list[str]) -> None:
    """The config sources are declared once (`add_config_source_options`): each command that
    assembles a run config parses them the same way."""
    import importlib

    module = importlib.import_module(prog + (".cli" if prog == "pipeline" else ""))
    ns = module.build_parser().parse_args(
        [*argv, "-c", "x.yaml", "--profile", "fast", "--set", "a=1", "--set", "b=2"]
    )
    assert (ns.config, ns.profile, ns.overrides) == ("x.yaml", "fast", ["a=1", "b=2"])
