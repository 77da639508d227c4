"""Deletions stick (issue 19): any spelling of a URL, the stored (PII-scrubbed) form, a domain
written with a trailing dot or `%2e`; a public suffix needs --force; a retry after a kill at
any step completes; and the deleted pages never come back: not after a nightly run that
re-ingests the same WARCs, not after a run with a changed config, not in data, token files,
audit shards, the dedup index, dedup decisions or staged work.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.urls import url_hash
from lineage.cli import main as lineage_main
from lineage.store import LineageStore, open_reader
from stages.token_shards import IndexedDataset

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "heimatblatt.example.net"
UNSEEN = "https://people.example.org/never-crawled?mail=x.y.5521%40example.com"


def _q(db: str, sql: str, params=None) -> list[tuple]:
    con = open_reader(db)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def copy_output(src: str, dst: Path) -> str:
    """A private, writable copy of a run's output with lineage paths pointing into it."""
    shutil.copytree(src, dst)
    db = dst / "lineage.duckdb"
    store = LineageStore(db)
    old, new = src.rstrip("/") + "/", str(dst) + "/"
    with store.transaction() as con:
        con.execute("UPDATE shards SET path = replace(path, ?, ?)", [old, new])
        con.execute("UPDATE meta SET value = replace(value, ?, ?)", [old, new])
        con.execute(
            "UPDATE runs SET output_dir = ? WHERE output_dir = ?", [str(dst), src.rstrip("/")]
        )
    return str(db)


PII_URLS = [
    "https://people.example.org/profile?email=jane.doe.4471%40protonmail.com&tab=1",
    "https://people.example.org/u/john.roe.9182@example.com/about",
]


def write_pii_url_warc(dst: Path, n: int = len(PII_URLS)) -> Path:
    """A real WARC whose pages have an e-mail in their URL: the first `n` HTML responses of
    the shipped sample crawl, re-addressed (new URL and record id)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    src = REPO / "pipeline" / "sample" / "sample-00000.warc.gz"
    records = []
    with open(src, "rb") as f:
        for r in ArchiveIterator(f):
            if r.rec_type == "response" and len(records) < n:
                headers = [
                    (k, v)
                    for k, v in r.http_headers.headers
                    if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
                ]
                records.append((headers, r.content_stream().read()))
    with open(dst, "wb") as out:
        w = WARCWriter(out, gzip=True)
        for url, (headers, body) in zip(PII_URLS, records, strict=False):
            http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
            w.write_record(
                w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
            )
    return dst


def _variant(url: str) -> str:
    """Another spelling of the same URL: upper-case scheme/host, trailing dot, default port."""
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    port = ":443" if scheme == "https" else ":80"
    return f"{scheme.upper()}://{host.upper()}.{port}/{path}"


def _abs(out: Path, p: str) -> str:
    """A lineage path (relative to the output root) as a local path."""
    return p if os.path.isabs(p) else str(out / p)


def _tok_prefix(out: Path, text_rel: str) -> str:
    """Token-file prefix mirroring a text shard (`data/...x.parquet` -> `OUT/tokens/...x`)."""
    return str(out / "tokens" / text_rel[len("data/") : -len(".parquet")])


def _token_docs(paths: list[str]) -> set[bytes]:
    out = set()
    for p in paths:
        ds = IndexedDataset(p[: -len(".bin")])
        out |= {np.asarray(ds[i]).tobytes() for i in range(len(ds))}
    return out


def _all_parquet_values(root: Path, columns: tuple[str, ...]) -> dict[str, set]:
    """Every value of `columns` in every Parquet file under `root` (data, audit, caches)."""
    seen: dict[str, set] = {c: set() for c in columns}
    for p in root.rglob("*.parquet"):
        schema = pq.read_schema(p)
        cols = [c for c in columns if c in schema.names]
        if cols:
            t = pq.read_table(p, columns=cols)
            for c in cols:
                seen[c] |= set(t.column(c).to_pylist())
    return seen


@pytest.fixture(scope="module")
def deleted(sample_run, tmp_path_factory):
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    root = tmp_path_factory.mktemp("sticks")
    out = root / "out"
    db = copy_output(sample_run.output, out)
    # pages whose URL carries an e-mail, ingested into the same output
    (root / "in").mkdir()
    pii_warc = write_pii_url_warc(root / "in" / "pii-urls.warc.gz")
    cfg = load_config(None, [f"output.dir={out}", "execution.progress=false"])
    cfg.input.paths = [str(pii_warc)]
    assert run_pipeline(cfg).files_processed == 1
    rows = _q(
        db,
        "SELECT doc_id, url, url_hash, source_uri, filename FROM documents "
        "UNION ALL SELECT doc_id, url, url_hash, source_uri, filename FROM rejections",
    )
    by_hash = {r[2]: r for r in rows}
    pii = [by_hash[url_hash(u)] for u in PII_URLS]  # hashed from the original...
    assert pii[0][1] != PII_URLS[0]  # ...stored scrubbed (the e-mail in its query)
    # a kept page not under DOMAIN, asked for in another spelling
    other = next(
        r for r in rows if not r[4].startswith("_rejected/") and DOMAIN not in r[1] and r not in pii
    )
    by_domain = [r for r in rows if f"://{DOMAIN}/" in r[1]]
    assert by_domain
    targets = [*pii, other, *by_domain]
    live_tokens = [
        _abs(out, p)
        for (p,) in _q(db, "SELECT path FROM shards WHERE kind = 'tokens' AND status = 'live'")
    ]
    # token sequences of the doomed kept documents, read from the token shards
    doomed_tokens = set()
    for doc_id, fn, row in _q(db, "SELECT doc_id, filename, shard_row FROM documents"):
        if doc_id in {t[0] for t in targets}:
            doomed_tokens.add(np.asarray(IndexedDataset(_tok_prefix(out, fn))[row]).tobytes())
    assert doomed_tokens and not doomed_tokens - _token_docs(live_tokens)

    url_file = root / "urls.txt"
    # first PII page by its stored (scrubbed) form, second by its original, `other` in
    # another spelling
    url_file.write_text(f"{pii[0][1]}\n{PII_URLS[1]}\n{_variant(other[1])}\n{UNSEEN}\n")
    assert lineage_main(["delete", "--urls", str(url_file), "--lineage", db]) == 0
    # a domain written with %2e and a trailing dot, in capitals
    dom = DOMAIN.replace(".", "%2e", 1).upper() + "."
    assert lineage_main(["delete", "--domain", dom, "--lineage", db]) == 0
    return {
        "root": root,
        "out": out,
        "db": db,
        "targets": targets,
        "doomed_tokens": doomed_tokens,
        "originals": set(PII_URLS),
        "sources": sorted({t[3] for t in targets}),
    }


def _assert_gone(d: dict) -> None:
    db, targets = d["db"], d["targets"]
    hashes = {t[2] for t in targets}
    urls = {t[1] for t in targets} | d["originals"]
    ids = {t[0] for t in targets}
    for view in ("documents", "rejections"):
        got = _q(db, f"SELECT doc_id, url, url_hash FROM {view}")
        assert not [r for r in got if r[2] in hashes or r[1] in urls or DOMAIN in r[1]], view
    seen = _all_parquet_values(d["out"], ("url", "url_hash"))
    assert not (seen["url"] & urls) and not (seen["url_hash"] & hashes)
    assert not [u for u in seen["url"] if u and DOMAIN in u]
    # doc ids: gone from data and audit (the dedup index keeps signatures on purpose)
    for view in ("documents", "rejections"):
        assert not _q(
            db, f"SELECT doc_id FROM {view} WHERE list_contains(?, doc_id)", [sorted(ids)]
        )
    tokens = [
        _abs(d["out"], p)
        for (p,) in _q(db, "SELECT path FROM shards WHERE kind = 'tokens' AND status = 'live'")
    ]
    assert not (d["doomed_tokens"] & _token_docs(tokens))
    # nothing else left on disk holds the URLs (JSON reports, staged work...)
    for p in d["out"].rglob("*"):
        if p.is_file() and p.suffix not in (".parquet", ".bin", ".idx", ".duckdb"):
            data = p.read_bytes()
            assert not any(u.encode() in data for u in urls), p
    assert not (d["out"] / "_work").exists() or not any((d["out"] / "_work").rglob("*.parquet"))


def test_deleted_by_stored_form_spelling_and_encoded_domain(deleted):
    _assert_gone(deleted)
    db = deleted["db"]
    rows = _q(db, "SELECT url_hash, domain FROM url_blocklist")
    assert {url_hash(u) for u in PII_URLS} <= {h for h, _ in rows}
    assert (None, DOMAIN) in rows
    # what the request said is never stored, only what the output stored (scrubbed) and hashes
    stored = {t[1] for t in deleted["targets"]}
    assert {u for (u,) in _q(db, "SELECT url FROM url_blocklist")} <= stored | {None}
    assert {u for (u,) in _q(db, "SELECT url FROM deletions")} <= stored
    assert url_hash(UNSEEN) in {h for h, _ in rows}


def test_public_suffix_needs_force(deleted, capsys):
    db = deleted["db"]
    for d in ("com", "CO.UK.", "github.io"):
        rc = lineage_main(["delete", "--domain", d, "--lineage", db])
        err = capsys.readouterr().err
        assert rc == 2 and "public suffix" in err and "--force" in err, err
    rc = lineage_main(["delete", "--domain", "net", "--force", "--dry-run", "--lineage", db])
    assert rc == 0 and "DRY RUN" in capsys.readouterr().out


@pytest.fixture(scope="module")
def nightly(deleted):
    """A nightly run re-ingesting the same WARCs (copied to a new listing, as a re-crawl
    mirror would), into the same output and lineage."""
    from jobs.nightly import main as nightly_main

    listing = deleted["root"] / "recrawl"
    listing.mkdir()
    for s in deleted["sources"]:
        shutil.copy(s, listing / Path(s).name)
    rc = nightly_main(
        [
            "--listing",
            str(listing),
            "--output",
            str(deleted["out"]),
            "--set",
            "execution.progress=false",
        ]
    )
    assert rc == 0
    return rc


def test_deleted_urls_never_return_after_nightly_reingest(deleted, nightly):
    runs = _q(deleted["db"], "SELECT kind, status FROM runs ORDER BY started_at")
    assert runs[-1] == ("nightly", "succeeded")
    n = _q(
        deleted["db"],
        "SELECT sum(count) FROM stage_stats s JOIN runs r USING (run_id) "
        "WHERE r.kind = 'nightly' AND s.reason = 'url.deleted'",
    )[0][0]
    assert n and n >= len(deleted["targets"]) - 1
    _assert_gone(deleted)


def test_deleted_urls_never_return_after_changed_config(deleted, nightly):
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    cfg = load_config(
        None,
        [f"output.dir={deleted['out']}", "execution.progress=false", "output.row_group_docs=1999"],
    )
    cfg.input.paths = deleted["sources"]
    res = run_pipeline(cfg)
    assert res.files_processed == len(deleted["sources"]) and res.docs_kept > 0
    assert res.counts.get("url.deleted", 0) >= 1
    _assert_gone(deleted)


# ---- kill at any step, then retry ----------------------------------------------------------
KILL_POINTS = [
    "delete.locked",
    "delete.files_written",
    "lineage.in_transaction",
    "lineage.before_publish",
    "delete.committed",
    "delete.files_removed",
]


def _delete_cmd(db: str, url_file: Path, kill_at: str | None, *extra: str):
    env = {k: v for k, v in os.environ.items() if k != "CCPIPE_KILL_AT"}
    env["PYTHONPATH"] = str(REPO)
    if kill_at:
        env["CCPIPE_KILL_AT"] = kill_at
    return [
        sys.executable,
        "-m",
        "lineage",
        "delete",
        "--urls",
        str(url_file),
        "--lineage",
        db,
        *extra,
    ], env


def _delete_proc(
    db: str, url_file: Path, kill_at: str | None, *extra: str
) -> subprocess.CompletedProcess:
    cmd, env = _delete_cmd(db, url_file, kill_at, *extra)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _two_urls(db: str, tmp_path: Path) -> tuple[list[str], Path]:
    shard = _q(
        db,
        "SELECT filename FROM documents GROUP BY filename HAVING count(*) >= 2 "
        "ORDER BY filename LIMIT 1",
    )[0][0]
    urls = [
        u
        for (u,) in _q(
            db, "SELECT url FROM documents WHERE filename = ? ORDER BY shard_row LIMIT 2", [shard]
        )
    ]
    url_file = tmp_path / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n")
    return urls, url_file


def test_delete_takes_the_output_lock_of_runs(sample_run, tmp_path):
    """A delete while a run holds the output: one line naming the holder, exit 75, nothing
    touched; with --wait it proceeds once the run is done."""
    from core.output_lock import hold_output_lock

    out = tmp_path / "out"
    db = copy_output(sample_run.output, out)
    urls, url_file = _two_urls(db, tmp_path)
    with hold_output_lock(str(out), purpose="pipeline run"):
        p = _delete_proc(db, url_file, None)
        assert p.returncode == 75, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
        assert f"pid {os.getpid()}" in p.stderr and "pipeline run" in p.stderr
        assert _q(db, "SELECT count(*) FROM deletions") == [(0,)]
        cmd, env = _delete_cmd(db, url_file, None, "--wait")
        waiting = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            waiting.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        assert waiting.returncode is None  # still waiting for the run
    _, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert _q(db, "SELECT count(*) FROM documents WHERE list_contains(?, url)", [urls]) == [(0,)]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_retry_after_kill_completes(sample_run, tmp_path, kill_at):
    out = tmp_path / "out"
    db = copy_output(sample_run.output, out)
    urls, url_file = _two_urls(db, tmp_path)
    killed = _delete_proc(db, url_file, kill_at)
    assert killed.returncode == -9, (kill_at, killed.stderr[-2000:])
    retry = _delete_proc(db, url_file, None)
    assert retry.returncode == 0, retry.stderr[-2000:]
    assert _q(db, "SELECT count(*) FROM documents WHERE list_contains(?, url)", [urls]) == [(0,)]
    # one live row per shard id, every live file exists, no superseded file left on disk
    dup = _q(db, "SELECT shard_id, count(*) FROM shards GROUP BY shard_id HAVING count(*) > 1")
    assert dup == []
    live = {_abs(out, p) for (p,) in _q(db, "SELECT path FROM shards WHERE status = 'live'")}
    assert all(os.path.exists(p) for p in live)
    on_disk = {str(p) for p in out.rglob("*.parquet") if "_dedup" not in str(p)} | {
        str(p) for p in out.rglob("*.bin")
    }
    assert on_disk == {p for p in live if p.endswith((".parquet", ".bin"))}
    assert _q(db, "SELECT count(DISTINCT doc_id) FROM deletions") == [(2,)]
    hashes = {h for (h,) in _q(db, "SELECT url_hash FROM url_blocklist")}
    assert {url_hash(u) for u in urls} <= hashes
    # the mirror between text and token shards still holds
    for text, tok in _q(
        db,
        "SELECT t.path, k.path FROM shards t JOIN shards k ON "
        "k.mirrors_shard = t.shard_id AND k.status = 'live' "
        "WHERE t.status = 'live' AND t.kind = 'text'",
    ):
        assert (
            len(IndexedDataset(_abs(out, tok)[: -len(".bin")]))
            == pq.read_metadata(_abs(out, text)).num_rows
        )
