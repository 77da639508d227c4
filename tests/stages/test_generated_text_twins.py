"""Generated-text twins of the tests that read real sentences ($CCPIPE_SHARED_DATA/langid):
the same capabilities on the original multilingual prose the sample generator ships
(pipeline/sample/corpus.py), so that a clean clone still tests them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline.sample import corpus
from stages.minhash import DedupConfig, SignatureStage, normalize_text


def generated_sentences(lang: str) -> list[str]:
    table = getattr(corpus, lang.upper())
    return [s for _, paragraphs in table["topics"] for s in paragraphs]


@pytest.mark.parametrize("bits", [64, 32])
def test_signatures_equal_datasketch_on_generated_text(bits: int) -> None:
    from tests.stages.test_minhash import _datasketch_sig

    sents = [s for lang in ("en", "de", "zh", "ja", "ru") for s in generated_sentences(lang)[:40]]
    docs = [" ".join(sents[i : i + 7]) for i in range(0, len(sents), 7)]
    docs += ["one two", "a b c d e", "x"]
    cfg = DedupConfig(hash_bits=bits, seed=7)
    _, sig, has = SignatureStage(cfg).signatures(pa.array(docs))
    from tests.stages.test_minhash import split_words

    words = split_words(normalize_text(pa.array(docs), cfg)).to_pylist()
    assert has.all()
    for i, ws in enumerate(words):
        np.testing.assert_array_equal(sig[i], _datasketch_sig(ws, cfg), err_msg=docs[i][:80])


def test_near_dups_found_at_09_not_at_03_on_generated_text() -> None:
    from benchmarks.dedup_accuracy import exact_jaccard, make_pairs
    from stages.dedup_cluster import dedup_local
    from tests.stages.test_dedup_cluster import _sig_table

    rng = np.random.default_rng(11)
    sents = generated_sentences("en") + generated_sentences("de")
    found = {}
    for s in (0.9, 0.3):
        a, b = make_pairs(sents, np.full(20, s), rng)
        j = exact_jaccard(a, b, DedupConfig())
        assert abs(j.mean() - s) < 0.05
        n = len(a)
        out, _ = dedup_local(_sig_table(a + b, [1] * n + [2] * n))
        dropped = set(out.column("doc_id").to_pylist())
        found[s] = sum(f"doc{n + i:03d}" in dropped for i in range(n))
    assert found[0.9] == 20 and found[0.3] == 0


@pytest.mark.parametrize("lang", ["zh", "ja"])
def test_cjk_not_dropped_for_word_count_on_generated_text(lang: str) -> None:
    from stages.quality import QualityFilter

    text = "\n".join(generated_sentences(lang)[:12])
    sig, failing = QualityFilter().signals(pa.table({"text": [text], "lang": [lang]}))
    assert sig["q_word_count"][0] >= 50
    assert "gopher_quality.word_count" not in failing[0]
    assert "gopher_quality.mean_word_length" not in failing[0]


@pytest.mark.parametrize(
    "lang,enc",
    [
        ("de", "cp1252"),
        ("fr", "iso-8859-1"),
        ("ru", "cp1251"),
        ("ja", "shift_jis"),
        ("zh", "gb18030"),
        ("de", "utf-8"),
    ],
)
def test_decode_declared_in_meta_or_http_on_generated_text(lang: str, enc: str) -> None:
    from stages.text_decode import binary_ratio, decode_html

    text = " ".join(generated_sentences(lang)[:5])
    body = text.encode(enc, "ignore")
    text = body.decode(enc)
    page = (
        f'<html><head><meta charset="{enc}"></head><body><p>'.encode()
        + body
        + b"</p></body></html>"
    )
    assert text in decode_html(page, None)[0]
    assert text in decode_html(page, enc)[0]
    assert binary_ratio(decode_html(page, enc)[0]) < 0.01


def test_decode_wrong_or_missing_declaration_on_generated_text() -> None:
    from stages.text_decode import decode_html

    text = " ".join(generated_sentences("ru")[:5])
    got, enc = decode_html(text.encode("cp1251"), "utf-8")
    assert got == text, enc
    assert decode_html(text.encode("utf-8"), None)[0] == text
    assert decode_html(b"\xef\xbb\xbf" + text.encode("utf-8"), "latin-1")[0] == text


@pytest.mark.parametrize("label", ["iso-8859-1", "windows-1252", "us-ascii", "koi8-r", "gbk"])
def test_utf8_body_under_a_legacy_label_decodes_as_utf8_on_generated_text(label: str) -> None:
    from stages.text_decode import decode_html

    text = " ".join(generated_sentences("de")[:5])
    assert decode_html(text.encode("utf-8"), label) == (text, "utf-8")
    page = f'<meta charset="{label}"><p>{text}</p>'.encode()
    assert decode_html(page, None)[1] == "utf-8"


@pytest.mark.parametrize(
    "lang,enc",
    [("de", "cp1252"), ("ru", "cp1251"), ("ru", "koi8-r"), ("ja", "shift_jis"), ("zh", "gb18030")],
)
def test_legacy_page_keeps_its_codec_on_generated_text(lang: str, enc: str) -> None:
    import codecs

    from stages.text_decode import decode_html

    body = "\n".join(generated_sentences(lang)).encode(enc, "ignore")
    assert decode_html(body, enc) == (body.decode(enc), codecs.lookup(enc).name)


def test_tokenizer_trains_and_round_trips_generated_multilingual_text(tmp_path) -> None:
    from stages.tokenize import train_tokenizer
    from tests.stages.test_tokenize import TRICKY_DOCS, _roundtrip, _write_parquet

    texts = [
        s for lang in ("en", "de", "fr", "ru", "zh", "ja", "pl") for s in generated_sentences(lang)
    ]
    _write_parquet(tmp_path / "c" / "a.parquet", texts[: len(texts) // 2], row_group_size=50)
    _write_parquet(tmp_path / "c" / "sub" / "b.parquet", texts[len(texts) // 2 :])
    stats = train_tokenizer(
        [str(tmp_path / "c")], vocab_size=1500, out=str(tmp_path / "tok"), sample_docs=len(texts)
    )
    assert stats["files"] == 2 and stats["vocab_size"] == 1500
    _roundtrip(str(tmp_path / "tok"), texts[::3] + TRICKY_DOCS, tmp_path)


def test_binary_payload_is_dropped_on_generated_file(tmp_path) -> None:
    from pipeline.sample.generate import damaged_warcs
    from stages.extract import ExtractConfig, Extractor
    from stages.warc_reader import ReadConfig, read_warc

    path = damaged_warcs(tmp_path)["binary-payload.warc.gz"]
    table = pa.concat_tables([c.docs for c in read_warc(str(path), ReadConfig())])
    out = Extractor(ExtractConfig())(table)
    reasons = dict(zip(out["url"].to_pylist(), out["drop_reason"].to_pylist(), strict=True))
    assert reasons["http://binary.example.com/page.html"] == "extract.binary"


# ------------------------------------------------------------ extraction on the sample pages
@pytest.fixture(scope="module")
def sample_pages():
    """The first 60 content pages of the shipped sample, with their composed article text."""
    from pipeline.sample import sample_paths
    from pipeline.sample.generate import build_pages
    from stages.warc_reader import ReadConfig, read_warc

    text = {p.url: p.article_text for p in build_pages()[0] if p.kind == "content"}
    table = pa.concat_tables([c.docs for c in read_warc(sample_paths()[0], ReadConfig())])
    keep = [i for i, u in enumerate(table["url"].to_pylist()) if u in text][:60]
    return table.take(keep), text


def _norm(s: str) -> str:
    return " ".join(s.split())


@pytest.mark.parametrize("profile,floor", [("quality", 0.88), ("balanced", 0.88), ("fast", 0.85)])
def test_main_text_recall_and_boilerplate_on_sample_pages(sample_pages, profile, floor) -> None:
    """Each shipped profile's extraction settings (trafilatura, trafilatura fast=True,
    resiliparse) on the sample's generated articles."""
    from pipeline.config import load_config
    from stages.extract import Extractor

    cfg = load_config(None, ["extract.with_title=true"], profile=profile).extract
    table, text = sample_pages
    out = Extractor(cfg)(table)
    assert out.num_rows == table.num_rows and "title" in out.column_names
    hit = total = boiler = 0
    cookie = _norm(corpus.EN["cookie"])
    for url, got in zip(out["url"].to_pylist(), out["text"].to_pylist(), strict=True):
        body = _norm(got or "")
        for para in text[url].split("\n\n"):
            total += 1
            hit += _norm(para) in body
        boiler += cookie in body
    assert hit / total >= floor, (hit, total)
    assert boiler <= 0.1 * out.num_rows
    again = Extractor(cfg)(table)
    assert again["text"].to_pylist() == out["text"].to_pylist()  # deterministic
