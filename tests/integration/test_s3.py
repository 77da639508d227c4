"""Inputs and outputs on s3:// through pyarrow.fs, against a real S3 endpoint (moto_server).

The pipeline runs as `python -m jobs.run` in a subprocess (its own embedded Ray): Ray workers
must see the AWS_* endpoint settings, which the session's embedded Ray, started earlier
without them, would not pass on. pyarrow >= 15 reads AWS_ENDPOINT_URL like the AWS CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import duckdb
import pytest

from stages.warc_records import record_id_column

REPO = Path(__file__).resolve().parents[2]
SAMPLES = [REPO / "pipeline" / "sample" / f"sample-0000{i}.warc.gz" for i in (0, 1)]
BUCKET = "ccpipe-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_warc(src: Path, n: int) -> bytes:
    """The warcinfo record + the next `n` records (one gzip member each)."""
    data, members, pos = src.read_bytes(), [], 0
    while pos < len(data) and len(members) < n + 1:
        d = zlib.decompressobj(wbits=31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        members.append(data[pos:end])
        pos = end
    return b"".join(members)


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A moto S3 server on a free 127.0.0.1 port; yields the env that points clients at it."""
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if moto is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    logf = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=logf, stderr=subprocess.STDOUT
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start (exit {proc.poll()})")
                time.sleep(0.2)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()


@pytest.fixture
def s3(s3_env, monkeypatch):
    """boto3 client + pyarrow filesystem on the moto endpoint (env set for this process)."""
    import boto3
    import pyarrow.fs as pafs

    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}/")
    return client, fs


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.run", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=400,
    )


def test_pyarrow_honours_aws_endpoint_url(s3):
    client, fs = s3
    client.put_object(Bucket=BUCKET, Key="probe/hello.txt", Body=b"hi")
    from core import storage

    assert storage.read_bytes(f"s3://{BUCKET}/probe/hello.txt") == b"hi"
    assert storage.list_files(f"s3://{BUCKET}/probe") == [f"s3://{BUCKET}/probe/hello.txt"]
    storage.write_bytes_atomic(f"s3://{BUCKET}/probe/deep/x.bin", b"x")
    assert client.get_object(Bucket=BUCKET, Key="probe/deep/x.bin")["Body"].read() == b"x"


def test_pipeline_on_s3_inputs_outputs_and_resume(s3, s3_env, tmp_path):
    client, fs = s3
    for src in SAMPLES:
        client.put_object(Bucket=BUCKET, Key=f"crawl/{src.name}", Body=small_warc(src, 200))
    # A CommonCrawl-style listing with relative entries, joined to the listing's own prefix.
    client.put_object(
        Bucket=BUCKET, Key="crawl/warc.paths", Body="".join(f"{s.name}\n" for s in SAMPLES).encode()
    )
    out = f"s3://{BUCKET}/out"
    env = {**s3_env, "CCPIPE_LINEAGE_DIR": str(tmp_path / "lineage")}
    inputs = [f"s3://{BUCKET}/crawl/{s.name}" for s in SAMPLES]

    p = _run(env, "--output", out, "--profile", "fast", "--quiet", f"s3://{BUCKET}/crawl/")
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "inputs: 2 files (0 already committed, 2 processed)" in p.stdout

    from jobs.common import default_lineage_path, mirror_uri

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CCPIPE_LINEAGE_DIR", env["CCPIPE_LINEAGE_DIR"])
        lineage = Path(default_lineage_path(out))
    assert lineage.is_file()
    con = duckdb.connect(str(lineage), read_only=True)
    try:
        files = con.execute(
            "SELECT source_uri, status, docs_kept FROM input_files ORDER BY 1"
        ).fetchall()
        shards = con.execute(
            "SELECT path, kind, n_docs, n_bytes, sha256 FROM shards WHERE status = 'live'"
        ).fetchall()
    finally:
        con.close()
    assert [(u, s) for u, s, _ in files] == [(u, "committed") for u in inputs]
    kept = sum(k for *_, k in files)
    assert kept > 0
    text = [s for s in shards if s[1] == "text"]
    assert sum(s[2] for s in text) == kept
    for path, _kind, _n, n_bytes, sha in shards:
        assert not path.startswith("s3://"), path  # relative to the output root
        path = out + "/" + path
        body = client.get_object(Bucket=BUCKET, Key=path[len(f"s3://{BUCKET}/") :])["Body"].read()
        assert len(body) == n_bytes and hashlib.sha256(body).hexdigest() == sha
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"]}
    assert any(k.endswith(".bin") for k in keys) and any(k.endswith(".idx") for k in keys)
    assert any(k.startswith("out/_dedup_index/") for k in keys)
    # Staging removed after success (an empty directory marker may stay, like a local dir).
    assert not [k for k in keys if k.startswith("out/_work/") and k != "out/_work/"]
    mirror = mirror_uri(out)
    assert mirror[len(f"s3://{BUCKET}/") :] in keys  # lineage snapshot mirrored next to output

    _check_lineage_cli_on_s3(env, out, kept, tmp_path)

    # Re-run through the listing (same URIs): nothing reprocessed, no Ray needed.
    p = _run(env, "--output", out, "--profile", "fast", f"s3://{BUCKET}/crawl/warc.paths")
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "inputs: 2 files (2 already committed, 0 processed)" in p.stdout
    assert "nothing to do" in p.stderr

    # The driver's disk is lost (new head node): the lineage comes back from the mirror and
    # still nothing is reprocessed.
    shutil.rmtree(tmp_path / "lineage")
    p = _run(env, "--output", out, "--profile", "fast", f"s3://{BUCKET}/crawl/")
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "restored" in p.stderr
    assert "inputs: 2 files (2 already committed, 0 processed)" in p.stdout
    con = duckdb.connect(str(lineage), read_only=True)
    try:
        ok = con.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'").fetchone()
        assert ok == (3,)
        assert con.execute("SELECT count(*) FROM input_files").fetchone() == (2,)
    finally:
        con.close()


def _lineage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lineage", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=120,
    )


def _check_lineage_cli_on_s3(env: dict, out: str, kept: int, tmp_path: Path) -> None:
    """Analysts query an s3:// run like a local one: views read the shards through pyarrow."""
    p = _lineage(
        env,
        "sql",
        "SELECT count(*) AS n, min(doc_id) AS d FROM documents",
        "--output",
        out,
        "--json",
    )
    assert p.returncode == 0, p.stderr
    [row] = json.loads(p.stdout)
    assert row["n"] == kept
    p = _lineage(env, "trace", row["d"], "--output", out, "--json", "--fetch")
    assert p.returncode == 0, p.stderr
    [item] = json.loads(p.stdout)
    # lineage paths are relative to the output root (a copied output resolves inside the copy)
    assert item["status"] == "kept" and item["filename"].startswith("data/lang=")
    assert "warc_headers" in item["fetched"], item["fetched"]
    raw_id = item["fetched"]["warc_headers"]["WARC-Record-ID"]
    assert record_id_column(raw_id, keep_raw=False) == item["warc_record_id"]
    # A dropped document, explained with its reason, from a machine without the driver's copy
    # (the snapshot mirrored next to the output is downloaded).
    laptop = {**env, "CCPIPE_LINEAGE_DIR": str(tmp_path / "laptop")}
    p = _lineage(
        laptop,
        "sql",
        "SELECT url, drop_reason FROM rejections ORDER BY doc_id LIMIT 1",
        "--output",
        out,
        "--json",
    )
    assert p.returncode == 0, p.stderr
    assert "mirrored" in p.stderr
    assert len(json.loads(p.stdout)) == 1, (p.stdout, p.stderr)
    [rej] = json.loads(p.stdout)
    p = _lineage(laptop, "explain", rej["url"], "--output", out, "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["verdict"] == "dropped"
    assert info["dropped"][0]["drop_reason"] == rej["drop_reason"]

    # Deletion request on an s3 run: only where the driver's lineage lives, never a copy.
    p = _lineage(
        env,
        "sql",
        "SELECT url, filename FROM documents ORDER BY doc_id LIMIT 1",
        "--output",
        out,
        "--json",
    )
    [doc] = json.loads(p.stdout)
    urls = tmp_path / "urls.txt"
    urls.write_text(doc["url"] + "\n")
    p = _lineage(laptop, "delete", "--urls", str(urls), "--output", out)
    assert p.returncode == 2 and "not on this machine" in p.stderr
    p = _lineage(env, "delete", "--urls", str(urls), "--output", out, "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["docs_deleted"] == 1 and f"{out}/{doc['filename']}" in res["files_removed"]
    assert "mirrored" in p.stderr
    # The laptop downloads the updated mirror: the document is gone, and why is on record.
    p = _lineage(laptop, "sql", "SELECT count(*) AS n FROM documents", "--output", out, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["n"] == kept - 1
    p = _lineage(laptop, "explain", doc["url"], "--output", out, "--json")
    assert json.loads(p.stdout)["verdict"] == "deleted"


@pytest.mark.parametrize("where", ["input", "output"])
def test_uri_query_options_are_a_config_error(where, capsys):
    """`?endpoint_override=` would be lost on derived URIs: refused, exit 2, naming the fix."""
    from jobs.run import main

    uri = "s3://bucket/x?endpoint_override=127.0.0.1:9000&scheme=http"
    args = (
        ["--output", uri, "s3://bucket/in/"] if where == "output" else ["--output", "/tmp/o", uri]
    )
    assert main(args) == 2
    assert "AWS_ENDPOINT_URL" in capsys.readouterr().err


def test_nightly_lock_for_s3_output_sits_next_to_lineage(s3, tmp_path, monkeypatch, capsys):
    """No POSIX lock on s3: the nightly locks next to the (POSIX) lineage DB instead."""
    from filelock import FileLock

    from jobs.nightly import EXIT_LOCKED, main

    monkeypatch.setenv("CCPIPE_LINEAGE_DIR", str(tmp_path / "lineage"))
    lineage = tmp_path / "lin" / "lineage.duckdb"
    lineage.parent.mkdir()
    args = [
        "--listing",
        f"s3://{BUCKET}/nightly-crawl/",
        "--output",
        f"s3://{BUCKET}/nout",
        "--lineage",
        str(lineage),
        "--dry-run",
        "--quiet",
    ]
    with FileLock(str(lineage) + ".nightly.lock"):
        assert main(args) == EXIT_LOCKED
    assert str(lineage) + ".nightly.lock" in capsys.readouterr().err
    s3[0].put_object(Bucket=BUCKET, Key="nightly-crawl/a.warc.gz", Body=small_warc(SAMPLES[0], 3))
    assert main(args) == 0  # lock free again: the dry run lists the new file on s3
    import json

    from core import storage

    (rep_uri,) = [
        u for u in storage.list_files(f"s3://{BUCKET}/nout/_reports") if u.endswith(".json")
    ]
    rep = json.loads(storage.read_bytes(rep_uri))
    assert rep["new_files"] == [f"s3://{BUCKET}/nightly-crawl/a.warc.gz"]
