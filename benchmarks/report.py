"""The printed report of ``python -m benchmarks.run``: the result dict as tables.

Split out of benchmarks/run.py: formatting only; the JSON file holds the same numbers.
"""

from __future__ import annotations

from typing import Any

from benchmarks.verdict import CLUSTER_CORES, DOCS_10TB


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
            f"{'profile':<9}{'engine':>7}{'workers':>8}{'docs':>6}{'kept':>6}{'wall s':>8}"
            f"{'cpu s':>8}{'docs/s':>8}{'docs/cpu-s':>11}{'peak RSS/worker MB':>20}"
            f"  phases s"
        )
        for e in [*res["e2e"], *res.get("e2e_local", [])]:
            ph = " ".join(f"{k[-1]}:{v:.1f}" for k, v in e["phase_seconds"].items())
            rss = f"{e['peak_rss_worker_mb']:>20.0f}" if e["peak_rss_worker_mb"] else f"{'-':>20}"
            lines.append(
                f"{e['profile']:<9}{e.get('engine', 'ray'):>7}{e['workers']:>8}{e['docs']:>6}"
                f"{e['docs_kept']:>6}{e['wall_s']:>8.1f}{e['cpu_s']:>8.1f}"
                f"{e['docs_per_s'] or 0:>8.1f}{e['docs_per_cpu_s'] or 0:>11.1f}{rss}  {ph}"
            )
    by_w = res.get("e2e_marginal_by_workers") or {
        p: {"1": m} for p, m in res.get("e2e_marginal", {}).items()
    }
    for p, per in by_w.items():
        for w, m in per.items():
            lines.append(
                f"{p:<9} {w} worker(s) steady state (full minus first-"
                f"{res['e2e_small'][0]['docs']}-docs run): {m['docs']} docs {m['wall_s']:.1f} s "
                f"wall {m['cpu_s']:.1f} s cpu -> {m['docs_per_s']} docs/s, "
                f"{m['docs_per_cpu_s']} docs/cpu-s; fixed cost per run ~{m['fixed_wall_s']} s "
                f"wall, {m['fixed_cpu_s']} s cpu"
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
        if b.get("local_e2e_cpu_ms_per_doc") is not None:
            lines.append(
                f"in-process engine, steady state: {b['local_e2e_cpu_ms_per_doc']:.2f} ms/doc, "
                f"everything except extraction {b['local_non_extraction_cpu_ms_per_doc']:.2f} "
                f"ms/doc (the rest of the Ray row is Ray)"
            )
        if b["startup_wall_s"] is not None:
            lines.append(
                f"start-up (a {b['startup_docs']}-doc CLI run, default engine: "
                f"{b['startup_engine']}): {b['startup_wall_s']:.1f} s wall, "
                f"{b['startup_cpu_s']:.1f} s cpu (target <= 8 s wall)"
            )
        sr = res.get("e2e_startup_ray", {}).get(p)
        if sr:
            lines.append(
                f"start-up of the same run on a fresh embedded Ray (--engine ray): "
                f"{sr['wall_s']:.1f} s wall, {sr['cpu_s']:.1f} s cpu"
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
    lines += _side_by_side(res.get("side_by_side"))
    lines += _profile_table(res)
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


def _profile_table(res: dict[str, Any]) -> list[str]:
    """One row per profile: the trade-off of extraction quality against speed and memory."""
    rows = []
    for p, prof in res.get("profiles", {}).items():
        q = prof.get("extraction_quality") or {}
        e2e = {(x["profile"], x["workers"]): x for x in res.get("e2e", [])}.get((p, 1), {})
        loc = res.get("e2e_marginal_local", {}).get(p) or next(
            (x for x in res.get("e2e_local", []) if x["profile"] == p), {}
        )
        steady = res.get("e2e_marginal", {}).get(p, {})
        st = res.get("e2e_startup", {}).get(p, {})
        rss = [x["peak_rss_worker_mb"] for x in res.get("e2e", []) if x["profile"] == p]
        rss = [r for r in rss if r]

        def f(v: Any, fmt: str) -> str:
            return format(v, fmt) if isinstance(v, int | float) else "-"

        rows.append(
            f"{p:<9}{q.get('extractor', '-'):>13}{f(q.get('f1'), '.3f'):>7}"
            f"{f(q.get('precision'), '.3f'):>7}{f(q.get('recall'), '.3f'):>7}"
            f"{f(e2e.get('docs_per_cpu_s'), '.1f'):>10}{f(steady.get('docs_per_cpu_s'), '.1f'):>9}"
            f"{f(loc.get('docs_per_cpu_s'), '.1f'):>12}{f(max(rss) if rss else None, '.0f'):>9}"
            f"{f(st.get('wall_s'), '.1f'):>10}"
        )
    if not rows:
        return []
    head = (
        f"{'profile':<9}{'extractor':>13}{'F1':>7}{'P':>7}{'R':>7}{'e2e d/cs':>10}"
        f"{'steady':>9}{'in-process':>12}{'RSS MB':>9}{'start s':>10}"
    )
    note = (
        "(docs per CPU-second: Ray e2e 1 worker whole run, its steady state, the in-process "
        "engine's steady state (whole run without --marginal); peak RSS per Ray worker; "
        "start-up = the --startup CLI run, wall)"
    )
    return ["\n== profiles: extraction quality against speed and memory ==", head, *rows, note]


def _side_by_side(sbs: dict[str, Any] | None) -> list[str]:
    """Each pair's runs and both sides' steady state (docs per CPU-second)."""
    if not sbs:
        return []
    lines = [
        "\n== side by side: quality profile (in-process, 1 worker) and each peer at the same "
        "time, one core each =="
    ]
    if sbs.get("datatrove_error"):
        lines.append(f"datatrove not run: {sbs['datatrove_error']}")
    for key, pair in sbs.get("pairs", {}).items():
        for i, rep in enumerate(pair["reps"], 1):
            for tag, runs in rep["runs"].items():
                cells = [
                    f"{r['name']}: "
                    + (
                        r["error"]
                        if r.get("error")
                        else f"{r['docs']} docs, {r['cpu_s']:.1f} s cpu, {r['wall_s']:.1f} s wall"
                    )
                    for r in runs
                ]
                lines.append(f"{key:<12} {i} {tag:<6} " + " | ".join(cells))
            us, them = rep["ours_steady"], rep["peer_steady"]
            lines.append(
                f"{key:<12} {i} steady ccpipe {us.get('docs_per_cpu_s')} vs "
                f"{them.get('docs_per_cpu_s')} docs/cpu-s -> {rep['cpu_ratio']}x (whole runs: "
                f"{rep['whole_run_cpu_ratio']}x; start-up cpu {us.get('startup_cpu_s')} vs "
                f"{them.get('startup_cpu_s')} s)"
            )
        lines.append(
            f"{key:<12} mean of {len(pair['reps'])}: {pair['cpu_ratio']}x steady "
            f"(range {pair['cpu_ratio_range']}), {pair['whole_run_cpu_ratio']}x whole runs"
        )
    return lines
