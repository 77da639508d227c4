"""Analyst sessions are read-only and can read only the lineage store and the output's files.

Every escape attempt from the adversarial review (issue 19) must fail with a clear DuckDB error
through `open_analyst_connection` and through `python -m lineage sql`, while normal queries
(named queries, documented examples) keep working. Runs on a small lineage built here (no
Ray) and on the real sample run.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.urls import url_hash
from lineage.cli import main
from lineage.sandbox import open_analyst_connection
from lineage.store import LineageStore, connect_snapshot


@pytest.fixture
def small_output(tmp_path: Path) -> dict[str, str]:
    """An output with one text shard, one audit shard and a blocklist row; plus an outside
    file next to it that must stay unreadable."""
    out = tmp_path / "out"
    (out / "data" / "en" / "high").mkdir(parents=True)
    (out / "_rejected" / "en" / "high").mkdir(parents=True)
    text = out / "data" / "en" / "high" / "f-cfg.parquet"
    urls = ["https://a.example.com/x", "https://b.example.org/y"]
    pq.write_table(
        pa.table(
            {
                "doc_id": ["d1", "d2"],
                "url": urls,
                "url_hash": [url_hash(u) for u in urls],
                "source_uri": ["s.warc.gz"] * 2,
                "crawl_id": ["C"] * 2,
                "lang": ["en"] * 2,
                "quality_bucket": ["high"] * 2,
                "text": ["hello", "world"],
                "n_tokens": [1, 1],
                "shard_row": [0, 1],
                "token_start": [0, 1],
            }
        ),
        text,
    )
    rej = out / "_rejected" / "en" / "high" / "f-cfg.parquet"
    pq.write_table(
        pa.table(
            {
                "doc_id": ["d3"],
                "url": ["https://c.example.com/z"],
                "source_uri": ["s.warc.gz"],
                "drop_reason": ["quality.x"],
            }
        ),
        rej,
    )
    db = out / "lineage.duckdb"
    store = LineageStore(db)
    with store.transaction() as con:
        con.execute(
            "INSERT INTO shards (shard_id, kind, path, status, version) VALUES "
            "('data/en/high/f-cfg.parquet', 'text', 'data/en/high/f-cfg.parquet', "
            "'live', 1), ('_rejected/en/high/f-cfg.parquet', 'rejected', "
            "'_rejected/en/high/f-cfg.parquet', 'live', 1)"
        )
        con.execute(
            "INSERT INTO url_blocklist (url, url_hash, domain) VALUES "
            "('https://gone.example/', ?, NULL)",
            [url_hash("https://gone.example/")],
        )
    secret = tmp_path / "secret.csv"
    secret.write_text("user,password\nalice,hunter2\n")
    return {
        "db": str(db),
        "out": str(out),
        "text": str(text),
        "secret": str(secret),
        "writer": str(store.wpath),
    }


def _escapes(o: dict[str, str]) -> dict[str, tuple[str, str]]:
    """name -> (SQL, a word the error message must contain)."""
    text, secret, out, writer = o["text"], o["secret"], o["out"], o["writer"]
    return {
        "read_text /etc/passwd": ("SELECT * FROM read_text('/etc/passwd')", "disabled"),
        "read_csv outside file": (f"SELECT * FROM read_csv('{secret}')", "disabled"),
        "read_blob outside file": (f"SELECT * FROM read_blob('{secret}')", "disabled"),
        "glob": ("SELECT * FROM glob('/etc/*')", "disabled"),
        "read_parquet via read-only fs, other file": (
            f"SELECT * FROM read_parquet('ccpipe-ro-file://{secret}')",
            "not a file",
        ),
        "copy to outside": (f"COPY (SELECT 1) TO '{Path(secret).parent}/x.csv'", "disabled"),
        "copy over a shard": (f"COPY (SELECT 1 AS x) TO '{text}' (USE_TMP_FILE false)", "disabled"),
        "copy over a shard via read-only fs": (
            f"COPY (SELECT 1 AS x) TO 'ccpipe-ro-file://{text}' (USE_TMP_FILE false)",
            "read-only",
        ),
        "export database": (f"EXPORT DATABASE '{out}/export'", "disabled"),
        "attach writer read-write": (f"ATTACH '{writer}' AS w (READ_WRITE)", "disabled"),
        "attach published db": (f"ATTACH '{o['db']}' AS p", "disabled"),
        "attach memory": ("ATTACH ':memory:' AS m", "read-only"),
        "install": ("INSTALL httpfs", "disabled"),
        "load": ("LOAD httpfs", "disabled"),
        "set external access": ("SET enable_external_access = true", "locked"),
        "set threads": ("SET threads = 1", "locked"),
        "reset lock": ("RESET lock_configuration", "locked"),
        "pragma profiling": ("PRAGMA enable_profiling = 'json'", "locked"),
        "create table": ("CREATE TABLE t AS SELECT 1", "read-only"),
        "delete blocklist": ("DELETE FROM url_blocklist", "read-only"),
        "update shards": ("UPDATE shards SET status = 'superseded'", "read-only"),
        "drop table": ("DROP TABLE url_blocklist", "read-only"),
        "create macro": ("CREATE MACRO m(x) AS x", "read-only"),
    }


def test_every_escape_attempt_fails_clearly(small_output):
    o = small_output
    before = Path(o["text"]).read_bytes()
    con = open_analyst_connection(o["db"])
    try:
        failures = {}
        for name, (sql, word) in _escapes(o).items():
            try:
                con.execute(sql).fetchall()
                failures[name] = "succeeded"
            except (duckdb.Error, PermissionError) as e:
                if word not in str(e).lower().replace("read_only", "read-only"):
                    failures[name] = str(e).splitlines()[0][:200]
        assert failures == {}
        # the same locks hold on a cursor of the connection
        cur = con.cursor()
        with pytest.raises(duckdb.Error, match="disabled"):
            cur.execute("SELECT * FROM read_text('/etc/passwd')")
        # normal queries work: tables, views over the shard files, the URL functions
        assert con.execute("SELECT count(*) FROM url_blocklist").fetchone()[0] == 1
        rows = con.execute("SELECT doc_id, filename FROM documents ORDER BY doc_id").fetchall()
        rel = "data/en/high/f-cfg.parquet"  # shards.path: relative to the output root
        assert rows == [("d1", rel), ("d2", rel)]
        assert con.execute("SELECT count(*) FROM rejections").fetchone()[0] == 1
        assert (
            con.execute(
                "SELECT count(*) FROM documents d JOIN shards s ON s.path = d.filename"
            ).fetchone()[0]
            == 2
        )
        assert con.execute(
            "SELECT url_host('HTTP://Example%2eCOM.:80/'), url_domain('*.Example.com.')"
        ).fetchone() == ("example.com", "example.com")
    finally:
        con.close()
    assert Path(o["text"]).read_bytes() == before
    assert not (Path(o["out"]) / "export").exists()
    # the blocklist is intact in both the published and the writer database
    c = connect_snapshot(o["db"])
    assert c.execute("SELECT count(*) FROM url_blocklist").fetchone()[0] == 1
    c.close()


def test_lineage_sql_cli_refuses_escapes_and_runs_queries(small_output, capsys):
    o = small_output
    for name, (sql, _) in _escapes(o).items():
        rc = main(["sql", sql, "--lineage", o["db"]])
        err = capsys.readouterr().err
        assert (
            rc == 2
            and err.startswith("error: query failed")
            and len(err.strip().splitlines()) == 1
            and "Traceback" not in err
        ), (name, err)
        assert any(
            w in err.lower() for w in ("disabled", "locked", "read-only", "read_only", "not a file")
        ), (name, err)
    rc = main(["sql", "SELECT url FROM documents ORDER BY url", "--lineage", o["db"], "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and "https://a.example.com/x" in out
    rc = main(
        [
            "sql",
            "--named",
            "docs_from_domain",
            "--param",
            "domain=EXAMPLE.com.",
            "--lineage",
            o["db"],
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "a.example.com" in out and "b.example.org" not in out, (
        capsys.readouterr().err
    )


def test_no_temp_files_or_pins_left_and_outside_untouched(small_output):
    o = small_output
    before = sorted(os.listdir(o["out"]))
    con = open_analyst_connection(o["db"])
    con.execute("SELECT count(*) FROM documents").fetchall()
    con.close()
    assert sorted(os.listdir(o["out"])) == before


@pytest.mark.parametrize("which", ["analyst-sandbox", "object-store-views"])
def test_parallel_reads_through_the_read_only_filesystem_are_not_mixed(tmp_path, which):
    """DuckDB reads one file from several threads (seek, then read, on one handle); pyarrow
    releases the GIL inside read, so a shared file position let another thread's seek land in
    between: "Invalid string encoding found in Parquet file" / "TProtocolException" at random
    in `lineage sql` on the sample. Every thread must read the bytes at its own position."""
    import threading

    import pyarrow.fs as pafs

    from lineage.duckdb_fs import PositionalArrowFS
    from lineage.sandbox import _read_only_fs

    data = tmp_path / "data"
    data.mkdir()
    blob = bytes(range(256)) * 4096  # 1 MiB, every offset's byte is offset % 256
    (data / "f.bin").write_bytes(blob)
    if which == "analyst-sandbox":
        fs = _read_only_fs("file", pafs.LocalFileSystem(), (f"{tmp_path}/data/",))
    else:  # the class lineage.remote_views registers for s3:// / gs:// outputs
        fs = PositionalArrowFS(pafs.LocalFileSystem())
    f = fs.open(f"{tmp_path}/data/f.bin", "rb")
    bad: list[tuple[int, int]] = []

    def worker(seed: int) -> None:
        import random

        rng = random.Random(seed)
        for _ in range(400):
            pos = rng.randrange(0, len(blob) - 70_000)
            f.seek(pos)
            got = f.read(65_536)
            if got != blob[pos : pos + 65_536]:
                bad.append((seed, pos))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    f.close()
    assert bad == [], f"{len(bad)} reads returned another position's bytes"
