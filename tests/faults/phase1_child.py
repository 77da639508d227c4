"""Child process for the resource tests: Ray-free phase 1 (or the reader only) over one WARC,
printing counts, wall time and this process's peak RSS as JSON on the last stdout line."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from collections import Counter


def main() -> None:
    path, mode, *overrides = sys.argv[1:]
    from pipeline.config import load_config
    from pipeline.phase1 import ChunkProcessor, read_file_chunks
    from pipeline.work import Layout
    from stages.warc_reader import read_warc

    cfg = load_config(None, overrides)
    t0 = time.perf_counter()
    counts: Counter[str] = Counter()
    records = kept = chunks = 0
    if mode == "read":
        for ch in read_warc(path, cfg.read):
            drops = sum(v for k, v in ch.counts.items() if not k.startswith("file."))
            assert ch.records_read == ch.docs.num_rows + drops
            counts.update(ch.counts)
            records += ch.records_read
            kept += ch.docs.num_rows
            chunks += 1
    else:
        with tempfile.TemporaryDirectory() as out:
            proc = ChunkProcessor(cfg, Layout(out, cfg.config_hash), "res")
            for row in read_file_chunks(path, "res", cfg):
                s = proc.process(row)
                counts.update(s["counts"])
                records += s["records_read"]
                kept += s["docs_kept"]
                chunks += 1
    print(
        json.dumps(
            {
                "counts": dict(counts),
                "records_read": records,
                "docs": kept,
                "chunks": chunks,
                "seconds": round(time.perf_counter() - t0, 2),
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
