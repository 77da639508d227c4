"""Helpers for the fault-injection tests (imported by conftest.py and the test modules): small real inputs, subprocess runs, output digests,
lineage invariants.

A CLI run in a subprocess starts its own embedded Ray (15-100 s on the shared 2-core machine),
so these tests keep inputs small: the first records of each shipped sample file (real
CommonCrawl-style per-record gzip WARCs), cut at gzip-member boundaries.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
DATA_SUFFIXES = (".parquet", ".bin", ".idx")
# Small config: several chunks per file so the chunk-level fault points are hit repeatedly.
# One input file per work unit and a tiny shard cap: kills land between and inside unit
# commits, and partitions roll over into several shards.
SMALL_SET = [
    "read.chunk_records=40",
    "output.unit_max_files=1",
    "output.shard_max_bytes=20000",
    "output.row_group_docs=8",
]


def gzip_members(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte ranges of the gzip members of a per-record-gzip WARC."""
    out, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        if not d.eof:  # truncated last member
            break
        end = len(data) - len(d.unused_data)
        out.append((pos, end))
        pos = end
    return out


def cut_warc(src: str | Path, dst: Path, n_records: int) -> Path:
    """Copy the first `n_records` gzip members (records) of a real WARC to `dst`."""
    data = Path(src).read_bytes()
    members = gzip_members(data)
    dst.write_bytes(data[: members[min(n_records, len(members)) - 1][1]])
    return dst


def run_cli(
    args: list[str],
    env_extra: dict[str, str] | None = None,
    timeout: float = 900,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess:
    """`python -m pipeline <args>` in a fresh process (own Ray); captures output."""
    env = {k: v for k, v in os.environ.items() if k not in ("CCPIPE_KILL_AT", "RAY_ADDRESS")}
    env.update({"TOKENIZERS_PARALLELISM": "false", "RAY_DEDUP_LOGS": "0", "PYTHONPATH": str(REPO)})
    env.update(env_extra or {})
    return subprocess.run(
        [PY, "-m", "pipeline", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def run_args(inputs: list[str], out: Path | str, extra: list[str] | None = None) -> list[str]:
    args = ["run", *inputs, "--output", str(out), "--quiet", "--workers", "2"]
    for s in SMALL_SET + (extra or []):
        args += ["--set", s]
    return args


def small_cfg(inputs: list[str], out: Path | str, extra: list[str] | None = None):
    """The same config `run_args` gives the CLI, for in-process runs with the session Ray."""
    import json

    from pipeline.config import load_config

    return load_config(
        None,
        [
            f"input.paths={json.dumps(inputs)}",
            f"output.dir={out}",
            "execution.progress=false",
            "execution.num_workers=2",
            *SMALL_SET,
            *(extra or []),
        ],
    )


def tree_digest(out: Path | str) -> dict[str, str]:
    """relative path -> sha256 of every data file (text/token/audit shards, dedup files)."""
    out = Path(out)
    digest = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if not p.is_file() or rel.startswith("_work/") or rel.startswith("lineage."):
            continue
        if p.name.endswith(DATA_SUFFIXES):
            digest[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return digest


def leftovers(out: Path | str) -> list[str]:
    """Temporary files an interrupted write could leave visible."""
    return sorted(
        str(p)
        for p in Path(out).rglob("*")
        if ".tmp-" in p.name or p.name.endswith(".tmp") or p.name.endswith(".partial.parquet")
    )


def check_lineage(out: Path | str) -> dict[str, int]:
    """Assert the lineage invariants of an output dir; returns a few counts.

    No orphan rows (every live shard's file exists), no duplicate commits (one committed
    input_files row per (source_uri, config_hash)), no missing shards (every data file on
    disk has a live shard row), conservation per file (records_read = kept + drops).
    """
    from lineage.store import open_reader

    out = Path(out)
    con = open_reader(out / "lineage.duckdb")
    try:
        live = con.execute(
            "SELECT shard_id, path, sha256, n_bytes FROM shards WHERE status = 'live'"
        ).fetchall()
        for sid, path, sha, n in live:
            assert not os.path.isabs(path), f"absolute path in lineage: {path}"
            path = os.path.join(out, path)
            assert os.path.exists(path), f"orphan shard row {sid}: {path} missing"
            data = Path(path).read_bytes()
            assert len(data) == n and hashlib.sha256(data).hexdigest() == sha, sid
        dup = con.execute(
            "SELECT source_uri, config_hash, count(*) FROM input_files "
            "WHERE status = 'committed' GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        assert not dup, f"duplicate commits: {dup}"
        ids = {r[0] for r in live}
        on_disk = {
            p.relative_to(out).as_posix()
            for p in out.rglob("*")
            if p.is_file()
            and p.suffix in (".parquet", ".bin")
            and not p.relative_to(out).as_posix().startswith(("_work/", "_dedup"))
        }
        missing = on_disk - ids
        assert not missing, f"data files without a live shard row: {sorted(missing)[:5]}"
        files = con.execute(
            "SELECT source_uri, records_read, docs_kept FROM input_files"
        ).fetchall()
        for uri, read, kept in files:
            rows = con.execute(
                "SELECT reason, sum(count) FROM stage_stats WHERE source_uri = ? GROUP BY 1", [uri]
            ).fetchall()
            stats = dict(rows)
            assert stats.get("kept", 0) == kept, (uri, stats, kept)
            drops = sum(v for k, v in stats.items() if k != "kept" and not k.startswith("file."))
            assert read == kept + drops, f"conservation failed for {uri}: {read} != {kept}+{drops}"
        n_sh = con.execute(
            "SELECT count(*) FROM shard_inputs si JOIN shards s USING (shard_id)"
            " WHERE s.status = 'live'"
        ).fetchone()[0]
        assert n_sh == len(live), "shard_inputs rows do not match live shards"
        return {"files": len(files), "shards": len(live)}
    finally:
        con.close()


def assert_killed(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == -signal.SIGKILL, (
        f"expected SIGKILL, got {proc.returncode}\n{proc.stderr[-3000:]}"
    )


def assert_clean_usage_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, f"rc={proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for n in needles:
        assert n.lower() in proc.stderr.lower(), f"{n!r} not in stderr: {proc.stderr[-1500:]}"


# ---- synthetic WARC records, written streaming (bounded memory whatever the size) --------
def _warc_head(rec_type: str, uri: str, length: int, rid: str) -> bytes:
    return (
        f"WARC/1.0\r\nWARC-Type: {rec_type}\r\nWARC-Target-URI: {uri}\r\n"
        f"WARC-Date: 2024-05-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\n"
        f"Content-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def write_gz_record(
    f,
    rec_type: str,
    uri: str,
    body_parts,
    body_len: int,
    rid: str,
    content_type: str = "text/html; charset=utf-8",
) -> None:
    """Append one gzip-member WARC record; `body_parts` is an iterable of bytes (streamed)."""
    http = (
        (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\n\r\n"
        ).encode()
        if rec_type == "response"
        else b""
    )
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    f.write(c.compress(_warc_head(rec_type, uri, len(http) + body_len, rid) + http))
    n = 0
    for part in body_parts:
        n += len(part)
        f.write(c.compress(part))
    assert n == body_len, (n, body_len)
    f.write(c.compress(b"\r\n\r\n"))
    f.write(c.flush())


def repeated(unit: bytes, total: int, head: bytes = b"", tail: bytes = b""):
    """(parts iterator, exact length): head + unit* + tail of about `total` bytes."""
    n = max(0, (total - len(head) - len(tail)) // len(unit))
    block = unit * max(1, (1 << 20) // len(unit))

    def parts():
        yield head
        left = n
        per = len(block) // len(unit)
        while left > 0:
            k = min(left, per)
            yield block[: k * len(unit)]
            left -= k
        yield tail

    return parts(), len(head) + n * len(unit) + len(tail)
