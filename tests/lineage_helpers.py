"""Helpers shared by the lineage CLI tests."""

from __future__ import annotations

from lineage.cli import main


def run_lineage_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`python -m lineage ARGV` in this process: (exit status, stdout, stderr)."""
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err
