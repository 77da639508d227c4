"""One writer per output: an exclusive lock on an output root (local path or object store).

Why: two concurrent `pipeline run`s (or a run and a `lineage delete`) on one output would
interleave lineage commits and shard rewrites. The lock is taken for the whole command; a
second writer fails at once with a message naming the holder, or waits (`wait=True`).

Local outputs: `fcntl.flock` on `<output>/_ccpipe.lock`, whose content is the holder's JSON
(pid, host, start time, purpose). The kernel releases a flock when its process dies, so the
lock of a killed run is stale by construction and the next writer simply takes it (its holder
JSON is replaced and the take-over is logged).

Object stores (`s3://`, `gs://`, through `pyarrow.fs`, which has no conditional put): every
contender writes its own claim object `<output>/_ccpipe.lock.d/claim-<token>.json`, then lists
the claims. A contender holds the lock only when its claim is the only live one (S3 lists are
strongly consistent after a write): two contenders that overlap both see each other and back
off. The holder refreshes a heartbeat in its claim; a claim is stale when its heartbeat is
older than `stale_after_s`, or when it names a dead process on this host. Stale claims are
deleted by whoever finds them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = "_ccpipe.lock"
CLAIMS_DIR = "_ccpipe.lock.d"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 90.0
POLL_S = 1.0


class OutputLockedError(RuntimeError):
    """Another process holds the output's lock. The message names it."""

    def __init__(self, output: str, holder: dict[str, Any] | None):
        self.output = output
        self.holder = holder or {}
        h = self.holder
        who = (
            (
                f"pid {h.get('pid', '?')} on host {h.get('host', '?')}, started "
                f"{h.get('started', '?')}, purpose: {h.get('purpose', '?')}"
            )
            if h
            else "unknown holder"
        )
        super().__init__(
            f"output {output} is locked by another writer ({who}); wait for it, or pass --wait"
        )


def _is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _holder(purpose: str, token: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "purpose": purpose,
        "token": token,
        "started": now.isoformat(timespec="seconds"),
        "heartbeat": time.time(),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _deadline(wait: bool, timeout_s: float | None) -> float | None:
    if not wait:
        return 0.0
    return None if timeout_s is None else time.monotonic() + timeout_s


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


@contextlib.contextmanager
def hold_output_lock(
    output: str, *, purpose: str, wait: bool = False, timeout_s: float | None = None
) -> Iterator[dict[str, Any]]:
    """Hold the exclusive writer lock of `output` for the body; yields the holder record.

    Raises OutputLockedError at once when another live process holds it (or after
    `timeout_s` when `wait`; `wait` without a timeout waits indefinitely).
    """
    if _is_remote(output):
        with _hold_remote(output, purpose, wait, timeout_s) as h:
            yield h
    else:
        with _hold_local(output, purpose, wait, timeout_s) as h:
            yield h


# ------------------------------------------------------------------------------ local
def read_local_holder(output: str) -> dict[str, Any] | None:
    """The holder JSON currently in the local lock file (None when absent or unreadable)."""
    try:
        with open(os.path.join(output, LOCK_NAME), encoding="utf-8") as f:
            return json.loads(f.read() or "null")
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _hold_local(
    output: str, purpose: str, wait: bool, timeout_s: float | None
) -> Iterator[dict[str, Any]]:
    import fcntl

    output = os.path.abspath(output.removeprefix("file://"))
    created_dir = not os.path.isdir(output)
    path = os.path.join(output, LOCK_NAME)
    deadline = _deadline(wait, timeout_s)
    announced = False
    while True:
        os.makedirs(output, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a releasing holder removed the empty directory meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_local_holder(output)
            if _expired(deadline):
                raise OutputLockedError(output, holder) from None
            if not announced:
                log.info(
                    "waiting for the lock of %s: %s", output, OutputLockedError(output, holder)
                )
                announced = True
            time.sleep(POLL_S)
            continue
        # The file we locked may have been unlinked by its previous holder meanwhile.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        break
    previous = read_local_holder(output)
    if previous:
        log.warning(
            "taking over the stale lock of %s (pid %s on %s, started %s, %s: no longer running)",
            output,
            previous.get("pid"),
            previous.get("host"),
            previous.get("started"),
            previous.get("purpose"),
        )
    holder = _holder(purpose, uuid.uuid4().hex)
    data = json.dumps(holder, sort_keys=True).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    try:
        yield holder
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        if created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(output)  # only if the body left nothing behind


# ------------------------------------------------------------------------------ remote
def _fs(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def _claims(fs, claims_dir: str) -> list[tuple[str, dict[str, Any] | None]]:
    import pyarrow.fs as pafs

    out = []
    infos = fs.get_file_info(pafs.FileSelector(claims_dir, allow_not_found=True))
    for info in infos:
        if info.type != pafs.FileType.File or not info.base_name.startswith("claim-"):
            continue
        try:
            with fs.open_input_stream(info.path) as f:
                out.append((info.path, json.loads(f.read())))
        except (OSError, ValueError):
            out.append((info.path, None))  # vanished or half-visible: treat as live
    return out


def _write_claim(fs, path: str, holder: dict[str, Any]) -> None:
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(holder, sort_keys=True).encode())


def _stale(holder: dict[str, Any] | None, stale_after_s: float) -> bool:
    if holder is None:
        return False
    if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", 0))):
        return True
    return time.time() - float(holder.get("heartbeat", 0)) > stale_after_s


@contextlib.contextmanager
def _hold_remote(
    output: str,
    purpose: str,
    wait: bool,
    timeout_s: float | None,
    stale_after_s: float = STALE_AFTER_S,
) -> Iterator[dict[str, Any]]:
    fs, root = _fs(output)
    claims_dir = root.rstrip("/") + "/" + CLAIMS_DIR
    token = uuid.uuid4().hex
    mine = f"{claims_dir}/claim-{token}.json"
    holder = _holder(purpose, token)
    deadline = _deadline(wait, timeout_s)
    contention_retries = 5  # overlapping claimants both back off; retry a few times at once
    announced = False
    while True:
        holder["heartbeat"] = time.time()
        _write_claim(fs, mine, {**holder, "state": "claiming"})
        others = []
        for path, h in _claims(fs, claims_dir):
            if path == mine:
                continue
            if _stale(h, stale_after_s):
                log.warning("removing the stale lock claim of %s: %s", output, h)
                with contextlib.suppress(OSError):
                    fs.delete_file(path)
                continue
            others.append(h)
        if not others:
            break
        with contextlib.suppress(OSError):
            fs.delete_file(mine)
        held = [h for h in others if h and h.get("state") == "held"]
        if not held and contention_retries > 0:
            contention_retries -= 1
            time.sleep(random.uniform(0.05, 0.5))
            continue
        if _expired(deadline):
            raise OutputLockedError(output, (held or others)[0])
        if not announced:
            log.info(
                "waiting for the lock of %s: %s",
                output,
                OutputLockedError(output, (held or others)[0]),
            )
            announced = True
        time.sleep(POLL_S + random.uniform(0, POLL_S))
    holder["state"] = "held"
    _write_claim(fs, mine, holder)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            holder["heartbeat"] = time.time()
            with contextlib.suppress(OSError):
                _write_claim(fs, mine, holder)

    thread = threading.Thread(target=beat, name="output-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(OSError):
            fs.delete_file(mine)
