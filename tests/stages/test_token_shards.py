"""Megatron indexed dataset writer/reader: byte layout, dtype rule, round trips, validation."""

from __future__ import annotations

import os
import struct

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.token_shards import (
    IndexedDataset,
    IndexedDatasetError,
    best_fitting_dtype,
    write_indexed_dataset,
    write_indexed_dataset_bytes,
)

MAGIC = b"MMIDIDX\x00\x00"


def test_hand_checked_layout_uint16():
    docs = [np.array([5, 7, 9]), np.array([300]), np.array([], dtype=np.int64), np.array([42])]
    bin_bytes, idx_bytes = write_indexed_dataset_bytes(docs, vocab_size=1000)
    expected_idx = (
        MAGIC
        + struct.pack("<Q", 1)  # version
        + struct.pack("<B", 8)  # uint16
        + struct.pack("<Q", 4)  # sequences
        + struct.pack("<Q", 5)  # documents = sequences + 1
        + struct.pack("<4i", 3, 1, 0, 1)  # lengths
        + struct.pack("<4q", 0, 6, 8, 8)  # byte pointers (2 bytes per token)
        + struct.pack("<5q", 0, 1, 2, 3, 4)  # document indices
    )
    assert idx_bytes == expected_idx
    assert bin_bytes == struct.pack("<5H", 5, 7, 9, 300, 42)


def test_hand_checked_layout_int32_for_large_vocab():
    docs = [np.array([69999, 0]), np.array([65536])]
    bin_bytes, idx_bytes = write_indexed_dataset_bytes(docs, vocab_size=70000)
    assert idx_bytes == (
        MAGIC
        + struct.pack("<QBQQ", 1, 4, 2, 3)
        + struct.pack("<2i", 2, 1)
        + struct.pack("<2q", 0, 8)
        + struct.pack("<3q", 0, 1, 2)
    )
    assert bin_bytes == struct.pack("<3i", 69999, 0, 65536)


def test_dtype_rule_matches_megatron_optimal_dtype():
    # megatron/core/datasets/indexed_dataset.py DType.optimal_dtype: uint16 iff < 65500
    assert best_fitting_dtype(256) == np.uint16
    assert best_fitting_dtype(65499) == np.uint16
    assert best_fitting_dtype(65500) == np.int32
    assert best_fitting_dtype(70000) == np.int32
    with pytest.raises(ValueError):
        best_fitting_dtype(0)


def test_out_of_vocab_ids_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        write_indexed_dataset_bytes([np.array([1, 1000])], vocab_size=1000)
    with pytest.raises(ValueError, match=r"\[0, 1000\)"):
        write_indexed_dataset_bytes([np.array([-1])], vocab_size=1000)
    with pytest.raises(ValueError, match="lengths sum"):
        write_indexed_dataset_bytes((np.arange(5), np.array([2, 2])), vocab_size=1000)


def test_input_forms_agree():
    docs = [np.array([1, 2, 3], dtype=np.uint32), np.array([4], dtype=np.uint32)]
    a = write_indexed_dataset_bytes(docs, 500)
    b = write_indexed_dataset_bytes((np.array([1, 2, 3, 4]), np.array([3, 1])), 500)
    arrow = pa.array([[1, 2, 3], [9, 9], [4]], type=pa.large_list(pa.uint32()))
    arrow = pa.concat_arrays([arrow.slice(0, 1), arrow.slice(2, 1)])  # non-zero offsets
    c = write_indexed_dataset_bytes(arrow, 500)
    d = write_indexed_dataset_bytes(pa.chunked_array([arrow.slice(0, 1), arrow.slice(1, 1)]), 500)
    assert a == b == c == d
    with pytest.raises(ValueError, match="null"):
        write_indexed_dataset_bytes(pa.array([[1], None], type=pa.list_(pa.int32())), 500)


def test_write_read_roundtrip_order_and_no_copy(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50000, size=int(n)) for n in rng.integers(0, 200, size=300)]
    prefix = str(tmp_path / "sub" / "shard-00000")
    stats = write_indexed_dataset(prefix, docs, vocab_size=50000)
    assert stats["dtype"] == "uint16"
    assert stats["n_docs"] == 300
    assert stats["n_tokens"] == sum(d.size for d in docs)
    assert os.path.getsize(prefix + ".bin") == 2 * stats["n_tokens"] == stats["bin_bytes"]
    assert sorted(os.listdir(tmp_path / "sub")) == ["shard-00000.bin", "shard-00000.idx"]

    ds = IndexedDataset(prefix)
    assert len(ds) == 300
    assert ds.dtype == np.uint16
    assert ds.doc_idx.tolist() == list(range(301))
    assert ds.lengths.tolist() == [d.size for d in docs]
    for i, d in enumerate(docs):
        got = ds[i]
        assert np.array_equal(got, d)
        assert not got.flags.owndata  # a view into the memmap
    assert np.array_equal(ds[-1], docs[-1])
    with pytest.raises(IndexError):
        ds[300]
    assert np.array_equal(ds.token_offsets() * 2, ds.pointers)


def test_same_input_byte_identical_files(tmp_path):
    docs = [np.arange(10) % 7, np.array([3, 3, 3])]
    s1 = write_indexed_dataset(str(tmp_path / "a"), docs, 70000)
    s2 = write_indexed_dataset(str(tmp_path / "b"), docs, 70000)
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"a{ext}").read_bytes() == (tmp_path / f"b{ext}").read_bytes()
    assert s1["bin_sha256"] == s2["bin_sha256"] and s1["idx_sha256"] == s2["idx_sha256"]
    assert s1["dtype"] == "int32"
    assert IndexedDataset(str(tmp_path / "a")).dtype == np.int32


def test_open_output_through_pyarrow_fs(tmp_path):
    fs = pafs.LocalFileSystem()
    prefix = str(tmp_path / "remote")
    write_indexed_dataset(prefix, [np.array([1, 2])], 100, open_output=fs.open_output_stream)
    assert np.array_equal(IndexedDataset(prefix)[0], [1, 2])
    uri_prefix = (tmp_path / "via_uri" / "p").as_uri()
    stats = write_indexed_dataset(uri_prefix, [np.array([3]), np.array([4, 5])], 100)
    assert stats["bin_path"] == uri_prefix + ".bin"
    assert np.array_equal(IndexedDataset(str(tmp_path / "via_uri" / "p"))[1], [4, 5])


def test_empty_dataset(tmp_path):
    write_indexed_dataset(str(tmp_path / "e"), [], vocab_size=100)
    ds = IndexedDataset(str(tmp_path / "e"))
    assert len(ds) == 0 and ds.n_tokens == 0 and ds.doc_idx.tolist() == [0]


def _good(tmp_path) -> tuple[str, bytes, bytes]:
    prefix = str(tmp_path / "x")
    write_indexed_dataset(prefix, [np.array([1, 2, 3]), np.array([4])], vocab_size=100)
    with open(prefix + ".idx", "rb") as f:
        idx = f.read()
    with open(prefix + ".bin", "rb") as f:
        bin_ = f.read()
    return prefix, idx, bin_


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda idx: b"XXIDIDX\x00\x00" + idx[9:], "bad magic"),
        (lambda idx: idx[:9] + struct.pack("<Q", 2) + idx[17:], "version"),
        (lambda idx: idx[:17] + b"\x09" + idx[18:], "dtype code"),
        (lambda idx: idx[:20], "shorter than"),
        (lambda idx: idx[:-8], "size"),
        (lambda idx: idx[:18] + struct.pack("<Q", 3) + idx[26:], "size"),
        # pointer of sequence 1 changed from 6 to 4 bytes
        (lambda idx: idx[:42] + struct.pack("<q", 0) + struct.pack("<q", 4) + idx[58:], "pointers"),
    ],
)
def test_reader_rejects_corrupt_index(tmp_path, mutate, match):
    prefix, idx, _ = _good(tmp_path)
    with open(prefix + ".idx", "wb") as f:
        f.write(mutate(idx))
    with pytest.raises(IndexedDatasetError, match=match):
        IndexedDataset(prefix)


def test_reader_rejects_truncated_bin_and_missing_files(tmp_path):
    prefix, _, bin_ = _good(tmp_path)
    with open(prefix + ".bin", "wb") as f:
        f.write(bin_[:-2])
    with pytest.raises(IndexedDatasetError, match="tokens"):
        IndexedDataset(prefix)
    os.remove(prefix + ".bin")
    with pytest.raises(FileNotFoundError):
        IndexedDataset(prefix)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    vocab_size=st.sampled_from([300, 65499, 65500, 200_000]),
    data=st.data(),
)
def test_hypothesis_roundtrip(tmp_path_factory, vocab_size, data):
    docs = data.draw(st.lists(st.lists(st.integers(0, vocab_size - 1), max_size=40), max_size=25))
    arrays = [np.array(d, dtype=np.int64) for d in docs]
    prefix = str(tmp_path_factory.mktemp("h") / "p")
    stats = write_indexed_dataset(prefix, arrays, vocab_size)
    ds = IndexedDataset(prefix)
    assert len(ds) == len(docs) == stats["n_docs"]
    assert ds.dtype == best_fitting_dtype(vocab_size)
    for i, d in enumerate(docs):
        assert ds[i].tolist() == d
