"""What a run reports: its result record, the document funnel and the printed summary.

Split out of pipeline/run.py: the CLI, the jobs and the lineage `runs` row all read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lineage.schema import stage_of


@dataclass
class RunResult:
    run_id: str
    output: str
    lineage_path: str
    files_total: int
    files_skipped: int
    files_processed: int
    counts: dict[str, int] = field(default_factory=dict)
    records_read: int = 0
    docs_kept: int = 0
    tokens: int = 0
    seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    status: str = "succeeded"
    engine: str = ""  # "ray" or "local" (execution.engine); "" when nothing was processed

    bad_inputs: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        """WARC records (of every type) per second of the whole run."""
        return self.records_read / self.seconds if self.seconds else 0.0


def run_summary(r: RunResult) -> dict[str, Any]:
    """The run's numbers as stored in lineage (`runs.summary`) and printed by --json."""
    return {
        "files_total": r.files_total,
        "files_skipped": r.files_skipped,
        "files_processed": r.files_processed,
        "records_read": r.records_read,
        "docs_kept": r.docs_kept,
        "tokens": r.tokens,
        "counts": r.counts,
        **funnel(r),
        "bad_inputs": r.bad_inputs,
        "seconds": round(r.seconds, 3),
        "phase_seconds": r.phase_seconds,
        "engine": r.engine,
    }


def funnel(r: RunResult) -> dict[str, int]:
    """Records read -> HTML responses -> documents extracted -> documents kept.

    WARC records are not documents: `read.*` reasons count records the reader did not turn
    into documents (requests, metadata, non-HTML, truncated...); `file.*` reasons count files.
    Every other reason counts documents.
    """
    read_drops = sum(n for k, n in r.counts.items() if k.startswith("read."))
    pre_extract = sum(
        n for k, n in r.counts.items() if k.startswith("extract.") or k == "url.deleted"
    )
    html = r.records_read - read_drops
    return {
        "records_read": r.records_read,
        "html_responses": html,
        "documents_extracted": html - pre_extract,
        "documents_kept": r.docs_kept,
    }


def summary_table(r: RunResult) -> str:
    """The summary printed at the end of a run: the funnel, then every drop reason."""
    f = funnel(r)
    lines = [
        f"run {r.run_id}: {r.status} in {r.seconds:,.1f}s "
        f"({r.records_per_s:,.0f} records/s end to end)",
        f"inputs: {r.files_total} files ({r.files_skipped} already committed, "
        f"{r.files_processed} processed)",
        f"  {'records read':<24} {f['records_read']:>12,}  WARC records of every type",
        f"  {'HTML responses':<24} {f['html_responses']:>12,}  records handed to extraction",
        f"  {'documents extracted':<24} {f['documents_extracted']:>12,}  with text after extraction",
        f"  {'documents kept':<24} {f['documents_kept']:>12,}  in output shards",
        f"  {'tokens written':<24} {r.tokens:>12,}",
        "dropped, per reason (read.* count records, file.* files, all others documents):",
        f"  {'stage':<10} {'reason':<40} {'count':>10}  unit",
    ]
    if r.bad_inputs:
        lines.insert(
            2, f"not WARC (skipped): {len(r.bad_inputs)} files: " + ", ".join(r.bad_inputs[:10])
        )
    order = ("read", "extract", "lang", "quality", "dedup")
    items = sorted(
        r.counts.items(),
        key=lambda kv: (
            order.index(stage_of(kv[0])) if stage_of(kv[0]) in order else len(order),
            -kv[1],
            kv[0],
        ),
    )
    for reason, n in items:
        unit = (
            "files"
            if reason.startswith("file.")
            else "records"
            if reason.startswith("read.")
            else "documents"
        )
        lines.append(f"  {stage_of(reason):<10} {reason:<40} {n:>10,}  {unit}")
    for ph, s in r.phase_seconds.items():
        lines.append(f"time {ph:<20} {s:>9,.1f}s")
    if r.engine:
        lines.append(f"engine: {r.engine} (execution.engine)")
    lines.append(f"output: {r.output}   lineage: {r.lineage_path}")
    return "\n".join(lines)
