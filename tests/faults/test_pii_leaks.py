"""PII outside the text column (issue 19): audit truncation, error texts, ids, URLs, `_work`."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import load_config
from pipeline.phase1 import scrub_rejected, to_rejected
from pipeline.phase3 import RollingWriter, UnitFinisher
from pipeline.work import Layout
from stages.pii import PiiScrubber

EMAIL = "jane.roe.planted@protonmail.com"


def _rejected_table(text: str) -> pa.Table:
    return pa.table(
        {
            "doc_id": ["d1"],
            "url": ["http://shop.org/a"],
            "warc_date": pa.array([None], pa.timestamp("s", tz="UTC")),
            "crawl_id": ["c"],
            "source_uri": ["/x.warc.gz"],
            "source_offset": [0],
            "source_length": [10],
            "content_type": ["text/html"],
            "lang": ["en"],
            "lang_score": pa.array([0.9], pa.float32()),
            "quality_bucket": ["all"],
            "text": [text],
            "drop_reason": ["gopher_quality.x"],
            "drop_detail": ["x"],
        }
    )


def test_audit_text_is_scrubbed_before_truncation(tmp_path):
    """An e-mail straddling the audit cut (2,000 chars) used to leave its first half behind."""
    cfg = load_config(None, [f"output.dir={tmp_path}", "execution.progress=false"])
    text = "x " * 994 + "mail " + EMAIL + " now " + "more words " * 50
    assert text.index(EMAIL) < cfg.output.rejected_text_chars < text.index(EMAIL) + len(EMAIL)
    rej = to_rejected(_rejected_table(text), "quality", cfg.output.rejected_text_chars)
    rej = scrub_rejected(PiiScrubber(cfg.pii), rej, cfg.output.rejected_text_chars)  # phase 1
    layout = Layout(str(tmp_path), cfg.config_hash)
    fin = UnitFinisher(cfg, layout, "rk")
    rej = fin._cut_rejected(rej)  # phase 3
    w = RollingWriter(
        layout, "rejected", "en", "all", "u0", cfg.output.shard_max_bytes, cfg.output.row_group_docs
    )
    w.add(rej)
    records = w.finish()
    out = pq.read_table(tmp_path / records[0]["path"]).column("text")[0].as_py()
    assert len(out) <= cfg.output.rejected_text_chars
    assert "jane" not in out, out[-60:]


# ---- end to end: planted PII everywhere, a killed run, its resume: no file leaks it ---------
SECRETS = ("jane.roe.planted", "janeroeplanted", "555-0143", "5550143", "planted%40")
_PAGE = (
    "<html><head><title>Contact jane.roe.planted@protonmail.com</title></head><body>"
    + "<p>The village library opened a new reading room for the children of the valley, and "
    "the volunteers who run it would like to thank everyone who donated books.</p>"
    * 12
    + "<p>Write to jane.roe.planted@protonmail.com or call +1-202-555-0143 for opening hours."
    "</p></body></html>"
)


def _record(rid: str, uri: str, http_body: bytes, content_length: str | None = None) -> bytes:
    import zlib

    http = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + http_body
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {uri}\r\n"
        f"WARC-Date: 2024-05-01T00:00:00Z\r\nWARC-Record-ID: {rid}\r\n"
        f"Content-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {content_length or len(http)}\r\n\r\n"
    ).encode()
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(head + http + b"\r\n\r\n") + c.flush()


def _planted_warc(dst, base: str) -> None:
    from faultkit import cut_warc

    cut_warc(base, dst, 60)
    page = _PAGE.encode()
    short = b"<html><body><p>jane.roe.planted@protonmail.com +1-202-555-0143</p></body></html>"
    with open(dst, "ab") as f:
        f.write(
            _record(
                "<mailto:jane.roe.planted@protonmail.com>",
                "http://planted-shop.org/contact/jane.roe.planted@protonmail.com/"
                "?phone=%2B1-202-555-0143#mail=jane.roe.planted%40protonmail.com",
                page,
            )
        )
        f.write(
            _record(
                "<urn:uuid:11111111-2222-3333-4444-555555555555>",
                "http://janeroeplanted:hunter2@planted-shop.org/call/202-555-0143.html",
                page,
            )
        )
        f.write(
            _record(
                "<urn:uuid:11111111-2222-3333-4444-666666666666>",
                "http://planted-shop.org/short?u=jane.roe.planted@protonmail.com",
                short,
            )
        )
        f.write(
            _record(
                "<urn:uuid:11111111-2222-3333-4444-777777777777>",
                "http://planted-shop.org/bad",
                page,
                content_length="jane.roe.planted@protonmail.com",
            )
        )


def _texts_of(path) -> list[str]:
    """Every string a file holds, decoded: Parquet cells, DuckDB tables, token ids, raw bytes."""
    import duckdb
    import numpy as np

    name = path.name
    if name.endswith(".parquet"):
        t = pq.read_table(path)
        return [str(t.schema)] + [str(v) for col in t.columns for v in col.to_pylist()]
    if name.endswith(".duckdb"):
        con = duckdb.connect(str(path), read_only=True)
        try:
            out = []
            for (tbl,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            ).fetchall():
                out += [str(r) for r in con.execute(f'SELECT * FROM "{tbl}"').fetchall()]
            return out
        finally:
            con.close()
    if name.endswith(".bin"):
        from tokenizers import Tokenizer

        from pipeline.config import load_config as _lc

        tok = Tokenizer.from_file(str(_lc().tokenize.resolved_tokenizer_path()))
        raw = path.read_bytes()
        idx = path.with_suffix(".idx").read_bytes()
        dtype = np.uint16 if idx[17:18] == b"\x08" else np.int32
        ids = np.frombuffer(raw, dtype=dtype).tolist()
        return [tok.decode(ids, skip_special_tokens=False)]
    return [path.read_bytes().decode("utf-8", "replace")]


def _leaks(root, extra_texts: list[str] = ()) -> list[str]:
    from pathlib import Path

    found = []
    for p in sorted(Path(root).rglob("*")):
        if not p.is_file() or p.name.endswith((".wal", ".lock")):
            continue
        for text in _texts_of(p):
            low = text.lower()
            found += [f"{p.relative_to(root)}: {s}" for s in SECRETS if s in low]
    for i, text in enumerate(extra_texts):
        found += [f"log {i}: {s}" for s in SECRETS if s in text.lower()]
    return sorted(set(found))


def test_planted_pii_never_leaves_the_text_scrubber(tmp_path):
    """Issue 19: URL (path, query, fragment, userinfo), WARC-Record-ID, audit, error text,
    `_work` after a kill, logs: none may hold the planted e-mail, user name or phone."""
    from faultkit import assert_killed, run_args, run_cli

    from pipeline.sample import sample_paths

    src = tmp_path / "planted.warc.gz"
    _planted_warc(src, sample_paths()[0])
    out = tmp_path / "out"
    killed = run_cli(run_args([str(src)], out), {"CCPIPE_KILL_AT": "phase2.done"})
    assert_killed(killed)
    assert (out / "_work").is_dir()
    assert _leaks(out, [killed.stdout, killed.stderr]) == []
    done = run_cli(run_args([str(src)], out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert _leaks(out, [done.stdout, done.stderr]) == []
    # the planted records were really read: 3 documents + 1 bad Content-Length
    import duckdb

    con = duckdb.connect(str(out / "lineage.duckdb"), read_only=True)
    n = con.execute(
        "SELECT count(*) FROM input_files WHERE error LIKE '%Content-Length%'"
    ).fetchone()[0]
    con.close()
    assert n == 1


def test_phase3_scrubs_work_staged_unscrubbed_and_loads_presidio_only_for_it(tmp_path):
    """Phase 1 scrubs before staging, so a phase-3 worker needs no Presidio (1-3 s of imports
    per worker); chunks staged unscrubbed (by versions before issue 19) are still scrubbed,
    with Presidio loaded on first use."""
    from core import storage
    from pipeline.phase1 import _NOT_STAGED, ChunkProcessor, ipc_to_table, read_file_chunks
    from stages.contract import run_chain

    warc = tmp_path / "planted.warc.gz"
    warc.write_bytes(_record("<urn:uuid:9>", "http://planted-shop.org/a", _PAGE.encode()))
    cfg = load_config(None, [f"output.dir={tmp_path / 'out'}"])
    layout = Layout(str(tmp_path / "out"), cfg.config_hash)
    (row,) = list(read_file_chunks(str(warc), "fk", cfg))
    proc = ChunkProcessor(cfg, layout, "rk")
    stages = [st for st in proc.stages if st.name != "quality"]  # the page repeats itself
    kept = run_chain(ipc_to_table(row["records_ipc"]), stages).kept  # not scrubbed
    kept = kept.drop_columns([c for c in _NOT_STAGED if c in kept.column_names])
    assert kept.num_rows == 1 and EMAIL in kept.column("text")[0].as_py()
    prefix = layout.chunk_prefix("rk", "fk", 0)
    storage.write_parquet_atomic(prefix + ".kept.parquet", kept)
    storage.write_parquet_atomic(prefix + ".rejected.parquet", kept.slice(0, 0))

    fin = UnitFinisher(cfg, layout, "rk")
    assert fin.pii.pii is None, "a phase-3 worker loaded Presidio before it needed it"
    res = fin.finish_unit(
        {"unit_id": "u0", "files": [{"file_key": "fk", "source_uri": str(warc), "n_chunks": 1}]}
    )
    assert fin.pii.pii is not None and res["docs_kept"] == 1
    (shard,) = [s for s in res["shards"] if s["kind"] == "text"]
    text = pq.read_table(tmp_path / "out" / shard["path"]).column("text")[0].as_py()
    assert EMAIL not in text and "village library" in text
