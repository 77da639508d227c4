"""What the driver asks the store per input file or chunk, it asks all at once or not at all.

A 10 TB crawl is ~9,000 WARC files and ~200,000 phase-1 chunks; one round trip after another
on an object store that is minutes to hours in the driver. `storage.map_uris` asks
concurrently (sizes, "is this file already done"); phase 2 finds the staged chunks with kept
documents from the file summaries instead of asking which exist."""

from __future__ import annotations

import socket
from pathlib import Path

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


def _summary(n_chunks: int, kept: list[int] | None) -> dict:
    s = {"n_chunks": n_chunks}
    if kept is not None:
        s["kept_chunks"] = kept
    return s


def test_phase2_takes_the_kept_chunks_from_the_summaries(tmp_path) -> None:
    from pipeline.inputs import InputFile
    from pipeline.phases import _signature_files
    from pipeline.work import Layout

    layout = Layout(str(tmp_path / "out"), "c" * 16)
    todo = [InputFile("/in/a.warc.gz", "a"), InputFile("/in/b.warc.gz", "b")]
    p1 = {"a": _summary(3, [0, 2]), "b": _summary(2, [])}
    # nothing exists on disk: the answer comes from the summaries alone, not from probing
    assert _signature_files(todo, p1, layout, "rk") == [
        (layout.chunk_prefix("rk", "a", 0) + ".kept.parquet", "a"),
        (layout.chunk_prefix("rk", "a", 2) + ".kept.parquet", "a"),
    ]


def test_phase2_probes_summaries_written_before_kept_chunks(tmp_path) -> None:
    from pipeline.inputs import InputFile
    from pipeline.phases import _signature_files
    from pipeline.work import Layout

    layout = Layout(str(tmp_path / "out"), "c" * 16)
    todo = [InputFile("/in/old.warc.gz", "old"), InputFile("/in/new.warc.gz", "new")]
    p1 = {"old": _summary(3, None), "new": _summary(2, [1])}
    staged = layout.chunk_prefix("rk", "old", 1) + ".kept.parquet"
    Path(staged).parent.mkdir(parents=True)
    Path(staged).write_bytes(b"")
    assert _signature_files(todo, p1, layout, "rk") == [
        (staged, "old"),
        (layout.chunk_prefix("rk", "new", 1) + ".kept.parquet", "new"),
    ]


def test_a_listed_prefix_brings_the_sizes_of_its_files(s3_bucket) -> None:
    """A listing already returns every object's size; resolving a prefix keeps them."""
    from pipeline.inputs import resolve_inputs

    for i in range(12):
        s3_bucket.put_object(
            Bucket="ccpipe-sizes", Key=f"listed/seg-{i:02d}.warc.gz", Body=b"w" * (5 * i + 3)
        )
    s3_bucket.put_object(Bucket="ccpipe-sizes", Key="listed/notes.txt", Body=b"not a warc")

    files = resolve_inputs(["s3://ccpipe-sizes/listed/"])

    assert [f.uri.rsplit("/", 1)[1] for f in files] == [f"seg-{i:02d}.warc.gz" for i in range(12)]
    assert [f.size for f in files] == [5 * i + 3 for i in range(12)]


def test_the_driver_asks_only_the_sizes_it_does_not_know(monkeypatch, tmp_path) -> None:
    from pipeline.inputs import InputFile
    from pipeline.phases import input_sizes

    local = tmp_path / "a.warc.gz"
    local.write_bytes(b"x" * 77)
    asked: list[list[str]] = []
    real = storage.file_sizes
    monkeypatch.setattr(storage, "file_sizes", lambda uris: asked.append(list(uris)) or real(uris))
    todo = [
        InputFile("s3://b/listed.warc.gz", "listed", size=1234),
        InputFile(str(local), "local"),
    ]

    assert input_sizes(todo) == {"listed": 1234, "local": 77}
    assert asked == [[str(local)]]
