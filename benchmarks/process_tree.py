"""CPU and peak RSS of a whole process tree (driver + Ray), sampled while a block runs.

Split out of benchmarks/run.py (used by its end-to-end section).
"""

from __future__ import annotations

import threading
import time

import psutil


class TreeSampler:
    """Samples a process tree every ``interval`` s: CPU of every process, peak RSS of each.

    Ray worker processes (``default_worker.py``, retitled ``ray::<what they run>``; not the
    ``ray::*Agent`` helpers) are the "workers" whose peak RSS is reported; their own children
    (the extraction watchdog) belong to them: worker CPU, and RSS added to the worker's in
    the same sample. raylet, GCS and agents are "Ray system" CPU. CPU is counted from the
    start snapshot (processes alive before) or from zero (processes born during the block);
    a process dying between two samples loses at most one interval of CPU.
    """

    def __init__(self, root: int | None = None, interval: float = 0.2) -> None:
        self.root = psutil.Process(root)
        self.interval = interval
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.peak_rss: dict[int, int] = {}
        self.workers: set[int] = set()
        self.helpers: set[int] = set()
        self._stop = threading.Event()

    def _procs(self) -> list[psutil.Process]:
        try:
            return self.root.children(recursive=True)
        except psutil.Error:
            return []

    def _sample(self) -> None:
        seen = []
        for p in self._procs():
            try:
                with p.oneshot():
                    ct = p.cpu_times()
                    rss = p.memory_info().rss
                    ppid = p.ppid()
                    cmd = p.cmdline()  # re-read: a Ray worker retitles itself after start
            except psutil.Error:
                continue
            name = (cmd[0] if cmd else "")[:60]
            if "default_worker.py" in " ".join(cmd[:3]) or (
                name.startswith("ray::") and "Agent" not in name
            ):
                self.workers.add(p.pid)
            self.last[p.pid] = ct.user + ct.system
            self.base.setdefault(p.pid, 0.0)
            seen.append((p.pid, ppid, rss, name))
        # a worker's own children (the extraction watchdog) are part of that worker: their
        # CPU is worker CPU and their RSS adds to the worker's in the same sample
        own = {pid: rss for pid, _pp, rss, _n in seen}
        for pid, ppid, rss, _name in seen:
            if ppid in self.workers and pid not in self.workers:
                self.helpers.add(pid)
                own[ppid] = own.get(ppid, 0) + rss
                own[pid] = 0
        for pid, _pp, _rss, name in seen:
            if own[pid] > self.peak_rss.get(pid, 0):
                self.peak_rss[pid] = own[pid]
                self.names[pid] = name

    def __enter__(self) -> TreeSampler:
        for p in self._procs():
            try:
                ct = p.cpu_times()
                self.base[p.pid] = ct.user + ct.system
            except psutil.Error:
                pass
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self._sample()

    def is_worker(self, pid: int) -> bool:
        return pid in self.workers

    def cpu(self, workers: bool | None = None) -> float:
        """CPU seconds of all processes, of Ray workers and their children (True), or of
        the rest (False: raylet, GCS, agents)."""
        return sum(
            max(0.0, self.last[pid] - self.base.get(pid, 0.0))
            for pid in self.last
            if workers is None or (pid in self.workers or pid in self.helpers) == workers
        )

    def worker_peaks(self) -> list[tuple[str, int]]:
        return sorted(
            ((self.names[p], r) for p, r in self.peak_rss.items() if self.is_worker(p)),
            key=lambda x: -x[1],
        )
