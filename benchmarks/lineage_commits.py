"""Lineage commit latency over a long run: does a commit cost follow the unit or the history?

`python -m benchmarks.lineage_commits --commits 2000 --json PATH` runs that many sequential
simulated unit commits through the real lineage writer (`lineage.writer.commit_unit`), each
with real (tiny) text, token and audit shard files for several languages and buckets, and
writes the median commit latency of the first and the last 100 commits. The target is
`last100_median_s` within 1.5x of `first100_median_s` (a commit that rebuilt views over every
shard, or copied the whole store, grows with the history instead).

Shard files are tiny on purpose: the commit's cost must not depend on shard sizes either.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

LANGS = ("en", "de", "fr", "es")
BUCKETS = ("high", "mid", "low")
FILES_PER_UNIT = 2
CFG = "b" * 64


def _tiny_parquet() -> bytes:
    from core import storage

    t = pa.table(
        {
            "doc_id": ["d0", "d1"],
            "url": ["https://a.example/x", "https://b.example/y"],
            "source_uri": ["s", "s"],
            "source_offset": pa.array([0, 10], pa.int64()),
            "lang": ["en", "en"],
            "quality_bucket": ["high", "high"],
            "text": ["x", "y"],
            "shard_row": pa.array([0, 1], pa.int64()),
            "token_start": pa.array([0, 1], pa.int64()),
            "n_tokens": pa.array([1, 1], pa.int32()),
        }
    )
    return storage.parquet_bytes(t)


def _unit(out: Path, i: int, blob: bytes) -> dict[str, Any]:
    """Files and shard records of one simulated unit (written to disk, as a run would)."""
    from pipeline.work import Layout

    layout = Layout(str(out), CFG)
    unit_id = f"u{i:06d}"
    files = []
    for f in range(FILES_PER_UNIT):
        uri = f"/crawl/seg-{i:06d}-{f}.warc.gz"
        files.append(
            {
                "p1": {
                    "source_uri": uri,
                    "file_key": hashlib.sha256(uri.encode()).hexdigest()[:16],
                    "records_read": 30,
                    "counts": {"lang": 3, "gopher_quality.word_count": 3},
                    "errors": [],
                },
                "docs_kept": 24,
                "dedup_counts": {},
                "size_bytes": 1000,
            }
        )
    shards, pii = [], {}
    sha = hashlib.sha256(blob).hexdigest()
    for lang in LANGS:
        for bucket in BUCKETS:
            text = layout.text_part(lang, bucket, unit_id, 0)
            tok = layout.token_part(lang, bucket, unit_id, 0)
            rej = layout.rejected_part(lang, bucket, unit_id, 0)
            for p, data in (
                (text, blob),
                (tok + ".bin", b"\0\0"),
                (tok + ".idx", b"\0"),
                (rej, blob),
            ):
                os.makedirs(os.path.dirname(p), exist_ok=True)
                Path(p).write_bytes(data)
            inputs = [
                {
                    "source_uri": x["p1"]["source_uri"],
                    "n_docs": 1,
                    "first_offset": 0,
                    "last_offset": 10,
                }
                for x in files
            ]
            common = {
                "lang": lang,
                "quality_bucket": bucket,
                "crawl_id": "CC-BENCH",
                "n_docs": 2,
                "inputs": inputs,
            }
            tid = layout.relative(text)
            shards.append(
                {
                    **common,
                    "kind": "text",
                    "shard_id": tid,
                    "path": tid,
                    "n_bytes": len(blob),
                    "sha256": sha,
                    "n_tokens": 2,
                }
            )
            shards.append(
                {
                    **common,
                    "kind": "tokens",
                    "shard_id": layout.relative(tok + ".bin"),
                    "path": layout.relative(tok + ".bin"),
                    "n_bytes": 2,
                    "sha256": sha,
                    "n_tokens": 2,
                    "token_dtype": "uint16",
                    "mirrors_shard": tid,
                }
            )
            shards.append(
                {
                    **common,
                    "kind": "rejected",
                    "shard_id": layout.relative(rej),
                    "path": layout.relative(rej),
                    "n_bytes": len(blob),
                    "sha256": sha,
                }
            )
            pii[tid] = {"EMAIL_ADDRESS": 1}
    return {"unit_id": unit_id, "files": files, "shards": shards, "pii": pii}


def run(commits: int, workdir: str) -> dict[str, Any]:
    from lineage import writer
    from lineage.store import LineageStore

    out = Path(workdir) / "out"
    out.mkdir(parents=True)
    from pipeline.config import ExecutionConfig

    interval = ExecutionConfig().lineage_publish_interval_s  # what a pipeline run uses
    store = LineageStore(out / "lineage.duckdb", publish_interval_s=interval, output_root=str(out))
    writer.start_run(
        store,
        run_id="bench",
        run_key="k",
        kind="run",
        config_hash=CFG,
        config_json="{}",
        code_version="bench",
        output_dir=str(out),
        models_json="{}",
        n_inputs=commits * FILES_PER_UNIT,
    )
    blob = _tiny_parquet()
    lat = []
    for i in range(commits):
        u = _unit(out, i, blob)
        t = time.perf_counter()
        writer.commit_unit(store, run_id="bench", config_hash=CFG, code_version="bench", **u)
        lat.append(time.perf_counter() - t)
        if (i + 1) % 100 == 0:
            print(f"{i + 1} commits, last {lat[-1] * 1000:.1f} ms", file=sys.stderr, flush=True)
    t = time.perf_counter()
    writer.finish_run(store, "bench", "succeeded", {})
    n = min(100, len(lat))
    return {
        "commits": commits,
        "files_per_unit": FILES_PER_UNIT,
        "shards_per_commit": len(LANGS) * len(BUCKETS) * 3,
        "first100_median_s": round(statistics.median(lat[:n]), 5),
        "last100_median_s": round(statistics.median(lat[-n:]), 5),
        "max_s": round(max(lat), 5),
        "total_s": round(sum(lat), 3),
        "finish_s": round(time.perf_counter() - t, 4),
        "ratio_last_first": round(statistics.median(lat[-n:]) / statistics.median(lat[:n]), 3),
        "lineage_bytes": os.path.getsize(out / "lineage.duckdb"),
        "publish_interval_s": interval,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--workdir", help="keep the simulated output here (default: a temp dir)")
    a = ap.parse_args(argv)
    if a.workdir:
        res = run(a.commits, a.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="ccpipe-lineage-bench-") as tmp:
            res = run(a.commits, tmp)
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
