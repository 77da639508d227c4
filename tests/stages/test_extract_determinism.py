"""No cross-document state in extraction: a page's text does not depend on order or batching.

trafilatura's ``deduplicate`` remembers text segments in an LRU cache; shared across pages it
drops a paragraph from a page because OTHER pages had it (FineWeb's setting, issue 20: 6 of
181 pages changed on a second pass). The Extractor gives every document a fresh cache, so
the same documents in any order and any batching give identical text.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from pipeline.sample import sample_paths
from stages.extract import ExtractConfig, Extractor
from stages.warc_reader import ReadConfig, read_warc

N_SAMPLE = 40  # of the 317 sample pages: enough variety, a few seconds per pass
SHARED = (
    "This paragraph is the same boilerplate block on every page of the site, long enough "
    "for trafilatura's duplicate check, which ignores segments of one hundred characters "
    "or fewer, and it is repeated on many pages of the crawl."
)


def _sample_docs() -> pa.Table:
    return (
        pa.concat_tables([c.docs for p in sample_paths() for c in read_warc(p, ReadConfig())])
        .select(["doc_id", "html", "charset"])
        .slice(0, N_SAMPLE)
    )


def _page(i: int, body: str) -> bytes:
    return (
        f"<html><head><title>Page {i}</title></head><body><article><h1>Article {i}</h1>"
        f"<p>Article number {i} starts with its own sentence, which is unique to this page "
        f"and long enough to count as real content for the extractor to keep.</p>{body}"
        f"<p>Article {i} ends with another sentence of its own, so that the main text of "
        f"page {i} is never just the shared block.</p></article></body></html>"
    ).encode()


def _generated_docs(n: int = 6) -> pa.Table:
    """Pages that share one long paragraph (as a site's boilerplate block would)."""
    html = [_page(i, f"<p>{SHARED}</p>") for i in range(n)]
    return pa.table(
        {
            "doc_id": [f"gen-{i}" for i in range(n)],
            "html": pa.array(html, pa.binary()),
            "charset": pa.array(["utf-8"] * n, pa.string()),
        }
    )


def _extract(ex: Extractor, table: pa.Table, order: list[int], batch: int) -> dict:
    """doc_id -> (text, drop_reason) over ``table`` taken in ``order``, ``batch`` rows a call."""
    t = table.take(pa.array(order))
    out: dict = {}
    for s in range(0, t.num_rows, batch):
        r = ex(t.slice(s, batch))
        for d, txt, why in zip(
            r["doc_id"].to_pylist(),
            r["text"].to_pylist(),
            r["drop_reason"].to_pylist(),
            strict=True,
        ):
            out[d] = (txt, why)
    return out


@pytest.mark.parametrize("timeout_s", [0.0, 10.0], ids=["in-process", "watchdog"])
def test_text_is_independent_of_order_and_batching(timeout_s: float) -> None:
    table = pa.concat_tables([_sample_docs(), _generated_docs()])
    n = table.num_rows
    cfg = ExtractConfig(extractor="trafilatura", deduplicate=True, timeout_s=timeout_s)
    ex = Extractor(cfg)
    try:
        ref = _extract(ex, table, list(range(n)), n)
        assert len(ref) == n and sum(v[1] is None for v in ref.values()) >= n // 2
        rng = random.Random(20)
        for batch in (n, 1, 7):
            order = list(range(n))
            rng.shuffle(order)
            assert _extract(ex, table, order, batch) == ref, (batch, order)
        # the same documents again on the same (warm) Extractor, in reverse
        assert _extract(ex, table, list(range(n))[::-1], 5) == ref
    finally:
        ex.close()
    # every generated page keeps the paragraph it shares with the others
    for i in range(_generated_docs().num_rows):
        text, why = ref[f"gen-{i}"]
        assert why is None and SHARED in " ".join(text.split()), i
