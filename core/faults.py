"""Fault-injection points for the reliability tests (no effect unless the env var is set).

`CCPIPE_KILL_AT=<point>[:<n>]` makes the process SIGKILL itself the n-th time (default 1st) it
reaches `<point>`. Points are named where a crash is most interesting: between writing files
and committing lineage, inside the lineage transaction, after each phase.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_hits: Counter[str] = Counter()

POINTS = (
    "phase1.chunk_done",  # driver received a chunk summary
    "phase1.done",
    "phase2.done",
    "phase3.files_written",  # a file's shards are on disk, lineage not yet committed
    "lineage.in_transaction",  # inside the commit transaction, before COMMIT
    "lineage.before_publish",  # committed in the writer copy, snapshot not yet published
    "phase3.committed",  # after a file's commit
    "run.before_finish",
    "delete.locked",  # lineage delete: holds the output lock, nothing done yet
    "delete.files_written",  # lineage delete: a new shard version is on disk, not committed
    "delete.committed",  # lineage delete: committed and published, old files still there
    "delete.files_removed",  # lineage delete: superseded files gone, staged work not yet removed
)


def point(name: str) -> None:
    spec = os.environ.get("CCPIPE_KILL_AT")
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
