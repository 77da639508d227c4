"""The run summary's words: WARC records are never called documents, and the funnel adds up."""

from __future__ import annotations

from pipeline.run_summary import RunResult, funnel, summary_table


def _result() -> RunResult:
    r = RunResult(
        "r1",
        "/out",
        "/out/lineage.duckdb",
        files_total=2,
        files_skipped=0,
        files_processed=2,
        records_read=1000,
        docs_kept=150,
        tokens=12345,
        seconds=10.0,
    )
    r.counts = {
        "read.request": 300,
        "read.metadata": 300,
        "read.warcinfo": 2,
        "read.non_html": 98,
        "extract.empty": 20,
        "url.deleted": 5,
        "lang.low_score": 30,
        "gopher_quality.word_count": 70,
        "dedup.minhash": 27,
        "file.missing": 1,
    }
    return r


def test_funnel_counts_records_then_documents():
    assert funnel(_result()) == {
        "records_read": 1000,
        "html_responses": 300,
        "documents_extracted": 275,
        "documents_kept": 150,
    }


def test_summary_names_records_responses_documents_and_units():
    text = summary_table(_result())
    for words, n in [
        ("records read", "1,000"),
        ("HTML responses", "300"),
        ("documents extracted", "275"),
        ("documents kept", "150"),
    ]:
        line = next(ln for ln in text.splitlines() if words in ln)
        assert n in line, line
    assert "records/s" in text and "docs/s" not in text
    by_reason = {
        ln.split()[1]: ln.split()[-1]
        for ln in text.splitlines()
        if ln.startswith("  ") and len(ln.split()) == 4 and "." in ln.split()[1]
    }
    assert by_reason["read.request"] == "records"
    assert by_reason["file.missing"] == "files"
    assert by_reason["dedup.minhash"] == "documents"
    assert "docs" not in text.replace("documents", "")
