"""The lineage CLI's guard rails (audit 2): bounded `sql` sessions, strict deletion inputs,
dry runs that tell the truth, unknown configs and ambiguous `sql` arguments.

Runs on a real pipeline output of the shipped sample crawl written by the in-process engine
(no Ray); every deletion acts on a private copy of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lineage.sandbox import open_analyst_connection
from tests.lineage_helpers import run_lineage_cli as _cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """One run of the shipped sample crawl with the local engine (a few seconds, no Ray)."""
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    out = tmp_path_factory.mktemp("local_run") / "out"
    cfg = load_config(
        None, [f"output.dir={out}", "execution.progress=false", "execution.engine=local"]
    )
    assert run_pipeline(cfg).status == "succeeded"
    return out


@pytest.fixture
def out_copy(local_run: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the run's output (lineage paths are relative)."""
    dst = tmp_path / "out"
    shutil.copytree(local_run, dst)
    return dst


def _q(db: Path | str, sql: str, params=None) -> list[tuple]:
    con = open_analyst_connection(str(db), all_configs=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _one_line_error(rc: int, err: str) -> None:
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err


def _run_cli_rss(*argv: str, timeout: float = 120) -> tuple[int, str, str, float, float]:
    """`python -m lineage ...` in a child: (rc, stdout, stderr, wall s, the child's peak RSS
    in MB from wait4)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    outf = Path(os.environ.get("TMPDIR", "/tmp")) / f"lineage-cli-{os.getpid()}-{time.time_ns()}"
    with open(f"{outf}.out", "w+") as fo, open(f"{outf}.err", "w+") as fe:
        p = subprocess.Popen(
            [sys.executable, "-m", "lineage", *argv],
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
            env=env,
        )
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise TimeoutError(f"lineage {argv} ran past {timeout} s")
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    for ext in (".out", ".err"):
        Path(f"{outf}{ext}").unlink()
    return p.returncode, out, err, wall, ru.ru_maxrss / 1024


# ---- 1. bounded sql sessions -------------------------------------------------------------------
def test_sql_huge_cross_join_prints_first_rows_in_bounded_memory(local_run):
    db = str(local_run / "lineage.duckdb")
    sql = "SELECT a.range, b.range FROM range(3000000) a, range(3000000) b"
    rc, out, err, wall, rss = _run_cli_rss("sql", sql, "--lineage", db, "--max-rows", "50")
    assert rc == 0, err
    assert out.strip().splitlines()[-1] == "(first 50 rows of more; --max-rows N shows more)"
    assert len(out.strip().splitlines()) == 2 + 50 + 1  # header, rule, rows, note
    assert wall < 30 and rss < 1000, (wall, rss)
    rc, out, err, _, _ = _run_cli_rss("sql", sql, "--lineage", db, "--max-rows", "3", "--json")
    assert rc == 0 and len(json.loads(out)) == 3
    assert err.strip() == "lineage: first 3 rows of more; --max-rows N shows more"


def test_sql_memory_hungry_query_fails_at_the_memory_limit(local_run):
    db = str(local_run / "lineage.duckdb")
    sql = "SELECT a.range, b.range FROM range(3000000) a, range(3000000) b ORDER BY 1 DESC"
    rc, _, err, wall, rss = _run_cli_rss("sql", sql, "--lineage", db, "--memory-limit", "300MB")
    _one_line_error(rc, err)
    assert "Out of Memory" in err and "--memory-limit" in err
    assert wall < 60 and rss < 1000, (wall, rss)


def test_sql_endless_query_is_interrupted_at_the_timeout(local_run):
    db = str(local_run / "lineage.duckdb")
    sql = "SELECT count(*) FROM range(100000) a, range(100000) b, range(1000) c"
    rc, _, err, wall, _ = _run_cli_rss("sql", sql, "--lineage", db, "--timeout", "2")
    _one_line_error(rc, err)
    assert err.startswith("error: query took longer than 2 s"), err
    assert wall < 20, wall


def test_sql_default_bounds_are_set_and_locked(local_run, capsys):
    db = str(local_run / "lineage.duckdb")
    rc, out, err = _cli(
        capsys,
        "sql",
        "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t, "
        "current_setting('temp_directory') AS d",
        "--lineage",
        db,
        "--json",
        "--memory-limit",
        "1GB",
        "--threads",
        "1",
    )
    assert rc == 0, err
    row = json.loads(out)[0]
    assert row["m"].startswith("953.6 MiB") and row["t"] == 1 and row["d"] == "", row
    for undo in (
        "SET memory_limit = '100GB'",
        "SET threads = 64",
        "RESET memory_limit",
        "SET temp_directory = '/tmp'",
        "PRAGMA memory_limit = '100GB'",
        "PRAGMA threads = 64",
    ):
        rc, _, err = _cli(capsys, "sql", undo, "--lineage", db)
        _one_line_error(rc, err)
        assert "locked" in err, (undo, err)
    for bad in (
        ("--memory-limit", "lots"),
        ("--memory-limit", "1GB'; SET threads=9; --"),
        ("--timeout", "0"),
        ("--max-rows", "0"),
        ("--threads", "0"),
    ):
        rc, _, err = _cli(capsys, "sql", "SELECT 1", "--lineage", db, *bad)
        _one_line_error(rc, err)


# ---- 2. URL files ------------------------------------------------------------------------------
def _two_docs_of_one_host(db: Path) -> list[str]:
    return [
        u
        for (u,) in _q(
            db,
            "SELECT url FROM documents WHERE url_host(url) = (SELECT url_host(url) FROM documents "
            "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1) ORDER BY url LIMIT 2",
        )
    ]


def test_delete_url_file_with_bom_comments_and_crlf_deletes(out_copy, capsys):
    db = out_copy / "lineage.duckdb"
    a, b = _two_docs_of_one_host(db)
    f = out_copy.parent / "urls.txt"
    # as Notepad saves it: a BOM, CRLF; a full-line and an inline comment
    f.write_bytes(f"\ufeff{a}\r\n# the second one\r\n  {b}   # trailing comment\r\n".encode())
    rc, out, err = _cli(capsys, "delete", "--urls", str(f), "--lineage", str(db))
    assert rc == 0, err
    assert out.startswith("deleted 2 documents"), out
    assert _q(db, "SELECT count(*) FROM documents WHERE url IN (?, ?)", [a, b]) == [(0,)]
    assert "matched no stored document" not in out


@pytest.mark.parametrize(
    "line",
    ["kyleclo.com/", "www.example.com", "ftp://example.com/x", "https:///nohost", "mailto:a@b.c"],
)
def test_delete_url_file_refuses_a_line_that_is_not_an_http_url(out_copy, capsys, line):
    db = out_copy / "lineage.duckdb"
    a, _ = _two_docs_of_one_host(db)
    f = out_copy.parent / "urls.txt"
    f.write_text(f"# request\n{a}\n{line}\n")
    before = _q(db, "SELECT count(*) FROM documents")
    rc, _, err = _cli(capsys, "delete", "--urls", str(f), "--lineage", str(db))
    _one_line_error(rc, err)
    assert "line 3" in err and "absolute http(s) URL" in err, err
    # nothing changed: no deletion, no blocklist row
    assert _q(db, "SELECT count(*) FROM documents") == before
    assert _q(db, "SELECT count(*) FROM url_blocklist") == [(0,)]


def test_delete_url_file_that_is_a_directory_or_not_text(out_copy, capsys):
    db = str(out_copy / "lineage.duckdb")
    rc, _, err = _cli(capsys, "delete", "--urls", str(out_copy), "--lineage", db)
    _one_line_error(rc, err)
    assert "directory" in err, err
    f = out_copy.parent / "latin1.txt"
    f.write_bytes("https://example.com/caf\xe9\n".encode("latin-1"))
    rc, _, err = _cli(capsys, "delete", "--urls", str(f), "--lineage", db)
    _one_line_error(rc, err)
    assert "UTF-8" in err, err
    f.write_text("\ufeff# only a comment\n\n")
    rc, _, err = _cli(capsys, "delete", "--urls", str(f), "--lineage", db)
    _one_line_error(rc, err)
    assert "no URLs" in err, err


# ---- 3. --domain is a host name ------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "kyleclo.com/research",
        "https://kyleclo.com/",
        "http://example.com",
        "example.com:443",
        "user@example.com",
        "example.com?x=1",
        "example.com#top",
        "exa mple.com",
    ],
)
def test_delete_domain_refuses_a_url(out_copy, capsys, value):
    db = out_copy / "lineage.duckdb"
    before = _q(db, "SELECT count(*) FROM documents")
    rc, _, err = _cli(capsys, "delete", "--domain", value, "--lineage", str(db))
    _one_line_error(rc, err)
    assert "give a domain such as example.com, not a URL" in err, err
    assert _q(db, "SELECT count(*) FROM documents") == before
    assert _q(db, "SELECT count(*) FROM url_blocklist") == [(0,)]


def test_delete_domain_accepts_host_spellings(out_copy, capsys):
    db = out_copy / "lineage.duckdb"
    host = _q(db, "SELECT url_host(url) FROM documents GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    host = host[0][0]
    n = _q(
        db,
        "SELECT (SELECT count(*) FROM documents WHERE url_host(url) = $h) + "
        "(SELECT count(*) FROM rejections WHERE url_host(url) = $h)",
        {"h": host},
    )[0][0]
    spelled = "*." + host.replace(".", "%2e", 1).upper() + "."
    rc, out, err = _cli(capsys, "delete", "--domain", spelled, "--lineage", str(db), "--dry-run")
    assert rc == 0 and out.startswith(f"DRY RUN: would delete {n} documents"), (out, err)
    assert f"(domain:{host})" in out


# ---- 4. a dry run reports what the real run does ---------------------------------------------------
def test_dry_run_lists_the_shards_the_real_run_writes(out_copy, capsys):
    db = str(out_copy / "lineage.duckdb")
    # one document of the biggest text shard (most documents remain) and a whole audit shard
    (url,) = _q(
        db,
        "SELECT url FROM documents WHERE filename = (SELECT filename FROM documents GROUP BY 1 "
        "ORDER BY count(*) DESC LIMIT 1) ORDER BY url LIMIT 1",
    )[0]
    (rej_url,) = _q(
        db,
        "SELECT min(url) FROM rejections WHERE filename IN (SELECT filename FROM rejections "
        "GROUP BY 1 HAVING count(*) = 1)",
    )[0]
    f = out_copy.parent / "urls.txt"
    f.write_text(f"{url}\n{rej_url}\n")
    argv = ["delete", "--urls", str(f), "--lineage", db, "--json"]
    rc, out, err = _cli(capsys, *argv, "--dry-run")
    assert rc == 0, err
    dry = json.loads(out)
    rc, out, err = _cli(capsys, *argv)
    assert rc == 0, err
    real = json.loads(out)
    assert dry["shards_rewritten"] == real["shards_rewritten"]
    assert (dry["docs_deleted"], dry["docs_by_kind"]) == (2, {"text": 1, "rejected": 1})
    kept = [n for _, n in real["shards_rewritten"] if n]
    assert len(kept) == 2 and kept[0].endswith(".v2.parquet") and kept[1].endswith(".v2.bin")
    assert sum(n is None for _, n in real["shards_rewritten"]) == 1  # the emptied audit shard
    # the text form of a dry run names the new versions too
    f.write_text(_q(db, "SELECT min(url) FROM documents")[0][0] + "\n")
    rc, out, _ = _cli(capsys, "delete", "--urls", str(f), "--lineage", db, "--dry-run")
    assert rc == 0 and re.search(r"\.v[23]\.parquet", out), out
    assert "(none: no documents left)" not in out, out


# ---- 5. unknown --config ---------------------------------------------------------------------------
def test_unknown_config_prefix_is_refused_by_every_verb(local_run, capsys):
    db = str(local_run / "lineage.duckdb")
    (cfg,) = _q(db, "SELECT config_hash FROM runs")[0]
    url = _q(db, "SELECT min(url) FROM documents")[0][0]
    for argv in (
        ("sql", "SELECT count(*) AS n FROM documents"),
        ("explain", url),
        ("trace", url),
        ("sql", "--named", "runs"),
    ):
        rc, _, err = _cli(capsys, *argv, "--lineage", db, "--config", "zzz")
        _one_line_error(rc, err)
        assert err.strip() == f"error: unknown config zzz; known: {cfg}", (argv, err)
    rc, _, err = _cli(capsys, "sql", "SELECT 1", "--lineage", db, "--config", "")
    _one_line_error(rc, err)
    # a real prefix still answers for that config
    rc, out, err = _cli(
        capsys,
        "sql",
        "SELECT count(*) AS n FROM documents",
        "--lineage",
        db,
        "--json",
        "--config",
        cfg[:6],
    )
    assert rc == 0 and json.loads(out)[0]["n"] > 0, err


def test_ambiguous_config_prefix_is_refused(out_copy, capsys):
    from lineage.store import LineageStore

    db = str(out_copy / "lineage.duckdb")
    (cfg,) = _q(db, "SELECT config_hash FROM runs")[0]
    other = cfg[:4] + ("0" if cfg[4] != "0" else "1") + cfg[5:]
    store = LineageStore(db)
    with store.transaction() as c:
        c.execute(
            "INSERT INTO runs (run_id, config_hash, started_at) VALUES ('r-other', ?, now())",
            [other],
        )
    rc, _, err = _cli(capsys, "sql", "SELECT 1", "--lineage", db, "--config", cfg[:4])
    _one_line_error(rc, err)
    assert f"config {cfg[:4]} is ambiguous" in err and cfg in err and other in err, err
    rc, _, err = _cli(capsys, "sql", "SELECT 1", "--lineage", db, "--config", cfg[:5])
    assert rc == 0, err


# ---- 6. what `sql` runs --------------------------------------------------------------------------
def test_sql_refuses_a_query_and_named_together(local_run, capsys):
    db = str(local_run / "lineage.duckdb")
    rc, out, err = _cli(capsys, "sql", "SELECT 1", "--named", "runs", "--lineage", db)
    _one_line_error(rc, err)
    assert "not both" in err and out == "", err


def test_sql_refuses_several_statements(local_run, capsys):
    db = str(local_run / "lineage.duckdb")
    for sql, n in (
        ("SELECT 1; SELECT 2", 2),
        ("SELECT 1 AS a; SELECT 2; SELECT 3;", 3),
        ("SELECT 1; SET memory_limit = '100GB'", 2),
    ):
        rc, out, err = _cli(capsys, "sql", sql, "--lineage", db)
        _one_line_error(rc, err)
        assert f"one SQL statement at a time (got {n})" in err and out == "", err
    rc, out, err = _cli(capsys, "sql", "SELECT 41 + 1 AS x;", "--lineage", db, "--json")
    assert rc == 0 and json.loads(out) == [{"x": 42}], err


def test_sql_binds_question_mark_parameters_of_the_readme_examples(local_run, capsys):
    """README.md's examples use `?`: `--param name=value` binds them in the order given."""
    db = str(local_run / "lineage.duckdb")
    (run_id,) = _q(db, "SELECT run_id FROM runs")[0]
    sql = (
        "SELECT stage, reason, sum(count) AS docs FROM stage_stats\n"
        "WHERE run_id = ? GROUP BY ALL ORDER BY docs DESC;"
    )
    rc, out, err = _cli(
        capsys, "sql", sql, "--param", f"run_id={run_id}", "--lineage", db, "--json"
    )
    assert rc == 0, err
    rows = json.loads(out)
    assert (
        rows
        and sum(r["docs"] for r in rows)
        == _q(db, "SELECT sum(count) FROM stage_stats WHERE run_id = ?", [run_id])[0][0]
    )
    rc, out, err = _cli(
        capsys,
        "sql",
        "SELECT ?::INT - ?::INT AS d",
        "--param",
        "a=5",
        "--param",
        "b=2",
        "--lineage",
        db,
        "--json",
    )
    assert rc == 0 and json.loads(out) == [{"d": 3}], err
    for argv, words in (
        (("SELECT ? AS x",), "1 ? parameter"),
        (("SELECT ? AS x", "--param", "a=1", "--param", "b=2"), "1 ? parameter"),
        (("SELECT $a AS x",), "$a"),
        (("SELECT $a AS x", "--param", "b=1"), "$a"),
        (("SELECT 1 AS x", "--param", "b=1"), "no parameters"),
    ):
        rc, _, err = _cli(capsys, "sql", *argv, "--lineage", db)
        _one_line_error(rc, err)
        assert words in err, (argv, err)
