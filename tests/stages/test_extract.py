"""Extraction stage on real pages: snippet recall, drop reasons, timeout, decoding."""

from __future__ import annotations

import codecs
import json
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.extract import ExtractConfig, Extractor
from stages.text_decode import binary_ratio, decode_html
from stages.warc_reader import ReadConfig, read_warc

N_PAGES = 30
# measured on the first 30 trafilatura-eval pages (benchmarks/extraction_quality.py --limit 30):
# trafilatura recall 0.952 precision 0.672; resiliparse recall 0.929 precision 0.672
FLOORS = {"trafilatura": (0.88, 0.60), "resiliparse": (0.85, 0.60)}
REASONS = {
    None,
    "extract.empty",
    "extract.timeout",
    "extract.too_large",
    "extract.error",
    "extract.binary",
    "extract.too_many_attributes",
}


def _docs(path: Path) -> pa.Table:
    return pa.concat_tables([c.docs for c in read_warc(str(path), ReadConfig())])


@pytest.fixture(scope="module")
def eval_pages(shared_data: Path) -> tuple[pa.Table, dict]:
    d = shared_data / "extraction"
    chunks = read_warc(str(d / "trafilatura-eval.warc.gz"), ReadConfig(chunk_records=N_PAGES))
    table = next(chunks).docs
    return table, json.loads((d / "trafilatura-eval.snippets.json").read_text())


@pytest.fixture(scope="module")
def big_page(shared_data: Path) -> pa.Table:
    return _docs(shared_data / "warc" / "cc" / "cc2009-copycat-coursehero.warc.gz").slice(0, 1)


def _norm(s: str) -> str:
    return " ".join(s.split())


@pytest.mark.parametrize("name", ["trafilatura", "resiliparse"])
def test_snippet_recall_on_real_pages(eval_pages, name: str) -> None:
    table, snippets = eval_pages
    out = Extractor(ExtractConfig(extractor=name))(table)
    assert out.num_rows == table.num_rows
    assert out.column_names == table.column_names + ["text", "drop_reason", "drop_detail"]
    tp = fn = fp = 0
    for url, text in zip(out["url"].to_pylist(), out["text"].to_pylist(), strict=True):
        body = _norm(text or "")
        for s in snippets[url]["with"]:
            tp, fn = (tp + 1, fn) if _norm(s) in body else (tp, fn + 1)
        fp += sum(_norm(s) in body for s in snippets[url]["without"])
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    floor_r, floor_p = FLOORS[name]
    assert recall >= floor_r, recall
    assert precision >= floor_p, precision
    assert set(out["drop_reason"].to_pylist()) <= REASONS


def test_batch_output_is_deterministic(eval_pages) -> None:
    """trafilatura's dedup cache is per batch: the same batch twice gives the same text."""
    table = eval_pages[0].slice(0, 4)
    ex = Extractor()
    assert ex(table)["text"].equals(ex(table)["text"])


def test_binary_payload_is_dropped(shared_data: Path) -> None:
    table = _docs(shared_data / "warc" / "damaged" / "binary-payload.warc.gz")
    out = Extractor(ExtractConfig(extractor="resiliparse"))(table)
    reasons = out["drop_reason"].to_pylist()
    assert reasons.count("extract.binary") == 1
    i = reasons.index("extract.binary")
    assert out["drop_detail"][i].as_py().startswith("binary_ratio=")
    assert out["text"][i].as_py() is None
    kept = [r for r in reasons if r is None]
    assert len(kept) >= 18  # the 22 real pages are text


def test_too_large_and_timeout(big_page: pa.Table) -> None:
    n = len(big_page["html"][0].as_py())
    out = Extractor(ExtractConfig(max_html_bytes=n - 1))(big_page)
    assert out["drop_reason"].to_pylist() == ["extract.too_large"]
    assert out["drop_detail"][0].as_py() == f"html_bytes={n} > {n - 1}"
    out = Extractor(ExtractConfig(timeout_s=0.005))(big_page)
    assert out["drop_reason"].to_pylist() == ["extract.timeout"]
    assert out["drop_detail"][0].as_py() == "timeout_s=0.005 exceeded"
    # the alarm is disarmed afterwards: a normal call right after works
    out = Extractor(ExtractConfig(extractor="resiliparse"))(big_page)
    assert out["drop_reason"].to_pylist() == [None] and len(out["text"][0].as_py()) > 200


@pytest.mark.parametrize("name", ["trafilatura", "resiliparse"])
def test_pathological_nesting_is_refused(name: str) -> None:
    """30,000 nested divs: resiliparse would spend minutes in C, beyond SIGALRM's reach."""
    html = ("<div>" * 30_000 + "deep text " * 50 + "</div>" * 30_000).encode()
    table = pa.table({"html": [html], "charset": ["utf-8"]})
    out = Extractor(ExtractConfig(extractor=name, timeout_s=2))(table)
    assert out["drop_reason"].to_pylist() == ["extract.too_large"]
    assert out["drop_detail"][0].as_py() == "nesting_depth=30000 > 2000"


SLOW_PAGE = ("<div>" * 30_000 + "deep text " * 50 + "</div>" * 30_000).encode()  # ~300 s


def _slow_batch() -> pa.Table:
    ok = b"<html><body><p>" + b"A normal paragraph of page text. " * 20 + b"</p></body></html>"
    return pa.table({"html": [ok, SLOW_PAGE, ok], "charset": ["utf-8"] * 3})


def test_timeout_works_off_the_main_thread() -> None:
    """Issue 19: SIGALRM only works on the main thread; the watchdog must work anywhere.

    The slow page is real work (resiliparse main_content is quadratic in nesting depth, about
    5 minutes at depth 30,000 here) with the depth guard lifted. It becomes extract.timeout
    and the pages after it in the same batch are still extracted.
    """
    result: dict = {}
    ex = Extractor(ExtractConfig(extractor="resiliparse", timeout_s=2, max_nesting_depth=1_000_000))
    t = threading.Thread(target=lambda: result.setdefault("out", ex(_slow_batch())), daemon=True)
    t.start()
    t.join(90)
    assert not t.is_alive(), "extraction of one slow page ran past 90 s with timeout_s=2"
    out = result["out"]
    assert out["drop_reason"].to_pylist() == [None, "extract.timeout", None]
    assert out["drop_detail"][1].as_py() == "timeout_s=2.0 exceeded"
    assert all("normal paragraph" in out["text"][i].as_py() for i in (0, 2))
    ex.close()


def test_tag_with_800k_attributes_is_refused_before_parsing() -> None:
    """Issue 19: a tag with 800k attributes hung lxml; the guard counts and drops it."""
    attrs = " ".join(f"a{i}=1" for i in range(800_000))
    html = f"<html><body><div {attrs}>text</div><p>more</p></body></html>".encode()
    table = pa.table({"html": [html], "charset": ["utf-8"]})
    result: dict = {}
    # no watchdog and no size limit: the attribute guard alone must hold
    ex = Extractor(ExtractConfig(timeout_s=0, max_html_bytes=64 << 20))
    t = threading.Thread(target=lambda: result.setdefault("out", ex(table)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "800k-attribute tag: extraction did not finish in 60 s"
    assert result["out"]["drop_reason"].to_pylist() == ["extract.too_many_attributes"]
    assert result["out"]["drop_detail"][0].as_py() == "attributes=800000 > 5000"


def test_empty_and_pre_dropped() -> None:
    table = pa.table(
        {
            "html": [
                b"<html><head><title>t</title></head><body><nav>Home</nav></body></html>",
                b"",
                b"<html><body><p>never looked at</p></body></html>",
            ],
            "charset": [None, None, None],
            "drop_reason": [None, None, "url.blocklist"],
            "drop_detail": [None, None, "domain=example.com"],
        }
    )
    out = Extractor(ExtractConfig(extractor="resiliparse", min_text_chars=20))(table)
    assert out["drop_reason"].to_pylist() == ["extract.empty", "extract.empty", "url.blocklist"]
    assert out["drop_detail"].to_pylist()[2] == "domain=example.com"
    assert out["text"].to_pylist() == [None, None, None]


def test_title_column(eval_pages) -> None:
    table = eval_pages[0].slice(0, 3)
    for name in ("trafilatura", "resiliparse"):
        out = Extractor(ExtractConfig(extractor=name, with_title=True))(table)
        titles = out["title"].to_pylist()
        assert sum(bool(t) for t in titles) >= 2, (name, titles)


# ------------------------------------------------------------------ decoding


@pytest.fixture(scope="module")
def sentences(shared_data: Path) -> dict[str, str]:
    d = shared_data / "langid"
    return {
        lang: " ".join((d / f"{lang}.txt").read_text(encoding="utf-8").splitlines()[:5])
        for lang in ("de", "fr", "ru", "ja", "zh", "el")
    }


@pytest.mark.parametrize(
    "lang,enc",
    [
        ("de", "cp1252"),
        ("fr", "iso-8859-1"),
        ("ru", "cp1251"),
        ("ja", "shift_jis"),
        ("zh", "gb18030"),
        ("el", "iso-8859-7"),
        ("de", "utf-8"),
    ],
)
def test_decode_declared_in_meta_or_http(sentences, lang: str, enc: str) -> None:
    # C1 controls (U+0080..U+009F, present in the corpus) are windows-1252 letters in HTML
    text = "".join(ch for ch in sentences[lang] if not 0x80 <= ord(ch) <= 0x9F)
    try:
        body = text.encode(enc)
    except UnicodeEncodeError:
        body = text.encode(enc, "ignore")
        text = body.decode(enc)
    page = (
        f'<html><head><meta charset="{enc}"></head><body><p>'.encode()
        + body
        + b"</p></body></html>"
    )
    got, _ = decode_html(page, None)  # from <meta>
    assert text in got
    got, _ = decode_html(page, enc)  # from HTTP
    assert text in got
    assert binary_ratio(got) < 0.01


def test_decode_wrong_or_missing_declaration(sentences) -> None:
    text = sentences["ru"]
    # HTTP says utf-8, bytes are cp1251, no meta: detection must find a Cyrillic codec
    got, enc = decode_html(text.encode("cp1251"), "utf-8")
    assert got == text, enc
    # no declaration at all, UTF-8 bytes
    assert decode_html(text.encode("utf-8"), None)[0] == text
    # BOM wins over a wrong header
    assert decode_html(b"\xef\xbb\xbf" + text.encode("utf-8"), "latin-1")[0] == text
    # unknown label falls through
    assert decode_html(text.encode("utf-8"), "x-no-such-charset")[0] == text


# Labels that are all over the real web on UTF-8 pages (Apache's default is iso-8859-1); every
# one of these codecs decodes UTF-8 bytes without an error, into mojibake ("GrÃ¶ÃŸe").
LEGACY_LABELS = [
    "iso-8859-1",
    "ISO-8859-1",
    "windows-1252",
    "latin1",
    "us-ascii",
    "iso-8859-15",
    "iso-8859-2",
    "iso-8859-7",
    "windows-1251",
    "koi8-r",
    "gbk",
    "shift_jis",
]


@pytest.mark.parametrize("label", LEGACY_LABELS)
def test_utf8_body_under_a_legacy_label_decodes_as_utf8(sentences, label: str) -> None:
    """Valid multi-byte UTF-8 is practically never legacy text: UTF-8 beats the label."""
    text = sentences["de"] + " Größe dafür Überlegungen TÜV"
    body = text.encode("utf-8")
    assert decode_html(body, label) == (text, "utf-8")  # HTTP header
    page = f'<html><head><meta charset="{label}"></head><body><p>{text}</p></body></html>'
    got, enc = decode_html(page.encode("utf-8"), None)  # <meta> alone
    assert (text in got, enc) == (True, "utf-8")
    page = '<html><head><meta charset="utf-8"></head><body><p>' + text + "</p></body></html>"
    got, enc = decode_html(page.encode("utf-8"), label)  # header lies, <meta> is right
    assert (text in got, enc) == (True, "utf-8")


# every sentence of a language in a legacy codec: a real legacy page is invalid UTF-8
LEGACY_PAGES = [
    ("de", "cp1252"),
    ("fr", "cp1252"),
    ("pl", "cp1250"),
    ("cs", "cp1250"),
    ("hu", "iso8859-2"),
    ("ru", "cp1251"),
    ("ru", "koi8-r"),
    ("uk", "cp1251"),
    ("el", "iso8859-7"),
    ("tr", "cp1254"),
    ("he", "cp1255"),
    ("ar", "cp1256"),
    ("lt", "cp1257"),
    ("th", "cp874"),
    ("ja", "shift_jis"),
    ("ja", "euc_jp"),
    ("zh", "gb18030"),
    ("zh", "big5"),
    ("ko", "euc_kr"),
]


@pytest.mark.parametrize("lang,enc", LEGACY_PAGES)
def test_legacy_page_keeps_its_codec(shared_data: Path, lang: str, enc: str) -> None:
    """The UTF-8 preference must not steal real legacy pages, declared or mislabelled utf-8."""
    lines = (shared_data / "langid" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    body = "\n".join(lines).encode(enc, "ignore")
    text = body.decode(enc)
    assert decode_html(body, enc) == (text, codecs.lookup(enc).name)
    # HTTP says utf-8 (wrong), <meta> has the real codec
    page = f'<meta http-equiv="Content-Type" content="text/html; charset={enc}">'.encode() + body
    got, used = decode_html(page, "utf-8")
    assert (text in got, used) == (True, codecs.lookup(enc).name)


def test_utf8_bom_wins_and_is_the_codec_reported(sentences) -> None:
    text = sentences["ru"]
    for label in ("latin-1", "windows-1251", "shift_jis", "utf-16", None):
        assert decode_html(b"\xef\xbb\xbf" + text.encode("utf-8"), label) == (text, "utf-8")


def test_real_utf8_pages_relabelled_iso_8859_1_extract_the_same_text(eval_pages) -> None:
    """Real UTF-8 pages served as ``charset=iso-8859-1`` (Apache's default) give the same
    text as with their true label, and the charset column says which codec decoded them."""
    table, _ = eval_pages
    utf8 = [i for i, h in enumerate(table["html"].to_pylist()) if _is_multibyte_utf8(h)]
    assert len(utf8) >= 20
    table = table.take(utf8)
    ex = Extractor(ExtractConfig(extractor="resiliparse"))
    want = ex(table)
    lied = table.set_column(
        table.column_names.index("charset"),
        "charset",
        pa.array(["iso-8859-1"] * table.num_rows, pa.string()),
    )
    got = ex(lied)
    assert got["text"].to_pylist() == want["text"].to_pylist()
    assert not any("Ã" in t for t in got["text"].to_pylist() if t)
    assert set(got["charset"].to_pylist()) == {"utf-8"}
    ex.close()


def _is_multibyte_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not data.isascii()


def test_charset_column_is_the_codec_used(sentences) -> None:
    """``charset`` after extraction: the codec that decoded the page, not the header's claim;
    rows never decoded (empty, dropped earlier) keep what the reader found."""
    ru = "<html><body><p>" + sentences["ru"] + "</p></body></html>"
    table = pa.table(
        {
            "html": [
                ru.encode("cp1251"),  # labelled utf-8, really cp1251
                b"\xef\xbb\xbf" + ru.encode("utf-8"),  # BOM, labelled iso-8859-1
                ru.encode("utf-8"),  # labelled iso-8859-1, really UTF-8
                b"",
                ru.encode("utf-8"),
            ],
            "charset": ["utf-8", "iso-8859-1", "iso-8859-1", "utf-8", "koi8-r"],
            "drop_reason": [None, None, None, None, "url.blocklist"],
            "drop_detail": [None, None, None, None, "domain=example.com"],
        }
    )
    for timeout_s in (10.0, 0.0):  # watchdog child, in-process
        out = Extractor(ExtractConfig(extractor="resiliparse", timeout_s=timeout_s))(table)
        reasons = out["drop_reason"].to_pylist()
        assert reasons == [None, None, None, "extract.empty", "url.blocklist"]
        assert out["charset"].to_pylist() == ["cp1251", "utf-8", "utf-8", "utf-8", "koi8-r"]
        assert out.column_names == table.column_names + ["text"]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from([None, "utf-8", "latin-1", "bogus", "shift_jis"]))
def test_decode_and_extract_never_raise(data: bytes, charset: str | None) -> None:
    text, enc = decode_html(data, charset)
    assert isinstance(text, str) and enc
    assert 0.0 <= binary_ratio(text) <= 1.0
    _t, _title, reason, _d = _EXTRACTOR.extract_one(data, charset)
    assert reason in REASONS


_EXTRACTOR = Extractor(ExtractConfig(extractor="resiliparse"))


def test_extraction_child_boots_at_setup_and_serves_the_first_batch() -> None:
    """The watchdog child starts when the stage is set up, so its imports overlap the other
    stages' model loads instead of delaying the first batch."""
    from stages.builtin import ExtractStage

    stage = ExtractStage()
    stage.setup()
    wd = stage._impl._watchdog
    assert wd.proc is not None and wd.proc.poll() is None and not wd._ready
    page = b"<html><body><p>" + b"A normal paragraph of page text. " * 20 + b"</p></body></html>"
    out = stage.apply(pa.table({"html": [page], "charset": ["utf-8"]}))
    assert "normal paragraph" in out["text"][0].as_py() and wd._ready
    stage._impl.close()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("\x00\x01\t\n\x0b\x0c\r\x1f a\x7f\ufffd\u00e9\u4e2d")))
def test_binary_ratio_counts_controls_del_and_replacement_chars(text: str) -> None:
    head = text[:2048]
    bad = sum(1 for c in head if (ord(c) < 32 and c not in "\t\n\x0c\r") or c in "\x7f\ufffd")
    assert binary_ratio(text) == (bad / len(head) if head else 0.0)
