"""One benchmark command: per-stage and end-to-end throughput, memory, dedup scale, peer run.

    python -m benchmarks.run [--input WARC ...] [--profile quality|fast|both] [--limit N]
                             [--json out.json] [--peer datatrove] [--workers 1,2]

What it measures (README.md beside this file explains each number):

* **stages** (per profile, one process, one core): the stage classes of ``stages/`` run on the
  same batches in sequence (read -> extract -> lang -> quality -> signatures -> PII ->
  tokenize; each stage sees what the previous one kept), models loaded once, a warm-up batch
  excluded. Wall (perf_counter) and CPU (process_time) seconds, docs/s and MB/s of HTML.
* **trafilatura alone**: a bare ``trafilatura.extract`` loop over the same pages (the
  baseline of the "quality e2e >= 0.8x trafilatura alone" target).
* **e2e**: the real ``pipeline.run.run_pipeline`` on 1 and 2 workers (``execution.num_workers``),
  output to a temp dir, Ray started once, ``read.chunk_records`` small enough that phase 1 has
  chunks to share out. CPU time = driver + every process of the Ray tree (psutil), peak RSS of
  each Ray worker process sampled every 0.2 s.
* **dedup**: phase-2 clustering on synthetic signatures (``benchmarks.dedup_scale``), time and
  peak memory per million documents.
* **extraction quality**: snippet precision/recall on trafilatura-eval (the stage run's
  extraction output when the input is that WARC, else ``benchmarks.extraction_quality.score``).
* **peer** (``--peer datatrove``): ``benchmarks/datatrove_peer.py`` in benchmarks/.venv-datatrove
  (``bash benchmarks/setup_datatrove.sh``) on the same input, and the ratio ours/datatrove.

The machine may be shared: every docs/s is given on wall time and on CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from benchmarks.data import real_data_dir
from benchmarks.process_tree import TreeSampler
from benchmarks.stage_timing import (
    StageTime,
    Timer,
    _rate,
    _ratio,
    read_batches,
    time_stages,
    time_trafilatura_alone,
)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core per process, as in Ray
os.environ.setdefault("RAYON_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
DATA = real_data_dir()
EVAL_WARC = DATA / "extraction" / "trafilatura-eval.warc.gz"
PEER_VENV = HERE / ".venv-datatrove"
PEER_SCRIPT = HERE / "datatrove_peer.py"
PROFILES = ("quality", "fast")
# The stage rows of a profile: reading, then the default chain (stage names as in
# stages/registry.py), then the phase-3 stages.
STAGES = ("read", "extract", "lang", "quality", "signatures", "pii", "tokenize")
DOCS_10TB = 300_000_000  # ~300 M HTML responses per 10 TB of CommonCrawl WARC
CLUSTER_CORES = 1000

TARGETS = {
    "quality_vs_trafilatura": 0.8,
    "quality_vs_datatrove": 2.0,
    "fast_vs_quality": 5.0,
    "scaling_2_vs_1": 1.7,
    "peak_rss_worker_gb": 1.5,
}


# --------------------------------------------------------------------------- helpers
# --------------------------------------------------------------------------- inputs
def default_inputs() -> list[str]:
    """trafilatura-eval (989 real pages) if the shared data is there, else the shipped sample."""
    if EVAL_WARC.is_file():
        return [str(EVAL_WARC.resolve())]
    from pipeline.sample import sample_paths

    return sample_paths()


def limit_inputs(paths: list[str], limit: int, workdir: Path) -> list[str]:
    """The inputs cut after their first ``limit`` HTML documents (in order across files).

    A cut file is the byte prefix of the original up to the end of the limit-th document's
    record (records are whole gzip members), so the pipeline, the stage run and the peer all
    read exactly the same records.
    """
    from stages.warc_reader import ReadConfig, read_warc

    out: list[str] = []
    left = limit
    for path in paths:
        if left <= 0:
            break
        end = None
        n = 0
        for chunk in read_warc(path, ReadConfig()):
            d = chunk.docs
            if n + d.num_rows >= left:
                i = left - n - 1
                end = d.column("source_offset")[i].as_py() + d.column("source_length")[i].as_py()
                n = left
                break
            n += d.num_rows
        left -= n
        if end is None:
            out.append(path)
            continue
        workdir.mkdir(parents=True, exist_ok=True)
        cut = workdir / f"limit{limit}-{Path(path).name}"
        with open(path, "rb") as src, open(cut, "wb") as dst:
            dst.write(src.read(end))
        out.append(str(cut))
    return out


# --------------------------------------------------------------------------- extraction quality
def snippet_scores(
    extractor: str, extracted: pa.Table | None, limit: int | None, eval_input: bool
) -> dict[str, Any] | None:
    """Snippet precision/recall of the profile's extractor on trafilatura-eval."""
    from benchmarks import extraction_quality as eq

    if not eq.SNIPPETS.is_file():
        return None
    snippets = json.loads(eq.SNIPPETS.read_text())
    if not eval_input or extracted is None:
        s = eq.score(extractor, eq.load_pages(limit), snippets)
    else:  # the stage run already extracted these pages: count as eq.score does
        s = eq.Score(extractor, extracted.num_rows, 0.0)
        for url, text, reason in zip(
            extracted["url"].to_pylist(),
            extracted["text"].to_pylist(),
            extracted["drop_reason"].to_pylist(),
            strict=True,
        ):
            truth = snippets.get(url)
            if truth is None:
                continue
            s.dropped += reason is not None
            body = eq._norm(text or "")
            ok = True
            for snip in truth.get("with", []):
                hit = eq._norm(snip) in body
                s.tp += hit
                s.fn += not hit
                ok &= hit
            for snip in truth.get("without", []):
                hit = eq._norm(snip) in body
                s.fp += hit
                s.tn += not hit
                ok &= not hit
            s.perfect += ok
    return {
        "extractor": extractor,
        "pages": s.docs,
        "precision": round(s.precision, 4),
        "recall": round(s.recall, 4),
        "f1": round(s.f1, 4),
        "perfect_share": round(s.perfect / max(s.docs, 1), 4),
    }


# --------------------------------------------------------------------------- end to end
def run_e2e(
    profile: str,
    paths: list[str],
    workers: int,
    chunk_records: int,
    overrides: list[str],
    tmp: Path,
) -> dict[str, Any]:
    """The real pipeline on ``paths`` with ``workers`` actors; Ray must already be up."""
    from pipeline.config import load_config
    from pipeline.run import run_pipeline

    out = tmp / f"e2e-{profile}-{workers}w"
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(
        None,
        [
            f"input.paths={json.dumps(paths)}",
            f"output.dir={json.dumps(str(out))}",
            f"execution.num_workers={workers}",
            "execution.progress=false",
            f"read.chunk_records={chunk_records}",
            *overrides,
        ],
        profile=profile,
    )
    with TreeSampler() as tree, Timer() as t:
        res = run_pipeline(cfg)
    read_drops = sum(v for k, v in res.counts.items() if k.startswith("read."))
    docs = res.records_read - read_drops
    cpu_workers, cpu_other = tree.cpu(workers=True), tree.cpu(workers=False)
    cpu = t.cpu + cpu_workers + cpu_other
    peaks = tree.worker_peaks()
    shutil.rmtree(out, ignore_errors=True)
    return {
        "profile": profile,
        "workers": workers,
        "chunk_records": chunk_records,
        "status": res.status,
        "records_read": res.records_read,
        "docs": docs,
        "docs_kept": res.docs_kept,
        "tokens": res.tokens,
        "wall_s": round(t.wall, 3),
        "phase_seconds": res.phase_seconds,
        "cpu_s": round(cpu, 3),
        "cpu_driver_s": round(t.cpu, 3),
        "cpu_ray_workers_s": round(cpu_workers, 3),
        "cpu_ray_system_s": round(cpu_other, 3),
        "docs_per_s": _rate(docs, t.wall),
        "docs_per_cpu_s": _rate(docs, cpu),
        "peak_rss_worker_mb": round(peaks[0][1] / 2**20, 1) if peaks else None,
        "peak_rss_worker_process": peaks[0][0] if peaks else None,
        "worker_processes_seen": len(peaks),
    }


def run_startup(
    profile: str, paths: list[str], chunk_records: int, overrides: list[str], tmp: Path
) -> dict[str, Any]:
    """Start-up cost: wall of the CLI on a few records in a fresh process (Ray init, actors,
    model loads, phase barriers, lineage): what a nightly run of a few files pays every time."""
    out = tmp / f"startup-{profile}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        *paths,
        "--output",
        str(out),
        "--profile",
        profile,
        "--workers",
        "1",
        "--set",
        f"read.chunk_records={chunk_records}",
        "--set",
        "execution.progress=false",
    ]
    for o in overrides:
        cmd += ["--set", o]
    with TreeSampler() as tree, Timer() as t:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    from stages.warc_reader import ReadConfig, read_warc

    docs = sum(c.docs.num_rows for pth in paths for c in read_warc(pth, ReadConfig()))
    return {
        "profile": profile,
        "docs": docs,
        "exit_status": proc.returncode,
        "wall_s": round(t.wall, 3),
        "cpu_s": round(tree.cpu(), 3),
        "error": proc.stderr[-500:] if proc.returncode else None,
    }


def marginal(full: dict[str, Any], small: dict[str, Any]) -> dict[str, Any]:
    """Steady-state e2e rate: (full - small run) docs over (full - small) seconds.

    Both runs pay the same fixed costs (actor start-up and model loads per phase, Ray Data
    planning, lineage open/publish); the difference is what more documents cost, which is
    what a 10 TB run pays almost entirely.
    """
    d = full["docs"] - small["docs"]
    wall = full["wall_s"] - small["wall_s"]
    cpu = full["cpu_s"] - small["cpu_s"]
    return {
        "profile": full["profile"],
        "docs": d,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "docs_per_s": _rate(d, wall),
        "docs_per_cpu_s": _rate(d, cpu),
        "fixed_wall_s": round(small["wall_s"] - small["docs"] * wall / d, 3) if d else None,
        "fixed_cpu_s": round(small["cpu_s"] - small["docs"] * cpu / d, 3) if d else None,
    }


# --------------------------------------------------------------------------- dedup phase 2
def dedup_scale(n_docs: int) -> dict[str, Any]:
    """Phase-2 clustering of ``n_docs`` synthetic signatures (5 % exact, 10 % near dups)."""
    from benchmarks.dedup_scale import PeakRSS, synthetic
    from stages.dedup_cluster import dedup_local

    table, n_ex, n_nr = synthetic(n_docs, 0.05, 0.10, 3)
    base = psutil.Process().memory_info().rss
    with PeakRSS() as mem, Timer() as t:
        _, stats = dedup_local(table)
    per_m = 1e6 / n_docs
    return {
        "docs": n_docs,
        "planted_exact": n_ex,
        "planted_near": n_nr,
        "wall_s": round(t.wall, 3),
        "cpu_s": round(t.cpu, 3),
        "input_mb": round(table.nbytes / 2**20, 1),
        "peak_rss_mb": round(mem.peak / 2**20, 1),
        "peak_above_input_mb": round((mem.peak - base) / 2**20, 1),
        "wall_s_per_million": round(t.wall * per_m, 2),
        "cpu_s_per_million": round(t.cpu * per_m, 2),
        "peak_above_input_mb_per_million": round((mem.peak - base) / 2**20 * per_m, 1),
        "stats": {k: v for k, v in stats.items() if isinstance(v, (int, float, str))},
    }


# --------------------------------------------------------------------------- peer
def run_peer_datatrove(
    paths: list[str], tmp: Path, timeout_s: float, extract_timeout: float
) -> dict[str, Any]:
    """datatrove_peer.py in its own venv; an ``error`` key says why it could not run."""
    from stages.langid import default_model_path

    py = PEER_VENV / "bin" / "python"
    if not py.is_file():
        return {
            "engine": "datatrove",
            "error": f"peer venv missing: {PEER_VENV} (create it with "
            "`bash benchmarks/setup_datatrove.sh`; needs PyPI only)",
        }
    cmd = [
        str(py),
        str(PEER_SCRIPT),
        "--lid-model",
        default_model_path(),
        "--workdir",
        str(tmp / "datatrove"),
        "--timeout",
        str(extract_timeout),
    ]
    for p in paths:
        cmd += ["--input", p]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"engine": "datatrove", "error": f"timed out after {timeout_s:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("DATATROVE_RESULT "):
            out = json.loads(line.split(" ", 1)[1])
            shutil.rmtree(tmp / "datatrove", ignore_errors=True)
            return out
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"engine": "datatrove", "error": f"exit {proc.returncode}: " + " | ".join(tail)}


# --------------------------------------------------------------------------- targets
def evaluate_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: measured ratios on wall and CPU time, met or not, and on which basis."""
    e2e = {(r["profile"], r["workers"]): r for r in res.get("e2e", [])}
    prof = res.get("profiles", {})
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        target: float,
        wall: float | None,
        cpu: float | None,
        basis: str,
        note: str,
        higher_is_better: bool = True,
    ) -> None:
        val = cpu if basis == "cpu" else wall
        met = None if val is None else (val >= target if higher_is_better else val <= target)
        out.append(
            {
                "target": name,
                "goal": target,
                "wall_ratio": wall,
                "cpu_ratio": cpu,
                "basis": basis,
                "met": met,
                "note": note,
            }
        )

    q1 = e2e.get(("quality", 1))
    traf = prof.get("quality", {}).get("trafilatura_alone")
    if q1 and traf:
        add(
            "quality e2e / trafilatura alone >= 0.8",
            TARGETS["quality_vs_trafilatura"],
            _ratio(q1["docs_per_s"], traf["docs_per_s"]),
            _ratio(q1["docs_per_cpu_s"], traf["docs_per_cpu_s"]),
            "cpu",
            "1 worker vs one bare trafilatura loop; e2e also reads, filters, dedups, scrubs, "
            "tokenizes, writes and commits lineage",
        )
    peer = res.get("peer")
    if q1 and peer and not peer.get("error"):
        add(
            "quality e2e / datatrove >= 2",
            TARGETS["quality_vs_datatrove"],
            _ratio(q1["docs_per_s"], peer["docs_per_s"]),
            _ratio(q1["docs_per_cpu_s"], peer["docs_per_cpu_s"]),
            "cpu",
            "1 worker vs 1 datatrove task; datatrove runs no MinHash, tokenizer or lineage",
        )
    f1 = e2e.get(("fast", 1))
    if q1 and f1:
        add(
            "fast e2e / quality e2e >= 5",
            TARGETS["fast_vs_quality"],
            _ratio(f1["docs_per_s"], q1["docs_per_s"]),
            _ratio(f1["docs_per_cpu_s"], q1["docs_per_cpu_s"]),
            "cpu",
            "1 worker each",
        )
    m = res.get("e2e_marginal", {})
    qm, fm = m.get("quality"), m.get("fast")
    steady = "steady state: full minus small e2e run (fixed start-up costs removed)"
    if qm and traf:
        add(
            "quality steady / trafilatura alone >= 0.8",
            TARGETS["quality_vs_trafilatura"],
            _ratio(qm["docs_per_s"], traf["docs_per_s"]),
            _ratio(qm["docs_per_cpu_s"], traf["docs_per_cpu_s"]),
            "cpu",
            steady,
        )
    if qm and peer and not peer.get("error"):
        add(
            "quality steady / datatrove >= 2",
            TARGETS["quality_vs_datatrove"],
            _ratio(qm["docs_per_s"], peer["docs_per_s"]),
            _ratio(qm["docs_per_cpu_s"], peer["docs_per_cpu_s"]),
            "cpu",
            steady + "; datatrove's whole run (its start-up is ~2 s)",
        )
    if qm and fm:
        add(
            "fast steady / quality steady >= 5",
            TARGETS["fast_vs_quality"],
            _ratio(fm["docs_per_s"], qm["docs_per_s"]),
            _ratio(fm["docs_per_cpu_s"], qm["docs_per_cpu_s"]),
            "cpu",
            steady,
        )
    for p in PROFILES:
        a, b = e2e.get((p, 1)), e2e.get((p, 2))
        if a and b:
            add(
                f"{p}: 2 workers / 1 worker >= 1.7",
                TARGETS["scaling_2_vs_1"],
                _ratio(b["docs_per_s"], a["docs_per_s"]),
                None,
                "wall",
                "wall time only (CPU time does not show scaling); on a shared 2-core machine "
                "other users' load caps it",
            )
    peaks = [r["peak_rss_worker_mb"] for r in res.get("e2e", []) if r.get("peak_rss_worker_mb")]
    if peaks:
        gb = round(max(peaks) / 1024, 3)
        add(
            "peak RSS per worker <= 1.5 GB",
            TARGETS["peak_rss_worker_gb"],
            gb,
            None,
            "wall",
            "max over Ray worker processes of all e2e runs (RSS includes shared pages)",
            higher_is_better=False,
        )
    return out


def budget(res: dict[str, Any]) -> dict[str, Any]:
    """Where one document's CPU goes, per profile: each stage, then everything else.

    Stage CPU ms per document = the stage's CPU seconds in the one-core stage run over the
    documents read (so the rows add up). The end-to-end CPU per document is steady state:
    the full run minus the small `--marginal` run, else minus the `--startup` run, else the
    full run itself (start-up included, said in ``basis``). ``overhead`` = end-to-end minus
    the sum of the stages: Ray tasks/actors, Arrow <-> Python conversions between operators,
    object store copies, phase 2 clustering, shard writing and the lineage commit.
    """
    out: dict[str, Any] = {}
    for p, prof in res.get("profiles", {}).items():
        docs = prof["chain"]["docs"]
        if not docs:
            continue
        rows = {k: v["cpu_s"] * 1000 / docs for k, v in prof["stages"].items()}
        full = [x for x in res.get("e2e", []) if x["profile"] == p and x["workers"] == 1]
        m = res.get("e2e_marginal", {}).get(p)
        st = res.get("e2e_startup", {}).get(p)
        e2e_ms, basis = None, None
        if m and m["docs"] > 0 and m["cpu_s"] > 0:
            e2e_ms, basis = m["cpu_s"] * 1000 / m["docs"], "e2e steady state (full - marginal run)"
        elif full and st and full[0]["docs"] > st["docs"] and full[0]["cpu_s"] > st["cpu_s"]:
            e2e_ms = (full[0]["cpu_s"] - st["cpu_s"]) * 1000 / (full[0]["docs"] - st["docs"])
            basis = "e2e steady state (full - start-up run)"
        elif full and full[0]["docs"]:
            e2e_ms, basis = full[0]["cpu_s"] * 1000 / full[0]["docs"], "e2e incl. start-up"
        total = e2e_ms if e2e_ms is not None else sum(rows.values())
        table = [
            {
                "part": k,
                "cpu_ms_per_doc": round(v, 3),
                "share": round(v / total, 4) if total else None,
            }
            for k, v in rows.items()
        ]
        overhead = None
        if e2e_ms is not None:
            overhead = e2e_ms - sum(rows.values())
            table.append(
                {
                    "part": "overhead",
                    "cpu_ms_per_doc": round(overhead, 3),
                    "share": round(overhead / total, 4) if total else None,
                }
            )
        extraction = sum(
            v for k, v in rows.items() if k in ("extract", "trafilatura", "resiliparse")
        )
        out[p] = {
            "docs": docs,
            "basis": basis or "stage chain only (no e2e run)",
            "rows": table,
            "stages_cpu_ms_per_doc": round(sum(rows.values()), 3),
            "e2e_cpu_ms_per_doc": round(e2e_ms, 3) if e2e_ms is not None else None,
            "overhead_cpu_ms_per_doc": round(overhead, 3) if overhead is not None else None,
            "non_extraction_cpu_ms_per_doc": round(total - extraction, 3),
            "startup_wall_s": st["wall_s"] if st else None,
            "startup_cpu_s": st["cpu_s"] if st else None,
            "startup_docs": st["docs"] if st else None,
        }
    return out


def projection(res: dict[str, Any]) -> dict[str, Any]:
    """Core-hours and 1,000-core wall time for ~300 M documents (10 TB) per profile."""
    out: dict[str, Any] = {}
    for p, r in res.get("profiles", {}).items():
        e2e = [x for x in res.get("e2e", []) if x["profile"] == p and x["workers"] == 1]
        m = res.get("e2e_marginal", {}).get(p)
        if m and m["docs_per_cpu_s"] and m["docs_per_cpu_s"] > 0:
            rate, basis = m["docs_per_cpu_s"], "e2e steady state, CPU time"
        elif e2e and e2e[0]["docs_per_cpu_s"]:
            rate, basis = e2e[0]["docs_per_cpu_s"], "e2e 1 worker incl. start-up, CPU time"
        else:
            rate, basis = r["chain"]["docs_per_cpu_s"], "stage chain, CPU time"
        if not rate:
            continue
        core_h = DOCS_10TB / rate / 3600
        out[p] = {
            "docs": DOCS_10TB,
            "docs_per_core_s": rate,
            "basis": basis,
            "core_hours": round(core_h),
            "wall_hours_on_1000_cores": round(core_h / CLUSTER_CORES, 2),
        }
    return out


# --------------------------------------------------------------------------- report
def format_report(res: dict[str, Any]) -> str:
    lines = [
        f"input: {', '.join(res['inputs'])}  ({res['docs']} HTML docs, "
        f"{res['html_mb']:.1f} MB HTML, {res['records']} records)"
    ]
    for p, r in res.get("profiles", {}).items():
        lines.append(f"\n== profile {p}: stages on one core (warm-up excluded) ==")
        lines.append(
            f"{'stage':<12}{'docs in':>8}{'wall s':>9}{'cpu s':>9}{'docs/s':>9}"
            f"{'docs/cpu-s':>11}{'MB/s':>8}{'MB/cpu-s':>9}"
        )
        for name, s in r["stages"].items():
            lines.append(
                f"{name:<12}{s['docs_in']:>8}{s['wall_s']:>9.2f}{s['cpu_s']:>9.2f}"
                f"{s['docs_per_s'] or 0:>9.1f}{s['docs_per_cpu_s'] or 0:>11.1f}"
                f"{s['html_mb_per_s'] or 0:>8.2f}{s['html_mb_per_cpu_s'] or 0:>9.2f}"
            )
        c = r["chain"]
        lines.append(
            f"{'chain':<12}{c['docs']:>8}{c['wall_s']:>9.2f}{c['cpu_s']:>9.2f}"
            f"{c['docs_per_s'] or 0:>9.1f}{c['docs_per_cpu_s'] or 0:>11.1f}"
            f"{'':>8}{c['html_mb_per_cpu_s'] or 0:>9.2f}"
        )
        lines.append(
            f"model load {c['model_load_s']:.1f} s; peak RSS of this single process "
            f"(holds all input batches) {c['peak_rss_mb']:.0f} MB"
        )
        t = r.get("trafilatura_alone")
        if t:
            lines.append(
                f"trafilatura alone: {t['docs']} docs {t['wall_s']:.1f} s wall "
                f"{t['cpu_s']:.1f} s cpu -> {t['docs_per_s']} docs/s, "
                f"{t['docs_per_cpu_s']} docs/cpu-s"
            )
        q = r.get("extraction_quality")
        if q:
            lines.append(
                f"extraction quality ({q['extractor']}, {q['pages']} eval pages): "
                f"precision {q['precision']:.3f} recall {q['recall']:.3f} "
                f"f1 {q['f1']:.3f}"
            )
    if res.get("e2e"):
        lines.append(
            f"\n== end to end (run_pipeline, read.chunk_records="
            f"{res['e2e'][0]['chunk_records']}) =="
        )
        lines.append(
            f"{'profile':<9}{'workers':>8}{'docs':>6}{'kept':>6}{'wall s':>8}"
            f"{'cpu s':>8}{'docs/s':>8}{'docs/cpu-s':>11}{'peak RSS/worker MB':>20}"
            f"  phases s"
        )
        for e in res["e2e"]:
            ph = " ".join(f"{k[-1]}:{v:.1f}" for k, v in e["phase_seconds"].items())
            lines.append(
                f"{e['profile']:<9}{e['workers']:>8}{e['docs']:>6}{e['docs_kept']:>6}"
                f"{e['wall_s']:>8.1f}{e['cpu_s']:>8.1f}{e['docs_per_s'] or 0:>8.1f}"
                f"{e['docs_per_cpu_s'] or 0:>11.1f}{e['peak_rss_worker_mb'] or 0:>20.0f}  {ph}"
            )
    for p, m in res.get("e2e_marginal", {}).items():
        lines.append(
            f"{p:<9} steady state (full minus first-{res['e2e_small'][0]['docs']}-docs "
            f"run): {m['docs']} docs {m['wall_s']:.1f} s wall {m['cpu_s']:.1f} s cpu -> "
            f"{m['docs_per_s']} docs/s, {m['docs_per_cpu_s']} docs/cpu-s; fixed cost "
            f"per run ~{m['fixed_wall_s']} s wall, {m['fixed_cpu_s']} s cpu"
        )
    for p, b in res.get("budget", {}).items():
        lines.append(f"\n== budget {p}: CPU ms per document ({b['basis']}; {b['docs']} docs) ==")
        lines.append(f"{'part':<12}{'cpu ms/doc':>11}{'share':>8}")
        for r in b["rows"]:
            share = f"{r['share'] * 100:7.1f}%" if r["share"] is not None else f"{'':>8}"
            lines.append(f"{r['part']:<12}{r['cpu_ms_per_doc']:>11.2f}{share}")
        if b["e2e_cpu_ms_per_doc"] is not None:
            lines.append(
                f"{'total e2e':<12}{b['e2e_cpu_ms_per_doc']:>11.2f}   (overhead = e2e "
                f"- sum of stages: Ray, Arrow conversions, phase 2, shards, lineage)"
            )
        lines.append(
            f"everything except extraction: {b['non_extraction_cpu_ms_per_doc']:.2f} "
            f"ms/doc (target <= 5)"
        )
        if b["startup_wall_s"] is not None:
            lines.append(
                f"start-up (a {b['startup_docs']}-doc run, 1 worker): "
                f"{b['startup_wall_s']:.1f} s wall, {b['startup_cpu_s']:.1f} s cpu "
                f"(target <= 8 s wall)"
            )
    d = res.get("dedup")
    if d:
        lines.append(f"\n== dedup phase 2 (driver clustering, {d['docs']:,} synthetic docs) ==")
        lines.append(
            f"{d['wall_s']:.1f} s wall, {d['cpu_s']:.1f} s cpu; per million docs: "
            f"{d['wall_s_per_million']:.1f} s wall, {d['cpu_s_per_million']:.1f} s cpu, "
            f"{d['peak_above_input_mb_per_million']:.0f} MB above the input "
            f"(input {d['input_mb']:.0f} MB, process peak {d['peak_rss_mb']:.0f} MB)"
        )
    peer = res.get("peer")
    if peer:
        lines.append("\n== peer: datatrove (1 task) ==")
        if peer.get("error"):
            lines.append(f"not run: {peer['error']}")
        else:
            lines.append(
                f"{peer['docs_read']} docs read, {peer['docs_written']} written, "
                f"{peer['wall_s']:.1f} s wall, {peer['cpu_s']:.1f} s cpu -> "
                f"{peer['docs_per_s']} docs/s, {peer['docs_per_cpu_s']} docs/cpu-s; "
                f"peak RSS {peer['peak_rss_mb']:.0f} MB; {peer['versions']}"
            )
    if res.get("targets"):
        lines.append("\n== targets ==")
        for t in res["targets"]:
            met = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
            lines.append(
                f"{met:<8} {t['target']:<40} wall {t['wall_ratio']}  cpu "
                f"{t['cpu_ratio']}  (judged on {t['basis']}; {t['note']})"
            )
    if res.get("projection"):
        lines.append(f"\n== projection: {DOCS_10TB / 1e6:.0f} M docs (~10 TB WARC) ==")
        for p, j in res["projection"].items():
            lines.append(
                f"{p:<8} {j['docs_per_core_s']} docs/core-s ({j['basis']}) -> "
                f"{j['core_hours']:,} core-hours, {j['wall_hours_on_1000_cores']} h "
                f"on {CLUSTER_CORES:,} cores"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--input", nargs="+", help="WARC files (default: trafilatura-eval, else the shipped sample)"
    )
    ap.add_argument("--profile", choices=[*PROFILES, "both"], default="both")
    ap.add_argument("--limit", type=int, help="first N HTML documents of the input only")
    ap.add_argument("--json", help="write the results here (default: a file in the temp dir)")
    ap.add_argument("--peer", choices=["datatrove"], help="also run the peer in its venv")
    ap.add_argument("--workers", default="1,2", help="e2e worker counts, comma-separated")
    ap.add_argument(
        "--chunk-records",
        type=int,
        default=100,
        help="read.chunk_records for the stage batches and the e2e runs",
    )
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for the e2e runs",
    )
    ap.add_argument(
        "--marginal",
        type=int,
        default=100,
        help="also run e2e (1 worker) on the first N docs; the difference to the "
        "full run is the steady-state cost without Ray/actor start-up (0 = skip)",
    )
    ap.add_argument(
        "--startup",
        type=int,
        default=12,
        help="also run e2e (1 worker) on the first N docs per profile: its wall is "
        "the start-up cost, reported apart from steady state (0 = skip)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small run: --limit 40 (unless given), 1 worker, no marginal run, "
        "3,000 dedup docs, no trafilatura-alone baseline",
    )
    ap.add_argument(
        "--dedup-docs",
        type=int,
        default=1_000_000,
        help="synthetic docs for the phase-2 measurement (0 = skip)",
    )
    ap.add_argument("--no-stages", action="store_true", help="skip the per-stage timing")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs")
    ap.add_argument("--no-baseline", action="store_true", help="skip trafilatura alone")
    ap.add_argument("--no-extraction-quality", action="store_true")
    ap.add_argument("--peer-timeout", type=float, default=3600.0, help="seconds")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return ap


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    """--quick: a run of a minute or two (smoke tests, a first look), same sections."""
    if args.quick:
        args.limit = args.limit or 40
        args.workers, args.marginal, args.no_baseline = "1", 0, True
        args.dedup_docs = min(args.dedup_docs, 3000)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; prints the table, writes JSON, returns the result dict."""
    args = apply_quick(build_parser().parse_args(argv))
    from pipeline.config import load_config

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    profiles = list(PROFILES) if args.profile == "both" else [args.profile]
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="ccpipe-bench-"))
    paths = [str(Path(p).resolve()) for p in (args.input or default_inputs())]
    for p in paths:
        if not Path(p).is_file():
            raise SystemExit(f"input not found: {p}")
    if args.limit:
        paths = limit_inputs(paths, args.limit, tmp / "input")
    eval_input = [Path(p).name for p in (args.input or default_inputs())] == [EVAL_WARC.name]
    out = (
        Path(args.json)
        if args.json
        else Path(tempfile.gettempdir()) / (f"ccpipe-bench-{time.strftime('%Y%m%dT%H%M%S')}.json")
    )

    def save() -> None:  # after every section: a long run that is stopped keeps its numbers
        out.write_text(json.dumps(res, indent=2, default=str))

    res: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "inputs": paths,
        "limit": args.limit,
        "profiles": {},
        "e2e": [],
    }
    try:
        # ---- read once per distinct read config; stages per profile
        cache: dict[str, tuple[list[pa.Table], StageTime, int]] = {}
        for p in profiles:
            cfg = load_config(None, [f"read.chunk_records={args.chunk_records}"], profile=p)
            key = cfg.read.model_dump_json()
            if key not in cache:
                log(f"reading {len(paths)} input file(s) ({cfg.read.library})")
                cache[key] = read_batches(paths, cfg.read)
            batches, read, records = cache[key]
            res.update(
                docs=read.docs_in, html_mb=round(read.html_bytes_in / 1e6, 3), records=records
            )
            if args.no_stages or not batches:
                continue
            log(f"profile {p}: timing stages on {read.docs_in} docs")
            prof, extracted = time_stages(cfg, batches, read)
            if p == "quality" and not args.no_baseline:
                log("trafilatura alone")
                prof["trafilatura_alone"] = time_trafilatura_alone(batches, cfg)
            if not args.no_extraction_quality:
                prof["extraction_quality"] = snippet_scores(
                    cfg.extract.extractor, extracted, args.limit, eval_input
                )
            res["profiles"][p] = prof
            save()
        cache.clear()

        # ---- peer
        if args.peer == "datatrove":
            log("datatrove peer")
            cfg = load_config(None, [], profile="quality")
            res["peer"] = run_peer_datatrove(paths, tmp, args.peer_timeout, cfg.extract.timeout_s)
            save()

        # ---- end to end
        if not args.no_e2e and workers:
            import ray

            from pipeline.plan import ensure_ray

            if args.startup:
                res["e2e_startup"] = {}
                few = limit_inputs(paths, args.startup, tmp / "startup")
                for p in profiles:
                    log(
                        f"e2e {p} start-up: `python -m pipeline run` on the first "
                        f"{args.startup} docs (fresh process, its own Ray)"
                    )
                    res["e2e_startup"][p] = run_startup(
                        p, few, args.chunk_records, args.overrides, tmp
                    )
                    save()
            started = not ray.is_initialized()
            log("starting Ray" if started else "using the running Ray")
            ensure_ray(num_cpus=max(max(workers), 2) if started else None)
            try:
                for p in profiles:
                    for w in workers:
                        log(f"e2e {p} with {w} worker(s)")
                        res["e2e"].append(
                            run_e2e(p, paths, w, args.chunk_records, args.overrides, tmp)
                        )
                        save()
                if args.marginal and res.get("docs", 0) >= 2 * args.marginal:
                    small = limit_inputs(paths, args.marginal, tmp / "marginal")
                    res["e2e_small"], res["e2e_marginal"] = [], {}
                    for p in profiles:
                        log(f"e2e {p} with 1 worker on the first {args.marginal} docs")
                        r = run_e2e(p, small, 1, args.chunk_records, args.overrides, tmp)
                        res["e2e_small"].append(r)
                        full = [x for x in res["e2e"] if x["profile"] == p and x["workers"] == 1]
                        if full:
                            res["e2e_marginal"][p] = marginal(full[0], r)
            finally:
                if started:
                    ray.shutdown()

        # ---- dedup phase 2
        if args.dedup_docs:
            log(f"dedup phase 2 on {args.dedup_docs:,} synthetic docs")
            res["dedup"] = dedup_scale(args.dedup_docs)
            save()

        res["targets"] = evaluate_targets(res)
        res["projection"] = projection(res)
        res["budget"] = budget(res)
        res["host"]["load_avg_end"] = os.getloadavg()
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save()
    print(format_report(res))
    print(f"\nJSON: {out}")
    res["json_path"] = str(out)
    return res


if __name__ == "__main__":
    main()
