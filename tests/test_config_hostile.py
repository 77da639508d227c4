"""Hostile configs (issue 19): alias bombs and out-of-range numbers are clear config errors.

Each case runs in a child process with a memory cap and a deadline, so a regression fails the
test instead of taking the machine down.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pipeline.config import ConfigError, load_config

ALIAS_BOMB = textwrap.dedent(
    """\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    input:
      paths: *i
    """
)

_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
from pipeline.config import ConfigError, load_config
try:
    load_config(sys.argv[1], sys.argv[2:])
except ConfigError as e:
    print("CONFIG_ERROR", str(e)[:300])
    sys.exit(2)
print("ACCEPTED")
"""


def _load_in_child(path: str, overrides: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, path, *(overrides or [])],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_yaml_alias_bomb_is_a_config_error_without_expanding(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(ALIAS_BOMB)
    try:
        r = _load_in_child(str(f))
    except subprocess.TimeoutExpired:
        pytest.fail("alias bomb: config loading did not finish in 60 s")
    assert r.returncode == 2, (r.stdout, r.stderr[-2000:])
    assert "alias" in r.stdout.lower() and len(r.stdout) < 1000


def test_alias_bomb_in_an_override_is_refused():
    levels = ["&l0 [" + ",".join(["x"] * 10) + "]"]
    for i in range(1, 7):
        levels.append(f"&l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]")
    with pytest.raises(ConfigError, match="alias"):
        load_config(None, ["input.paths=[" + ", ".join(levels) + "]"])


def test_a_few_aliases_still_work(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("read:\n  chunk_records: &n 3\nextract:\n  min_text_chars: *n\n")
    assert load_config(str(f), []).extract.min_text_chars == 3


@pytest.mark.parametrize(
    "override",
    [
        "output.row_group_docs=99999999999999999999999",
        "output.row_group_docs=9223372036854775808",
        "output.rejected_text_chars=99999999999999999999",
        "read.chunk_records=1e400",
        "read.max_record_bytes=18446744073709551616",
        "extract.timeout_s=.inf",
        "extract.timeout_s=.nan",
        "dedup.bands=100000000000",
    ],
)
def test_numeric_settings_are_bounded(override):
    with pytest.raises(ConfigError):
        load_config(None, [override])


def test_huge_config_file_is_refused(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("input:\n  paths:\n" + "    - x.warc\n" * 400_000)
    with pytest.raises(ConfigError, match="too large"):
        load_config(str(f), [])
