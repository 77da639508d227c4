"""Storage faults: unusable output locations, a full disk during shard writes, a missing
object-store bucket. Each must fail cleanly (non-zero exit / exception naming the file), leave
no partial file visible, and a re-run after the fault is fixed must produce byte-identical
outputs.

Tests run as root, where chmod does not stop writes; an output path that is (or lies under) a
regular FILE is the unwritable location instead (EEXIST / ENOTDIR). A full disk is simulated
with RLIMIT_FSIZE (writes beyond the limit fail with EFBIG; SIGXFSZ ignored). It cannot be set
on a whole CLI run: Ray's own processes inherit it and fail to start. So it is set in this
process around the Ray-free phase-3 code (`UnitFinisher.finish_unit`, what a phase-3 actor runs)
over the staged work of a real run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
from pathlib import Path

import pytest
from faultkit import leftovers, run_args, run_cli, small_cfg, tree_digest

from pipeline.inputs import file_key as file_key_of


def test_output_is_an_existing_file(tmp_path, small_inputs):
    target = tmp_path / "not-a-dir"
    target.write_bytes(b"precious")
    proc = run_cli(run_args(small_inputs, target))
    assert proc.returncode != 0
    assert str(target) in proc.stderr, proc.stderr[-2000:]
    assert target.read_bytes() == b"precious"


def test_output_under_a_file(tmp_path, small_inputs):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"x")
    proc = run_cli(run_args(small_inputs, blocker / "out"))
    assert proc.returncode != 0
    assert str(blocker) in proc.stderr, proc.stderr[-2000:]
    assert blocker.read_bytes() == b"x"


def test_output_under_a_file_has_no_traceback(tmp_path, small_inputs):
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"x")
    proc = run_cli(run_args(small_inputs, blocker / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Writes past `nbytes` fail with EFBIG in this process (soft limit, restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


@pytest.fixture(scope="module")
def staged_run(ray_session, small_inputs, tmp_path_factory):
    """A real run that keeps its staging directory (phase-1 chunks, dedup decisions)."""
    from pipeline.run import run_pipeline
    from pipeline.work import run_key

    out = tmp_path_factory.mktemp("staged")
    cfg = small_cfg(small_inputs, out, ["output.keep_work=true"])
    run_pipeline(cfg)
    return cfg, out, run_key(cfg.config_hash, sorted(small_inputs))


def _unit_outputs(out: Path, unit_id: str, file_keys: list[str]) -> dict[str, str]:
    return {
        k: v
        for k, v in tree_digest(out).items()
        if Path(k).name.startswith(f"part-{unit_id}-") or any(f"run={fk}" in k for fk in file_keys)
    }


def test_full_disk_during_shard_writes(staged_run, small_ref, tmp_path):
    from pipeline.phase3 import UnitFinisher
    from pipeline.work import Layout, read_json

    cfg, staged, rkey = staged_run
    out = tmp_path / "out"
    shutil.copytree(staged, out)
    assert tree_digest(out) == small_ref["digest"]
    layout = Layout(str(out), cfg.config_hash)
    unit = read_json(layout.units_plan(rkey))["units"][0]
    keys = unit["file_keys"]
    ref = _unit_outputs(out, unit["unit_id"], keys)
    assert ref
    for rel in ref:  # the unit's outputs are gone, as before its first phase-3 attempt
        (out / rel).unlink()
    by_key = {fk: u for u in cfg.input.paths for fk in keys if fk == file_key_of(u)}
    item = {
        "unit_id": unit["unit_id"],
        "files": [
            {
                "file_key": k,
                "source_uri": by_key[k],
                "n_chunks": read_json(layout.file_done(rkey, k))["n_chunks"],
            }
            for k in keys
        ],
    }
    finisher = UnitFinisher(cfg, layout, rkey)
    finisher.finish_unit(json.loads(json.dumps(item)))  # warm up (lazy model loads)
    for rel in ref:
        (out / rel).unlink()
    with file_size_limit(8 * 1024), pytest.raises(OSError) as err:
        finisher.finish_unit(json.loads(json.dumps(item)))
    assert err.value.errno == 27  # EFBIG
    assert not leftovers(out), leftovers(out)
    now = _unit_outputs(out, unit["unit_id"], keys)
    for rel, digest in now.items():  # whatever is visible is complete
        assert digest == ref[rel], f"half-written file visible: {rel}"
    finisher.finish_unit(json.loads(json.dumps(item)))  # fault fixed: same bytes
    assert _unit_outputs(out, unit["unit_id"], keys) == ref
    assert tree_digest(out) == small_ref["digest"]


def test_full_disk_error_names_the_file(tmp_path):
    from core import storage

    target = tmp_path / "en" / "high" / "shard.parquet"
    with file_size_limit(1024), pytest.raises(OSError) as err:
        storage.write_bytes_atomic(str(target), os.urandom(64 * 1024))
    assert not leftovers(tmp_path) and not target.exists()
    assert "shard" in str(err.value), str(err.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_missing_bucket_then_fixed(small_inputs, small_ref, tmp_path):
    """Object-store output to a bucket that does not exist, then the bucket is created."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
        lineage = tmp_path / "lineage.duckdb"
        extra = [f"output.lineage_path={lineage}"]
        proc = run_cli(run_args(small_inputs, "s3://ccpipe-missing/out", extra), env)
        assert proc.returncode != 0
        assert "ccpipe-missing" in proc.stderr, proc.stderr[-2000:]
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        s3.create_bucket(Bucket="ccpipe-missing")
        proc = run_cli(run_args(small_inputs, "s3://ccpipe-missing/out", extra), env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = {}
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket="ccpipe-missing", Prefix="out/"
        ):
            for o in page.get("Contents", []):
                rel = o["Key"][len("out/") :]
                if rel.endswith((".parquet", ".bin", ".idx")) and not rel.startswith("_work/"):
                    body = s3.get_object(Bucket="ccpipe-missing", Key=o["Key"])["Body"].read()
                    got[rel] = hashlib.sha256(body).hexdigest()
        assert got == small_ref["digest"]
    finally:
        server.stop()


def test_phase3_reads_the_chunks_its_summary_names_without_probing(
    staged_run, small_ref, tmp_path, monkeypatch
):
    """A file summary names the chunks with kept docs (`kept_chunks`); phase 3 reads exactly
    those and every chunk's audit rows without asking the store which exist (on an object
    store: a round trip each), and writes the same bytes."""
    from core import storage
    from pipeline.phase3 import UnitFinisher
    from pipeline.work import Layout, read_json

    cfg, staged, rkey = staged_run
    out = tmp_path / "out"
    shutil.copytree(staged, out)
    layout = Layout(str(out), cfg.config_hash)
    unit = read_json(layout.units_plan(rkey))["units"][0]
    keys = unit["file_keys"]
    ref = _unit_outputs(out, unit["unit_id"], keys)
    for rel in ref:
        (out / rel).unlink()
    by_key = {fk: u for u in cfg.input.paths for fk in keys if fk == file_key_of(u)}
    files = []
    for k in keys:
        done = read_json(layout.file_done(rkey, k))
        assert done["kept_chunks"] and len(done["kept_chunks"]) <= done["n_chunks"]
        files.append(
            {
                "file_key": k,
                "source_uri": by_key[k],
                "n_chunks": done["n_chunks"],
                "kept_chunks": done["kept_chunks"],
            }
        )
    finisher = UnitFinisher(cfg, layout, rkey)
    real_exists = storage.exists
    probed: list[str] = []
    monkeypatch.setattr(storage, "exists", lambda uri: (probed.append(uri), real_exists(uri))[1])
    finisher.finish_unit({"unit_id": unit["unit_id"], "files": files})
    assert not [p for p in probed if "/p1/" in p], probed  # staged chunks: none asked
    assert _unit_outputs(out, unit["unit_id"], keys) == ref
