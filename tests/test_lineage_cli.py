"""Lineage for analysts: trace, explain, diff, delete, named queries, on a real sample run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.urls import host_of, normalize_domain, url_hash
from lineage.blocklist import blocked_mask, is_blocked, load_blocklist
from lineage.delete import delete_documents
from lineage.queries import QUERIES
from lineage.sandbox import open_analyst_connection
from lineage.shard_rewrite import versioned_base
from lineage.store import LineageStore, open_reader
from stages.token_shards import IndexedDataset
from stages.warc_records import record_id_column
from tests.lineage_helpers import run_lineage_cli as _cli

REPO = Path(__file__).resolve().parents[1]


def _q(db: str, sql: str, params=None) -> list[tuple]:
    con = open_reader(db)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def copy_output(src: str, dst: Path) -> str:
    """A private, writable copy of a run's output: a plain copy (lineage paths are relative)."""
    shutil.copytree(src, dst)
    return str(dst / "lineage.duckdb")


def tok_prefix(out: Path | str, text_rel: str) -> str:
    """Token-file prefix mirroring a text shard (`data/...x.parquet` -> `OUT/tokens/...x`)."""
    assert text_rel.startswith("data/"), text_rel
    return str(Path(out) / "tokens" / text_rel[len("data/") : -len(".parquet")])


@pytest.fixture(scope="module")
def db(sample_run) -> str:
    return sample_run.lineage_path


# ---- trace -------------------------------------------------------------------------------------
def test_trace_doc_matches_warc_record_and_token_shard(db, capsys):
    doc_id, url = _q(db, "SELECT doc_id, url FROM documents ORDER BY doc_id LIMIT 1 OFFSET 7")[0]
    rc, out, _ = _cli(capsys, "trace", doc_id, "--lineage", db, "--json", "--fetch")
    assert rc == 0
    [item] = json.loads(out)
    assert item["status"] == "kept" and item["url"] == url
    assert item["run_id"] and item["config_hash"] and item["code_version"]
    # The byte range re-reads exactly this record.
    # (the stored id is a hash of the raw header unless read.keep_record_id: issue 19)
    raw_id = item["fetched"]["warc_headers"]["WARC-Record-ID"]
    assert record_id_column(raw_id, keep_raw=False) == item["warc_record_id"]
    assert item["fetched"]["http_headers"][":status"] == "200"
    # Row and token range point at this document's tokens in the token shard.
    root = Path(db).parent  # lineage paths are relative to the output root
    assert not Path(item["token_shard_path"]).is_absolute()
    ds = IndexedDataset(str(root / item["token_shard_path"])[: -len(".bin")])
    row = item["shard_row"]
    assert int(ds.lengths[row]) == item["n_tokens"]
    assert int(ds.token_offsets()[row]) == item["token_start"]
    table = pq.read_table(root / item["filename"], columns=["doc_id"])
    assert table.column("doc_id")[row].as_py() == doc_id
    # By URL, plain text: aligned label/value lines.
    rc, out, _ = _cli(capsys, "trace", url, "--lineage", db)
    assert rc == 0 and f"doc_id          {doc_id}" in out
    assert "token range" in out and item["source_uri"] in out


def test_trace_unknown_and_missing_db_exit_2(db, tmp_path, capsys):
    rc, out, err = _cli(capsys, "trace", "no-such-doc", "--lineage", db)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    rc, _, err = _cli(
        capsys, "explain", "https://x.example/", "--lineage", str(tmp_path / "nope.duckdb")
    )
    assert rc == 2 and "not found" in err and len(err.strip().splitlines()) == 1


def test_module_entrypoint_and_output_option(sample_run):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "lineage",
            "sql",
            "SELECT count(*) AS n FROM documents",
            "--output",
            sample_run.output,
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["n"] == sample_run.docs_kept


# ---- explain ---------------------------------------------------------------------------------------
def test_explain_duplicate_names_keeper_and_its_url(db, capsys):
    url, keeper = _q(
        db,
        "SELECT url, keeper_doc_id FROM rejections WHERE drop_stage = 'dedup' "
        "ORDER BY doc_id LIMIT 1",
    )[0]
    keeper_url = _q(db, "SELECT url FROM documents WHERE doc_id = ?", [keeper])[0][0]
    rc, out, _ = _cli(capsys, "explain", url, "--lineage", db, "--json")
    info = json.loads(out)
    assert rc == 0 and info["verdict"] == "dropped"
    d = info["dropped"][0]
    assert d["drop_stage"] == "dedup" and d["drop_reason"].startswith("dedup.")
    assert d["keeper_doc_id"] == keeper and d["keeper_url"] == keeper_url
    rc, out, _ = _cli(capsys, "explain", url, "--lineage", db)
    assert "DROPPED" in out and keeper_url in out and "reason: dedup." in out


def test_explain_filter_drop_has_measured_value(db, capsys):
    rows = _q(
        db,
        "SELECT url, drop_stage, drop_reason, drop_detail FROM rejections "
        "WHERE drop_stage <> 'dedup' AND drop_detail IS NOT NULL ORDER BY doc_id",
    )
    assert rows, "sample run should drop something outside dedup"
    url, stage, reason, detail = rows[0]
    info = json.loads(_cli(capsys, "explain", url, "--lineage", db, "--json")[1])
    d = info["dropped"][0]
    assert (d["drop_stage"], d["drop_reason"], d["drop_detail"]) == (stage, reason, detail)


def test_explain_kept_and_not_seen(db, capsys):
    url = _q(db, "SELECT url FROM documents ORDER BY url LIMIT 1")[0][0]
    assert (
        json.loads(_cli(capsys, "explain", url, "--lineage", db, "--json")[1])["verdict"] == "kept"
    )
    rc, out, _ = _cli(capsys, "explain", "https://never.example.org/page", "--lineage", db)
    assert rc == 0 and "not seen as an HTML document" in out and "read.non_200" in out


# ---- named queries and sql ---------------------------------------------------------------------------
def test_every_named_query_runs_on_the_sample(db):
    dup = _q(db, "SELECT doc_id FROM rejections WHERE drop_stage = 'dedup' LIMIT 1")[0][0]
    doc = _q(db, "SELECT doc_id FROM documents LIMIT 1")[0][0]
    params = {"mix_id": "no-such-mix", "domain": "example.net", "doc_id": dup}
    con = open_analyst_connection(db)  # what `lineage sql` and the notebook use
    try:
        results = {}
        for q in QUERIES.values():
            p = {k: (doc if q.name == "doc_provenance" else params[k]) for k in q.params}
            results[q.name] = con.execute(q.sql, p).fetchall()
    finally:
        con.close()
    assert set(results) >= {
        "tokens_per_language_per_crawl",
        "drop_reasons_per_run",
        "shards_of_mix",
        "docs_from_domain",
        "duplicate_of",
    }
    tokens = sum(r[4] for r in results["tokens_per_language_per_crawl"])
    assert tokens == _q(db, "SELECT sum(n_tokens) FROM documents")[0][0] > 0
    assert {r[2] for r in results["drop_reasons_per_run"]} >= {"dedup.exact", "read.non_200"}
    assert results["docs_from_domain"] and all(
        ".example.net/" in r[1] for r in results["docs_from_domain"]
    )
    assert results["duplicate_of"][0][5] is not None  # keeper doc id
    assert len(results["doc_provenance"]) == 1


def test_sql_verb_named_params_and_bad_sql(db, capsys):
    rc, out, _ = _cli(
        capsys,
        "sql",
        "--named",
        "docs_from_domain",
        "--param",
        "domain=EXAMPLE.net",
        "--lineage",
        db,
        "--json",
    )
    expected = sorted(
        u
        for (u,) in _q(db, "SELECT url FROM documents")
        if host_of(u) == "example.net" or host_of(u).endswith(".example.net")
    )
    assert rc == 0 and sorted(r["url"] for r in json.loads(out)) == expected and expected
    rc, _, err = _cli(capsys, "sql", "SELEC nonsense", "--lineage", db)
    assert rc == 2 and err.startswith("error: query failed")
    rc, out, _ = _cli(capsys, "queries")
    assert rc == 0 and "duplicate_of" in out


# ---- delete ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deleted(sample_run, tmp_path_factory):
    """A copy of the sample output after a URL-list and a domain deletion request."""
    dst = tmp_path_factory.mktemp("deleted") / "out"
    db = copy_output(sample_run.output, dst)
    con = open_reader(db)
    # Two URLs of one text shard and one audit-shard URL; remember all tokens before.
    target_shard = con.execute(
        "SELECT filename FROM documents GROUP BY filename HAVING count(*) >= 3 "
        "ORDER BY filename LIMIT 1"
    ).fetchone()[0]
    urls = [
        r[0]
        for r in con.execute(
            "SELECT url FROM documents WHERE filename = ? ORDER BY shard_row LIMIT 2",
            [target_shard],
        ).fetchall()
    ]
    urls.append(con.execute("SELECT url FROM rejections ORDER BY doc_id LIMIT 1").fetchone()[0])
    before, datasets = {}, {}
    for doc_id, fn, row in con.execute(
        "SELECT doc_id, filename, shard_row FROM documents"
    ).fetchall():
        ds = datasets.setdefault(fn, IndexedDataset(tok_prefix(dst, fn)))
        before[doc_id] = np.array(ds[row])
    n_url_docs = con.execute(
        "SELECT (SELECT count(*) FROM documents WHERE list_contains($u, url)) + "
        "(SELECT count(*) FROM rejections WHERE list_contains($u, url))",
        {"u": urls},
    ).fetchone()[0]
    domain_docs = con.execute(
        "SELECT doc_id FROM documents WHERE url LIKE 'https://heimatblatt.example.net/%' "
        "AND NOT list_contains(?, url)",
        [urls],
    ).fetchall()
    source_of = dict(
        con.execute(
            "SELECT url, source_uri FROM documents UNION ALL SELECT url, source_uri FROM rejections"
        ).fetchall()
    )
    doc_source = dict(con.execute("SELECT doc_id, source_uri FROM documents").fetchall())
    old_live = {
        r[0]: r[1]
        for r in con.execute("SELECT shard_id, path FROM shards WHERE status = 'live'").fetchall()
    }
    con.close()
    # A mix that used the target shard, and one that did not.
    target_id = next(s for s, p in old_live.items() if p == target_shard)
    store = LineageStore(db)
    with store.transaction() as c:
        c.execute(
            "INSERT INTO mixes (mix_id, name, stale) VALUES ('m-used', 'used', false), "
            "('m-other', 'other', false)"
        )
        c.execute(
            "INSERT INTO mix_components (mix_id, shard_id, shard_version) VALUES "
            "('m-used', ?, 1), ('m-other', 'xx/none.parquet', 1)",
            [target_id],
        )
    url_file = dst.parent / "urls.txt"
    url_file.write_text("# request 1\n" + "\n".join(urls) + "\n\nhttps://unknown.example/\n")
    r1 = delete_documents(
        db, urls=[u for u in url_file.read_text().splitlines() if u and not u.startswith("#")]
    )
    r2 = delete_documents(db, domain="HeimatBlatt.example.net")
    return {
        "db": db,
        "urls": urls,
        "n_url_docs": n_url_docs,
        "before": before,
        "r1": r1,
        "r2": r2,
        "old": old_live,
        "domain_docs": {d for (d,) in domain_docs},
        "source_of": source_of,
        "doc_source": doc_source,
        "target": target_shard,
        "out": dst,
    }


def test_delete_removes_docs_and_keeps_others_tokens_exact(deleted):
    db, before = deleted["db"], deleted["before"]
    assert deleted["r1"].docs_deleted == deleted["n_url_docs"] >= 3
    assert deleted["r1"].unmatched_urls == ["https://unknown.example/"]
    assert deleted["r2"].docs_by_kind["text"] == len(deleted["domain_docs"]) > 0
    con = open_reader(db)
    assert (
        con.execute(
            "SELECT count(*) FROM documents WHERE list_contains(?, url) OR url LIKE "
            "'%heimatblatt.example.net/%'",
            [deleted["urls"]],
        ).fetchone()[0]
        == 0
    )
    assert (
        con.execute(
            "SELECT count(*) FROM rejections WHERE list_contains(?, url)", [deleted["urls"]]
        ).fetchone()[0]
        == 0
    )
    docs = con.execute(
        "SELECT doc_id, filename, shard_row, token_start, n_tokens "
        "FROM documents ORDER BY filename, shard_row"
    ).fetchall()
    gone = set(before) - {d[0] for d in docs}
    assert gone == {
        d for (d,) in con.execute("SELECT doc_id FROM deletions WHERE kind = 'text'").fetchall()
    }
    # Every remaining document's tokens are byte-identical, rows and token starts contiguous.
    by_file: dict[str, list] = {}
    for d in docs:
        by_file.setdefault(d[1], []).append(d)
    for fn, rows in by_file.items():
        ds = IndexedDataset(tok_prefix(deleted["out"], fn))
        assert [r[2] for r in rows] == list(range(len(rows))) == list(range(len(ds)))
        assert [r[3] for r in rows] == [int(x) for x in ds.token_offsets()]
        for doc_id, _, row, _, n in rows:
            assert np.array_equal(ds[row], before[doc_id]) and len(ds[row]) == n
    # Shards table: new versions live and consistent, old ones superseded and gone from disk.
    live = con.execute(
        "SELECT shard_id, kind, path, n_docs, n_tokens, version, mirrors_shard "
        "FROM shards WHERE status = 'live' AND version > 1"
    ).fetchall()
    assert live and all(".v" in s[0] for s in live)
    for sid, kind, path, n_docs, n_tokens, version, mirrors in live:
        if kind == "tokens":
            assert mirrors.endswith(f".v{version}.parquet")
            assert IndexedDataset(str(deleted["out"] / path)[: -len(".bin")]).n_tokens == n_tokens
        else:
            assert pq.ParquetFile(deleted["out"] / path).metadata.num_rows == n_docs
        n_in = con.execute(
            "SELECT sum(n_docs) FROM shard_inputs WHERE shard_id = ?", [sid]
        ).fetchone()[0]
        assert n_in == n_docs
    superseded = con.execute(
        "SELECT shard_id, path FROM shards WHERE status = 'superseded'"
    ).fetchall()
    out = deleted["out"]
    assert superseded and all(not (out / p).exists() for _, p in superseded)
    assert all(not (out / (p[:-4] + ".idx")).exists() for _, p in superseded if p.endswith(".bin"))
    assert not (out / deleted["target"]).exists()
    con.close()


def test_delete_flags_mixes_records_event_and_blocklist(deleted):
    db = deleted["db"]
    assert deleted["r1"].stale_mixes == ["m-used"]
    assert dict(_q(db, "SELECT mix_id, stale FROM mixes")) == {"m-used": True, "m-other": False}
    rows = _q(
        db,
        "SELECT deletion_id, url, old_shard_id, new_shard_id, kind FROM deletions "
        "WHERE deletion_id = ?",
        [deleted["r1"].deletion_id],
    )
    assert len(rows) == deleted["n_url_docs"] and {r[4] for r in rows} == {"text", "rejected"}
    assert all(r[3] is None or ".v2." in r[3] for r in rows)
    hashes, domains = load_blocklist(db)
    assert {url_hash(u) for u in deleted["urls"]} <= hashes
    assert url_hash("https://unknown.example/") in hashes
    assert domains == {"heimatblatt.example.net"}
    # the request's own strings are not stored (they may carry PII): matched rows keep the
    # stored (scrubbed) url, unmatched requests only their hash
    stored = {u for (u,) in _q(db, "SELECT url FROM url_blocklist WHERE url IS NOT NULL")}
    assert "https://unknown.example/" not in stored


def test_delete_cli_dry_run_and_explain_after(deleted, capsys):
    db = deleted["db"]
    url = _q(db, "SELECT url FROM documents ORDER BY url LIMIT 1")[0][0]
    n = len(_q(db, "SELECT 1 FROM documents"))
    f = deleted["out"].parent / "one.txt"
    f.write_text(url + "\n")
    rc, out, _ = _cli(capsys, "delete", "--urls", str(f), "--lineage", db, "--dry-run")
    assert rc == 0 and "DRY RUN: would delete 1 documents" in out
    assert len(_q(db, "SELECT 1 FROM documents")) == n
    info = json.loads(_cli(capsys, "explain", deleted["urls"][0], "--lineage", db, "--json")[1])
    assert info["verdict"] == "deleted" and info["blocklisted"]
    rc, _, err = _cli(
        capsys,
        "delete",
        "--domain",
        "x.example",
        "--lineage",
        str(deleted["out"] / "missing.duckdb"),
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def rerun(deleted, sample_run):
    """The same input again, into the same output/lineage, after the deletions; a changed
    (output-affecting) config so the files are really reprocessed, not skipped."""
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    # Only the input file holding the first deleted URL (keeps the test shorter).
    cfg = load_config(
        None,
        [f"output.dir={deleted['out']}", "execution.progress=false", "output.row_group_docs=1999"],
    )
    cfg.input.paths = [deleted["source_of"][deleted["urls"][0]]]
    return run_pipeline(cfg)


def test_deleted_url_never_reappears_in_a_later_run(deleted, rerun):
    db = deleted["db"]
    assert rerun.files_processed >= 1 and rerun.docs_kept > 0
    con = open_reader(db)
    try:
        hits = con.execute(
            "SELECT url FROM documents WHERE list_contains(?, url) OR url LIKE "
            "'%heimatblatt.example.net/%'",
            [deleted["urls"]],
        ).fetchall()
        reasons = dict(
            con.execute(
                "SELECT reason, sum(count) FROM stage_stats WHERE run_id = ? GROUP BY reason",
                [rerun.run_id],
            ).fetchall()
        )
    finally:
        con.close()
    assert hits == []
    src = deleted["source_of"][deleted["urls"][0]]
    n_text = sum(
        deleted["doc_source"][d] == src
        for (d,) in _q(db, "SELECT doc_id FROM deletions WHERE kind = 'text'")
    )
    assert n_text >= 2  # the two URLs of the target shard come from this file
    assert reasons.get("url.deleted", 0) >= n_text


def test_diff_shows_config_and_count_changes(deleted, rerun, capsys):
    db = deleted["db"]
    first = _q(db, "SELECT run_id FROM runs ORDER BY started_at LIMIT 1")[0][0]
    rc, out, _ = _cli(capsys, "diff", first, "latest", "--lineage", db, "--json")
    d = json.loads(out)
    assert rc == 0 and d["run_b"] == rerun.run_id
    assert {c["key"]: (c["a"], c["b"]) for c in d["config"]} == {
        "output.row_group_docs": (2000, 1999)
    }
    by_reason = {c["reason"]: c for c in d["counts"]}
    assert by_reason["kept"]["a"] == len(deleted["before"])
    assert by_reason["kept"]["b"] == rerun.docs_kept
    assert by_reason["url.deleted"]["a"] == 0 < by_reason["url.deleted"]["b"]
    rc, out, _ = _cli(capsys, "diff", first[:-2], "latest", "--lineage", db)
    assert rc == 0 and "output.row_group_docs" in out and "delta" in out
    rc, _, err = _cli(capsys, "diff", first[:4], "latest", "--lineage", db)
    assert rc == 2 and "2 runs match" in err
    rc, _, err = _cli(capsys, "diff", "nope", "latest", "--lineage", db)
    assert rc == 2 and "no run" in err


# ---- properties ---------------------------------------------------------------------------------------
_label = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join)


@settings(max_examples=80, deadline=None)
@given(
    hosts=st.lists(_host, min_size=1, max_size=8),
    blocked=st.lists(_host, max_size=3),
    path=st.sampled_from(["", "/", "/a?b=c", ":8080/x", "#f"]),
)
def test_blocked_mask_matches_scalar_rule(hosts, blocked, path):
    import pyarrow as pa

    urls = [f"https://{h}{path}" for h in hosts] + [None, "not a url"]
    domains = frozenset(normalize_domain(d) for d in blocked)
    exact = frozenset(url_hash(u) for u in urls[:1])
    table = pa.table({"url": pa.array(urls, pa.string())})
    mask = blocked_mask(table, exact, domains).to_pylist()
    assert mask == [u is not None and is_blocked(u, exact, domains) for u in urls]
    for h, m in zip(hosts, mask, strict=False):
        under = any(h == d or h.endswith("." + d) for d in domains)
        assert m == (under or url_hash(f"https://{h}{path}") in exact)


@given(
    st.from_regex(r"[a-z]{1,5}(/[a-z0-9-]{1,8}){0,2}", fullmatch=True),
    st.integers(1, 30),
    st.sampled_from([".parquet", ".bin"]),
)
def test_versioned_base_strips_suffix_and_version(base, v, suffix):
    assert versioned_base(base + suffix, suffix) == base
    assert versioned_base(f"{base}.v{v}{suffix}", suffix) == base


def test_load_blocklist_without_database(tmp_path):
    assert load_blocklist(tmp_path / "none.duckdb") == (frozenset(), frozenset())
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.close()
    assert load_blocklist(tmp_path / "old.duckdb") == (frozenset(), frozenset())
