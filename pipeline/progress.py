"""Progress lines for long runs: files, documents and docs/s, at most every few seconds."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, phase: str, total_files: int, enabled: bool = True, every_s: float = 3.0):
        self.phase = phase
        self.total = total_files
        self.enabled = enabled
        self.every = every_s
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.files = 0
        self.docs = 0

    def update(self, files: int = 0, docs: int = 0, force: bool = False) -> None:
        self.files += files
        self.docs += docs
        now = time.perf_counter()
        if self.enabled and (force or now - self.last >= self.every):
            self.last = now
            print(self.line(), file=sys.stderr, flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def line(self) -> str:
        rate = self.docs / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"[{self.phase}] files {self.files}/{self.total}  docs {self.docs}  "
            f"{rate:,.0f} docs/s  {self.elapsed:,.1f}s"
        )

    def done(self) -> None:
        self.update(force=True)
