"""Generate the shipped sample crawl: CC-style WARC files plus a manifest of what was planted.

Run ``python -m pipeline.sample.generate [--out DIR] [--seed N]``. With the defaults it
rewrites the files shipped in this package; the output is byte-identical across runs (fixed
dates, uuid5 record ids, gzip members without timestamps), which a test checks.

Why synthetic: the project must run offline on a fresh machine, so the README's run command
needs input that ships with the code. The pages are composed from original prose in
``corpus.py`` and carry known defects (duplicates, PII, junk pages, odd records) so that the
pipeline's numbers on this sample can be checked exactly against ``planted.json``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html
import io
import itertools
import json
import random
import re
import struct
import unicodedata
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.sample import corpus
from stages.minhash import (
    DedupConfig,
    _words_flat,
    band_keys,
    minhash_signatures,
    normalize_text,
    permutations,
    shingle_hashes,
    word_hashes,
)

CRAWL_ID = "SAMPLE-2026-47"
DEFAULT_SEED = 20261116
FILE_NAMES = ("sample-00000.warc.gz", "sample-00001.warc.gz")
MANIFEST_NAME = "planted.json"
NAMESPACE = uuid.UUID("6f1c1d2e-5a0b-4c55-9a57-0c0ffee00047")
BASE_DATE = datetime(2026, 11, 16, 6, 0, 0, tzinfo=timezone.utc)
SPAN_SECONDS = 5 * 86400 - 6 * 3600  # pages are dated 2026-11-16 06:00 .. 2026-11-20 24:00

# Content pages per intended language (before planted copies are added).
LANG_COUNTS = {
    "en": 80,
    "de": 40,
    "fr": 34,
    "es": 34,
    "it": 16,
    "pt": 16,
    "nl": 14,
    "pl": 12,
    "ru": 20,
    "zh": 16,
    "ja": 16,
}
LANG_HOST = {
    "en": "example.com",
    "de": "example.net",
    "fr": "example.org",
    "es": "example.net",
    "it": "example.org",
    "pt": "example.com",
    "nl": "example.net",
    "pl": "example.org",
    "ru": "example.com",
    "zh": "example.net",
    "ja": "example.org",
}
COMPOSE_BATCHES = 60  # candidate batches per language (one signature call each) before giving up
SECTIONS = ["news", "food", "travel", "garden", "reviews", "local", "science", "blog"]
# Two pages outside a common planted group stay below this word-5-gram Jaccard, measured with the
# pipeline's own normalisation and shingling (stages.minhash, DedupConfig() defaults), AND share no
# LSH band key under DedupConfig(): the dedup stage must remove the planted copies and nothing else.
MAX_PAIR_JACCARD = 0.2

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


# --------------------------------------------------------------------------- text utilities
def tokens(text: str) -> list[str]:
    """Lower-case word tokens; each CJK character is its own token (no spaces to split on)."""
    return _TOKEN_RE.findall(text.lower())


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Word n-gram set used for the planted Jaccard numbers."""
    toks = tokens(text)
    if len(toks) < n:
        return {tuple(toks)} if toks else set()
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def jaccard(a: set | frozenset, b: set | frozenset) -> float:
    """Jaccard similarity of two shingle sets (0 for two empty sets)."""
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def dedup_text(title: str, paragraphs: list[str]) -> str:
    """The page text as the extractor hands it to dedup: headline, then the article paragraphs."""
    return "\n".join([title, *paragraphs])


class DedupView:
    """Similarity as the pipeline's near-dedup sees it: shingle-hash sets and LSH band keys.

    Uses the dedup stage's own normalisation, word split (CJK characters are words), shingle
    hashing and band keys with ``DedupConfig()`` defaults, so the generator's notion of "not a
    duplicate" is exactly the pipeline's.
    """

    def __init__(self, cfg: DedupConfig | None = None) -> None:
        self.cfg = cfg or DedupConfig()
        self.a, self.b = permutations(self.cfg.num_perm, self.cfg.seed, self.cfg.hash_bits)

    def features(self, texts: list[str]) -> list[tuple[frozenset[int], frozenset[int]]]:
        """Per text: (set of word-n-gram shingle hashes, set of LSH band keys), one batch call."""
        cfg = self.cfg
        norm = normalize_text(pa.array(texts, pa.string()), cfg)
        flat, offsets = _words_flat(norm)
        sh, so = shingle_hashes(word_hashes(flat), offsets, cfg.ngram)
        keys = band_keys(
            minhash_signatures(sh, so, self.a, self.b, cfg.chunk_shingles), cfg.bands, cfg.rows
        )
        return [
            (frozenset(sh[so[i] : so[i + 1]].tolist()), frozenset(keys[i].tolist()))
            for i in range(len(texts))
        ]


def distinct(f: tuple[frozenset, frozenset], g: tuple[frozenset, frozenset]) -> bool:
    """True if two pages' features are clearly unrelated: low Jaccard and no shared band key."""
    return jaccard(f[0], g[0]) < MAX_PAIR_JACCARD and not (f[1] & g[1])


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit to a digit string (so planted card numbers validate)."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban(country: str, bban: str) -> str:
    """Build an IBAN with correct ISO 13616 check digits, printed in groups of four."""
    rearranged = bban + country + "00"
    num = int("".join(str(int(c, 36)) for c in rearranged))
    check = 98 - num % 97
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def iban_ok(value: str) -> bool:
    raw = value.replace(" ", "")
    rearranged = raw[4:] + raw[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _fmt_card(num: str, style: str) -> str:
    if style == "plain":
        return num
    sep = " " if style == "space" else "-"
    if len(num) == 15:  # Amex 4-6-5
        return sep.join([num[:4], num[4:10], num[10:]])
    return sep.join(num[i : i + 4] for i in range(0, len(num), 4))


# Planted PII: (entity type, value, language of the page that carries it). Deliberately no
# RFC 2606 example domains and no RFC 5737/3849 documentation IPs: scrubbers rightly skip those
# (they are the replacement values), so the planted ones look like real, routable data.
PII_VALUES: list[tuple[str, str, str]] = [
    ("EMAIL_ADDRESS", "amelia.hartwell.5821@gmail.com", "en"),
    ("EMAIL_ADDRESS", "volunteers.norwich.3307@outlook.com", "en"),
    ("EMAIL_ADDRESS", "r.pembroke-1949@yahoo.co.uk", "en"),
    ("EMAIL_ADDRESS", "kontakt.hochbeet.7719@example.de", "de"),
    ("EMAIL_ADDRESS", "m.lorenz-2231@example.at", "de"),
    ("EMAIL_ADDRESS", "inscriptions.cevennes.6054@example.fr", "fr"),
    ("EMAIL_ADDRESS", "voluntarios.huerto.3918@example.es", "es"),
    ("PHONE_NUMBER", "(415) 555-2671", "en"),
    ("PHONE_NUMBER", "+1 312-555-8834", "en"),
    ("PHONE_NUMBER", "+44 20 7946 0958", "en"),
    ("PHONE_NUMBER", "+49 30 28471936", "de"),
    ("PHONE_NUMBER", "+49 761 48392210", "de"),
    ("PHONE_NUMBER", "+33 1 47 85 62 19", "fr"),
    ("PHONE_NUMBER", "06 12 84 57 30", "fr"),
    ("PHONE_NUMBER", "+34 913 48 27 65", "es"),
    ("IP_ADDRESS", "93.184.17.41", "en"),
    ("IP_ADDRESS", "185.62.190.11", "en"),
    ("IP_ADDRESS", "62.141.37.208", "de"),
    ("IP_ADDRESS", "141.52.88.19", "fr"),
    ("IP_ADDRESS", "2a02:8109:b6c0:4e1::5f2a", "en"),
    ("IP_ADDRESS", "2804:14c:5b71:8c2a::1d3", "en"),
    ("CREDIT_CARD", _fmt_card(luhn_complete("471620983345271"), "space"), "en"),  # Visa
    ("CREDIT_CARD", _fmt_card(luhn_complete("520473619820583"), "dash"), "en"),  # Mastercard
    ("CREDIT_CARD", _fmt_card(luhn_complete("37826405194718"), "space"), "en"),  # Amex
    ("CREDIT_CARD", _fmt_card(luhn_complete("601158472036913"), "plain"), "de"),  # Discover
    ("CREDIT_CARD", _fmt_card(luhn_complete("222100876543219"), "space"), "es"),  # MC 2-series
    ("IBAN_CODE", iban("DE", "430609671234567890"), "de"),
    ("IBAN_CODE", iban("GB", "NWBK60161331926821"), "en"),
    ("IBAN_CODE", iban("FR", "30006000011234567890189"), "fr"),
    ("IBAN_CODE", iban("ES", "00491500051234567892"), "es"),
    ("IBAN_CODE", iban("NL", "RABO0123456789"), "en"),
    ("US_SSN", "536-22-8817", "en"),
    ("US_SSN", "412-73-5509", "en"),
    ("US_SSN", "287-61-4430", "en"),
]
TITLE_EMAIL = "editors.ledger.6631@btinternet.com"
QUERY_EMAIL = "jane.whitcombe.7702@protonmail.com"
QUERY_URL = "https://forms.example.org/feedback?contact=jane.whitcombe.7702%40protonmail.com"


# --------------------------------------------------------------------------- page model
@dataclass
class Page:
    """One HTTP response to write (plus its request and metadata records)."""

    url: str
    lang: str | None
    kind: str  # content | near_dup | exact_dup | low_quality | http_404 | http_301 | image | pdf
    title: str
    paragraphs: list[str]
    site: str
    section: str
    file: int = 0
    date: datetime = BASE_DATE
    author: str = ""
    status: int = 200
    content_type: str | None = "text/html"
    charset: str = "utf-8"
    charset_decl: str = "both"  # header | meta | both | meta_only_utf8
    content_encoding: str | None = None
    truncated: bool = False
    raw_body: bytes | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    related: list[tuple[str, str]] = field(default_factory=list)
    html_override: str | None = None  # exact duplicates reuse the keeper's HTML
    expected: str = "keep"
    group: str | None = None

    @property
    def article_text(self) -> str:
        return "\n\n".join(self.paragraphs)


def _slug(text: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    s = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    return s[:60] or "article"


def _site_host(lang: str, site: str) -> str:
    ascii_ = unicodedata.normalize("NFKD", site).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]", "", ascii_.lower())
    if not slug:  # non-Latin site names
        slug = f"{lang}site{abs(hash_int(site)) % 1000}"
    return f"{slug}.{LANG_HOST[lang]}"


def hash_int(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)


def _person(rng: random.Random, L: dict) -> str:
    first, last = rng.choice(L["first_names"]), rng.choice(L["surnames"])
    if L is corpus.ZH:
        return last + first
    if L is corpus.JA:
        return last + " " + first
    return f"{first} {last}"


def _fill(template: str, rng: random.Random, L: dict) -> str:
    return template.format(
        name=_person(rng, L),
        city=rng.choice(L["cities"]),
        n=rng.randint(12, 4800),
        year=rng.randint(1994, 2025),
    )


def _compose(rng: random.Random, L: dict) -> tuple[str, list[str]]:
    """A title and 3-4 paragraphs: sentences of two topics plus filled templates.

    Few sentences per topic (3-5 of the main one, 2-3 of a second), so two pages on the same
    topic share little text even in the small per-language pools.
    """
    topics = L["topics"]
    i1, i2 = rng.sample(range(len(topics)), 2)
    title, s1 = topics[i1]
    s2 = topics[i2][1]
    k1 = rng.randint(3, min(5, len(s1)))
    k2 = rng.randint(2, 3)
    pick1 = [s1[j] for j in sorted(rng.sample(range(len(s1)), k1))]
    pick2 = [s2[j] for j in sorted(rng.sample(range(len(s2)), k2))]
    cut = rng.randint(1, k1 - 1)
    paras = [pick1[:cut], pick1[cut:], pick2]
    for t in rng.sample(L["templates"], rng.randint(2, 3)):
        target = paras[rng.randrange(len(paras))]
        target.insert(rng.randint(0, len(target)), _fill(t, rng, L))
    if rng.random() < 0.4:
        paras.append([_fill(rng.choice(L["templates"]), rng, L)])
    sep = "" if L in (corpus.ZH, corpus.JA) else " "
    return title, [sep.join(p) for p in paras if p]


# --------------------------------------------------------------------------- HTML
def render_html(p: Page, L: dict) -> str:
    """A plausible page: cookie banner, header + nav, article, related links, footer."""
    if p.html_override is not None:
        return p.html_override

    def e(x: str) -> str:
        return html.escape(x, quote=False)

    host = p.url.split("/")[2]
    nav = "".join(
        f'<li><a href="/{s}">{e(n)}</a></li>'
        for s, n in zip(["", *(x + "/" for x in SECTIONS)], L["nav"], strict=False)
    )
    if p.charset_decl in ("meta", "both", "meta_only_utf8"):
        meta_cs = (
            f'<meta charset="{p.charset}">'
            if p.charset == "utf-8"
            else f'<meta http-equiv="Content-Type" content="text/html; charset={p.charset}">'
        )
    else:
        meta_cs = ""
    related = "".join(f'<li><a href="{html.escape(u)}">{e(t)}</a></li>' for u, t in p.related)
    if not p.paragraphs:
        article = ""
    else:
        paras = "\n".join(f"<p>{_linkify(e(x))}</p>" for x in p.paragraphs)
        byline = (
            f'<p class="byline">{e(L["byline"])} {e(p.author)} · '
            f'<time datetime="{p.date:%Y-%m-%d}">{p.date:%d.%m.%Y}</time></p>'
        )
        article = f"<article>\n<h1>{e(p.title)}</h1>\n{byline}\n{paras}\n</article>"
    return f"""<!DOCTYPE html>
<html lang="{p.lang or "en"}">
<head>
{meta_cs}
<title>{e(p.title)} | {e(p.site)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="canonical" href="{html.escape(p.url)}">
<link rel="stylesheet" href="/static/css/main.css">
</head>
<body>
<div id="cookie-banner" class="cookie-consent"><p>{e(L["cookie"])}</p><button type="button">{e(L["accept"])}</button></div>
<header class="site-header"><a class="logo" href="https://{host}/">{e(p.site)}</a>
<nav class="main-nav"><ul>{nav}</ul></nav></header>
<main>
{article}
<aside class="related"><h2>{e(L["related"])}</h2><ul>{related}</ul></aside>
</main>
<footer class="site-footer"><p>© 2026 {e(p.site)}. {e(L["footer"])}</p>
<ul>{"".join(f'<li><a href="/legal/{i}">{e(x)}</a></li>' for i, x in enumerate(L["footer_links"]))}</ul>
<p><a href="/newsletter">{e(L["subscribe"])}</a></p></footer>
<script src="/static/js/app.js" defer></script>
</body>
</html>
"""


def _linkify(escaped: str) -> str:
    """Turn the planted query-string URL into a link (visible text = the URL itself)."""
    q = html.escape(QUERY_URL, quote=False)
    return escaped.replace(q, f'<a href="{html.escape(QUERY_URL)}">{q}</a>')


# --------------------------------------------------------------------------- building
def _date(rng: random.Random, lo_day: float = 0.0, hi_day: float = 5.0) -> datetime:
    lo = max(0, int(lo_day * 86400) - 6 * 3600) if lo_day else 0
    hi = min(SPAN_SECONDS, int(hi_day * 86400) - 6 * 3600)
    return BASE_DATE + timedelta(seconds=rng.randint(lo, hi))


def _mutate(rng: random.Random, keeper: Page, vocab: list[str], lo: float, hi: float) -> list[str]:
    """Near copy of the keeper's paragraphs: replace single words until Jaccard <= target."""
    target = rng.uniform(lo + 0.03, hi - 0.03)
    paras = [p.split(" ") for p in keeper.paragraphs]
    ref = shingles(keeper.article_text)
    for _ in range(400):
        pi = rng.randrange(len(paras))
        words = paras[pi]
        if len(words) < 4:
            continue
        wi = rng.randrange(1, len(words) - 1)
        if not words[wi].isalpha():
            continue
        before, words[wi] = words[wi], rng.choice(vocab)
        j = jaccard(ref, shingles("\n\n".join(" ".join(w) for w in paras)))
        if j < lo:  # one edit too many for a short page: undo and try elsewhere
            words[wi] = before
        elif j <= target:
            break
    out = [" ".join(w) for w in paras]
    j = jaccard(ref, shingles("\n\n".join(out)))
    assert lo <= j <= hi, (keeper.url, j)
    return out


def build_pages(seed: int = DEFAULT_SEED) -> tuple[list[Page], dict]:
    """Compose every page deterministically; returns pages and the planted-groups manifest."""
    rng = random.Random(seed)
    pages: list[Page] = []
    by_lang: dict[str, list[Page]] = {}
    used_urls: set[str] = set()

    def new_url(lang: str, site: str, section: str, title: str) -> str:
        host = _site_host(lang, site)
        while True:
            num = rng.randint(1000, 99999)
            slug = _slug(title) if lang not in ("zh", "ja", "ru") else "article"
            url = f"https://{host}/{section}/{slug}-{num}" + ("" if rng.random() < 0.7 else ".html")
            if url not in used_urls:
                used_urls.add(url)
                return url

    # 1. content pages, greedily rejecting pages the pipeline's dedup would relate to an earlier
    # one (candidates are composed in batches so the signature work is one Arrow call per batch)
    view = DedupView()
    for lang, count in LANG_COUNTS.items():
        L = corpus.LANGS[lang]
        accepted: list[tuple[Page, tuple]] = []
        for _batch in range(COMPOSE_BATCHES):
            if len(accepted) == count:
                break
            cands = [_compose(rng, L) for _ in range(max(16, 2 * (count - len(accepted))))]
            feats = view.features([dedup_text(t, ps) for t, ps in cands])
            for (title, paras), feat in zip(cands, feats, strict=True):
                if len(accepted) == count:
                    break
                if not all(distinct(feat, other) for _, other in accepted):
                    continue
                site = rng.choice(L["sites"])
                section = rng.choice(SECTIONS)
                p = Page(
                    url=new_url(lang, site, section, title),
                    lang=lang,
                    kind="content",
                    title=title,
                    paragraphs=paras,
                    site=site,
                    section=section,
                    file=rng.randrange(2),
                    date=_date(rng),
                    author=_person(rng, L),
                )
                accepted.append((p, feat))
        else:  # pragma: no cover - corpus too small for the requested count
            raise RuntimeError(f"cannot compose enough distinct {lang} pages")
        by_lang[lang] = [p for p, _ in accepted]
        pages.extend(by_lang[lang])

    manifest: dict = {
        "near_duplicates": [],
        "exact_duplicates": [],
        "pii": [],
        "low_quality": [],
        "special": [],
    }
    reserved: set[str] = set()  # urls of pages already used for a planted role

    def take(lang: str, pred=lambda p: True) -> Page:
        for p in by_lang[lang]:
            if p.url not in reserved and pred(p):
                reserved.add(p.url)
                return p
        raise RuntimeError(f"no free {lang} page")  # pragma: no cover

    # 2. planted near-duplicates: (lang, keeper file, copy files)
    near_specs = [
        ("en", 0, [1]),
        ("en", 1, [1]),
        ("de", 1, [0, 1]),
        ("fr", 1, [1]),
        ("es", 0, [1]),
        ("ru", 0, [0]),
        ("it", 0, [1]),
    ]
    for gi, (lang, kfile, cfiles) in enumerate(near_specs):
        L = corpus.LANGS[lang]
        vocab = sorted(
            {
                w.strip(".,;:!?«»\"'")
                for _, ss in L["topics"]
                for s in ss
                for w in s.split()
                if w.strip(".,;:!?«»\"'").isalpha()
            }
        )
        keeper = take(lang, lambda p: len(tokens(p.article_text)) >= 90)
        keeper.file, keeper.date = kfile, _date(rng, 0.0, 0.9)
        keeper.kind, keeper.group = "near_dup", f"near-{gi}"
        group = {
            "group": keeper.group,
            "lang": lang,
            "expected_keeper": keeper.url,
            "keep_candidates": [keeper.url],
            "urls": [keeper.url],
            "files": [FILE_NAMES[kfile]],
            "jaccard_to_keeper": {},
        }
        for ci, cf in enumerate(cfiles):
            site = rng.choice([s for s in L["sites"] if s != keeper.site] or L["sites"])
            keeper_feat = view.features([dedup_text(keeper.title, keeper.paragraphs)])[0]
            for _attempt in range(50):  # the planted copy must be an LSH candidate of its keeper
                paras = _mutate(rng, keeper, vocab, 0.83, 0.94)
                if keeper_feat[1] & view.features([dedup_text(keeper.title, paras)])[0][1]:
                    break
            else:  # pragma: no cover
                raise RuntimeError(f"no near copy of {keeper.url} shares an LSH band with it")
            c = Page(
                url=new_url(lang, site, keeper.section, keeper.title),
                lang=lang,
                kind="near_dup",
                title=keeper.title,
                paragraphs=paras,
                site=site,
                section=keeper.section,
                file=cf,
                date=_date(rng, 1.5 + ci, 2.5 + ci),
                author=_person(rng, L),
                expected="dedup.minhash",
                group=keeper.group,
            )
            pages.append(c)
            reserved.add(c.url)
            j = round(jaccard(shingles(keeper.article_text), shingles(c.article_text)), 4)
            group["urls"].append(c.url)
            group["files"].append(FILE_NAMES[cf])
            group["jaccard_to_keeper"][c.url] = j
        group["jaccard"] = min(group["jaccard_to_keeper"].values())
        group["cross_file"] = len(set(group["files"])) > 1
        manifest["near_duplicates"].append(group)

    # 3. planted exact duplicates: same HTML bytes, different URL
    exact_specs = [
        ("en", 0, [0, 1], ["?utm_source=newsletter&utm_medium=email", "http-www"]),
        ("de", 1, [0], ["?ref=startseite"]),
        ("ja", 0, [0], ["?page=1"]),
        ("es", 1, [1], ["/amp"]),
    ]
    for gi, (lang, kfile, cfiles, variants) in enumerate(exact_specs):
        L = corpus.LANGS[lang]
        keeper = take(lang)
        keeper.file, keeper.date = kfile, _date(rng, 0.0, 0.9)
        keeper.kind, keeper.group = "exact_dup", f"exact-{gi}"
        group = {
            "group": keeper.group,
            "lang": lang,
            "expected_keeper": keeper.url,
            "keep_candidates": [keeper.url],
            "urls": [keeper.url],
            "files": [FILE_NAMES[kfile]],
        }
        for ci, (cf, var) in enumerate(zip(cfiles, variants, strict=True)):
            if var == "http-www":
                url = keeper.url.replace("https://", "http://www.")
            else:  # tracking query or /amp suffix
                url = keeper.url + var
            c = Page(
                url=url,
                lang=lang,
                kind="exact_dup",
                title=keeper.title,
                paragraphs=list(keeper.paragraphs),
                site=keeper.site,
                section=keeper.section,
                file=cf,
                date=_date(rng, 1.5 + ci, 2.5 + ci),
                author=keeper.author,
                expected="dedup.exact",
                group=keeper.group,
            )
            c.html_override = ""  # filled after rendering the keeper
            used_urls.add(url)
            pages.append(c)
            group["urls"].append(url)
            group["files"].append(FILE_NAMES[cf])
        group["cross_file"] = len(set(group["files"])) > 1
        manifest["exact_duplicates"].append(group)

    # 4. planted PII in the article text of ordinary content pages
    pii_pages: dict[str, Page] = {}
    per_page: dict[str, int] = {}
    for etype, value, lang in PII_VALUES:
        page = None
        for url, p in pii_pages.items():  # at most two PII values per page
            if p.lang == lang and per_page[url] < 2 and rng.random() < 0.35:
                page = p
                break
        if page is None:
            page = take(lang)
            pii_pages[page.url] = page
            per_page[page.url] = 0
        per_page[page.url] += 1
        frame = rng.choice(corpus.PII_FRAMES[lang][etype])
        pi = rng.randrange(len(page.paragraphs))
        page.paragraphs[pi] += " " + frame.format(v=value)
        manifest["pii"].append(
            {
                "entity_type": etype,
                "value": value,
                "url": page.url,
                "lang": lang,
                "location": "article",
            }
        )
    p = take("en")
    p.paragraphs[-1] += (
        " Readers can also leave feedback through the form at "
        f"{QUERY_URL} until the end of the year."
    )
    manifest["pii"].append(
        {
            "entity_type": "EMAIL_ADDRESS",
            "value": QUERY_EMAIL,
            "raw": QUERY_URL,
            "url": p.url,
            "lang": "en",
            "location": "article_url_query",
        }
    )
    p = take("en")
    p.title = f"Write to the editors: {TITLE_EMAIL}"
    manifest["pii"].append(
        {
            "entity_type": "EMAIL_ADDRESS",
            "value": TITLE_EMAIL,
            "url": p.url,
            "lang": "en",
            "location": "title",
        }
    )  # <title> and <h1>

    # 5. HTTP/charset oddities on ordinary content pages (still expected to be kept)
    odd = [
        ("fr", dict(charset="iso-8859-1", charset_decl="header"), "charset_iso-8859-1_header"),
        ("es", dict(charset="windows-1252", charset_decl="meta"), "charset_windows-1252_meta"),
        ("ja", dict(charset="shift_jis", charset_decl="both"), "charset_shift_jis_both"),
        ("de", dict(content_encoding="gzip"), "content_encoding_gzip"),
        ("en", dict(content_type=None), "no_content_type"),
    ]
    for lang, attrs, what in odd:
        enc = attrs.get("charset", "utf-8")

        def encodable(p: Page, enc=enc) -> bool:
            try:
                (p.title + p.article_text).encode(enc)
            except UnicodeEncodeError:
                return False
            return True

        p = take(lang, encodable)
        for k, v in attrs.items():
            setattr(p, k, v)
        entry = {"what": what, "url": p.url, "lang": lang, "expected": p.expected}
        if what == "no_content_type":
            entry["note"] = (
                "HTML body without a Content-Type header: a sniffing reader (ours) "
                "keeps it; a strict one would drop it as read.non_html"
            )
        manifest["special"].append(entry)

    # 6. pages the quality filters should drop
    L = corpus.EN
    lq = [
        ("nav_only", [], "extract.empty|gopher_quality"),
        (
            "lorem_ipsum",
            [corpus.LOREM, corpus.LOREM.replace("Lorem ipsum", "Ipsum lorem")],
            "c4.lorem_ipsum",
        ),
        ("repeated_line", [corpus.REPEATED_LINE] * 40, "gopher_repetition"),
        ("very_short", [corpus.SHORT_TEXT], "gopher_quality.word_count"),
        (
            "language_mix",
            [" ".join(corpus.MIXED_LANG[i : i + 3]) for i in range(0, len(corpus.MIXED_LANG), 3)],
            "lang.low_score",
        ),
        (
            "json_like",
            [
                "Response of the product endpoint:",
                corpus.JSONISH,
                corpus.JSONISH.replace("item-a", "item-c").replace("item-b", "item-d"),
            ],
            "c4.curly_bracket",
        ),
    ]
    for i, (kind, paras, reason) in enumerate(lq):
        site = L["sites"][i % len(L["sites"])]
        title = {"nav_only": "Archive", "very_short": "New shop"}.get(
            kind, kind.replace("_", " ").title()
        )
        p = Page(
            url=new_url("en", site, "misc", f"{kind}"),
            lang=None if kind == "language_mix" else "en",
            kind="low_quality",
            title=title,
            paragraphs=paras,
            site=site,
            section="misc",
            file=i % 2,
            date=_date(rng),
            author=_person(rng, L),
            expected="drop",
        )
        pages.append(p)
        manifest["low_quality"].append(
            {
                "kind": kind,
                "url": p.url,
                "expected": "drop",
                "targets": reason,
                "file": FILE_NAMES[p.file],
            }
        )

    # 7. a truncated record, non-200s and non-HTML responses
    p = take("en")
    p.truncated = True
    p.kind = "truncated"
    manifest["special"].append(
        {
            "what": "warc_truncated_length",
            "url": p.url,
            "lang": "en",
            "expected": p.expected,
            "note": (
                "payload cut to 60% by the crawler and marked WARC-Truncated: length, as CC does "
                "past 1 MiB; the WARC record itself is intact, so it is read as a document "
                "(read.truncated is for broken files/members)"
            ),
        }
    )
    for i, (kind, status, ctype, expected) in enumerate(
        [
            ("http_404", 404, "text/html", "read.non_200"),
            ("http_301", 301, "text/html", "read.non_200"),
            ("image", 200, "image/png", "read.non_html"),
            ("pdf", 200, "application/pdf", "read.non_html"),
        ]
    ):
        site = L["sites"][i]
        host = _site_host("en", site)
        path = {
            "http_404": "/news/old-story-removed",
            "http_301": "/garden/moved-page",
            "image": "/static/img/header-banner.png",
            "pdf": "/files/annual-report-2026.pdf",
        }
        p = Page(
            url=f"https://{host}{path[kind]}",
            lang=None,
            kind=kind,
            title="",
            paragraphs=[],
            site=site,
            section="misc",
            file=i % 2,
            date=_date(rng),
            status=status,
            content_type=ctype,
            expected=expected,
        )
        if kind == "http_404":
            p.title = "Page not found"
            p.paragraphs = ["Sorry, the page you are looking for does not exist."]
        elif kind == "http_301":
            target = f"https://{host}/garden/new-page"
            p.extra_headers = [("Location", target)]
            p.raw_body = (
                f"<html><head><title>301 Moved Permanently</title></head><body>"
                f"<h1>Moved Permanently</h1><p>The document has moved "
                f'<a href="{target}">here</a>.</p></body></html>\n'
            ).encode()
        elif kind == "image":
            p.raw_body = _png(24, 12)
        else:
            p.raw_body = _pdf()
        pages.append(p)
        manifest["special"].append(
            {
                "what": kind,
                "url": p.url,
                "status": status,
                "content_type": ctype,
                "expected": expected,
                "file": FILE_NAMES[p.file],
            }
        )

    # related links: other pages of the same language
    by_lang_all: dict[str, list[Page]] = {}
    for p in pages:
        if (
            p.lang
            and p.kind in ("content", "near_dup", "exact_dup", "truncated")
            and "@" not in p.title
        ):  # keep the planted title email on its own page
            by_lang_all.setdefault(p.lang, []).append(p)
    for p in pages:
        if p.status == 200 and p.raw_body is None and p.html_override is None:
            pool = [q for q in by_lang_all.get(p.lang or "en", []) if q.url != p.url]
            p.related = [(q.url, q.title) for q in rng.sample(pool, min(4, len(pool)))]
    keepers = {
        p.group: p for p in pages if p.group and p.kind == "exact_dup" and p.html_override is None
    }
    for p in pages:
        if p.html_override == "":
            p.html_override = render_html(keepers[p.group], corpus.LANGS[p.lang])
    manifest["dedup_contract"] = check_dedup_contract(pages, view)
    return pages, manifest


def check_dedup_contract(pages: list[Page], view: DedupView) -> dict:
    """Assert the final pages give the pipeline's near-dedup exactly the planted duplicates.

    Checked on the final text (after PII and title edits): pages outside a common planted group
    stay below ``MAX_PAIR_JACCARD`` and share no LSH band key; every planted near copy shares a
    band key with its keeper. Returns the numbers for the manifest; raises if violated.
    """
    docs = [p for p in pages if p.status == 200 and p.raw_body is None and p.paragraphs]
    feats = view.features([dedup_text(p.title, p.paragraphs) for p in docs])
    worst, worst_pair, collisions = 0.0, None, []
    for i, j in itertools.combinations(range(len(docs)), 2):
        a, b = docs[i], docs[j]
        if a.group is not None and a.group == b.group:
            continue
        # different languages share no 5-gram worth checking (and the index skips the work)
        jac = jaccard(feats[i][0], feats[j][0]) if a.lang == b.lang else 0.0
        if jac > worst:
            worst, worst_pair = jac, (a.url, b.url)
        if feats[i][1] & feats[j][1]:
            collisions.append((a.url, b.url))
    if worst >= MAX_PAIR_JACCARD or collisions:
        raise RuntimeError(
            f"unplanted similarity: max Jaccard {worst:.3f} {worst_pair}, "
            f"shared LSH bands {collisions}"
        )
    index = {p.url: k for k, p in enumerate(docs)}
    for p in docs:
        if p.kind == "near_dup" and p.expected == "dedup.minhash":
            keeper = next(q for q in docs if q.group == p.group and q.expected == "keep")
            if not feats[index[p.url]][1] & feats[index[keeper.url]][1]:
                raise RuntimeError(f"planted copy {p.url} shares no LSH band with its keeper")
    return {
        "dedup_config": "stages.minhash.DedupConfig() defaults (14 bands x 8 rows, 5-grams)",
        "pages_checked": len(docs),
        "max_jaccard_unplanted": round(worst, 4),
        "max_jaccard_limit": MAX_PAIR_JACCARD,
        "shared_band_keys_unplanted": 0,
    }


def _png(w: int, h: int) -> bytes:
    """A small valid RGB PNG (a colour gradient), built without image libraries."""
    raw = b"".join(
        b"\x00" + bytes(v for x in range(w) for v in (x * 10 % 256, y * 20 % 256, 128))
        for y in range(h)
    )

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _pdf() -> bytes:
    """A minimal one-page PDF with a text line (valid xref offsets)."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        None,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    stream = b"BT /F1 18 Tf 36 72 Td (Annual report 2026) Tj ET"
    objs[3] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + o + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    )
    return out.getvalue()


# --------------------------------------------------------------------------- WARC writing
def _rid(*parts: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(NAMESPACE, '|'.join(parts))}>"


def _wdate(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_date(d: datetime) -> str:
    return d.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _ip(url: str) -> str:
    h = hash_int(url.split("/")[2])
    return f"198.18.{h % 250}.{(h >> 8) % 250 + 1}"


def sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def _body(p: Page) -> bytes:
    if p.raw_body is not None:
        return p.raw_body
    text = render_html(p, corpus.LANGS[p.lang or "en"])
    # characters outside a legacy charset become numeric references, as real sites do
    return text.encode(p.charset, errors="xmlcharrefreplace")


def _write_file(out_path: Path, idx: int, pages: list[Page], revisit_of: Page | None) -> dict:
    """Write one WARC file (warcinfo, then request/response/metadata per page by date)."""
    name = FILE_NAMES[idx]
    counts = {"warcinfo": 0, "request": 0, "response": 0, "metadata": 0, "revisit": 0}
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True, warc_version="1.0")
    info_id = _rid(name, "warcinfo")
    info = (
        f"isPartOf: {CRAWL_ID}\r\n"
        "publisher: ccpipe sample crawl (synthetic, generated by pipeline.sample.generate)\r\n"
        "description: Synthetic CommonCrawl-style sample with planted duplicates, PII and junk pages\r\n"
        "operator: ccpipe maintainers\r\n"
        "hostname: sample-generator\r\n"
        "software: ccpipe-sample-generator/1.0 (warcio)\r\n"
        "format: WARC File Format 1.0\r\n"
        "conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n"
    ).encode()
    w.write_record(
        w.create_warc_record(
            "",
            "warcinfo",
            payload=io.BytesIO(info),
            length=len(info),
            warc_content_type="application/warc-fields",
            warc_headers_dict={
                "WARC-Type": "warcinfo",
                "WARC-Date": _wdate(BASE_DATE),
                "WARC-Filename": name,
                "WARC-Record-ID": info_id,
            },
        )
    )
    counts["warcinfo"] += 1
    events = [(p.date, 0, p) for p in pages]
    if revisit_of is not None:
        events.append((revisit_of.date + timedelta(hours=30), 1, revisit_of))
    events.sort(key=lambda e: (e[0], e[1], e[2].url))
    for date, is_revisit, p in events:
        host = p.url.split("/")[2]
        path = "/" + p.url.split("/", 3)[3] if p.url.count("/") >= 3 else "/"
        rtag = "revisit" if is_revisit else "response"
        req_id, resp_id = _rid(name, "request", rtag, p.url), _rid(name, rtag, p.url)
        lang_hdr = {"zh": "zh-CN,zh;q=0.9", "ja": "ja,en;q=0.5"}.get(
            p.lang or "en", f"{p.lang or 'en'},en;q=0.5"
        )
        req = StatusAndHeaders(
            f"GET {path} HTTP/1.1",
            [
                ("User-Agent", "ccpipe-sample-bot/1.0 (+https://example.org/ccpipe-bot)"),
                ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                ("Accept-Language", lang_hdr),
                ("Accept-Encoding", "br,gzip"),
                ("Host", host),
                ("Connection", "Keep-Alive"),
            ],
            is_http_request=True,
        )
        common = {
            "WARC-Date": _wdate(date),
            "WARC-Warcinfo-ID": info_id,
            "WARC-IP-Address": _ip(p.url),
        }
        w.write_record(
            w.create_warc_record(
                p.url,
                "request",
                http_headers=req,
                payload=io.BytesIO(b""),
                length=0,
                warc_headers_dict={
                    "WARC-Type": "request",
                    "WARC-Record-ID": req_id,
                    **common,
                    "WARC-Target-URI": p.url,
                },
            )
        )
        counts["request"] += 1
        body = _body(p)
        if is_revisit:
            hdrs = [
                ("Date", _http_date(date)),
                ("Server", "nginx"),
                ("Content-Type", "text/html; charset=UTF-8"),
            ]
            rec = w.create_revisit_record(
                p.url,
                sha1_b32(body),
                p.url,
                _wdate(p.date),
                http_headers=StatusAndHeaders("200 OK", hdrs, protocol="HTTP/1.1"),
                warc_headers_dict={
                    "WARC-Type": "revisit",
                    "WARC-Record-ID": resp_id,
                    **common,
                    "WARC-Concurrent-To": req_id,
                    "WARC-Target-URI": p.url,
                },
            )
            w.write_record(rec)
            counts["revisit"] += 1
            continue
        wire = body
        if p.content_encoding == "gzip":
            wire = gzip.compress(body, compresslevel=9, mtime=0)
        if p.truncated:
            wire = wire[: len(wire) * 3 // 5]
        reason = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}[p.status]
        hdrs = [
            ("Date", _http_date(date)),
            ("Server", ["nginx", "Apache", "cloudflare"][hash_int(host) % 3]),
        ]
        if p.content_type is not None:
            ct = p.content_type
            if p.content_type == "text/html":
                if p.charset_decl in ("header", "both"):
                    ct = f"text/html; charset={p.charset.upper() if p.charset == 'utf-8' else p.charset}"
            hdrs.append(("Content-Type", ct))
        hdrs.extend(p.extra_headers)
        if p.content_encoding:
            hdrs.append(("Content-Encoding", p.content_encoding))
        elif p.raw_body is None and hash_int(p.url) % 3 == 0:
            # CC stores decoded payloads and renames the original header
            hdrs.append(("X-Crawler-Content-Encoding", "gzip"))
        hdrs += [
            ("Content-Length", str(len(body) if not p.content_encoding else len(wire))),
            ("Cache-Control", "max-age=600"),
            ("Connection", "close"),
        ]
        whd = {
            "WARC-Type": "response",
            "WARC-Record-ID": resp_id,
            **common,
            "WARC-Concurrent-To": req_id,
            "WARC-Target-URI": p.url,
        }
        if p.truncated:
            whd["WARC-Truncated"] = "length"
        ident = p.content_type or "text/html"
        whd["WARC-Identified-Payload-Type"] = ident
        w.write_record(
            w.create_warc_record(
                p.url,
                "response",
                payload=io.BytesIO(wire),
                length=len(wire),
                http_headers=StatusAndHeaders(f"{p.status} {reason}", hdrs, protocol="HTTP/1.1"),
                warc_headers_dict=whd,
            )
        )
        counts["response"] += 1
        meta = (
            f"fetchTimeMs: {hash_int(p.url) % 900 + 40}\r\n"
            f"charset-detected: {p.charset.upper()}\r\n"
        ).encode()
        w.write_record(
            w.create_warc_record(
                p.url,
                "metadata",
                payload=io.BytesIO(meta),
                length=len(meta),
                warc_content_type="application/warc-fields",
                warc_headers_dict={
                    "WARC-Type": "metadata",
                    "WARC-Record-ID": _rid(name, "metadata", p.url),
                    "WARC-Date": _wdate(date),
                    "WARC-Warcinfo-ID": info_id,
                    "WARC-Concurrent-To": resp_id,
                    "WARC-Target-URI": p.url,
                },
            )
        )
        counts["metadata"] += 1
    out_path.write_bytes(buf.getvalue())
    return counts


def generate(out_dir: Path, seed: int = DEFAULT_SEED) -> dict:
    """Write the WARC files and planted.json into out_dir; returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages, planted = build_pages(seed)
    rng = random.Random(seed + 1)
    revisit_of = rng.choice(
        [
            p
            for p in pages
            if p.kind == "content"
            and p.file == 1
            and p.charset == "utf-8"
            and not p.content_encoding
            and p.content_type
        ]
    )
    files = []
    for idx, name in enumerate(FILE_NAMES):
        fpages = [p for p in pages if p.file == idx]
        counts = _write_file(out_dir / name, idx, fpages, revisit_of if idx == 1 else None)
        html200 = [p for p in fpages if p.status == 200 and p.content_type == "text/html"]
        drops = {
            "read.warcinfo": counts["warcinfo"],
            "read.request": counts["request"],
            "read.metadata": counts["metadata"],
            "read.revisit": counts["revisit"],
            "read.non_200": sum(p.status != 200 for p in fpages),
            "read.non_html": sum(
                p.status == 200 and p.content_type not in (None, "text/html") for p in fpages
            ),
        }
        langs: dict[str, int] = {}
        for p in fpages:
            if (
                p.lang
                and p.status == 200
                and p.content_type in ("text/html", None)
                and p.kind in ("content", "near_dup", "exact_dup", "truncated")
            ):
                langs[p.lang] = langs.get(p.lang, 0) + 1
        no_ctype = sum(p.content_type is None for p in fpages)
        files.append(
            {
                "file": name,
                "records": sum(counts.values()),
                "records_by_type": counts,
                "html_200_responses": len(html200),
                "responses_without_content_type": no_ctype,
                "documents_after_read": len(html200) + no_ctype,
                "expected_read_drops": {k: v for k, v in drops.items() if v},
                "content_pages_by_lang": dict(sorted(langs.items())),
                "sha256": hashlib.sha256((out_dir / name).read_bytes()).hexdigest(),
            }
        )
    langs_total: dict[str, int] = {}
    for f in files:
        for k, v in f["content_pages_by_lang"].items():
            langs_total[k] = langs_total.get(k, 0) + v
    planted["special"].append(
        {
            "what": "revisit",
            "url": revisit_of.url,
            "file": FILE_NAMES[1],
            "expected": "read.revisit",
        }
    )
    documents = []
    for p in sorted(pages, key=lambda q: (q.file, q.date, q.url)):
        documents.append(
            {
                "url": p.url,
                "file": FILE_NAMES[p.file],
                "warc_date": _wdate(p.date),
                "doc_id": _rid(FILE_NAMES[p.file], "response", p.url)[10:-1],
                "status": p.status,
                "content_type": p.content_type,
                "lang": p.lang,
                "kind": p.kind,
                "group": p.group,
                "expected": p.expected,
            }
        )
    manifest = {
        "crawl_id": CRAWL_ID,
        "generator": {
            "module": "pipeline.sample.generate",
            "seed": seed,
            "zlib_version": zlib.ZLIB_RUNTIME_VERSION,
        },
        "notes": (
            "Counts are exact for the shipped files. Per file, conservation at read: "
            "records = sum(expected_read_drops) + documents_after_read, where "
            "documents_after_read = html_200_responses + responses_without_content_type. "
            "content_pages_by_lang counts those documents that carry real prose in a "
            "known language (all but the low_quality pages). documents[].expected: 'keep' "
            "(survives every stage), 'drop' (a low_quality page; low_quality[].targets "
            "names the rule aimed at it, an earlier stage may catch it first), "
            "'dedup.exact'/'dedup.minhash' (a planted copy), or a read.* reason. Dedup "
            "keeper rule: earliest WARC-Date, then smallest doc_id; every group's "
            "expected_keeper has the strictly earliest date."
        ),
        "files": files,
        "totals": {
            "records": sum(f["records"] for f in files),
            "html_200_responses": sum(f["html_200_responses"] for f in files),
            "documents_after_read": sum(f["documents_after_read"] for f in files),
            "content_pages_by_lang": dict(sorted(langs_total.items())),
            "pii_values": len(planted["pii"]),
        },
        **planted,
        "documents": documents,
    }
    (out_dir / MANIFEST_NAME).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return manifest


def _members(data: bytes) -> list[bytes]:
    """The gzip members (one WARC record each) of a per-record-gzip WARC."""
    out, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        out.append(data[pos:end])
        pos = end
    return out


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def damaged_warcs(
    out_dir: Path, source: Path | None = None, n_records: int = 60
) -> dict[str, Path]:
    """WARC files broken on purpose, one defect each, made from the shipped sample.

    The same defects as a crawler meets in the wild (and as the real damaged files of the
    test data have), so that every reader/pipeline test of them also runs on a clean clone:
    truncated-member (cut inside a gzip member), bad-content-length (a non-numeric
    Content-Length), junk-between-members (text between two gzip members), binary-payload (a
    text/html response of random bytes), empty (zero bytes), not-a-warc (an HTML page under a
    WARC name). Deterministic bytes.
    """
    source = source or Path(__file__).resolve().parent / FILE_NAMES[0]
    members = _members(source.read_bytes())[:n_records]
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    whole = b"".join(members)
    cut = (
        len(b"".join(members[: len(members) * 6 // 10])) + len(members[len(members) * 6 // 10]) // 2
    )
    files["truncated-member.warc.gz"] = whole[:cut]
    bad = list(members)
    for i in range(1, len(bad)):
        rec = gzip.decompress(bad[i])
        if b"WARC-Type: response" in rec[:2000]:
            rec = re.sub(rb"Content-Length: \d+", b"Content-Length: x" + b"9" * 5, rec, count=1)
            bad[i] = _gz(rec)
            break
    files["bad-content-length.warc.gz"] = b"".join(bad)
    mid = len(members) // 2
    files["junk-between-members.warc.gz"] = (
        b"".join(members[:mid]) + b"<junk> not gzip " * 40 + b"".join(members[mid:])
    )
    payload = random.Random(7).randbytes(20_000)
    http = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Date: 2026-11-16T06:00:00Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(NAMESPACE, 'binary-payload')}>\r\n"
        "WARC-Target-URI: http://binary.example.com/page.html\r\n"
        "Content-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(http)}\r\n\r\n"
    ).encode()
    files["binary-payload.warc.gz"] = whole + _gz(head + http + b"\r\n\r\n")
    files["empty.warc.gz"] = b""
    files["not-a-warc.warc.gz"] = (
        b"<!DOCTYPE html><html><head><title>Saved page</title></head>"
        b"<body><p>This page was saved from a browser, not crawled.</p></body></html>\n"
    )
    paths = {}
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
        paths[name] = out_dir / name
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output directory (default: this package, i.e. rewrite the shipped sample)",
    )
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="RNG seed")
    args = ap.parse_args(argv)
    m = generate(args.out, args.seed)
    for f in m["files"]:
        print(
            f"{args.out / f['file']}: {f['records']} records, "
            f"{f['html_200_responses']} HTML 200 responses"
        )
    print(f"{args.out / MANIFEST_NAME}: {m['totals']}")


if __name__ == "__main__":
    main()
