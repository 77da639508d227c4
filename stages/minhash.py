"""Exact hash + MinHash-LSH signatures for deduplication, vectorized over Arrow batches.

Why this module exists: phase 1 computes, per kept document, a ``text_hash`` (exact dedup) and
``minhash_bands`` (near-dup LSH keys); phase 2 (``pipeline/dedup_phase.py``) groups them
globally. Everything here is batch-level numpy/pyarrow.compute work; the only per-item Python
loops are one xxhash call per *distinct word of the batch* and one per document for the exact
hash.

Algorithm (per batch):

1. Normalize text with ``pyarrow.compute`` (NFKC, lowercase, punctuation / digit handling,
   whitespace collapse: all configurable). ``text_hash = xxh64(normalized utf-8, seed=0)``.
2. Split into words on whitespace; characters of scripts written without spaces (Han, Hiragana,
   Katakana, Thai, Lao, Khmer, Myanmar, Tibetan) are each treated as a word, so a Chinese page
   does not collapse into a single "word" (and a single shingle).
3. Hash every distinct word of the batch once: ``w = xxh64(word_utf8, seed=0)``.
4. Shingle hashes over word n-grams, vectorized over the flat word array:
   ``h = w_0; h = (h * C) ^ w_k`` for k = 1..n-1 (uint64 wrap-around), see
   :func:`combine_word_hashes`. A document with fewer than ``ngram`` words gets one shingle of
   all its words.
5. Permutations exactly as ``datasketch`` 2.x "affine64"/"affine32" schemes: the shingle hash
   is pre-mixed with the MurmurHash3 finalizer (fmix), then ``a_k * h + b_k mod 2^w`` with odd
   ``a_k`` (a bijection), ``a, b`` drawn from ``np.random.RandomState(seed)`` exactly like
   datasketch's ``MinHash._init_permutations``. Applied to all shingles of the batch at once
   (broadcast over a chunk of shingles x ``num_perm``) with a segmented minimum
   (``np.minimum.reduceat``).
6. LSH band keys: for band ``i`` the ``rows`` values are folded with fmix64 starting from a
   band-dependent constant, so equal keys in different bands never collide by construction of
   the grouping key (band index folded in).

Compatibility with datasketch: with ``hash_bits=64`` our signature equals
``datasketch.MinHash(num_perm, seed=seed, scheme="affine64", hashfunc=shingle_hashfunc)``
updated with the document's word n-gram tuples (tests assert equality); with ``hash_bits=32``
it equals ``scheme="affine32"`` with ``hashfunc`` returning the low 32 bits. datasketch's
*legacy* scheme (``(a*h+b) mod (2^61-1)``) needs 128-bit products and is not reproduced.

Hash width: 64-bit (default, as FineWeb) keeps the input hash collision-free for any document
size; 32-bit halves the per-permutation arithmetic and memory but the input hash saturates for
sets of ~10^8 shingles (irrelevant for web documents; documented by datasketch issue #212).
Band keys are always 64-bit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.config_effects import Execution, Output

__all__ = [
    "DedupConfig",
    "SignatureStage",
    "normalize_text",
    "split_words",
    "text_hashes",
    "word_hashes",
    "combine_word_hashes",
    "shingle_hashes",
    "permutations",
    "minhash_signatures",
    "band_keys",
    "shingle_hashfunc",
    "theoretical_candidate_probability",
]

TEXT_HASH_SEED = 0
"""Fixed xxhash64 seed for text_hash and word hashes: part of the on-disk index format."""

_SHINGLE_MULT = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio odd constant for n-gram combine
_BAND_MULT = np.uint64(0xFF51AFD7ED558CCD)
_MASK32 = np.uint64(0xFFFFFFFF)

# Scripts written without spaces: each character is one "word".
_NO_SPACE_SCRIPTS = (
    r"([\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}])"
)


class DedupConfig(BaseModel):
    """Exact + MinHash-LSH deduplication parameters (phase-1 signatures and phase-2 clustering).

    Changing any signature field (normalization, ngram, bands, rows, seed, hash_bits) makes band
    keys incompatible with an index written by earlier runs: rebuild the index.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(True, description="Run exact + near-duplicate removal.")
    lowercase: Output[bool] = Field(
        True, description="Lower-case before hashing (FineWeb/datatrove `simplify_text` does)."
    )
    unicode_nfkc: Output[bool] = Field(
        True,
        description="Unicode NFKC normalization before hashing, so compatibility forms "
        "(full-width letters, ligatures) compare equal.",
    )
    collapse_whitespace: Output[bool] = Field(
        True, description="Collapse whitespace runs to one space and trim (datatrove default)."
    )
    strip_punctuation: Output[bool] = Field(
        True,
        description="Replace Unicode punctuation and symbols (\\p{P}, \\p{S}) with spaces "
        "(datatrove `remove_punctuation=True`).",
    )
    digits: Output[Literal["keep", "zero", "strip"]] = Field(
        "zero",
        description="Digits: keep, map every digit to '0' (datatrove `norm_numbers=True`, so "
        "pages differing only in dates/counters match) or strip them.",
    )
    ngram: Output[int] = Field(
        5, ge=1, le=32, description="Word n-gram shingle size (FineWeb: 5-word shingles)."
    )
    bands: Output[int] = Field(
        14, ge=1, description="LSH bands (FineWeb: 14 bands x 8 rows = 112)."
    )
    rows: Output[int] = Field(8, ge=1, description="MinHash values per band (FineWeb: 8).")
    seed: Output[int] = Field(
        1,
        ge=0,
        lt=2**32,
        description="Permutation seed, same semantics as datasketch.MinHash(seed=...) "
        "(numpy RandomState; datasketch default 1).",
    )
    hash_bits: Output[Literal[32, 64]] = Field(
        64,
        description="Width of shingle hashes and permutations: 64 = datasketch scheme "
        "'affine64' (FineWeb uses 64-bit hashes); 32 = 'affine32', faster, fine below ~1e8 "
        "shingles per document.",
    )
    threshold: Output[float] = Field(
        0.8,
        gt=0,
        le=1,
        description="Documentation only: the Jaccard similarity the bands/rows choice targets. "
        "LSH candidate probability is 1-(1-s^rows)^bands: 14x8 gives 0.92 at s=0.8, 0.57 at 0.7, "
        "0.03 at 0.5 (FineWeb, ANCHORS.md). No exact-Jaccard verification is done (as FineWeb).",
    )
    chunk_shingles: Execution[int] = Field(
        4096,
        ge=64,
        description="Shingles per permutation block (block = chunk x num_perm words): sized so "
        "the block stays in CPU cache; affects speed only.",
    )
    num_partitions: Execution[int] = Field(
        0,
        ge=0,
        description="Phase 2: key-range partitions of every shuffle (rounded up to a power of "
        "two); 0 = one per million documents, at least 4 per cluster CPU.",
    )

    @model_validator(mode="after")
    def _check(self) -> DedupConfig:
        if self.num_perm > 1024:
            raise ValueError("bands * rows must be <= 1024")
        return self

    @property
    def num_perm(self) -> int:
        """Number of permutations = bands * rows."""
        return self.bands * self.rows


def theoretical_candidate_probability(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """LSH S-curve: P(two docs share >= 1 band | Jaccard s) = 1 - (1 - s^rows)^bands."""
    s = np.asarray(s, dtype=np.float64)
    return 1.0 - (1.0 - s**rows) ** bands


# ----------------------------------------------------------------------------- normalization


def normalize_text(text: pa.Array | pa.ChunkedArray, cfg: DedupConfig) -> pa.Array:
    """Normalize a string column per ``cfg`` (all Arrow compute kernels, no Python loop)."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if pa.types.is_large_string(text.type) or pa.types.is_string_view(text.type):
        text = text.cast(pa.large_string())
    out = text
    if cfg.unicode_nfkc:
        out = pc.utf8_normalize(out, "NFKC")
    if cfg.lowercase:
        out = pc.utf8_lower(out)
    if cfg.strip_punctuation:
        out = pc.replace_substring_regex(out, r"[\p{P}\p{S}]+", " ")
    if cfg.digits == "zero":
        out = pc.replace_substring_regex(out, r"\p{Nd}", "0")
    elif cfg.digits == "strip":
        out = pc.replace_substring_regex(out, r"\p{N}+", " ")
    if cfg.collapse_whitespace:
        # split + join is ~2x faster than a \s+ regex replace and also trims
        out = pc.binary_join(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(out)), " ")
    return out


def split_words(norm: pa.Array) -> pa.Array:
    """Split normalized text into words (a ListArray); no-space-script characters are words."""
    spaced = pc.replace_substring_regex(norm, _NO_SPACE_SCRIPTS, r" \1 ")
    return pc.utf8_split_whitespace(pc.utf8_trim_whitespace(spaced))


def _words_flat(norm: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(flat non-empty words, offsets[n+1]) of a normalized string array."""
    words = split_words(norm)
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    offsets = words.offsets.to_numpy().astype(np.int64)
    flat = words.flatten()
    offsets = offsets - offsets[0]
    lens = pc.binary_length(flat).to_numpy(zero_copy_only=False)
    keep = lens > 0
    if not keep.all():  # "" splits into [""]: drop empty tokens, fix offsets
        ck = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        offsets = ck[offsets]
        flat = flat.filter(pa.array(keep))
    return flat, offsets


def text_hashes(norm: pa.Array) -> np.ndarray:
    """xxh64 (fixed seed) of each normalized text; nulls hash like the empty string."""
    h = xxhash.xxh64_intdigest
    vals = norm.to_pylist()
    return np.fromiter(
        (h((v or "").encode("utf-8"), TEXT_HASH_SEED) for v in vals),
        dtype=np.uint64,
        count=len(vals),
    )


def word_hashes(flat_words: pa.Array) -> np.ndarray:
    """xxh64 of every word, hashing each DISTINCT word of the batch once (dictionary encode)."""
    if len(flat_words) == 0:
        return np.zeros(0, dtype=np.uint64)
    enc = pc.dictionary_encode(flat_words)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    h = xxhash.xxh64_intdigest
    dictionary = enc.dictionary.to_pylist()
    uniq = np.fromiter(
        (h(w.encode("utf-8"), TEXT_HASH_SEED) for w in dictionary),
        dtype=np.uint64,
        count=len(dictionary),
    )
    return uniq[enc.indices.to_numpy(zero_copy_only=False)]


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def combine_word_hashes(hashes: list[int]) -> int:
    """Scalar reference of the n-gram combine: ``h = w0; h = h*C ^ wk`` (mod 2^64)."""
    m = (1 << 64) - 1
    h = hashes[0]
    for w in hashes[1:]:
        h = ((h * int(_SHINGLE_MULT)) & m) ^ w
    return h


def shingle_hashfunc(hash_bits: int = 64):
    """A datasketch ``hashfunc`` taking a tuple of words (str) -> our shingle hash.

    ``MinHash(scheme=f"affine{hash_bits}", hashfunc=shingle_hashfunc(hash_bits))`` updated with
    word n-gram tuples reproduces :func:`minhash_signatures` bit for bit.
    """
    mask = (1 << hash_bits) - 1

    def _h(words: tuple[str, ...]) -> int:
        hs = [xxhash.xxh64_intdigest(w.encode("utf-8"), TEXT_HASH_SEED) for w in words]
        return combine_word_hashes(hs) & mask

    return _h


def shingle_hashes(w: np.ndarray, offsets: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of all docs from flat word hashes ``w`` and word ``offsets`` (len N+1).

    Returns ``(hashes, shingle_offsets)``: shingles grouped by doc in doc order, doc i owning
    ``hashes[shingle_offsets[i]:shingle_offsets[i+1]]``. Documents with 0 words have no
    shingle; with 0 < L < ngram words, one shingle of all L words.
    """
    offsets = offsets.astype(np.int64, copy=False)
    lengths = np.diff(offsets)
    n_words = len(w)
    n_sh = np.where(lengths >= ngram, lengths - ngram + 1, np.minimum(lengths, 1))
    sh_offsets = np.concatenate(([0], np.cumsum(n_sh))).astype(np.int64)
    if n_words == 0:
        return np.zeros(0, dtype=np.uint64), sh_offsets
    # full[i] = hash of the n-gram starting at word i (valid where it stays inside its doc)
    full = w.copy()
    short_len = np.where(lengths < ngram, lengths, 0)
    starts = offsets[:-1]
    short_val = np.zeros(len(lengths), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, ngram):
            done = short_len == k  # full holds k-word combines: freeze docs of k words
            if done.any():
                short_val[done] = full[starts[done]]
            m = n_words - k
            if m <= 0:
                break
            nxt = full[:m] * _SHINGLE_MULT
            nxt ^= w[k:]
            full[:m] = nxt
    short = (lengths > 0) & (lengths < ngram)
    if short.any():
        full[starts[short]] = short_val[short]
    valid = np.ones(n_words, dtype=bool)
    long_ends = offsets[1:][lengths >= ngram]
    for k in range(1, ngram):
        valid[long_ends - k] = False
    if short.any():
        s_starts, s_len = starts[short], lengths[short]
        for k in range(1, ngram - 1):
            sel = s_len > k
            valid[s_starts[sel] + k] = False
    return full[valid], sh_offsets


def permutations(num_perm: int, seed: int, hash_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) exactly as datasketch 2.x ``MinHash._init_permutations`` for affine schemes."""
    dtype = np.uint64 if hash_bits == 64 else np.uint32
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << (hash_bits - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
    b = gen.randint(0, 1 << hash_bits, num_perm, dtype=dtype)
    return a, b


def minhash_signatures(
    sh: np.ndarray,
    sh_offsets: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    chunk: int = 4096,
) -> np.ndarray:
    """MinHash signatures (n_docs x num_perm) from shingle hashes grouped by doc.

    Works block-wise over ``chunk`` shingles: ``phv = a * fmix(h) + b`` (broadcast, wrap-around),
    then a segmented min per doc segment inside the block (``np.minimum.reduceat``); blocks
    split docs, so partial minima are merged into the running signature. Docs without shingles
    keep the max value. 64-bit blocks are laid out (num_perm x chunk) so the segmented min runs
    along contiguous memory (measured 1.6x faster than (chunk x num_perm) for uint64; the
    reverse holds for uint32).
    """
    dtype = a.dtype
    num_perm = len(a)
    n_docs = len(sh_offsets) - 1
    sig = np.full((n_docs, num_perm), np.iinfo(dtype).max, dtype=dtype)
    if len(sh) == 0:
        return sig
    if dtype == np.uint64:
        hv = _fmix64(sh)
    else:
        hv = _fmix32((sh & _MASK32).astype(np.uint32))
    ne_docs = np.flatnonzero(np.diff(sh_offsets) > 0)
    ne_starts = sh_offsets[ne_docs]
    transposed = dtype == np.uint64
    buf = np.empty((num_perm, chunk) if transposed else (chunk, num_perm), dtype=dtype)
    total = len(hv)
    with np.errstate(over="ignore"):
        for s in range(0, total, chunk):
            e = min(s + chunk, total)
            m = e - s
            i0 = int(np.searchsorted(ne_starts, s, "right")) - 1
            i1 = int(np.searchsorted(ne_starts, e, "left"))
            docs = ne_docs[i0:i1]
            seg = np.maximum(ne_starts[i0:i1], s) - s
            if transposed:
                blk = buf[:, :m]
                np.multiply(a[:, None], hv[None, s:e], out=blk)
                np.add(blk, b[:, None], out=blk)
                mins = np.minimum.reduceat(blk, seg, axis=1).T
            else:
                blk = buf[:m]
                np.multiply(hv[s:e, None], a[None, :], out=blk)
                np.add(blk, b[None, :], out=blk)
                mins = np.minimum.reduceat(blk, seg, axis=0)
            sig[docs] = np.minimum(sig[docs], mins)
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs x bands) uint64 band keys: fmix64 fold of each band's rows, band index folded in."""
    n = sig.shape[0]
    v = sig[:, : bands * rows].astype(np.uint64, copy=False).reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        h = np.broadcast_to(
            _fmix64(np.arange(1, bands + 1, dtype=np.uint64) * _BAND_MULT), (n, bands)
        ).copy()
        for j in range(rows):
            h = _fmix64((h * _SHINGLE_MULT) ^ v[:, :, j])
    return h


class SignatureStage:
    """Batch stage: appends ``text_hash`` (uint64) and ``minhash_bands``
    (fixed_size_list<uint64>[bands]) for rows whose ``drop_reason`` is null; other rows and rows
    with null text get nulls. Rows with text but no word get a text_hash and null bands (exact
    dedup only)."""

    def __init__(self, cfg: DedupConfig | None = None) -> None:
        self.cfg = cfg or DedupConfig()
        self.a, self.b = permutations(self.cfg.num_perm, self.cfg.seed, self.cfg.hash_bits)

    def signatures(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(text_hash[n], signatures[n x num_perm], has_words[n]) for a non-null string array."""
        cfg = self.cfg
        norm = normalize_text(texts, cfg)
        th = text_hashes(norm)
        flat, offsets = _words_flat(norm)
        w = word_hashes(flat)
        sh, sh_offsets = shingle_hashes(w, offsets, cfg.ngram)
        sig = minhash_signatures(sh, sh_offsets, self.a, self.b, cfg.chunk_shingles)
        return th, sig, np.diff(offsets) > 0

    def __call__(self, table: pa.Table) -> pa.Table:
        cfg = self.cfg
        n = table.num_rows
        text = table.column("text").combine_chunks() if n else pa.array([], pa.string())
        active = pc.is_valid(text)
        if "drop_reason" in table.column_names:
            active = pc.and_(active, pc.is_null(table.column("drop_reason")))
        active_np = np.asarray(active.to_numpy(zero_copy_only=False), dtype=bool)
        idx = np.flatnonzero(active_np)
        th_all = np.zeros(n, dtype=np.uint64)
        keys_all = np.zeros((n, cfg.bands), dtype=np.uint64)
        has_bands = np.zeros(n, dtype=bool)
        if len(idx):
            th, sig, has_words = self.signatures(text.take(pa.array(idx)))
            th_all[idx] = th
            keys_all[idx] = band_keys(sig, cfg.bands, cfg.rows)
            has_bands[idx] = has_words
        th_arr = pa.array(th_all, type=pa.uint64(), mask=~active_np)
        bands_arr = pa.FixedSizeListArray.from_arrays(
            pa.array(keys_all.reshape(-1), type=pa.uint64()),
            cfg.bands,
            mask=pa.array(~has_bands),
        )
        for name, col in (("text_hash", th_arr), ("minhash_bands", bands_arr)):
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, col)
        return table
