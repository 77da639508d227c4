"""Input sizes are asked once per run, all at once: `storage.file_sizes` answers a list of
local paths and object-store URIs in order, concurrently for the object store (one HEAD each;
a 10 TB crawl is ~9,000 WARC files, minutes of round trips when asked one after another)."""

from __future__ import annotations

import socket

import pytest

from core import storage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def s3_bucket(monkeypatch: pytest.MonkeyPatch):
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    s3.create_bucket(Bucket="ccpipe-sizes")
    try:
        yield s3
    finally:
        server.stop()


def test_file_sizes_of_local_and_object_store_inputs_in_order(s3_bucket, tmp_path) -> None:
    keys = [f"crawl/seg-{i:03d}.warc.gz" for i in range(40)]
    for i, key in enumerate(keys):
        s3_bucket.put_object(Bucket="ccpipe-sizes", Key=key, Body=b"w" * (7 * i + 1))
    local = tmp_path / "local.warc.gz"
    local.write_bytes(b"x" * 12345)
    uris = [f"s3://ccpipe-sizes/{k}" for k in keys]
    uris.insert(17, str(local))
    uris.insert(3, "s3://ccpipe-sizes/crawl/missing.warc.gz")
    uris.append(str(tmp_path / "gone.warc.gz"))

    got = storage.file_sizes(uris)

    assert got == [storage.file_size(u) for u in uris]  # the one-at-a-time answers
    assert got[3] is None and got[-1] is None and got[18] == 12345
    assert [g for g in got if g not in (None, 12345)] == [7 * i + 1 for i in range(40)]


def test_file_sizes_of_nothing() -> None:
    assert storage.file_sizes([]) == []
