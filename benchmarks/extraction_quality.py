"""Snippet precision/recall and docs/s of the Extractor settings on trafilatura-eval.

Corpus: $CCPIPE_SHARED_DATA/extraction/trafilatura-eval.warc.gz (989 real pages, German-heavy)
with ``trafilatura-eval.snippets.json``: per URL, snippets a correct main-text extraction must
contain (``with``) and must not contain (``without``). Counting as trafilatura's own evaluation
does: a found ``with`` snippet is a true positive, a missing one a false negative, a found
``without`` snippet a false positive. Matching is on whitespace-collapsed text.

    python -m benchmarks.extraction_quality [--limit N] [--settings a,b]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from benchmarks.data import real_data_dir
from stages.extract import ExtractConfig, Extractor
from stages.warc_reader import ReadConfig, read_warc

DATA = real_data_dir() / "extraction"
WARC = DATA / "trafilatura-eval.warc.gz"
SNIPPETS = DATA / "trafilatura-eval.snippets.json"

SETTINGS: dict[str, dict] = {
    "trafilatura": {"extractor": "trafilatura"},  # FineWeb settings (the defaults)
    "trafilatura-fast": {"extractor": "trafilatura", "trafilatura_fast": True},  # balanced
    "trafilatura-recall": {"extractor": "trafilatura", "favor_precision": False},
    "trafilatura-notables": {"extractor": "trafilatura", "include_tables": False},
    "resiliparse": {"extractor": "resiliparse"},
    "resiliparse-full": {"extractor": "resiliparse", "resiliparse_main_content": False},
}

_WS = re.compile(r"\s+")


def _norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


@dataclass
class Score:
    setting: str
    docs: int
    seconds: float
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0
    perfect: int = 0
    dropped: int = 0

    @property
    def precision(self) -> float:
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def recall(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / max(p + r, 1e-9)

    @property
    def docs_per_s(self) -> float:
        return self.docs / max(self.seconds, 1e-9)


def load_pages(limit: int | None = None) -> pa.Table:
    """The eval pages as a reader batch (first ``limit`` pages)."""
    tables = []
    for chunk in read_warc(str(WARC), ReadConfig()):
        tables.append(chunk.docs)
    table = pa.concat_tables(tables)
    return table.slice(0, limit) if limit else table


def count_snippets(s: Score, out: pa.Table, snippets: dict) -> Score:
    """Add the snippet hits of extracted rows (``url``, ``text``, ``drop_reason``) to ``s``."""
    for url, text, reason in zip(
        out["url"].to_pylist(),
        out["text"].to_pylist(),
        out["drop_reason"].to_pylist(),
        strict=True,
    ):
        truth = snippets.get(url)
        if truth is None:
            continue
        s.dropped += reason is not None
        body = _norm(text or "")
        ok = True
        for snip in truth.get("with", []):
            if _norm(snip) in body:
                s.tp += 1
            else:
                s.fn += 1
                ok = False
        for snip in truth.get("without", []):
            if _norm(snip) in body:
                s.fp += 1
                ok = False
            else:
                s.tn += 1
        s.perfect += ok
    return s


def score(setting: str, table: pa.Table, snippets: dict, **overrides: object) -> Score:
    """Run one extractor setting over ``table`` and count snippet hits."""
    cfg = ExtractConfig(**{**SETTINGS.get(setting, {}), **overrides})
    ex = Extractor(cfg)
    t0 = time.perf_counter()
    out = ex(table)
    s = Score(setting, table.num_rows, time.perf_counter() - t0)
    return count_snippets(s, out, snippets)


def snippet_scores(
    extract: ExtractConfig, extracted: pa.Table | None, limit: int | None, eval_input: bool
) -> dict[str, Any] | None:
    """Snippet precision/recall of a profile's extraction settings on trafilatura-eval.

    ``extracted``: the benchmark's stage run already extracted these pages when the input is
    trafilatura-eval (``eval_input``); else the pages are loaded and extracted here.
    """
    if not SNIPPETS.is_file():
        return None
    snippets = json.loads(SNIPPETS.read_text())
    extractor = extract.extractor
    if not eval_input or extracted is None:
        s = score(extractor, load_pages(limit), snippets, **extract.model_dump())
    else:
        s = count_snippets(Score(extractor, extracted.num_rows, 0.0), extracted, snippets)
    return {
        "extractor": extractor,
        "settings": {k: v for k, v in extract.model_dump().items() if k != "timeout_s"},
        "pages": s.docs,
        "precision": round(s.precision, 4),
        "recall": round(s.recall, 4),
        "f1": round(s.f1, 4),
        "perfect_share": round(s.perfect / max(s.docs, 1), 4),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="first N pages only")
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated settings")
    args = ap.parse_args(argv)
    if not WARC.is_file():
        raise SystemExit(f"eval data not found: {WARC}")
    snippets = json.loads(SNIPPETS.read_text())
    table = load_pages(args.limit)
    print(
        f"{table.num_rows} pages, {sum(len(h) for h in table['html'].to_pylist()) / 1e6:.0f} MB HTML"
    )
    print(
        f"{'setting':22} {'precision':>9} {'recall':>7} {'f1':>6} {'perfect':>8} {'dropped':>8} {'docs/s':>8}"
    )
    for name in args.settings.split(","):
        s = score(name, table, snippets)
        print(
            f"{name:22} {s.precision:9.3f} {s.recall:7.3f} {s.f1:6.3f} "
            f"{s.perfect / max(s.docs, 1):8.3f} {s.dropped:8d} {s.docs_per_s:8.1f}"
        )


if __name__ == "__main__":
    main()
