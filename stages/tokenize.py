"""Tokenization: train a byte-level BPE on a corpus sample, and tokenize document batches.

Byte-level BPE (GPT-2 style: ByteLevel pre-tokenizer over all 256 bytes + ByteLevel decoder) is
lossless: every UTF-8 string encodes without unknown tokens and decodes back byte for byte, which
the token-shard round-trip tests check. A tokenizer is a training-ready directory
(``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``, loadable by
``transformers.AutoTokenizer`` and Megatron-LM's ``HuggingFaceTokenizer``); its identity is the
sha256 of ``tokenizer.json``. Nothing is downloaded. The stage appends ``n_tokens`` and ``tokens`` columns; the pipeline writes ``tokens``
into the Megatron ``.bin``/``.idx`` shard (stages/token_shards.py) and drops it from the Parquet.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from core import storage
from core.config_effects import Execution, ModelPath, Output

#: The default tokenizer directory, trained on the sample crawl (``pipeline tokenizer train``).
SAMPLE_TOKENIZER_DIR = Path(__file__).resolve().parent / "data" / "tokenizer"
#: Its ``tokenizer.json`` (the file whose sha256 lineage records).
SAMPLE_TOKENIZER = SAMPLE_TOKENIZER_DIR / "tokenizer.json"

TOKENIZER_FILE = "tokenizer.json"
DEFAULT_EOS_TOKEN = "<|endoftext|>"
DEFAULT_PAD_TOKEN = "<|pad|>"
DEFAULT_SPECIAL_TOKENS = (DEFAULT_EOS_TOKEN, DEFAULT_PAD_TOKEN)


def tokenizer_file(path: str | os.PathLike) -> Path:
    """The ``tokenizer.json`` of a tokenizer given as its directory or as that file."""
    p = Path(path)
    return p / TOKENIZER_FILE if p.is_dir() else p


def tokenizer_hash(path: str | os.PathLike) -> str:
    """sha256 of the tokenizer.json bytes (of a file, or of a tokenizer directory's
    tokenizer.json): the identity lineage records for a run."""
    h = hashlib.sha256()
    with open(tokenizer_file(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TokenizeConfig(BaseModel):
    """Configuration of the Tokenize stage."""

    model_config = ConfigDict(extra="forbid")

    tokenizer_path: ModelPath[str | None] = Field(
        default=None,
        description=(
            "Tokenizer directory (tokenizer.json + tokenizer_config.json + "
            "special_tokens_map.json, as `python -m pipeline tokenizer train` writes) or a bare "
            "Hugging Face `tokenizers` tokenizer.json. None uses the tokenizer shipped with the "
            "package (stages/data/tokenizer/, trained on the sample crawl). Never downloaded."
        ),
    )
    eos_token: Output[str] = Field(
        default="<|endoftext|>",
        description=(
            "End-of-document token appended to every document so that documents packed into "
            "training sequences stay separated (GPT-2 / Megatron `--append-eod` convention). "
            "Must be in the tokenizer's vocabulary."
        ),
    )
    add_eos: Output[bool] = Field(
        default=True,
        description="Append `eos_token` to every document (counted in `n_tokens`).",
    )
    batch_size: Execution[int] = Field(
        default=1024,
        ge=1,
        description=(
            "Documents per `encode_batch` call; bounds the memory of Rust-side encodings. The "
            "Rust encoder parallelises within a call (threads: env RAYON_NUM_THREADS; "
            "TOKENIZERS_PARALLELISM=false disables it)."
        ),
    )
    encode_special_tokens: Output[bool] = Field(
        default=True,
        description=(
            "Encode special-token strings that occur in document text (e.g. a literal "
            "'<|endoftext|>' on a web page) as ordinary bytes, so only the appended EOS id "
            "marks a document boundary. Decoding stays lossless either way."
        ),
    )

    def resolved_tokenizer_path(self) -> Path:
        """The tokenizer.json to load (of a directory or the file); a clear error if absent."""
        if self.tokenizer_path is None:
            if not SAMPLE_TOKENIZER.is_file():
                raise FileNotFoundError(
                    f"TokenizeConfig.tokenizer_path is None and the package's sample tokenizer "
                    f"{SAMPLE_TOKENIZER} does not exist; set tokenizer_path to a tokenizer.json "
                    f"(train one with `python -m pipeline tokenizer train`)"
                )
            return SAMPLE_TOKENIZER
        p = tokenizer_file(self.tokenizer_path)
        if not p.is_file():
            raise FileNotFoundError(
                f"TokenizeConfig.tokenizer_path: no such file {p}"
                + (
                    f" (the directory {self.tokenizer_path} has no {TOKENIZER_FILE})"
                    if Path(self.tokenizer_path).is_dir()
                    else ""
                )
            )
        return p


class Tokenize:
    """Appends ``n_tokens`` (int32, incl. EOS) and ``tokens`` (large_list<uint32>) columns.

    Rows with a non-null ``drop_reason`` (if that column exists) are not tokenized and get nulls.
    ``self.vocab_size`` (incl. added tokens) is what the shard writer needs to pick the dtype;
    ``self.tokenizer_sha256`` is what lineage records.
    """

    def __init__(self, cfg: TokenizeConfig) -> None:
        self.cfg = cfg
        path = cfg.resolved_tokenizer_path()
        self.tokenizer_path = str(path)
        self.tokenizer_sha256 = tokenizer_hash(path)
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.encode_special_tokens = cfg.encode_special_tokens
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)
        eos_id = self.tokenizer.token_to_id(cfg.eos_token)
        if eos_id is None:
            raise ValueError(
                f"TokenizeConfig.eos_token {cfg.eos_token!r} is not in the vocabulary of {path}"
            )
        self.eos_id = int(eos_id)

    def encode_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of ``texts`` as (flat uint32 array, int64 per-document lengths), EOS incl."""
        flats: list[np.ndarray] = []
        lens: list[np.ndarray] = []
        bs = self.cfg.batch_size
        for start in range(0, len(texts), bs):
            encs = self.tokenizer.encode_batch_fast(
                list(texts[start : start + bs]), add_special_tokens=False
            )
            n = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
            # chain.from_iterable + fromiter stays in C: no per-token Python bytecode.
            flat = np.fromiter(
                chain.from_iterable(e.ids for e in encs), dtype=np.uint32, count=int(n.sum())
            )
            flats.append(flat)
            lens.append(n)
        flat = np.concatenate(flats) if flats else np.empty(0, dtype=np.uint32)
        lengths = np.concatenate(lens) if lens else np.empty(0, dtype=np.int64)
        if self.cfg.add_eos and lengths.size:
            ends = np.cumsum(lengths)
            flat = np.insert(flat, ends, np.uint32(self.eos_id))
            lengths = lengths + 1
        return flat, lengths

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        text = table.column("text")
        keep = pc.is_valid(text)
        if "drop_reason" in table.column_names:
            keep = pc.and_(keep, pc.is_null(table.column("drop_reason")))
        keep_np = keep.to_numpy(zero_copy_only=False) if n else np.zeros(0, dtype=bool)
        rows = np.flatnonzero(keep_np)
        texts = text.take(pa.array(rows, type=pa.int64())).to_pylist() if n else []
        flat, lengths = self.encode_texts(texts)

        all_lengths = np.zeros(n, dtype=np.int64)
        all_lengths[rows] = lengths
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(all_lengths, out=offsets[1:])
        mask = None if rows.size == n else pa.array(~keep_np)
        tokens = pa.LargeListArray.from_arrays(
            pa.array(offsets, type=pa.int64()), pa.array(flat, type=pa.uint32()), mask=mask
        )
        n_tokens = pa.array(all_lengths.astype(np.int32), mask=~keep_np)
        return table.append_column("n_tokens", n_tokens).append_column("tokens", tokens)


# --------------------------------------------------------------------------------------------
# Tokenizer training


def _list_parquet_files(inputs: Iterable[str]) -> list[tuple[pafs.FileSystem, str]]:
    """Parquet files named by ``inputs`` (files or directories, local paths or URIs).

    Directories are walked recursively; files and directories whose name starts with ``_`` or
    ``.`` (``_SUCCESS``, ``.tmp``, Spark/Hive metadata) and non-``.parquet`` files are ignored.
    The order is sorted so the sample does not depend on listing order.
    """
    out: list[tuple[pafs.FileSystem, str]] = []
    for inp in inputs:
        if "://" in inp:
            fs, path = pafs.FileSystem.from_uri(inp)
        else:
            fs, path = pafs.LocalFileSystem(), os.path.abspath(inp)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"tokenizer training input not found: {inp}")
        if info.type == pafs.FileType.File:
            if not path.endswith(".parquet"):
                raise ValueError(f"tokenizer training input is not a .parquet file: {inp}")
            out.append((fs, path))
            continue
        found = []
        for fi in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
            if fi.type != pafs.FileType.File or not fi.path.endswith(".parquet"):
                continue
            rel = fi.path[len(path) :].strip("/").split("/")
            if any(part.startswith(("_", ".")) for part in rel):
                continue
            found.append(fi.path)
        out.extend((fs, p) for p in sorted(found))
    return out


def sample_texts(
    inputs: list[str], sample_docs: int, seed: int
) -> tuple[list[str], dict[str, int]]:
    """A seeded uniform sample (without replacement) of non-empty ``text`` values.

    Row counts come from Parquet footers; only row groups holding sampled rows are read, and
    only the ``text`` column.
    """
    files = _list_parquet_files(inputs)
    if not files:
        raise ValueError(f"no .parquet files found in {inputs}")
    groups: list[tuple[pafs.FileSystem, str, int, int]] = []  # fs, path, row group, rows
    for fs, path in files:
        with fs.open_input_file(path) as f:
            md = pq.ParquetFile(f).metadata
            groups.extend((fs, path, g, md.row_group(g).num_rows) for g in range(md.num_row_groups))
    sizes = np.array([g[3] for g in groups], dtype=np.int64)
    total = int(sizes.sum())
    rng = np.random.default_rng(seed)
    k = min(sample_docs, total)
    chosen = np.sort(rng.choice(total, size=k, replace=False)) if k < total else np.arange(total)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    texts: list[str] = []
    empty = 0
    for gi in np.unique(np.searchsorted(starts, chosen, side="right") - 1):
        fs, path, g, _ = groups[gi]
        local = chosen[(chosen >= starts[gi]) & (chosen < starts[gi + 1])] - starts[gi]
        with fs.open_input_file(path) as f:
            col = pq.ParquetFile(f).read_row_group(int(g), columns=["text"]).column("text")
        for t in col.take(pa.array(local)).to_pylist():
            if t:
                texts.append(t)
            else:
                empty += 1
    stats = {
        "files": len(files),
        "docs_total": total,
        "docs_sampled": len(texts),
        "docs_empty_skipped": empty,
    }
    return texts, stats


def build_bpe_tokenizer() -> Tokenizer:
    """An untrained lossless byte-level BPE (no normalizer, no prefix space)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer_on_texts(
    texts: Sequence[str],
    vocab_size: int,
    special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
    min_frequency: int = 2,
) -> Tokenizer:
    """Train byte-level BPE on in-memory texts with the `tokenizers` BpeTrainer."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(special_tokens):
        raise ValueError(
            f"vocab_size {vocab_size} is below the {len(alphabet)} byte symbols + "
            f"{len(special_tokens)} special tokens"
        )
    tok = build_bpe_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def tokenizer_dir_of(out: str | os.PathLike) -> Path:
    """Directory a trained tokenizer goes to: `out` itself, or the directory of an `out`
    that names a ``tokenizer.json`` (the older command line)."""
    p = Path(out)
    if p.name == TOKENIZER_FILE:
        return p.parent
    if p.suffix == ".json":
        raise ValueError(
            f"--out {out}: give the tokenizer's directory (it gets tokenizer.json, "
            f"tokenizer_config.json and special_tokens_map.json), not a .json file"
        )
    return p


def special_tokens_files(
    tok: Tokenizer, eos_token: str, pad_token: str | None, bos_token: str | None = None
) -> dict[str, dict]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` for a `tokenizers` model.

    What `transformers.AutoTokenizer` needs to build a ``PreTrainedTokenizerFast`` over our
    tokenizer.json with ``eos_token_id`` set (Megatron-LM's ``_HuggingFaceTokenizer`` takes
    its end-of-document id ``eod`` from ``eos_token_id``). No BOS is written unless asked
    for: the pipeline separates documents with EOS only. Nothing is added around encoded
    text (``add_bos_token``/``add_eos_token`` false): the shards append EOS themselves.
    """
    specials = {"eos_token": eos_token, "pad_token": pad_token, "bos_token": bos_token}
    specials = {k: v for k, v in specials.items() if v is not None}
    for name, content in specials.items():
        if tok.token_to_id(content) is None:
            raise ValueError(f"{name} {content!r} is not in the tokenizer's vocabulary")
    added = {}
    for tid in sorted({tok.token_to_id(c) for c in specials.values()}):
        added[str(tid)] = {
            "content": tok.id_to_token(tid),
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": added,
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": specials}


def write_tokenizer_dir(
    tok: Tokenizer,
    out_dir: str | os.PathLike,
    *,
    eos_token: str = DEFAULT_EOS_TOKEN,
    pad_token: str | None = DEFAULT_PAD_TOKEN,
    bos_token: str | None = None,
) -> dict[str, str]:
    """Write a training-ready tokenizer directory; returns {file name: sha256}.

    Every file is written with a fixed layout (sorted keys in the two config files) and
    renamed into place, tokenizer.json last, so same tokenizer = same bytes.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    files = {
        name: (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        for name, body in special_tokens_files(tok, eos_token, pad_token, bos_token).items()
    }
    files[TOKENIZER_FILE] = tok.to_str(pretty=True).encode("utf-8")
    for name, data in files.items():
        storage.write_bytes_atomic(str(d / name), data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def train_tokenizer(
    inputs: list[str],
    vocab_size: int,
    out: str,
    *,
    sample_docs: int = 20000,
    seed: int = 0,
    special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
) -> dict:
    """Train a byte-level BPE on a seeded sample of Parquet ``text``; write the directory
    ``out`` (tokenizer.json, tokenizer_config.json, special_tokens_map.json).

    `out` may also name ``DIR/tokenizer.json`` (the directory is DIR). The first special
    token is EOS, the second (if any) PAD. Same inputs + seed give byte-identical files (the
    sample is chosen by row index from footer counts, the trainer breaks ties
    deterministically, and the JSON is written with a fixed layout), so tokenizer.json's
    sha256 identifies the tokenizer in lineage.
    """
    out_dir = tokenizer_dir_of(out)
    if not special_tokens:
        raise ValueError("at least one special token (the end-of-document token) is needed")
    texts, stats = sample_texts(inputs, sample_docs, seed)
    if not texts:
        raise ValueError(f"no non-empty `text` values in {inputs}")
    tok = train_tokenizer_on_texts(texts, vocab_size, special_tokens)
    hashes = write_tokenizer_dir(
        tok,
        out_dir,
        eos_token=special_tokens[0],
        pad_token=special_tokens[1] if len(special_tokens) > 1 else None,
    )
    return {
        **stats,
        "chars_sampled": sum(len(t) for t in texts),
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "requested_vocab_size": vocab_size,
        "seed": seed,
        "dir": str(out_dir),
        "path": str(out_dir / TOKENIZER_FILE),
        "sha256": hashes[TOKENIZER_FILE],
    }
