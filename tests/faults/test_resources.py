"""Resource bounds: giant records, pathological pages and huge record counts stay within the
configured per-document size/time limits and bounded memory.

Inputs are generated streaming (one gzip member per record, zlib level 1), so the test itself
never holds a giant page in memory. Processing runs in a child process
(tests/faults/phase1_child.py: Ray-free phase 1, the code a phase-1 actor runs) whose peak RSS
(ru_maxrss) must stay under 1.5 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from faultkit import REPO, repeated, write_gz_record

CHILD = Path(__file__).resolve().parent / "phase1_child.py"
RSS_LIMIT_MB = 1536
NORMAL = (
    b"<html><head><title>Ok</title></head><body><article>"
    + b"<p>The river runs past the old mill and the children walk to school every "
    b"morning while the baker opens his shop.</p>" * 20 + b"</article></body></html>"
)


def _child(path: Path, mode: str, *overrides: str) -> dict:
    p = subprocess.run(
        [sys.executable, str(CHILD), str(path), mode, *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _pathological_file(path: Path, giant_mb: int) -> None:
    with open(path, "wb") as f:
        parts, n = repeated(
            b"<p>giant page text</p>\n", giant_mb << 20, b"<html><body>", b"</body></html>"
        )
        write_gz_record(f, "response", "http://example.com/giant", parts, n, str(uuid.uuid4()))
        parts, n = repeated(
            b"<p>big but under the read limit</p>\n", 8 << 20, b"<html><body>", b"</body></html>"
        )
        write_gz_record(f, "response", "http://example.com/big", parts, n, str(uuid.uuid4()))
        parts, n = repeated(b"<div>", 100_000 * 5, b"<html><body>", b"deep</body></html>")
        write_gz_record(f, "response", "http://example.com/nested", parts, n, str(uuid.uuid4()))
        # Many small elements: seconds of extraction, far above the 0.2 s limit set below.
        parts, n = repeated(
            b"<div><span>a</span><p>slow page word</p></div>\n",
            3 << 20,
            b"<html><body>",
            b"</body></html>",
        )
        write_gz_record(f, "response", "http://example.com/slow", parts, n, str(uuid.uuid4()))
        write_gz_record(
            f, "response", "http://example.com/ok", [NORMAL], len(NORMAL), str(uuid.uuid4())
        )


@pytest.mark.parametrize(
    "giant_mb",
    [
        pytest.param(40, id="giant-40MB"),
        pytest.param(200, id="giant-200MB", marks=pytest.mark.slow),
    ],
)
def test_giant_and_pathological_pages_are_bounded(giant_mb, tmp_path):
    path = tmp_path / "patho.warc.gz"
    _pathological_file(path, giant_mb)
    r = _child(path, "phase1", "extract.timeout_s=0.2")
    c = r["counts"]
    assert r["records_read"] == 5
    assert c.get("read.too_large") == 1, c  # giant record: never materialized
    assert c.get("extract.too_large") == 2, c  # 8 MB > 5 MiB; 100k-deep nesting
    assert c.get("extract.timeout") == 1, c  # slow page stopped at 0.2 s
    assert r["records_read"] == r["docs"] + sum(c.values())
    assert r["maxrss_mb"] < RSS_LIMIT_MB, r


def _tiny_records_file(path: Path, n: int) -> None:
    kinds = ("request", "response", "metadata")
    body = b"<html><body>hi</body></html>"
    with open(path, "wb") as f:
        for i in range(n):
            k = kinds[i % 3]
            write_gz_record(
                f,
                k,
                f"http://t.example/{i}",
                [body],
                len(body),
                f"00000000-0000-4000-8000-{i:012d}",
            )


@pytest.mark.parametrize(
    "n",
    [pytest.param(100_000, id="100k"), pytest.param(1_000_000, id="1M", marks=pytest.mark.slow)],
)
def test_many_tiny_records_stream_in_bounded_memory(n, tmp_path):
    path = tmp_path / "tiny.warc.gz"
    _tiny_records_file(path, n)
    r = _child(path, "read")
    c = r["counts"]
    assert r["records_read"] == n
    assert r["docs"] == len(range(1, n, 3))
    assert c.get("read.request") == len(range(0, n, 3))
    assert c.get("read.metadata") == len(range(2, n, 3))
    assert r["chunks"] >= n // 1000  # chunk_records=1000 bounds every chunk
    assert r["maxrss_mb"] < RSS_LIMIT_MB, r
