"""Megatron-LM indexed dataset ("MMIDIDX") writer and numpy-memmap reader.

Training stacks built on Megatron-LM (and NeMo, which reuses its loader) read tokenized data as a
pair of files sharing a prefix:

``<prefix>.idx`` (all integers little-endian)::

    9 bytes   magic  b"MMIDIDX\\x00\\x00"
    u64       version = 1
    u8        dtype code of the tokens (uint8 1, int8 2, int16 3, int32 4, int64 5,
              float64 6, float32 7, uint16 8)
    u64       sequence count  S
    u64       document count  D (= S + 1 here: one sequence per document)
    int32[S]  sequence lengths (tokens)
    int64[S]  sequence pointers (byte offset of each sequence in .bin)
    int64[D]  document indices: the sequence index where each document starts, then S

``<prefix>.bin``: the tokens of all sequences back to back in that dtype.

The layout was checked against ``megatron/core/datasets/indexed_dataset.py`` in NVIDIA/Megatron-LM
(``_IndexWriter.write``, ``_IndexReader.__init__``, ``IndexedDatasetBuilder``, whose
``document_indices`` start as ``[0]`` and grow by one per ``add_document``), and the token dtype
follows ``DType.optimal_dtype(cardinality)``: ``uint16`` if ``cardinality < 65500`` else
``int32`` (Megatron has no uint32), called by ``tools/preprocess_data.py`` with the tokenizer's
vocabulary size. Nothing here imports Megatron or torch.

The core, :func:`write_indexed_dataset_bytes`, returns the two files as bytes so the pipeline can
put them on any filesystem (local, ``pyarrow.fs``, object stores); :func:`write_indexed_dataset`
writes them locally (atomically) or through a caller-supplied opener.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from core import storage

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER_SIZE = len(MAGIC) + 8 + 1 + 8 + 8  # 34 bytes, as Megatron's fast-cache path assumes

#: Megatron's DType enum: numpy dtype name -> code stored in the .idx header.
DTYPE_CODES: dict[str, int] = {
    "uint8": 1,
    "int8": 2,
    "int16": 3,
    "int32": 4,
    "int64": 5,
    "float64": 6,
    "float32": 7,
    "uint16": 8,
}
CODE_DTYPES: dict[int, np.dtype] = {code: np.dtype(name) for name, code in DTYPE_CODES.items()}

#: Megatron ``DType.optimal_dtype``: uint16 strictly below this vocabulary size, else int32.
UINT16_VOCAB_LIMIT = 65500

TokenInput = Any  # list[np.ndarray] | tuple[np.ndarray, np.ndarray] | pa.ListArray | ChunkedArray


class IndexedDatasetError(ValueError):
    """Raised when an .idx/.bin pair is malformed or inconsistent."""


def best_fitting_dtype(vocab_size: int) -> np.dtype:
    """Token dtype Megatron would choose for this vocabulary size (``DType.optimal_dtype``)."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size < UINT16_VOCAB_LIMIT else np.dtype(np.int32)


def _flat_and_lengths(tokens: TokenInput) -> tuple[np.ndarray, np.ndarray]:
    """Normalise the accepted token inputs to (flat int64-able array, int64 lengths)."""
    if isinstance(tokens, pa.ChunkedArray):
        tokens = tokens.combine_chunks() if tokens.num_chunks != 1 else tokens.chunk(0)
    if isinstance(tokens, pa.Array):
        if not pa.types.is_list(tokens.type) and not pa.types.is_large_list(tokens.type):
            raise TypeError(f"expected a list array of token ids, got {tokens.type}")
        if tokens.null_count:
            raise ValueError(f"{tokens.null_count} documents have null tokens; drop them first")
        lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.list_flatten(tokens).to_numpy(zero_copy_only=False)
        return flat, lengths
    if isinstance(tokens, tuple):
        if len(tokens) != 2:
            raise TypeError("tuple input must be (flat_tokens, lengths)")
        flat = np.asarray(tokens[0])
        lengths = np.asarray(tokens[1], dtype=np.int64)
        if flat.ndim != 1 or lengths.ndim != 1:
            raise ValueError("flat tokens and lengths must be 1-D")
        if lengths.size and lengths.min() < 0:
            raise ValueError("sequence lengths must be non-negative")
        if int(lengths.sum()) != flat.size:
            raise ValueError(
                f"lengths sum to {int(lengths.sum())} but there are {flat.size} flat tokens"
            )
        return flat, lengths
    if isinstance(tokens, Sequence):
        arrays = [np.asarray(a) for a in tokens]
        for i, a in enumerate(arrays):
            if a.ndim != 1:
                raise ValueError(f"document {i}: token array must be 1-D, got shape {a.shape}")
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        flat = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
        return flat, lengths
    raise TypeError(f"unsupported token input {type(tokens).__name__}")


def _check_ids(flat: np.ndarray, vocab_size: int) -> None:
    if flat.size == 0:
        return
    if flat.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {flat.dtype}")
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token ids must be in [0, {vocab_size}), found range [{lo}, {hi}]")


def build_index_bytes(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    """The .idx file for one-sequence-per-document data with these lengths and token dtype."""
    dtype = np.dtype(dtype)
    if dtype.name not in DTYPE_CODES:
        raise ValueError(f"dtype {dtype} has no Megatron code")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and int(lengths.max()) > np.iinfo(np.int32).max:
        raise ValueError("a sequence is longer than int32 allows in the .idx lengths array")
    n = int(lengths.size)
    pointers = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(lengths[:-1] * dtype.itemsize, out=pointers[1:])
    doc_idx = np.arange(n + 1, dtype=np.int64)
    header = (
        MAGIC
        + struct.pack("<Q", VERSION)
        + struct.pack("<B", DTYPE_CODES[dtype.name])
        + struct.pack("<Q", n)
        + struct.pack("<Q", n + 1)
    )
    return b"".join(
        [
            header,
            lengths.astype("<i4").tobytes(),
            pointers.astype("<i8").tobytes(),
            doc_idx.astype("<i8").tobytes(),
        ]
    )


def write_indexed_dataset_bytes(tokens: TokenInput, vocab_size: int) -> tuple[bytes, bytes]:
    """Serialise documents to Megatron ``(.bin bytes, .idx bytes)``, one sequence per document.

    ``tokens`` is a list of 1-D integer arrays (one per document), a ``(flat, lengths)`` tuple,
    or an Arrow list array (e.g. the ``tokens`` column of the Tokenize stage). Ids are checked to
    lie in ``[0, vocab_size)`` so the narrowing to uint16 can never wrap silently.
    """
    flat, lengths = _flat_and_lengths(tokens)
    _check_ids(flat, vocab_size)
    dtype = best_fitting_dtype(vocab_size)
    bin_bytes = flat.astype(dtype.newbyteorder("<"), copy=False).tobytes()
    return bin_bytes, build_index_bytes(lengths, dtype)


def write_indexed_dataset(
    prefix: str,
    tokens: TokenInput,
    vocab_size: int,
    *,
    open_output: Callable[[str], IO[bytes]] | None = None,
) -> dict:
    """Write ``<prefix>.bin`` and ``<prefix>.idx``; return what lineage needs about them.

    Locally each file is written to a temporary name in the same directory and renamed into
    place (``.bin`` first, then ``.idx``), so a reader never sees a half-written file and an
    ``.idx`` only exists next to its complete ``.bin``. With ``open_output`` (e.g.
    ``pyarrow.fs.S3FileSystem().open_output_stream``) the bytes go through that opener instead;
    object stores publish an object only when its stream is closed. A URI prefix
    (``s3://...``, ``file://...``) without ``open_output`` is written through
    ``pyarrow.fs.FileSystem.from_uri``.
    """
    flat, lengths = _flat_and_lengths(tokens)
    bin_bytes, idx_bytes = write_indexed_dataset_bytes((flat, lengths), vocab_size)
    bin_path, idx_path = f"{prefix}.bin", f"{prefix}.idx"
    if open_output is None and "://" in prefix:
        fs, fs_prefix = pafs.FileSystem.from_uri(prefix)
        fs.create_dir(fs_prefix.rsplit("/", 1)[0], recursive=True)
        for ext, data in ((".bin", bin_bytes), (".idx", idx_bytes)):
            with fs.open_output_stream(fs_prefix + ext) as f:
                f.write(data)
    elif open_output is None:
        Path(bin_path).parent.mkdir(parents=True, exist_ok=True)
        storage.write_bytes_atomic(str(bin_path), bin_bytes)
        storage.write_bytes_atomic(str(idx_path), idx_bytes)
    else:
        for path, data in ((bin_path, bin_bytes), (idx_path, idx_bytes)):
            with open_output(path) as f:
                f.write(data)
    dtype = best_fitting_dtype(vocab_size)
    return {
        "bin_path": bin_path,
        "idx_path": idx_path,
        "dtype": dtype.name,
        "n_docs": int(lengths.size),
        "n_tokens": int(flat.size),
        "bin_bytes": len(bin_bytes),
        "idx_bytes": len(idx_bytes),
        "bin_sha256": hashlib.sha256(bin_bytes).hexdigest(),
        "idx_sha256": hashlib.sha256(idx_bytes).hexdigest(),
    }


class IndexedDataset:
    """Read-only view of a Megatron indexed dataset; sequences are memmap slices (no copy).

    Validates the header and that the three index arrays, the pointers and the .bin size agree,
    so a truncated or foreign file fails here with a message instead of during training.
    """

    def __init__(self, prefix: str | os.PathLike) -> None:
        self.prefix = str(prefix)
        idx_path, bin_path = self.prefix + ".idx", self.prefix + ".bin"
        for p in (idx_path, bin_path):
            if not os.path.exists(p):
                raise FileNotFoundError(f"indexed dataset file missing: {p}")
        idx_size = os.path.getsize(idx_path)
        if idx_size < HEADER_SIZE:
            raise IndexedDatasetError(
                f"{idx_path}: {idx_size} bytes is shorter than the {HEADER_SIZE}-byte header"
            )
        with open(idx_path, "rb") as f:
            header = f.read(HEADER_SIZE)
        if header[:9] != MAGIC:
            raise IndexedDatasetError(f"{idx_path}: bad magic {header[:9]!r}, expected {MAGIC!r}")
        (version,) = struct.unpack_from("<Q", header, 9)
        if version != VERSION:
            raise IndexedDatasetError(f"{idx_path}: unsupported version {version}, expected 1")
        code = header[17]
        if code not in CODE_DTYPES:
            raise IndexedDatasetError(f"{idx_path}: unknown dtype code {code}")
        self.dtype: np.dtype = CODE_DTYPES[code]
        n_seq, n_doc = struct.unpack_from("<QQ", header, 18)
        expected = HEADER_SIZE + n_seq * 4 + n_seq * 8 + n_doc * 8
        if idx_size != expected:
            raise IndexedDatasetError(
                f"{idx_path}: size {idx_size} != {expected} expected for {n_seq} sequences and "
                f"{n_doc} document indices (truncated, or a multimodal index)"
            )
        idx = np.memmap(idx_path, mode="r", dtype=np.uint8)
        off = HEADER_SIZE
        self.lengths: np.ndarray = idx[off : off + 4 * n_seq].view("<i4")
        off += 4 * n_seq
        self.pointers: np.ndarray = idx[off : off + 8 * n_seq].view("<i8")
        off += 8 * n_seq
        self.doc_idx: np.ndarray = idx[off : off + 8 * n_doc].view("<i8")
        self._idx = idx

        if n_doc < 1 or self.doc_idx[0] != 0 or self.doc_idx[-1] != n_seq:
            raise IndexedDatasetError(
                f"{idx_path}: document indices must start at 0 and end at {n_seq}"
            )
        if n_doc > 1 and np.any(np.diff(self.doc_idx) < 0):
            raise IndexedDatasetError(f"{idx_path}: document indices are not non-decreasing")
        if n_seq and int(self.lengths.min()) < 0:
            raise IndexedDatasetError(f"{idx_path}: negative sequence length")
        itemsize = self.dtype.itemsize
        expected_ptr = np.zeros(n_seq, dtype=np.int64)
        if n_seq > 1:
            np.cumsum(self.lengths[:-1].astype(np.int64) * itemsize, out=expected_ptr[1:])
        if not np.array_equal(expected_ptr, self.pointers):
            raise IndexedDatasetError(
                f"{idx_path}: sequence pointers are not the running sum of lengths"
            )
        self.n_tokens = int(self.lengths.sum(dtype=np.int64))
        bin_size = os.path.getsize(bin_path)
        if bin_size != self.n_tokens * itemsize:
            raise IndexedDatasetError(
                f"{bin_path}: size {bin_size} != {self.n_tokens} tokens x {itemsize} bytes"
            )
        if bin_size:
            self._bin: np.ndarray = np.memmap(
                bin_path, mode="r", dtype=self.dtype.newbyteorder("<")
            )
        else:  # mmap cannot map an empty file
            self._bin = np.empty(0, dtype=self.dtype)
        self._starts = self.pointers // itemsize

    def __len__(self) -> int:
        return int(self.lengths.size)

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(i).__name__}")
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sequence {i} out of range for {n} sequences")
        start = int(self._starts[i])
        return self._bin[start : start + int(self.lengths[i])]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def token_offsets(self) -> np.ndarray:
        """Global token offset where each sequence starts (for token-range -> document lookups)."""
        return np.asarray(self._starts)

    def __repr__(self) -> str:
        return (
            f"IndexedDataset({self.prefix!r}, sequences={len(self)}, tokens={self.n_tokens}, "
            f"dtype={self.dtype.name})"
        )
