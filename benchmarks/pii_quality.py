"""PII scrubbing quality and cost.

Prints: precision/recall per entity on the Faker labeled set (tests/pii_labeled.py), the
false-positive rate per look-alike class, precision/recall on presidio-research's synthetic set
(when $CCPIPE_SHARED_DATA holds them), and docs/s of `PiiScrubber` on real extracted pages
(trafilatura-eval.warc.gz extracted once with resiliparse into a cache) with the prefilter and
windowing off/on.

    python -m benchmarks.pii_quality [--n-per-entity 100] [--pages 989] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.pii import PiiConfig, PiiScrubber  # noqa: E402
from stages.pii_engine import _cache_root, _phone_spans  # noqa: E402
from tests.pii_labeled import (  # noqa: E402
    PRESIDIO_SYNTH,
    SHARED,
    Sample,
    build_labeled_set,
    build_lookalikes,
    score,
)

WARC = SHARED / "extraction" / "trafilatura-eval.warc.gz"


def extracted_pages(limit: int | None = None) -> pa.Table:
    """Main text of the trafilatura-eval pages, extracted once (resiliparse) and cached."""
    cache = _cache_root() / "pii-bench-trafilatura-eval-resiliparse.parquet"
    if not cache.exists():
        from fastwarc.warc import ArchiveIterator, WarcRecordType
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.encoding import bytes_to_str, detect_encoding

        texts, urls = [], []
        with open(WARC, "rb") as f:
            for rec in ArchiveIterator(f, record_types=WarcRecordType.response):
                body = rec.reader.read()
                html = bytes_to_str(body, detect_encoding(body))
                texts.append(extract_plain_text(html, main_content=True))
                urls.append(rec.headers.get("WARC-Target-URI"))
        cache.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"url": urls, "text": texts}), cache)
    t = pq.read_table(cache)
    return t.slice(0, limit) if limit else t


def presidio_synth_samples(entities: set[str]) -> list[Sample]:
    """presidio-research synthetic sentences, restricted to the entities we cover."""
    data = json.loads(PRESIDIO_SYNTH.read_text(encoding="utf-8"))
    out = []
    for d in data:
        spans = [
            (
                s["start_position"],
                s["end_position"],
                s["entity_type"],
                "v6" if ":" in s["entity_value"] else "v4",
            )
            for s in d["spans"]
            if s["entity_type"] in entities
        ]
        out.append(Sample(d["full_text"], spans, "pii"))
    return out


def _fmt(x: float) -> str:
    return "  n/a" if math.isnan(x) else f"{x:5.3f}"


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}\n{'entity':<22}{'tp':>5}{'fp':>5}{'fn':>5}  prec  recall")
    for k, v in table.items():
        print(
            f"{k:<22}{v['tp']:>5}{v['fp']:>5}{v['fn']:>5}  {_fmt(v['precision'])} {_fmt(v['recall'])}"
        )


def quality(scrubber: PiiScrubber, n_per_entity: int) -> None:
    """Labeled-set and look-alike numbers, then presidio-research synthetic set."""
    samples = build_labeled_set(n_per_entity) + build_lookalikes(max(20, n_per_entity // 2))
    t0 = time.perf_counter()
    preds = [scrubber.find(s.text) for s in samples]
    dt = time.perf_counter() - t0
    table, fpr = score(samples, preds)
    print_table(f"Faker labeled set ({len(samples)} docs, {len(samples) / dt:.0f} docs/s)", table)
    print("\nlook-alike class      FP rate (docs with any detection)")
    for k, v in fpr.items():
        print(f"{k:<22}{v:6.3f}")
    if PRESIDIO_SYNTH.exists():
        ents = set(scrubber.entities)
        syn = presidio_synth_samples(ents)
        preds = [scrubber.find(s.text) for s in syn]
        table, _ = score(syn, preds)
        print_table(f"presidio-research synth_dataset_v2 ({len(syn)} docs)", table)
    else:
        print(f"\n(skipped presidio-research set: {PRESIDIO_SYNTH} absent)")


def speed(n_pages: int | None) -> None:
    """docs/s of the stage on real pages, prefilter/windows off and on."""
    if not WARC.exists():
        print(f"\n(skipped speed: {WARC} absent)")
        return
    pages = extracted_pages(n_pages)
    chars = sum(len(t or "") for t in pages.column("text").to_pylist())
    print(
        f"\nstage speed on {pages.num_rows} real pages ({chars / pages.num_rows:.0f} chars avg), 1 core"
    )
    for label, kw in [
        ("prefilter off, whole docs", {"prefilter": False, "window_chars": 0}),
        ("prefilter on,  whole docs", {"prefilter": True, "window_chars": 0}),
        ("prefilter on,  windows (default)", {}),
    ]:
        s = PiiScrubber(PiiConfig(**kw))
        _phone_spans.cache_clear()  # no help from the previous configuration's cache
        t0, c0 = time.perf_counter(), time.process_time()
        out = s(pages)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        cand = s.candidate_mask(pages.column("text").combine_chunks()).true_count
        tot = sum(out.column("pii_total").to_pylist())
        print(
            f"  {label:<34} {pages.num_rows / cpu:6.0f} docs/s/core (CPU) {pages.num_rows / dt:6.0f}"
            f" docs/s wall   candidates {cand}/{pages.num_rows}   entities {tot}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-per-entity", type=int, default=100)
    ap.add_argument("--pages", type=int, default=None, help="limit real pages for the speed run")
    ap.add_argument("--skip-speed", action="store_true")
    a = ap.parse_args()
    quality(PiiScrubber(PiiConfig()), a.n_per_entity)
    if not a.skip_speed:
        speed(a.pages)


if __name__ == "__main__":
    main()
