"""The benchmarks' shared real-text corpus: main text of the trafilatura-eval WARC pages.

Extracted once with resiliparse (fast) and cached as Parquet in the temp dir, so component
benchmarks (MinHash, tokenizer) time their own stage, not extraction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.data import missing, real_data_dir
from core import storage

DATA = real_data_dir()
WARC = DATA / "extraction" / "trafilatura-eval.warc.gz"
CACHE = Path(tempfile.gettempdir()) / "ccpipe_bench_cache" / "trafilatura_eval_text.parquet"


def corpus_path() -> Path:
    """Parquet with a ``text`` column of extracted pages (built once, then cached)."""
    if CACHE.exists():
        return CACHE
    if not WARC.exists():
        raise FileNotFoundError(missing(WARC))
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    texts = []
    with open(WARC, "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.response):
            body = rec.reader.read()
            i = body.find(b"\r\n\r\n")
            html = body[i + 4 :] if i >= 0 else body
            txt = extract_plain_text(bytes_to_str(html, detect_encoding(html)), main_content=True)
            if txt.strip():
                texts.append(txt)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_path(CACHE) as tmp:
        pq.write_table(pa.table({"text": texts}), tmp)
    return CACHE


def load_texts(min_chars: int = 1) -> list[str]:
    texts = pq.read_table(corpus_path()).column("text").to_pylist()
    return [t for t in texts if len(t) >= min_chars]
