"""Input that is not WARC: a clear one-line error when nothing is usable, a documented
"partial" exit status (3) when some inputs are good. Generated files only."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _cli(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n")
    return path


@pytest.mark.parametrize("kind", ["pdf", "text", "gzip-html", "empty-dir", "prose-listing"])
def test_only_bad_input_exits_2_with_one_line_naming_it(kind, tmp_path):
    if kind == "pdf":
        bad = _pdf(tmp_path / "paper.pdf")
    elif kind == "text":
        bad = tmp_path / "notes.md"
        bad.write_text("# Notes\nnothing to see here\n")
    elif kind == "gzip-html":
        bad = tmp_path / "page.warc.gz"
        bad.write_bytes(gzip.compress(b"<html><body>not a WARC</body></html>"))
    elif kind == "empty-dir":
        bad = tmp_path / "crawl"
        bad.mkdir()
        _pdf(bad / "a.pdf")
    else:  # a .txt is read as a listing: prose is not a listing of WARC files
        bad = tmp_path / "readme.txt"
        bad.write_text("This is a text file.\nIt lists no WARC files at all.\n")
    r = _cli(["run", str(bad), "--output", str(tmp_path / "out")], tmp_path, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists(), "a run that never started left output behind"


def test_mixed_good_and_bad_inputs_process_the_good_and_exit_partial(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "faults"))
    from faultkit import cut_warc

    from pipeline.sample import sample_paths

    good = cut_warc(sample_paths()[0], tmp_path / "good.warc.gz", 15)
    pdf = _pdf(tmp_path / "paper.pdf")
    r = _cli(
        ["run", str(good), str(pdf), "--output", str(tmp_path / "out"), "--workers", "1"], tmp_path
    )
    assert r.returncode == 3, (r.returncode, r.stderr[-3000:])
    assert f"not WARC, skipped: {pdf}" in r.stderr
    assert "partial" in r.stderr.splitlines()[-1]
    assert "succeeded" in r.stdout.splitlines()[0]
    assert str(pdf) in r.stdout  # the summary lists the bad input too
    # progress on a non-TTY stderr: log lines per phase with counts, rate and ETA
    for phase in ("phase 1 (read, extract, filter): files 1/1", "phase 3 (dedup, PII, tokens"):
        assert phase in r.stderr, r.stderr[-3000:]
    assert "docs/s" in r.stderr and "ETA " in r.stderr
    # stdout is the summary only: no Ray banner, no log lines
    assert "Ray" not in r.stdout and " INFO " not in r.stdout
    assert not (tmp_path / "out" / "_work").exists()
    assert [d for d in (tmp_path / "out").rglob("*") if d.is_dir() and not any(d.iterdir())] == []
    from lineage.sandbox import open_analyst_connection

    # as analysts read it: the glob views resolve against the output root
    con = open_analyst_connection(tmp_path / "out" / "lineage.duckdb")
    files = con.execute("SELECT source_uri, status FROM input_files").fetchall()
    assert files == [(str(good), "committed")]
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] > 0


def test_failed_run_on_a_new_output_leaves_nothing(tmp_path):
    """A run that fails before staging anything leaves no directory that looks like output."""
    out = tmp_path / "out"
    r = _cli(
        ["run", "--output", str(out), "--set", "langid.model_path=/nonexistent/lid.bin"],
        tmp_path,
        timeout=120,
    )
    assert r.returncode == 2 and "nonexistent" in r.stderr, r.stderr
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
