"""Check what README command 1 left in a directory: `python tests/readme_check.py RUN_DIR`.

RUN_DIR holds `stdout.txt` and `stderr.txt` of `python -m pipeline run --output out` and the
`out/` it wrote. Standard library + duckdb only: CI runs it in a venv with the runtime
dependencies alone (`pip install -e .`), before the test extra is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# the summary a newcomer reads: these words, each with a number
SUMMARY_WORDS = ["records read", "HTML responses", "documents extracted", "documents kept"]
RAY_NOISE = ["Started a local Ray instance", "View the dashboard", "ray.init(", "INFO worker.py"]


def check(run_dir: Path) -> list[str]:
    """Problems found (empty = command 1 worked as the README promises)."""
    problems = []
    lines = (run_dir / "stdout.txt").read_text(encoding="utf-8").splitlines()
    out = run_dir / "out"
    # the run's stdout starts at its summary (pip's output may come first in command 1)
    start = next((i for i, ln in enumerate(lines) if re.match(r"run \S+: ", ln)), None)
    if start is None or "succeeded" not in lines[start]:
        problems.append(f"no 'run <id>: succeeded' summary line on stdout: {lines[-5:]!r}")
        start = 0
    stdout = "\n".join(lines[start:])
    for word in SUMMARY_WORDS:
        if word not in stdout:
            problems.append(f"summary lacks {word!r}")
    for noise in RAY_NOISE:
        if noise in stdout:
            problems.append(f"Ray noise on stdout: {noise!r}")
    if not (out / "lineage.duckdb").is_file():
        problems.append("no out/lineage.duckdb")
    if not list(out.rglob("*.parquet")):
        problems.append("no Parquet shards under out/")
    if (out / "_work").exists():
        problems.append("out/_work left behind after a successful run")
    empty = [str(d) for d in out.rglob("*") if d.is_dir() and not any(d.iterdir())]
    if empty:
        problems.append(f"empty directories left: {empty[:5]}")
    if not problems:
        from lineage.sandbox import open_analyst_connection

        # as analysts read it (relative glob views resolve against the output root)
        con = open_analyst_connection(out / "lineage.duckdb")
        status = con.execute("SELECT status FROM runs").fetchall()
        kept = con.execute("SELECT count(*) FROM documents").fetchone()[0]
        con.close()
        if status != [("succeeded",)]:
            problems.append(f"runs table: {status}")
        if kept < 100:
            problems.append(f"only {kept} documents in the sample output")
    return problems


def main(argv: list[str]) -> int:
    problems = check(Path(argv[1]))
    for p in problems:
        print(f"README command 1: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
