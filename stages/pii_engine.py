"""Offline construction of the Presidio analyzer used by `stages.pii`.

Why this module exists: Presidio's defaults assume a downloadable spaCy model
(`en_core_web_lg`) and `tldextract` fetching the public-suffix list over the network; neither
works on an offline worker. Here:

* the NLP engine is a *blank* spaCy pipeline (tokenizer only) written once to a cache
  directory (`$CCPIPE_CACHE` or the system temp dir) and loaded from there, so only
  pattern/checksum recognizers can fire (NER-based PERSON/LOCATION never run);
* e-mail domain validation uses a `tldextract.TLDExtract` with no suffix-list URLs and no disk
  cache, i.e. its bundled public-suffix snapshot; nothing touches the network;
* the recognizer registry is built explicitly from a short, chosen list instead of Presidio's
  ~40 defaults (with the defaults a phone number also matched UK_NHS and "john.doe" matched
  URL). Chosen recognizers, by entity:

  - EMAIL_ADDRESS: Presidio's regex + public-suffix validation (offline snapshot).
  - PHONE_NUMBER: Presidio's `PhoneRecognizer` (python-phonenumbers, leniency VALID) over a
    configurable region list, run per phone-shaped snippet (`SnippetPhoneRecognizer`, ~10x
    cheaper); international "+CC" numbers are found whatever the regions. A phone-shaped
    number that phonenumbers rejects still counts when a cue word precedes it ("Phone:",
    "Tel.", "call me on", "Fax", ...) or a label follows it ("... office"): on
    presidio-research's synthetic set this took phone recall from 0.62 to 0.99 (precision
    0.905 to 0.938), with no new detection on the look-alike set and two more (both real
    "Tel" numbers) on 969 real pages.
  - IP_ADDRESS: Presidio's IPv4/IPv6 patterns + `ipaddress` validation. Matches whose address
    is not globally routable (private, loopback, link-local, documentation, ...) are dropped
    by the stage when `ip_public_only` (FineWeb's rule: only public addresses are personal).
  - CREDIT_CARD: Presidio's pattern plus Amex 4-6-5 and Mastercard 2-series patterns, + Luhn
    checksum, also tried from every digit group of a long run (`OverlapCreditCardRecognizer`).
  - IBAN_CODE: Presidio's pattern + per-country format + mod-97 checksum.
  - US_SSN: Presidio's patterns + its invalid-number rules; the stage's score threshold keeps
    only the dashed/spaced `ddd-dd-dddd` form (score 0.5), not bare 9-digit runs (0.05).
  - URL_CREDENTIAL (ours): the *value* of secret-bearing URL query parameters
    (`token=`, `api_key=`, `password=`, `session=`, `sig=` ...) and the password of
    `scheme://user:password@host` userinfo. Cheap (one regex, gated by the prefilter), and
    these strings are live credentials rather than mere contact data.

  Not included, deliberately: URL (most URLs in web text are public pages, not personal data;
  scrubbing them would destroy link text the model should learn), UK_NHS / other national ids
  (collide with phone numbers; weak checksums), MAC_ADDRESS / CRYPTO / DATE_TIME (not personal
  data in web text or too many false positives), NER entities (need a trained model).

Replacement is done by the stage itself rather than by presidio-anonymizer's engine: the
operators need the entity-specific deterministic dummy values and the stage needs exact
per-entity counts after its own overlap union; the engine would add per-document overhead.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import phonenumbers
import spacy
import tldextract

# isort: split
import stages.presidio_import  # noqa: F401 - first: presidio without its transformers engine

# isort: split
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

from core import storage
from stages.pii_names import SECRET_PARAM_NAMES, SUPPORTED_ENTITIES

# tldextract with its bundled public-suffix snapshot only: no URL list, no disk cache.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

_SECRET_PARAM_RE = re.compile(
    r"(?i)[?&;](?:" + "|".join(re.escape(n) for n in SECRET_PARAM_NAMES) + r")=([^&#\s\"'<>]{4,})"
)
_USERINFO_RE = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/@:\"'<>]+:([^\s/@\"'<>]+)@")


# Presidio's card pattern wants groups of 4-4-4-x and first digits 1/3/4/5/6: add American
# Express's printed 4-6-5 grouping and Mastercard's 2-series (2221-2720, issued since 2017).
_EXTRA_CARD_PATTERNS = [
    Pattern("Amex 4-6-5 (weak)", r"\b3[47]\d{2}[- ]?\d{6}[- ]?\d{5}\b", 0.3),
    Pattern("Mastercard 2-series (weak)", r"\b2[2-7]\d{2}(?:[- ]?\d{4}){3}\b", 0.3),
]


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:  # noqa: D102
        return _OFFLINE_TLD(pattern_text).fqdn != ""


# Digit runs shaped like a dialled number: optional +/00, 7-15 digits with separators.
_PHONE_SHAPE = re.compile(
    r"(?<![\w+/=.-])(?:\+|\(|\b)\(?\d[\d \t().\-/\u00a0]{5,60}\d"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\dA-Za-z])"  # optional extension: 555-0143x12
)


_DECIMAL_OR_QUAD = re.compile(r"^-?\d+[.,]\d+$|^\d{1,3}(?:\.\d{1,3}){3}$")
_DATE_LIKE = re.compile(
    r"^\(?(?:(?:0?[1-9]|[12]\d|3[01])[./-](?:0?[1-9]|1[0-2])[./-](?:\d{1,2}[./-])?(?:19|20)?\d{2}"
    r"|(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)?\d{2}"
    r"|(?:19|20)\d{2}[./-]\d{1,2}[./-]\d{1,2})(?!\d|[./-]\d)"
)
_FULL_DATE = re.compile(
    r"(?<!\d)(?:0?[1-9]|[12]\d|3[01])\.(?:0?[1-9]|1[0-2])\.(?:19|20)\d{2}(?!\d)"
)
_THOUSANDS = re.compile(r"^[1-9]\d{0,2}(?:(?:[.,]\d{3})+|(?:[ \u00a0]\d{3})*[ \u00a0]\d00)$")
_RANGE_OR_DOTTED = re.compile(
    r"^(?:(?:19|20)\d{2}\s*[-/\u2013]\s*(?:19|20)?\d{2}"  # year ranges 2021-2026, 2013/14
    r"|\d{1,2}[.:]\d{2}\s*[-\u2013]\s*\d{1,2}[.:]\d{2}"  # opening hours 8.30 - 18.00
    r"|(?!0)(?!\d{3}\.\d{3}\.\d{4}$)\d+(?:\.\d+){2,}"  # versions 59.0.3071.125, but not 555.123.4567
    r"|\d+-(?:19|20)\d{2})$"  # numbered acts 531-2021
)


# A word that announces a phone number just before it ("Phone:", "call me on", "Tel. no.") or
# labels it just after ("... office", "... fax"). With one, a phone-shaped number that
# python-phonenumbers rejects (a fake or new exchange, a region we do not list, a bare 7-digit
# local number) is still taken as a phone: on presidio-research's synthetic set most missed
# phones had such a cue.
_CUE_BEFORE = re.compile(
    r"(?:\b(?:phone|tel|telephone|mobile|cell|cellphone|fax|desk|whats ?app|sms|hotline"
    r"|call(?:ed)?(?: me| us)?(?: on| at)?|text(?: me| us)?(?: on| at)?"
    r"|reach(?: me| us)?(?: on| at)?|answering at"
    r"|t[ée]l[ée]fon[oe]?|t[ée]l[ée]phone|t[ée]l|handy|m[óo]vil|celular|portable|телефон|тел)"
    r"|電話)(?:\s*(?:no|nr|number|#))?\.?\s*[:：.]?\s*$",
    re.IGNORECASE,
)
_CUE_AFTER = re.compile(r"^\s*[-(,]?\s*(?:office|fax|mobile|home|work|cell)\b", re.IGNORECASE)


def phone_cued(text: str, start: int, end: int) -> bool:
    """A phone cue word right before `text[start:end]` or a phone label right after it."""
    return (
        _CUE_BEFORE.search(text[max(0, start - 40) : start]) is not None
        or _CUE_AFTER.match(text[end : end + 16]) is not None
    )


def is_phone_lookalike(val: str, cued: bool = False) -> bool:
    """Digit strings that phonenumbers may accept but that are far more often not phones.

    Decimal numbers (coordinates, measurements, arXiv ids), dotted quads (IPs/versions), dates
    (`05.11.2022`, `2022-11-05 14`; day/month ranges checked, so `03.93.92.16.85` stays a phone), year ranges (`2021-2026`), opening hours (`8.30 - 18.00`),
    dotted versions (`59.0.3071.125`), numbered acts (`531-2021`), thousands-grouped numbers (`1.299.000`, `3 000 000`; space-grouped only when ending in `00`,
    since `699 956 915` is how Spanish mobiles are written), unformatted digit
    runs not starting with 0 (no trunk prefix: ids, order numbers) or longer than 12 digits,
    unless `cued` (`phone_cued`). Cost: a national number printed like a date, or as
    `123 456 789` without a cue, is missed.
    """
    if _DECIMAL_OR_QUAD.match(val) or _DATE_LIKE.match(val) or _THOUSANDS.match(val):
        return True
    if _RANGE_OR_DOTTED.match(val) or _FULL_DATE.search(val):
        return True
    return not cued and val.isdigit() and (not val.startswith("0") or len(val) > 12)


@lru_cache(maxsize=65536)
def _phone_spans(
    snip: str, pre: int, post: int, regions: tuple[str, ...], leniency: int, segment: bool = True
) -> tuple[tuple[int, int, str], ...]:
    """(start, end, region) of numbers in `snip` (candidate = snip[pre:post]); cached.

    A cheap `parse` + `is_valid_number` per region finds the region(s) where the candidate can
    be a number at all; only those run python-phonenumbers' matcher (its date/time-stamp and
    grouping rules, leniency VALID) on the snippet with its few characters of context.
    """
    core = snip[pre:post]
    if segment and sum(c.isdigit() for c in core) > 15:  # longer than any number
        return _segment_run(snip, pre, post, regions, leniency)
    maybe = []
    for region in regions[:1] if core.startswith("+") else regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(core, region)):
                maybe.append(region)
        except phonenumbers.NumberParseException:
            continue
    for region in maybe:
        found = tuple(
            (m.start, m.end, region)
            for m in phonenumbers.PhoneNumberMatcher(snip, region, leniency=leniency)
        )
        if found:
            return found
    if segment and sum(c.isdigit() for c in core) > 12:  # maybe several side by side
        return _segment_run(snip, pre, post, regions, leniency)
    return ()


def _segment_run(
    snip: str, pre: int, post: int, regions: tuple[str, ...], leniency: int
) -> tuple[tuple[int, int, str], ...]:
    """Greedy longest-first split of a long digit run at spaces into valid numbers."""
    toks = [(m.start() + pre, m.end() + pre) for m in re.finditer(r"\S+", snip[pre:post])][:16]
    out, i = [], 0
    while i < len(toks):
        for j in range(min(len(toks), i + 6), i, -1):
            a, b = toks[i][0], toks[j - 1][1]
            sub = snip[a:b]
            nd = sum(c.isdigit() for c in sub)
            if nd < 7 or nd > 15 or is_phone_lookalike(sub):
                continue
            found = _phone_spans(sub, 0, len(sub), regions, leniency, False)
            if found:
                out.extend((a + s, a + e, r) for s, e, r in found)
                end = a + found[-1][1]
                i = next((k for k in range(i + 1, len(toks)) if toks[k][0] >= end), len(toks))
                break
        else:
            i += 1
    return tuple(out)


class SnippetPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer run on phone-shaped snippets instead of the whole text.

    Why: `PhoneNumberMatcher` rescans the whole text once per region (10 regions = 10 scans,
    ~40 ms for a 400-char window full of numbers). Here a regex picks phone-shaped digit runs;
    look-alikes (`is_phone_lookalike`) are dropped before any parsing; each remaining snippet is
    parsed per region (stopping at the first valid one; "+CC" needs one parse) with
    python-phonenumbers' own validity rules, and long runs fall back to its matcher.
    """

    def analyze(  # noqa: D102
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = []
        regions = tuple(self.supported_regions)
        for m in _PHONE_SHAPE.finditer(text):
            cand = m.group()
            nd = sum(c.isdigit() for c in cand)
            # long runs (several numbers side by side) go to the matcher whole; their parts
            # are checked for look-alikes by the stage
            cued = phone_cued(text, m.start(), m.end())
            if nd < 7 or (nd <= 12 and is_phone_lookalike(cand, cued)):
                continue
            # a little context each side: the matcher's time-stamp/date rules look at it
            a, b = max(0, m.start() - 2), min(len(text), m.end() + 4)
            spans = _phone_spans(text[a:b], m.start() - a, m.end() - a, regions, self.leniency)
            if not spans and _SPACE_DIGIT.match(text, m.end()):
                # the matcher reads a following "2a00:..." as part of the number: no right context
                spans = _phone_spans(
                    text[a : m.end()], m.start() - a, m.end() - a, regions, self.leniency
                )
            if not spans and cued and nd <= 15:
                spans = ((m.start() - a, m.end() - a, "cue"),)
            for s, e, region in spans:
                res = RecognizerResult(
                    self.supported_entities[0],
                    a + s,
                    a + e,
                    self.SCORE,
                    analysis_explanation=self._get_analysis_explanation(region),
                )
                results.append(res)
        return EntityRecognizer.remove_duplicates(results)


_SPACE_DIGIT = re.compile(r"\s{1,3}\d")
# A run of digit groups separated by single spaces or dashes, long enough to hold a card.
_DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)+")


class OverlapCreditCardRecognizer(CreditCardRecognizer):
    """Presidio's card recognizer, also trying every digit group of a long run as a start.

    Why: regex matches do not overlap. In "+49 30 12345678 4111 1111 1111 1111" the pattern
    first takes "12345678 4111 1111", which fails the Luhn check, and the search resumes after
    it, so the real card behind it was never seen (found by the windows-vs-whole-document
    property test). Runs of 14 or more digits are re-analysed from each later group start
    (32 characters each, so the cost stays linear in the run's length).
    """

    def analyze(  # noqa: D102
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for run in _DIGIT_RUN.finditer(text):
            if sum(c.isdigit() for c in run.group()) < 14:
                continue
            for g in re.finditer(r"[ -](?=\d)", run.group()):
                start = run.start() + g.end()
                end = min(run.end(), start + 32)  # a printed card is at most 23 characters
                for r in super().analyze(text[start:end], entities, nlp_artifacts, regex_flags):
                    r.start += start
                    r.end += start
                    results.append(r)
        return EntityRecognizer.remove_duplicates(results)


class UrlCredentialRecognizer(LocalRecognizer):
    """Credential values inside URLs: secret query parameters and userinfo passwords."""

    SCORE = 0.9

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["URL_CREDENTIAL"],
            supported_language=supported_language,
            name="UrlCredentialRecognizer",
        )

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Return the span of each secret value (group 1 of either regex)."""
        out = []
        for rx in (_SECRET_PARAM_RE, _USERINFO_RE):
            for m in rx.finditer(text):
                out.append(RecognizerResult("URL_CREDENTIAL", m.start(1), m.end(1), self.SCORE))
        return EntityRecognizer.remove_duplicates(out)


def _cache_root() -> Path:
    return Path(os.environ.get("CCPIPE_CACHE") or Path(tempfile.gettempdir()) / "ccpipe-cache")


def blank_spacy_dir(lang: str) -> Path:
    """Write (once) and return a blank spaCy pipeline directory for `lang`.

    Why: Presidio's NLP engine loads spaCy pipelines by name or path; no trained pipeline is
    installable offline, and a blank one (tokenizer only) is all pattern recognizers need.
    """
    d = _cache_root() / f"spacy-blank-{lang}-{spacy.__version__}"
    if not (d / "meta.json").exists():
        _ensure(d.parent)
        try:
            with storage.atomic_path(d, hidden=True) as tmp:
                spacy.blank(lang).to_disk(tmp)
        except OSError:
            if not (d / "meta.json").exists():  # not a concurrent writer that won: a real error
                raise
    return d


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def build_recognizers(
    entities: Sequence[str], language: str, phone_regions: Sequence[str]
) -> list[EntityRecognizer]:
    """The chosen recognizers for `entities` in one language (see module docstring)."""
    ents = set(entities)
    unknown = ents - set(SUPPORTED_ENTITIES)
    if unknown:
        raise ValueError(f"unsupported PII entities {sorted(unknown)}; know {SUPPORTED_ENTITIES}")
    recs: list[EntityRecognizer] = []
    if "EMAIL_ADDRESS" in ents:
        recs.append(OfflineEmailRecognizer(supported_language=language))
    if "PHONE_NUMBER" in ents:
        recs.append(
            SnippetPhoneRecognizer(
                supported_language=language, supported_regions=tuple(phone_regions), leniency=1
            )
        )
    if "IP_ADDRESS" in ents:
        recs.append(IpRecognizer(supported_language=language))
    if "CREDIT_CARD" in ents:
        recs.append(
            OverlapCreditCardRecognizer(
                patterns=[*CreditCardRecognizer.PATTERNS, *_EXTRA_CARD_PATTERNS],
                supported_language=language,
            )
        )
    if "IBAN_CODE" in ents:
        recs.append(IbanRecognizer(supported_language=language))
    if "US_SSN" in ents:
        recs.append(UsSsnRecognizer(supported_language=language))
    if "URL_CREDENTIAL" in ents:
        recs.append(UrlCredentialRecognizer(supported_language=language))
    return recs


def build_analyzer(
    entities: Sequence[str],
    languages: Sequence[str] = ("en",),
    phone_regions: Sequence[str] = PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS,
) -> AnalyzerEngine:
    """An offline `AnalyzerEngine` with a blank spaCy pipeline per language and our registry."""
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [
                {"lang_code": lang, "model_name": str(blank_spacy_dir(lang))} for lang in languages
            ],
        }
    )
    nlp_engine = provider.create_engine()
    registry = RecognizerRegistry(supported_languages=list(languages))
    for lang in languages:
        for rec in build_recognizers(entities, lang, phone_regions):
            registry.add_recognizer(rec)
    return AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=list(languages)
    )
