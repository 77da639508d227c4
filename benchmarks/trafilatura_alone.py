"""A bare ``trafilatura.extract`` loop over WARC files, as its own process.

The side-by-side section (benchmarks/side_by_side.py) runs it next to the pipeline, each on
one core at the same time. Same settings as the quality profile; pages are decoded as the
pipeline decodes them. Prints one JSON line: ``{"docs": N, ...}``.

    python -m benchmarks.trafilatura_alone WARC [WARC ...]
"""

from __future__ import annotations

import json
import sys

from benchmarks.stage_timing import read_batches, time_trafilatura_alone


def main(argv: list[str] | None = None) -> None:
    from pipeline.config import load_config

    paths = list(sys.argv[1:] if argv is None else argv)
    cfg = load_config(None, [], profile="quality")
    batches, _read, _records = read_batches(paths, cfg.read)
    print(json.dumps(time_trafilatura_alone(batches, cfg) if batches else {"docs": 0}))


if __name__ == "__main__":
    main()
