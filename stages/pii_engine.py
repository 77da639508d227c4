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
    configurable region list; international "+CC" numbers are found whatever the regions.
  - IP_ADDRESS: Presidio's IPv4/IPv6 patterns + `ipaddress` validation. Matches whose address
    is not globally routable (private, loopback, link-local, documentation, ...) are dropped
    by the stage when `ip_public_only` (FineWeb's rule: only public addresses are personal).
  - CREDIT_CARD: Presidio's pattern + Luhn checksum.
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
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import spacy
import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    LocalRecognizer,
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
from presidio_anonymizer import AnonymizerEngine

SUPPORTED_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "URL_CREDENTIAL",
)

# tldextract with its bundled public-suffix snapshot only: no URL list, no disk cache.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

# Query parameter names whose values are credentials/session ids, not content.
SECRET_PARAM_NAMES: tuple[str, ...] = (
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "session",
    "sessionid",
    "session_id",
    "sid",
    "phpsessid",
    "jsessionid",
    "auth",
    "authorization",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
_SECRET_PARAM_RE = re.compile(
    r"(?i)[?&;](?:" + "|".join(re.escape(n) for n in SECRET_PARAM_NAMES) + r")=([^&#\s\"'<>]{4,})"
)
_USERINFO_RE = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s/@:\"'<>]+:([^\s/@\"'<>]+)@")


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against the bundled suffix list."""

    def validate_result(self, pattern_text: str) -> bool:  # noqa: D102
        return _OFFLINE_TLD(pattern_text).fqdn != ""


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
                out.append(
                    RecognizerResult("URL_CREDENTIAL", m.start(1), m.end(1), self.SCORE)
                )
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
        tmp = Path(tempfile.mkdtemp(prefix=f".spacy-blank-{lang}-", dir=_ensure(d.parent)))
        spacy.blank(lang).to_disk(tmp)
        try:
            os.replace(tmp, d)  # atomic publish; a concurrent writer may have won
        except OSError:
            pass
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
            PhoneRecognizer(
                supported_language=language, supported_regions=tuple(phone_regions), leniency=1
            )
        )
    if "IP_ADDRESS" in ents:
        recs.append(IpRecognizer(supported_language=language))
    if "CREDIT_CARD" in ents:
        recs.append(CreditCardRecognizer(supported_language=language))
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


def build_anonymizer() -> AnonymizerEngine:
    """Presidio's anonymizer (overlap resolution + operator application)."""
    return AnonymizerEngine()
