"""Tokenizer training and the Tokenize stage, through to Megatron shards and back to text."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stages.token_shards import IndexedDataset, write_indexed_dataset
from stages.tokenize import (
    SAMPLE_TOKENIZER,
    SAMPLE_TOKENIZER_DIR,
    Tokenize,
    TokenizeConfig,
    tokenizer_hash,
    train_tokenizer,
)
from tests.real_data import shared_data_dir, skip_reason

DATA = shared_data_dir()

BUILTIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. The dog sleeps in the sun.",
    "Tokenizers split text into pieces; byte-level BPE never needs an unknown token.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Maß und Öl.",
    "El rápido zorro marrón salta sobre el perro perezoso, ¿verdad? ¡Sí!",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "敏捷的棕色狐狸跳过了懒狗。今天天气很好，我们去公园散步吧。",
    "素早い茶色の狐が怠け者の犬を飛び越える。東京は日本の首都です。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘습니다.",
    "Emoji test 🎉🚀👩‍👩‍👧‍👦 and flags 🇩🇪🇫🇷 in running text.",
    "Numbers 3.14159, 2,718 and dates 2024-05-17 appear in web pages all the time.",
] * 20

TRICKY_DOCS = [
    "héllo wörld — “quotes” … ‘single’",
    "中文、日本語、한국어 mixed with English",
    "emoji 🎉🚀 ZWJ 👩‍👩‍👧‍👦 skin 👍🏽 flag 🇺🇦",
    "control \x00 \x01 \x07 \x1b[31m \x7f and C1 \x85 chars",
    "  leading and trailing whitespace \t\r\n\n  ",
    "a literal <|endoftext|> inside a page and <|pad|> too",
    "",
    "\u200b\u200d\ufeff zero-width and BOM, combining e\u0301 vs é",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral plane 𐍈 and RTL עברית العربية",
]


def _write_parquet(path: Path, texts: list, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": pa.array(texts, type=pa.string())}), path, **kw)


@pytest.fixture(scope="module")
def builtin_tokenizer(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("corpus")
    _write_parquet(d / "part-0.parquet", BUILTIN_TEXT)
    out = d / "tok" / "tokenizer.json"  # DIR/tokenizer.json names the directory DIR
    train_tokenizer([str(d)], vocab_size=600, out=str(out), sample_docs=1000, seed=0)
    return str(out)


def _roundtrip(tok_path: str, docs: list[str], tmp_path: Path) -> None:
    """Tokenize -> write shard -> read shard -> decode == original text, in order."""
    stage = Tokenize(TokenizeConfig(tokenizer_path=tok_path))
    out = stage(pa.table({"text": docs}))
    assert out.column("n_tokens").type == pa.int32()
    assert out.column("tokens").type == pa.large_list(pa.uint32())
    n_tokens = out.column("n_tokens").to_numpy()
    stats = write_indexed_dataset(str(tmp_path / "shard"), out.column("tokens"), stage.vocab_size)
    assert stats["n_docs"] == len(docs) and stats["n_tokens"] == int(n_tokens.sum())
    ds = IndexedDataset(str(tmp_path / "shard"))
    assert len(ds) == len(docs)
    assert ds.lengths.tolist() == n_tokens.tolist()
    for i, text in enumerate(docs):
        ids = ds[i]
        assert ids[-1] == stage.eos_id
        assert stage.eos_id not in ids[:-1].tolist()  # the only boundary is the appended EOS
        decoded = stage.tokenizer.decode(ids[:-1].tolist(), skip_special_tokens=False)
        assert decoded == text, (i, text, decoded)


def test_builtin_roundtrip_lossless(builtin_tokenizer, tmp_path):
    docs = TRICKY_DOCS + BUILTIN_TEXT[:10]
    _roundtrip(builtin_tokenizer, docs, tmp_path)


def test_langid_sentences_roundtrip(tmp_path):
    langid = DATA / "langid"
    if not langid.is_dir():
        pytest.skip(skip_reason())
    texts = []
    for f in sorted(langid.glob("*.txt")):
        texts += f.read_text(encoding="utf-8").splitlines()[:40]
    _write_parquet(tmp_path / "c" / "a.parquet", texts[: len(texts) // 2], row_group_size=500)
    _write_parquet(tmp_path / "c" / "sub" / "b.parquet", texts[len(texts) // 2 :])
    stats = train_tokenizer(
        [str(tmp_path / "c")], vocab_size=3000, out=str(tmp_path / "tok"), sample_docs=2000
    )
    assert stats["files"] == 2 and stats["docs_sampled"] == 2000
    assert stats["vocab_size"] == 3000
    rng = np.random.default_rng(1)
    docs = [texts[i] for i in rng.choice(len(texts), 300, replace=False)] + TRICKY_DOCS
    _roundtrip(str(tmp_path / "tok"), docs, tmp_path)  # the directory works as tokenizer_path


def test_training_deterministic_and_seeded(tmp_path):
    corpus = tmp_path / "c"
    varied = [f"{t} #{i} {'x' * (i % 13)} {i * 7919}" for i, t in enumerate(BUILTIN_TEXT)]
    _write_parquet(corpus / "a.parquet", varied, row_group_size=37)
    a = train_tokenizer([str(corpus)], 500, str(tmp_path / "a"), sample_docs=50, seed=3)
    b = train_tokenizer([str(corpus)], 500, str(tmp_path / "b"), sample_docs=50, seed=3)
    c = train_tokenizer([str(corpus)], 500, str(tmp_path / "c"), sample_docs=50, seed=4)
    names = sorted(f.name for f in (tmp_path / "a").iterdir())
    assert names == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a["sha256"] == b["sha256"] == tokenizer_hash(tmp_path / "a")
    assert a["sha256"] == tokenizer_hash(tmp_path / "a" / "tokenizer.json")
    assert a["sha256"] != c["sha256"]
    assert a["docs_sampled"] == 50 and a["docs_total"] == len(varied)
    assert not list(tmp_path.rglob(".*tmp*"))
    with pytest.raises(ValueError, match="directory"):  # a .json other than tokenizer.json
        train_tokenizer([str(corpus)], 500, str(tmp_path / "d.json"), sample_docs=50)


def test_training_input_discovery(tmp_path):
    corpus = tmp_path / "c"
    _write_parquet(corpus / "a.parquet", BUILTIN_TEXT[:10])
    _write_parquet(corpus / "deep" / "er" / "b.parquet", [None, "", "x y z"])
    _write_parquet(corpus / "_temporary" / "c.parquet", ["ignored"] * 5)
    _write_parquet(corpus / ".hidden.parquet", ["ignored"] * 5)
    _write_parquet(corpus / "_SUCCESS.parquet", ["ignored"] * 5)
    (corpus / "notes.txt").write_text("not parquet")
    stats = train_tokenizer([str(corpus)], 300, str(tmp_path / "t"))
    assert stats["files"] == 2
    assert stats["docs_total"] == 13
    assert stats["docs_sampled"] == 11 and stats["docs_empty_skipped"] == 2
    # an explicit file is taken as is; explicit non-parquet or missing inputs are errors
    stats = train_tokenizer([str(corpus / "a.parquet")], 300, str(tmp_path / "t2"))
    assert stats["files"] == 1
    with pytest.raises(ValueError, match="not a .parquet"):
        train_tokenizer([str(corpus / "notes.txt")], 300, str(tmp_path / "t3"))
    with pytest.raises(FileNotFoundError):
        train_tokenizer([str(tmp_path / "nope")], 300, str(tmp_path / "t4"))
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer([str(corpus)], 100, str(tmp_path / "t5"))


def test_config_errors(builtin_tokenizer, tmp_path):
    with pytest.raises(ValidationError):
        TokenizeConfig(tokenizer_path=builtin_tokenizer, unknown=1)
    with pytest.raises(FileNotFoundError, match="tokenizer_path"):
        Tokenize(TokenizeConfig(tokenizer_path=str(tmp_path / "missing.json")))
    with pytest.raises(FileNotFoundError, match="has no tokenizer.json"):
        Tokenize(TokenizeConfig(tokenizer_path=str(tmp_path)))
    if SAMPLE_TOKENIZER.is_file():
        assert Tokenize(TokenizeConfig()).tokenizer_path == str(SAMPLE_TOKENIZER)
    else:
        with pytest.raises(FileNotFoundError, match="tokenizer_path"):
            Tokenize(TokenizeConfig())
    with pytest.raises(ValueError, match="eos_token"):
        Tokenize(TokenizeConfig(tokenizer_path=builtin_tokenizer, eos_token="<|nope|>"))


def test_stage_columns_eos_and_dropped_rows(builtin_tokenizer):
    stage = Tokenize(TokenizeConfig(tokenizer_path=builtin_tokenizer, batch_size=2))
    assert (
        stage.tokenizer_sha256 == hashlib.sha256(Path(builtin_tokenizer).read_bytes()).hexdigest()
    )
    table = pa.table(
        {
            "doc_id": ["a", "b", "c", "d", "e"],
            "text": ["The dog.", "dropped text", None, "", "Der Hund."],
            "drop_reason": [None, "dedup.exact", None, None, None],
        }
    )
    out = stage(table)
    assert out.column_names == ["doc_id", "text", "drop_reason", "n_tokens", "tokens"]
    toks = out.column("tokens").to_pylist()
    n = out.column("n_tokens").to_pylist()
    assert toks[1] is None and n[1] is None and toks[2] is None and n[2] is None
    assert toks[3] == [stage.eos_id] and n[3] == 1
    for i in (0, 4):
        expected = stage.tokenizer.encode(table["text"][i].as_py(), add_special_tokens=False).ids
        assert toks[i] == expected + [stage.eos_id] and n[i] == len(expected) + 1

    no_eos = Tokenize(TokenizeConfig(tokenizer_path=builtin_tokenizer, add_eos=False))
    out2 = no_eos(table)
    assert out2.column("tokens")[0].as_py() == toks[0][:-1]
    assert no_eos(table.slice(0, 0)).num_rows == 0


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(max_size=60), min_size=1, max_size=12))
def test_hypothesis_lossless_and_matches_single_encode(builtin_tokenizer, texts):
    stage = Tokenize(TokenizeConfig(tokenizer_path=builtin_tokenizer, batch_size=5))
    flat, lengths = stage.encode_texts(texts)
    assert lengths.size == len(texts) and int(lengths.sum()) == flat.size
    ends = np.cumsum(lengths)
    for text, end, n in zip(texts, ends, lengths, strict=True):
        ids = flat[end - n : end].tolist()
        assert ids[-1] == stage.eos_id
        single = stage.tokenizer.encode(text, add_special_tokens=False).ids
        assert ids[:-1] == single
        assert stage.tokenizer.decode(ids[:-1], skip_special_tokens=False) == text


# ---- training-ready tokenizer directory ---------------------------------------------------
TOKENIZER_DIR_FILES = ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]


def _megatron_hf_contract(tok_dir: str | Path) -> dict:
    """What Megatron-LM's `_HuggingFaceTokenizer` (megatron/training/tokenizer/tokenizer.py,
    `--tokenizer-type HuggingFaceTokenizer --tokenizer-model DIR`) does with a directory:
    AutoTokenizer.from_pretrained(DIR, trust_remote_code=False), then vocab_size = len(tok),
    eod = tok.eos_token_id, pad = tok.pad_token_id, bos = tok.bos_token_id,
    tokenize(text) = tok(text).input_ids, detokenize(ids) = tok.decode(ids)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        pretrained_model_name_or_path=str(tok_dir), trust_remote_code=False
    )
    vocab = tok.get_vocab()
    return {
        "tok": tok,
        "vocab_size": len(tok),
        "eod": tok.eos_token_id,
        "pad": tok.pad_token_id,
        "bos": tok.bos_token_id,
        "inv_vocab": {i: t for t, i in vocab.items()},
    }


@pytest.mark.parametrize("which", ["trained", "shipped"])
def test_tokenizer_dir_loads_in_transformers_and_megatron(which, builtin_tokenizer):
    """The directory `tokenizer train` writes (and the shipped sample one) loads through
    transformers.AutoTokenizer with the end-of-document id the shards use; text tokenized by
    the pipeline decodes back through it. A bare tokenizer.json gave Megatron eod = None."""
    tok_dir = Path(builtin_tokenizer).parent if which == "trained" else SAMPLE_TOKENIZER_DIR
    assert sorted(f.name for f in tok_dir.iterdir()) == TOKENIZER_DIR_FILES
    stage = Tokenize(TokenizeConfig(tokenizer_path=str(tok_dir)))
    m = _megatron_hf_contract(tok_dir)
    assert m["eod"] is not None and m["eod"] == stage.eos_id
    assert m["pad"] == stage.tokenizer.token_to_id("<|pad|>") is not None
    assert m["bos"] is None  # documents are separated by EOS only; no BOS is written
    assert m["vocab_size"] == stage.vocab_size  # Megatron pads its embedding from this
    assert m["inv_vocab"][m["eod"]] == "<|endoftext|>"
    docs = [d for d in TRICKY_DOCS if "<|" not in d]  # literal specials: see tokenize docs
    out = stage(pa.table({"text": docs}))
    for text, ids in zip(docs, out.column("tokens").to_pylist(), strict=True):
        assert ids[-1] == m["eod"]
        assert m["tok"](text).input_ids == ids[:-1]  # Megatron's tokenize()
        assert m["tok"].decode(ids[:-1]) == text  # Megatron's detokenize()
    cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
    assert cfg["eos_token"] == "<|endoftext|>" and not cfg["add_bos_token"]
    assert json.loads((tok_dir / "special_tokens_map.json").read_text()) == {
        "eos_token": "<|endoftext|>",
        "pad_token": "<|pad|>",
    }


def test_shipped_sample_tokenizer_identity_is_its_tokenizer_json():
    assert SAMPLE_TOKENIZER.parent == SAMPLE_TOKENIZER_DIR
    h = hashlib.sha256(SAMPLE_TOKENIZER.read_bytes()).hexdigest()
    assert tokenizer_hash(SAMPLE_TOKENIZER_DIR) == tokenizer_hash(SAMPLE_TOKENIZER) == h
    # the directory is reproducible from tokenizer.json: the config files are derived
    from tokenizers import Tokenizer

    from stages.tokenize import special_tokens_files

    derived = special_tokens_files(
        Tokenizer.from_file(str(SAMPLE_TOKENIZER)), "<|endoftext|>", "<|pad|>"
    )
    for name, body in derived.items():
        assert json.loads((SAMPLE_TOKENIZER_DIR / name).read_text()) == body


def test_cli_tokenizer_train_writes_the_directory(tmp_path, capsys):
    from pipeline.cli import main

    _write_parquet(tmp_path / "c" / "a.parquet", BUILTIN_TEXT)
    out = tmp_path / "tok"
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--input",
                str(tmp_path / "c"),
                "--vocab-size",
                "400",
                "--out",
                str(out),
                "--sample-docs",
                "100",
            ]
        )
        == 0
    )
    stats = json.loads(capsys.readouterr().out)
    assert sorted(f.name for f in out.iterdir()) == TOKENIZER_DIR_FILES
    assert stats["dir"] == str(out) and stats["sha256"] == tokenizer_hash(out)
    assert _megatron_hf_contract(out)["eod"] == 0
    # a .json --out other than tokenizer.json is a usage error (exit 2), nothing written
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--input",
                str(tmp_path / "c"),
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
        == 2
    )
    assert "directory" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
