"""Nightly incremental runs (jobs.nightly) and the shipped schedules.

The incremental runs call `jobs.nightly.main` in-process on the session's embedded Ray (the
same code path as `python -m jobs.nightly`, without a Ray start per run). Exit statuses that
only a separate process shows (lock held, failure) run `python -m jobs.nightly` as a
subprocess; those exit before Ray is needed.
"""

from __future__ import annotations

import argparse
import configparser
import gzip
import json
import re
import shlex
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pytest
import yaml

from jobs.nightly import EXIT_LOCKED, build_parser, main
from lineage.sandbox import open_analyst_connection

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "pipeline" / "sample" / "sample-00000.warc.gz"
SCHEDULES = REPO / "jobs" / "schedules"
ENTRY = "python -m jobs.nightly"


def warc_members(path: Path) -> list[bytes]:
    """The gzip members of a .warc.gz: one WARC record each (as CommonCrawl writes them)."""
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        out.append(data[pos:end])
        pos = end
    return out


def with_new_record_id(member: bytes) -> bytes:
    """The same record under a fresh WARC-Record-ID: a new document with identical content."""
    raw = gzip.decompress(member)
    new, n = re.subn(
        rb"(WARC-Record-ID: <urn:uuid:)[0-9a-f-]{36}>",
        b"\\g<1>" + str(uuid.uuid4()).encode() + b">",
        raw,
        count=1,
    )
    assert n == 1
    return gzip.compress(new)


def reports(out: Path) -> list[dict]:
    reps = [json.loads(p.read_text()) for p in (out / "_reports").glob("nightly-*.json")]
    return sorted(reps, key=lambda r: r["started_at"] + r["run_id"])


def _args_after_entry(command: str) -> list[str]:
    """Arguments of `python -m jobs.nightly` in a shell command line, up to a redirection."""
    words = shlex.split(command)
    i = next(
        k
        for k in range(len(words) - 2)
        if words[k].endswith("python") and words[k + 1 : k + 3] == ["-m", "jobs.nightly"]
    )
    args = []
    for w in words[i + 3 :]:
        if w in (">>", ">", "2>&1", "|", "&&", ";", "||"):
            break
        args.append(w)
    return args


def _check_entry_args(args: list[str]) -> argparse.Namespace:
    ns = build_parser().parse_args(args)  # the real parser: exits 2 on an unknown option
    assert ns.listing and ns.output and ns.lineage, args
    return ns


# ---- incremental runs ------------------------------------------------------------------------
def test_nightly_processes_only_new_files(ray_session, tmp_path):
    crawl, out = tmp_path / "crawl", tmp_path / "out"
    crawl.mkdir()
    ms = warc_members(SAMPLE)
    info = ms[0]
    part_a = crawl / "part-a.warc.gz"
    part_a.write_bytes(info + b"".join(ms[1:31]))
    (crawl / "part-b.warc.gz").write_bytes(info + b"".join(ms[31:61]))
    listing = crawl / "warc.paths"
    listing.write_text("part-a.warc.gz\npart-b.warc.gz\n")
    argv = ["--listing", str(listing), "--output", str(out), "--profile", "fast", "--quiet"]

    # Night 1: both files are new.
    assert main(argv) == 0
    (r1,) = reports(out)
    assert r1["status"] == "succeeded" and r1["exit_code"] == 0 and r1["kind"] == "nightly"
    assert r1["new_files"] == [str(part_a), str(crawl / "part-b.warc.gz")]
    assert r1["files_already_committed"] == 0 and r1["files_processed"] == 2
    assert r1["docs_added"] > 0 and r1["tokens_added"] > 0
    funnel = r1["stages"]
    assert funnel[0]["docs_in"] == r1["records_read"] and funnel[-1]["docs_out"] == r1["docs_added"]
    assert all(a["docs_out"] == b["docs_in"] for a, b in zip(funnel, funnel[1:], strict=False))
    txt = (out / "_reports" / f"nightly-{r1['run_id']}.txt").read_text()
    assert "2 listed, 0 already committed, 2 new, 2 processed" in txt
    assert f"tokens added: {r1['tokens_added']:,}" in txt

    # Night 2: the listing grows by part-c, which also holds a copy (new record id) of a
    # document released on night 1: only part-c is processed and the copy is a duplicate of
    # the released document (the released index takes part and wins).
    con = open_analyst_connection(out / "lineage.duckdb")  # glob views need the root
    released_id, offset = con.execute(
        "SELECT doc_id, source_offset FROM documents WHERE source_uri = ? ORDER BY doc_id LIMIT 1",
        [str(part_a)],
    ).fetchone()
    con.close()
    starts = [len(info)]
    for m in ms[1:31]:
        starts.append(starts[-1] + len(m))
    copy = with_new_record_id(ms[1 + starts.index(offset)])
    part_c = crawl / "part-c.warc.gz"
    part_c.write_bytes(info + b"".join(ms[61:91]) + copy)
    listing.write_text("part-a.warc.gz\npart-b.warc.gz\npart-c.warc.gz\n")
    assert main(argv) == 0
    r2 = reports(out)[-1]
    assert r2["run_id"] != r1["run_id"] and r2["status"] == "succeeded"
    assert r2["new_files"] == [str(part_c)]
    assert r2["files_listed"] == 3 and r2["files_already_committed"] == 2
    assert r2["files_processed"] == 1
    assert r2["counts"].get("dedup.exact", 0) >= 1
    con = open_analyst_connection(out / "lineage.duckdb")  # glob views need the root
    try:
        dup = con.execute(
            "SELECT reason FROM duplicates WHERE keeper_doc_id = ? AND doc_id <> ?",
            [released_id, released_id],
        ).fetchall()
        assert ("dedup.exact",) in dup
        assert (
            con.execute(
                "SELECT index_docs FROM dedup_stats WHERE run_id = ?", [r2["run_id"]]
            ).fetchone()[0]
            >= r1["docs_added"]
        )
    finally:
        con.close()

    # Night 3: same listing: nothing new, nothing reprocessed, still exit 0 and a report.
    assert main(argv) == 0
    r3 = reports(out)[-1]
    assert r3["run_id"] not in (r1["run_id"], r2["run_id"])
    assert r3["new_files"] == [] and r3["files_processed"] == 0 and r3["docs_added"] == 0
    con = open_analyst_connection(out / "lineage.duckdb")  # glob views need the root
    try:
        runs = con.execute("SELECT run_id, kind, status FROM runs ORDER BY started_at").fetchall()
        files = con.execute(
            "SELECT source_uri, count(*) FROM input_files "
            "WHERE status = 'committed' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert [(r[0], r[1], r[2]) for r in runs] == [
        (r["run_id"], "nightly", "succeeded") for r in (r1, r2, r3)
    ]
    assert files == [(str(part_a), 1), (str(crawl / "part-b.warc.gz"), 1), (str(part_c), 1)]


def _nightly(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.nightly", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_second_concurrent_nightly_refuses_with_distinct_status(tmp_path):
    from filelock import FileLock

    out = tmp_path / "out"
    out.mkdir()
    listing = tmp_path / "warc.paths"
    listing.write_text(f"{SAMPLE}\n")
    with FileLock(str(out / ".nightly.lock")):  # a nightly in progress
        p = _nightly("--listing", str(listing), "--output", str(out))
    assert p.returncode == EXIT_LOCKED == 75, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "another nightly run holds" in lines[0], p.stderr
    assert not (out / "lineage.duckdb").exists() and not (out / "_reports").exists()


def test_failure_exits_nonzero_with_one_line_and_report(tmp_path):
    out = tmp_path / "out"
    listing = tmp_path / "warc.paths.gz"
    listing.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)  # a truncated download
    p = _nightly("--listing", str(listing), "--output", str(out), "--quiet")
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nightly: failed: "), p.stderr
    (rep,) = reports(out)
    assert rep["status"] == "failed" and rep["exit_code"] == 1 and rep["error"]
    assert "Traceback" in rep["traceback"]
    # The lock was released: the next run gets it (and fails the same way, not with 75).
    assert main(["--listing", str(listing), "--output", str(out), "--quiet"]) == 1


def test_dry_run_reports_new_files_and_processes_nothing(tmp_path):
    listing = tmp_path / "warc.paths"
    listing.write_text(f"{SAMPLE}\n{tmp_path / 'not-there-yet.warc.gz'}\n")
    out = tmp_path / "out"
    assert main(["--listing", str(listing), "--output", str(out), "--dry-run", "--quiet"]) == 0
    (rep,) = reports(out)
    assert rep["status"] == "dry-run" and rep["files_listed"] == 2
    assert rep["new_files"] == sorted([str(SAMPLE), str(tmp_path / "not-there-yet.warc.gz")])
    assert not (out / "lineage.duckdb").exists() and not (out / "data").exists()


def test_config_error_is_usage_status(tmp_path, capsys):
    code = main(
        [
            "--listing",
            str(SAMPLE),
            "--output",
            str(tmp_path / "o"),
            "--set",
            "langid.no_such_field=1",
        ]
    )
    assert code == 2 and "no_such_field" in capsys.readouterr().err


# ---- schedules -------------------------------------------------------------------------------
_CRON_FIELD = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _valid_cron_field(text: str, lo: int, hi: int) -> bool:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if not all(b.isdigit() and lo <= int(b) <= hi for b in bounds) or len(bounds) > 2:
            return False
    return True


def test_crontab_line_runs_the_real_entrypoint():
    lines = [
        ln
        for ln in (SCHEDULES / "nightly.crontab").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#") and not re.match(r"^\w+=", ln)
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert len(fields) == 6
    for text, (lo, hi) in zip(fields[:5], _CRON_FIELD, strict=True):
        assert _valid_cron_field(text, lo, hi), text
    assert re.search(r"/python -m jobs\.nightly ", fields[5])
    _check_entry_args(_args_after_entry(fields[5]))


def _unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string(path.read_text())
    return cp


def test_systemd_service_and_timer():
    svc = _unit(SCHEDULES / "ccpipe-nightly.service")
    timer = _unit(SCHEDULES / "ccpipe-nightly.timer")
    assert svc["Service"]["Type"] == "oneshot"
    exec_start = svc["Service"]["ExecStart"]
    assert exec_start.startswith("/") and "-m jobs.nightly" in exec_start
    _check_entry_args(_args_after_entry(exec_start))
    assert str(EXIT_LOCKED) in svc["Service"]["SuccessExitStatus"].split()
    assert timer["Timer"]["Unit"] == "ccpipe-nightly.service"
    assert re.fullmatch(r"\*-\*-\* \d{2}:\d{2}(:\d{2})?( UTC)?", timer["Timer"]["OnCalendar"])
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_kubernetes_cronjob_creates_rayjob_for_nightly():
    docs = list(yaml.safe_load_all((SCHEDULES / "nightly-rayjob-cronjob.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs}
    cron = by_kind["CronJob"]
    assert cron["apiVersion"] == "batch/v1"
    fields = cron["spec"]["schedule"].split()
    assert len(fields) == 5 and all(
        _valid_cron_field(t, lo, hi) for t, (lo, hi) in zip(fields, _CRON_FIELD, strict=True)
    )
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:3] == ["kubectl", "create", "-f"]
    template_path = Path(container["command"][3])
    mount = next(
        m for m in container["volumeMounts"] if template_path.is_relative_to(m["mountPath"])
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    cmap = by_kind["ConfigMap"]
    assert volume["configMap"]["name"] == cmap["metadata"]["name"]
    rayjob = yaml.safe_load(cmap["data"][template_path.name])
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert "generateName" in rayjob["metadata"]  # `kubectl create` makes one per night
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["entrypoint"].startswith(ENTRY)
    ns = _check_entry_args(shlex.split(spec["entrypoint"])[3:])
    # The lineage path sits on a volume mounted in the head pod (where the driver runs).
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = [m["mountPath"] for c in head["containers"] for m in c.get("volumeMounts", [])]
    assert any(Path(ns.lineage).is_relative_to(m) for m in mounts), (ns.lineage, mounts)
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert env["env_vars"]["TOKENIZERS_PARALLELISM"] == "false"
    # RBAC lets the CronJob's service account create RayJobs.
    rules = by_kind["Role"]["rules"]
    assert any("rayjobs" in r["resources"] and "create" in r["verbs"] for r in rules)
    assert pod["serviceAccountName"] == by_kind["ServiceAccount"]["metadata"]["name"]


@pytest.mark.parametrize("bad", [["--bogus"], []])
def test_parser_rejects_what_schedules_must_not_contain(bad):
    """The schedule checks above are meaningful: the real parser rejects bad options."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--output", "x", *bad] if bad else ["--output", "x"])
    assert exc.value.code == 2
