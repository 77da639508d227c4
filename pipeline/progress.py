"""Live progress of a run's phases, through `logging` (logger `ccpipe.progress`).

Why: a long run must show from its first second that it is alive and how far it is: files and
WARC records done, documents, docs/s and an ETA, per phase. On a terminal (stderr is a TTY)
one status line is redrawn in place about twice a second; otherwise (a log file, a pipe, a
Ray job) a plain log line is written every `every_s` seconds. A background thread keeps the
display moving while the driver waits for Ray, so silence never means "stuck".

ETA: from the input bytes of the files finished so far (file sizes are known up front), so it
appears once the first file of the phase is done ("ETA ?" before).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("ccpipe.progress")
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_cli_logging(quiet: bool = False) -> None:
    """stderr logging for the CLIs: INFO for our loggers (WARNING with --quiet), WARNING for
    libraries (Ray's banner and info lines never reach the user's terminal or stdout)."""
    root = logging.getLogger()
    if not any(getattr(h, "_ccpipe", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
        handler._ccpipe = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.WARNING if quiet else logging.INFO
    for name in ("ccpipe", "pipeline", "core", "lineage", "jobs", "mixes", "stages"):
        logging.getLogger(name).setLevel(level)


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """Counts of one phase; `update` from the driver loop, `close` at the end (or
    `Progress.close_all()` when the phase is left by an exception)."""

    _open: set[Progress] = set()

    def __init__(
        self,
        phase: str,
        total_files: int,
        enabled: bool = True,
        every_s: float = 10.0,
        total_bytes: int | None = None,
        stream: TextIO | None = None,
    ):
        self.phase = phase
        self.total = total_files
        self.total_bytes = total_bytes or 0
        self.enabled = enabled
        self.every = every_s
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.files = 0
        self.records = 0
        self.docs = 0
        self.bytes_done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if enabled:
            log.info(
                "%s: %d input files%s",
                phase,
                total_files,
                f", {self.total_bytes / 1e6:,.1f} MB" if self.total_bytes else "",
            )
            self._thread = threading.Thread(
                target=self._tick, daemon=True, name=f"progress-{phase}"
            )
            self._thread.start()
            Progress._open.add(self)

    def update(self, files: int = 0, records: int = 0, docs: int = 0, file_bytes: int = 0) -> None:
        with self._lock:
            self.files += files
            self.records += records
            self.docs += docs
            self.bytes_done += file_bytes

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta_s(self) -> float | None:
        if self.files >= self.total:
            return 0.0
        if self.total_bytes and self.bytes_done:
            return self.elapsed * (self.total_bytes - self.bytes_done) / self.bytes_done
        if self.files:
            return self.elapsed * (self.total - self.files) / self.files
        return None

    def line(self) -> str:
        with self._lock:
            rate = self.docs / self.elapsed if self.elapsed > 0 else 0.0
            eta = self.eta_s()
            return (
                f"{self.phase}: files {self.files}/{self.total}  records {self.records:,}  "
                f"documents {self.docs:,}  {rate:,.1f} docs/s  "
                f"elapsed {_fmt_s(self.elapsed)}  ETA {'?' if eta is None else _fmt_s(eta)}"
            )

    def _tick(self) -> None:
        period = 0.5 if self.tty else self.every
        while not self._stop.wait(period):
            self._emit()

    def _emit(self, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K" + ("\n" if final else ""))
            self.stream.flush()
        else:
            log.info("%s", self.line())

    def close(self) -> None:
        """Stop the display and write the phase's final line."""
        if not self.enabled or self._stop.is_set():
            return
        self._stop.set()
        Progress._open.discard(self)
        if self._thread is not None:
            self._thread.join()
        self._emit(final=True)

    @classmethod
    def close_all(cls) -> None:
        for p in list(cls._open):
            p.close()

    done = close
