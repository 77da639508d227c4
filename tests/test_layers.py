"""Imports point down the layers: core <- stages <- lineage <- pipeline <- jobs; mixes reads lineage.

An AST check over every module (function-level imports included), so a violation fails in CI
with the importing module and the imported name. The layers (docs/architecture.md):

- ``core``: storage and the one atomic write, config effect marks, output lock, URLs, faults;
  imports no other package of the project.
- ``stages``: per-document work; no Ray, no DuckDB, never ``pipeline``/``lineage``.
- ``lineage``: the DuckDB store, writer, queries; no Ray, never ``pipeline``.
- ``mixes``: reads lineage and token shards; never ``pipeline``.
- ``pipeline``: the only Ray code; never ``jobs``.
- runtime code never imports the sample *generator* (``pipeline.sample.generate`` / ``corpus``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "stages", "lineage", "mixes", "pipeline", "jobs", "benchmarks")

# package -> project packages it may import (besides itself)
ALLOWED = {
    "core": set(),
    "stages": {"core"},
    "lineage": {"core", "stages"},
    "mixes": {"core", "stages", "lineage"},
    "pipeline": {"core", "stages", "lineage"},
    "jobs": {"core", "stages", "lineage", "pipeline"},
    "benchmarks": {"core", "stages", "lineage", "pipeline", "mixes"},
}
# third-party modules a package must not import
FORBIDDEN_LIBS = {
    "core": {"ray", "duckdb"},
    "stages": {"ray", "duckdb"},
    "lineage": {"ray"},
    "mixes": {"ray"},
}
GENERATOR = ("pipeline.sample.generate", "pipeline.sample.corpus")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            if any(part.startswith(".") for part in f.relative_to(ROOT).parts):
                continue  # e.g. benchmarks/.venv-datatrove (setup_datatrove.sh): not our code
            out.append((f.relative_to(ROOT).with_suffix("").as_posix().replace("/", "."), f))
    return out


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


MODULES = _modules()


def test_the_check_sees_the_tree():
    assert len(MODULES) > 80
    assert any(m == "stages.contract" for m, _ in MODULES)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_imports_point_down_the_layers(pkg):
    bad = []
    for mod, path in MODULES:
        if mod.split(".")[0] != pkg:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top in PACKAGES and top != pkg and top not in ALLOWED[pkg]:
                bad.append(f"{mod} imports {name}")
            if top in FORBIDDEN_LIBS.get(pkg, ()):
                bad.append(f"{mod} imports {name} ({top} is not allowed in {pkg}/)")
    assert not sorted(set(bad)), "\n".join(sorted(set(bad)))


def test_runtime_never_imports_the_sample_generator():
    bad = []
    for mod, path in MODULES:
        if mod.startswith(("pipeline.sample", "benchmarks")):
            continue
        bad += [f"{mod} imports {n}" for n in _imports(path) if n.startswith(GENERATOR)]
    assert not bad, bad


def test_stages_do_not_reach_into_other_packages_by_path():
    """A stage finds its data next to itself (stages/data), not under pipeline/ or lineage/."""
    bad = []
    for mod, path in MODULES:
        if mod.startswith("stages."):
            text = path.read_text()
            for other in ('"pipeline"', '"lineage"', "'pipeline'", "'lineage'"):
                if other in text:
                    bad.append(f"{mod}: {other}")
    assert not bad, bad


def test_no_module_level_mutable_state_in_quality():
    """The quality rules keep no hidden state: module-level names are constants (tuples...)."""
    bad = []
    for mod, path in MODULES:
        if not mod.startswith("stages.quality."):
            continue
        for node in ast.parse(path.read_text()).body:
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
                node.value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp)
            ):
                bad.append(f"{mod}:{node.lineno}")
    assert not bad, bad
