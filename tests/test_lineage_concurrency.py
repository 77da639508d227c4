"""Analysts are never blocked: a reader process queries while a writer process commits.

The writer commits, in a loop, one transaction inserting a shard row and its shard_inputs row
(a pair that must appear together). The reader opens the published snapshot in a loop and
checks it never gets a lock/IO error and never sees one row of a pair without the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys, time
from lineage.store import LineageStore
path, seconds = sys.argv[1], float(sys.argv[2])
store = LineageStore(path)
print("ready", flush=True)
end, i = time.monotonic() + seconds, 0
while time.monotonic() < end:
    with store.transaction() as con:
        con.execute("INSERT INTO shards (shard_id, kind, path, n_docs, version, status) "
                    "VALUES (?, 'text', ?, ?, 1, 'live')", [f"s{i}", f"/nowhere/s{i}", i])
        con.execute("INSERT INTO shard_inputs (shard_id, source_uri, n_docs) VALUES (?, ?, ?)",
                    [f"s{i}", f"src{i}", i])
    i += 1
print(i, flush=True)
"""

READER = r"""
import json, sys, time
from lineage.store import open_reader
path, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
snapshots, errors, torn, counts = 0, [], [], []
while time.monotonic() < end:
    try:
        con = open_reader(path)
        try:
            n_s, n_i, sum_s, sum_i = con.execute(
                "SELECT (SELECT count(*) FROM shards), (SELECT count(*) FROM shard_inputs), "
                "(SELECT coalesce(sum(n_docs), 0) FROM shards), "
                "(SELECT coalesce(sum(n_docs), 0) FROM shard_inputs)").fetchone()
            orphans = con.execute(
                "SELECT count(*) FROM shard_inputs i ANTI JOIN shards s USING (shard_id)"
            ).fetchone()[0]
        finally:
            con.close()
    except Exception as e:  # any error is a failure: record it
        errors.append(f"{type(e).__name__}: {e}")
        continue
    snapshots += 1
    counts.append(n_s)
    if n_s != n_i or sum_s != sum_i or orphans:
        torn.append([n_s, n_i, sum_s, sum_i, orphans])
print(json.dumps({"snapshots": snapshots, "errors": errors[:5], "n_errors": len(errors),
                  "torn": torn[:5], "distinct": len(set(counts)),
                  "monotonic": counts == sorted(counts)}))
"""


def test_reader_never_blocked_nor_sees_half_a_commit(tmp_path):
    db = tmp_path / "lineage.duckdb"
    seconds = 8.0
    env_cwd = {"cwd": REPO, "text": True}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **env_cwd,
    )
    try:
        assert writer.stdout.readline().strip() == "ready"  # schema created and published
        t0 = time.monotonic()
        reader = subprocess.run(
            [sys.executable, "-c", READER, str(db), str(seconds - 1)],
            capture_output=True,
            timeout=60,
            **env_cwd,
        )
        out, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, err
    assert reader.returncode == 0, reader.stderr
    commits = int(out.strip())
    res = json.loads(reader.stdout)
    assert res["n_errors"] == 0, res["errors"]
    assert res["torn"] == [], res["torn"]
    assert res["monotonic"]
    # The test must really overlap: many commits and many snapshots at different states.
    assert commits >= 10 and res["snapshots"] >= 10 and res["distinct"] >= 3, (commits, res)
    assert time.monotonic() - t0 < 30


def test_snapshot_connection_is_pinned_and_leaves_nothing(tmp_path, monkeypatch):
    """A reader keeps the snapshot it opened across publishes; no pin files are left."""
    import os

    from lineage.store import LineageStore, connect_snapshot

    db = tmp_path / "lineage.duckdb"
    store = LineageStore(db)
    before = sorted(os.listdir(tmp_path))
    con = connect_snapshot(db)
    with store.transaction() as w:  # publishes a new file over `db`
        w.execute(
            "INSERT INTO shards (shard_id, kind, path, n_docs, version, status) "
            "VALUES ('s1', 'text', '/x', 1, 1, 'live')"
        )
    assert con.execute("SELECT count(*) FROM shards").fetchone() == (0,)  # its own snapshot
    con.close()
    assert sorted(os.listdir(tmp_path)) == before
    # a directory readers may not write to: a private copy instead of a hard link
    monkeypatch.setattr(os, "access", lambda *_: False)
    con = connect_snapshot(db)
    assert con.execute("SELECT count(*) FROM shards").fetchone() == (1,)
    con.close()
    assert sorted(os.listdir(tmp_path)) == before
