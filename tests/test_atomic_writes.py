"""One atomic-write mechanism (core.storage): every file appears whole under its name or not at all.

Issue 16: the tree had five tmp+rename helpers. These tests pin that only core/storage.py
renames files into place, and that its helpers leave no partial file and no temporary file
behind when the writer fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import storage

REPO = Path(__file__).resolve().parents[1]
RUNTIME = ("core", "stages", "lineage", "pipeline", "jobs", "mixes", "benchmarks")
_RENAME = re.compile(r"\bos\.(replace|rename)\(|\.rename\(|shutil\.move\(")


def test_only_core_storage_renames_files_into_place() -> None:
    offenders = []
    for pkg in RUNTIME:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "core/storage.py" or rel.startswith("pipeline/sample/"):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _RENAME.search(line):
                    offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "write through core.storage (atomic_path / AtomicOutput):\n" + "\n".join(
        offenders
    )


def test_atomic_path_publishes_on_success(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with storage.atomic_path(target) as tmp:
        Path(tmp).write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not visible before the block ends
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


@pytest.mark.parametrize("hidden", [False, True])
def test_atomic_path_failure_keeps_old_content_and_no_temp(tmp_path: Path, hidden: bool) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), storage.atomic_path(target, hidden=hidden) as tmp:
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_atomic_path_publishes_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with storage.atomic_path(target, hidden=True) as tmp:
        Path(tmp).mkdir()
        (Path(tmp) / "meta.json").write_text("{}")
    assert (target / "meta.json").read_text() == "{}"
    with pytest.raises(RuntimeError), storage.atomic_path(tmp_path / "other") as tmp:
        Path(tmp).mkdir()
        (Path(tmp) / "x").write_text("x")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_output_streams_then_commits_or_aborts(tmp_path: Path) -> None:
    uri = str(tmp_path / "sub" / "shard.parquet")
    with storage.AtomicOutput(uri) as out:
        out.write(b"abc")
        out.write(b"def")
        assert not Path(uri).exists()
    assert Path(uri).read_bytes() == b"abcdef"
    with pytest.raises(ValueError), storage.AtomicOutput(uri) as out:
        out.write(b"half")
        raise ValueError
    assert Path(uri).read_bytes() == b"abcdef"  # the old file, untouched
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["shard.parquet"]


def test_write_bytes_atomic_names_the_file_on_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write .*file/y"):
        storage.write_bytes_atomic(str(blocker / "y"), b"data")  # parent is a file


def test_atomic_output_abort_after_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    """A write that failed (EFBIG: over the file size limit) is aborted without raising
    again, so the caller can abort its other open files too; no temporary file is left."""
    import resource

    uri = str(tmp_path / "big.bin")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    out = storage.AtomicOutput(uri)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(OSError):
            for _ in range(64):
                out.write(b"x" * 1024)
            out.stream.flush()
        out.abort()  # must not raise
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(tmp_path.iterdir()) == []
