"""The README is documentation users follow: keep its generated parts and commands honest."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config_doc import BEGIN, END, reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_in_sync_with_config_model():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN) : readme.index(END) + len(END)]
    assert block == reference_markdown(), "run: python -m pipeline.readme_sync"


def test_every_config_field_is_documented():
    ref = reference_markdown()
    rows = [r for r in ref.splitlines() if r.startswith("| `")]
    assert len(rows) > 60
    assert all(not r.endswith("|  |") for r in rows), "a config field lacks a description"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_cmd = next(b for b in blocks if "pytest" in b)
    install, run = [p.strip() for p in test_cmd.split("&&")]
    assert install.replace("pip", "python -m pip") + "" in ci.replace("--quiet ", "")
    assert run in ci
