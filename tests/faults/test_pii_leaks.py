"""PII outside the text column (issue 19): audit truncation, error texts, ids, URLs, `_work`."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import load_config
from pipeline.phase1 import to_rejected
from pipeline.phase3 import FileFinisher
from pipeline.work import Layout

EMAIL = "jane.roe.planted@protonmail.com"


def _rejected_table(text: str) -> pa.Table:
    return pa.table({
        "doc_id": ["d1"], "url": ["http://shop.org/a"], "warc_date": pa.array([None], pa.timestamp("s", tz="UTC")),
        "crawl_id": ["c"], "source_uri": ["/x.warc.gz"], "source_offset": [0], "source_length": [10],
        "content_type": ["text/html"], "lang": ["en"], "lang_score": pa.array([0.9], pa.float32()),
        "quality_bucket": ["all"], "text": [text], "drop_reason": ["gopher_quality.x"],
        "drop_detail": ["x"],
    })


def test_audit_text_is_scrubbed_before_truncation(tmp_path):
    """An e-mail straddling the audit cut (2,000 chars) used to leave its first half behind."""
    cfg = load_config(None, [f"output.dir={tmp_path}", "execution.progress=false"])
    text = "x " * 994 + "mail " + EMAIL + " now " + "more words " * 50
    assert text.index(EMAIL) < cfg.output.rejected_text_chars < text.index(EMAIL) + len(EMAIL)
    rej = to_rejected(_rejected_table(text), "quality", cfg.output.rejected_text_chars)
    fin = FileFinisher(cfg, Layout(str(tmp_path), cfg.config_hash), "rk")
    records = fin._write_rejected(rej, "fk", "/x.warc.gz")
    out = pq.read_table(records[0]["path"]).column("text")[0].as_py()
    assert len(out) <= cfg.output.rejected_text_chars
    assert "jane" not in out, out[-60:]
