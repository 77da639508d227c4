"""Analyst process for the concurrent-reader test: query the published lineage snapshot in a
loop until STOP exists; check each snapshot is a whole set of commits; print JSON stats."""

from __future__ import annotations

import json
import os
import sys
import time


def check(con) -> int:
    files = con.execute(
        "SELECT source_uri, records_read, docs_kept FROM input_files WHERE status = 'committed'"
    ).fetchall()
    for uri, read, kept in files:
        stats = dict(
            con.execute(
                "SELECT reason, sum(count) FROM stage_stats WHERE source_uri = ? GROUP BY 1", [uri]
            ).fetchall()
        )
        drops = sum(v for k, v in stats.items() if k != "kept" and not k.startswith("file."))
        assert stats.get("kept") == kept, f"half commit: kept row missing for {uri}"
        assert read == kept + drops, f"stage_stats do not reconcile for {uri}"
        shards = con.execute(
            "SELECT s.path, si.n_docs FROM shard_inputs si JOIN shards s "
            "USING (shard_id) WHERE si.source_uri = ? AND s.kind = 'text'",
            [uri],
        ).fetchall()
        assert sum(n for _, n in shards) == kept, f"shards missing for {uri}"
        for path, _ in shards:
            root = con.execute("SELECT current_setting('file_search_path')").fetchone()[0]
            path = os.path.join(root, path)  # lineage paths are relative to the output
            assert os.path.exists(path), f"shard listed but absent: {path}"
    # the documents view reads the shard files themselves
    n = con.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert n == sum(k for _, _, k in files), "documents view disagrees with input_files"
    return len(files)


def main() -> None:
    db, stop = sys.argv[1], sys.argv[2]
    from lineage.store import open_reader

    snapshots, errors, max_files, seen = 0, [], 0, set()
    while True:
        # one more snapshot after STOP: the run has returned, so its final publication is in
        done = os.path.exists(stop)
        if not os.path.exists(db):
            if done:
                break
            time.sleep(0.05)
            continue
        try:
            con = open_reader(db)
            try:
                n = check(con)
                max_files = max(max_files, n)
                seen.add(n)
            finally:
                con.close()
            snapshots += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
            errors.append(f"{type(exc).__name__}: {exc}"[:500])
        if done:
            break
        time.sleep(0.02)
    print(
        json.dumps(
            {
                "snapshots": snapshots,
                "errors": errors[:20],
                "n_errors": len(errors),
                "max_files": max_files,
                "file_counts_seen": sorted(seen),
            }
        )
    )


if __name__ == "__main__":
    main()
