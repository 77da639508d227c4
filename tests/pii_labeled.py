"""Deterministic labeled PII set (Faker, several locales) + look-alikes + span-level scoring.

Why: PII recall/precision must be measured, not assumed. Values are embedded in real sentences
(`$CCPIPE_SHARED_DATA/langid/<lang>.txt` when present, else a built-in neutral list) with exact
character spans. Look-alike documents (dates, versions, prices, ISBNs, ...) carry no spans: any
detection in them is a false positive. Importable by tests and `benchmarks/pii_quality.py`.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import phonenumbers
from faker import Faker

from tests.real_data import shared_data_dir  # noqa: E402

SHARED = shared_data_dir()
LANGID_DIR = SHARED / "langid"
PRESIDIO_SYNTH = SHARED / "pii" / "presidio-research-synthetic" / "synth_dataset_v2.json"

LOCALES = {
    "en_US": ("en", "US"),
    "en_GB": ("en", "GB"),
    "de_DE": ("de", "DE"),
    "fr_FR": ("fr", "FR"),
    "it_IT": ("it", "IT"),
    "es_ES": ("es", "ES"),
    "nl_NL": ("nl", "NL"),
}

FALLBACK_SENTENCES = [
    "The library opens at nine and closes in the early evening.",
    "Several volunteers helped to repaint the community hall last spring.",
    "Our team reviewed the proposal and agreed on the next steps.",
    "The river was calm, and a few boats drifted past the old bridge.",
    "Please read the instructions carefully before you begin.",
    "The museum exhibition features paintings from the nineteenth century.",
    "Students gathered in the courtyard after the lecture ended.",
    "The recipe calls for fresh herbs, olive oil and a pinch of salt.",
    "Weather conditions improved throughout the afternoon.",
    "A new cycling path connects the station with the town centre.",
]

CUES = {
    "EMAIL_ADDRESS": ["Contact:", "Write to", "E-Mail:", "mail", "", "Questions? Email"],
    "PHONE_NUMBER": ["Call", "Tel.", "Phone:", "", "Mobile:", "Telefon:"],
    "IP_ADDRESS": ["from IP", "Client", "", "address", "logged from"],
    "CREDIT_CARD": ["Card number", "Visa", "", "paid with", "CC:"],
    "IBAN_CODE": ["IBAN:", "Account", "", "Bankverbindung", "pay to"],
    "US_SSN": ["SSN:", "Social Security Number", "", "SSN"],
}


@dataclass
class Sample:
    """One document: text, gold spans (start, end, entity, subtype), and its kind."""

    text: str
    spans: list[tuple[int, int, str, str]] = field(default_factory=list)
    kind: str = "pii"


def load_sentences(lang: str, limit: int = 300) -> list[str]:
    """Real sentences for `lang` from shared/langid, else the built-in neutral list."""
    p = LANGID_DIR / f"{lang}.txt"
    if p.exists():
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
        # drop lines that already contain digits/@ so that gold labels stay exact
        lines = [ln for ln in lines if ln and not any(c.isdigit() or c == "@" for c in ln)]
        if len(lines) >= 20:
            return lines[:limit]
    return list(FALLBACK_SENTENCES)


# ---------------------------------------------------------------- value generators
def _email(fk: Faker, rng: random.Random) -> tuple[str, str]:
    user = fk.user_name()
    r = rng.random()
    if r < 0.3:
        return f"{user}@{fk.free_email_domain()}", "plain"
    if r < 0.55:
        return f"{user}+{fk.word().lower()}@{fk.free_email_domain()}", "plustag"
    if r < 0.8:
        dom = fk.domain_name()
        return f"{fk.first_name().lower()}.{fk.last_name().lower()}@mail.{dom}", "subdomain"
    return f"{user}@{fk.domain_name()}", "company"


def _phone(fk: Faker, rng: random.Random, region: str) -> tuple[str, str]:
    ex = phonenumbers.example_number_for_type(
        region,
        rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]),
    )
    nat = str(ex.national_number)
    for _ in range(50):  # randomize the tail, keep it valid
        tail = "".join(rng.choice("0123456789") for _ in range(4))
        cand = phonenumbers.parse(f"+{ex.country_code}{nat[:-4]}{tail}")
        if phonenumbers.is_valid_number(cand):
            break
    else:
        cand = ex
    fmt = rng.choice(["national", "international", "e164", "dashed"])
    if fmt == "national":
        return phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.NATIONAL), fmt
    if fmt == "international":
        return phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.INTERNATIONAL), fmt
    if fmt == "e164":
        return phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.E164), fmt
    s = phonenumbers.format_number(cand, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return s.replace(" ", "-", s.count(" ") - 1) if s.count(" ") > 1 else s, fmt


def _ip(fk: Faker, rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.6:
        return fk.ipv4_public(), "v4"
    raw = int.from_bytes(bytes(rng.getrandbits(8) for _ in range(16)), "big")
    raw = (raw & ((1 << 125) - 1)) | (1 << 125)  # 2000::/3 global unicast
    ip = ipaddress.IPv6Address(raw)
    if not ip.is_global:
        ip = ipaddress.IPv6Address("2a00:1450:4001:82a::200e")
    if rng.random() < 0.5:  # make a zero run so the compressed form is exercised
        parts = ip.exploded.split(":")
        parts[4:6] = ["0000", "0000"]
        ip = ipaddress.IPv6Address(":".join(parts))
    return ip.compressed, "v6"


_CARD_TYPES = ["visa16", "visa13", "mastercard", "amex", "discover", "jcb16", "diners"]


def _card(fk: Faker, rng: random.Random) -> tuple[str, str]:
    typ = rng.choice(_CARD_TYPES)
    num = fk.credit_card_number(typ)
    sep = rng.choice(["", " ", "-"])
    if not sep:
        return num, typ
    if len(num) == 15:
        groups = [num[:4], num[4:10], num[10:]]
    elif len(num) == 13:
        groups = [num[:4], num[4:7], num[7:10], num[10:]]
    elif len(num) == 14:
        groups = [num[:4], num[4:10], num[10:]]
    else:
        groups = [num[i : i + 4] for i in range(0, len(num), 4)]
    return sep.join(groups), typ


def _iban(fk: Faker, rng: random.Random) -> tuple[str, str]:
    v = fk.iban()
    if rng.random() < 0.5:
        v = " ".join(v[i : i + 4] for i in range(0, len(v), 4))
    return v, v[:2]


def _ssn(fk: Faker, rng: random.Random) -> tuple[str, str]:
    return fk.ssn(), "dashed"


def build_labeled_set(n_per_entity: int = 60, seed: int = 1234) -> list[Sample]:
    """`n_per_entity` documents per entity; locales rotate; deterministic for a seed."""
    rng = random.Random(seed)
    fakers = {}
    for i, loc in enumerate(LOCALES):
        fk = Faker(loc)
        fk.seed_instance(seed + i)
        fakers[loc] = fk
    us = Faker("en_US")
    us.seed_instance(seed + 99)
    sentences = {lang: load_sentences(lang) for lang, _ in LOCALES.values()}
    iban_locales = ["de_DE", "fr_FR", "en_GB", "it_IT", "es_ES", "nl_NL"]
    gens: dict[str, Callable[[int], tuple[str, str]]] = {
        "EMAIL_ADDRESS": lambda i: _email(fakers[list(LOCALES)[i % 7]], rng),
        "PHONE_NUMBER": lambda i: _phone(None, rng, list(LOCALES.values())[i % 7][1]),
        "IP_ADDRESS": lambda i: _ip(fakers[list(LOCALES)[i % 7]], rng),
        "CREDIT_CARD": lambda i: _card(us, rng),
        "IBAN_CODE": lambda i: _iban(fakers[iban_locales[i % 6]], rng),
        "US_SSN": lambda i: _ssn(us, rng),
    }
    out = []
    for ent, gen in gens.items():
        for i in range(n_per_entity):
            lang = list(LOCALES.values())[i % 7][0]
            value, sub = gen(i)
            sents = sentences[lang]
            a, b = rng.choice(sents), rng.choice(sents)
            cue = rng.choice(CUES[ent])
            head = f"{a} {cue} " if cue else f"{a} "
            sep_after = rng.choice([". ", "\n", ", ", " "])
            text = f"{head}{value}{sep_after}{b}"
            out.append(Sample(text, [(len(head), len(head) + len(value), ent, sub)], "pii"))
    return out


# ---------------------------------------------------------------- look-alikes
def _lookalike_values(rng: random.Random, fk: Faker) -> dict[str, Callable[[], str]]:
    def date() -> str:
        d = fk.date_between("-30y", "+1y")
        return rng.choice(
            [
                d.isoformat(),
                d.strftime("%d.%m.%Y"),
                d.strftime("%m/%d/%Y"),
                d.strftime("%d/%m/%y"),
                d.strftime("%d.%m.%Y %H:%M").replace("00:00", fk.time("%H:%M")),
                d.strftime("0%w.%m.%Y"),
                d.strftime("%d-%m-%Y"),
            ]
        )

    def tm() -> str:
        return rng.choice(
            [fk.time(), fk.time("%H:%M"), f"{fk.date_between('-5y').isoformat()} {fk.time()}"]
        )

    def version() -> str:
        v = ".".join(str(rng.randint(0, 20)) for _ in range(rng.choice([3, 4, 4])))
        return rng.choice([f"version {v}", f"v{v}", f"Build {v}", f"firmware {v}", f"release {v}"])

    def price() -> str:
        n = rng.randint(1, 9_999_999)
        return rng.choice(
            [
                f"${n / 100:,.2f}",
                f"{n / 100:,.2f} €".replace(",", "X").replace(".", ",").replace("X", "."),
                f"EUR {n:,}".replace(",", " "),
                f"£{n // 100}",
            ]
        )

    def isbn() -> str:
        return "ISBN " + rng.choice([fk.isbn13(), fk.isbn10()])

    def order() -> str:
        n = rng.randint(10**6, 10**10)
        return rng.choice([f"Order #{n}", f"Bestellnummer {n}", f"invoice no. {n}", f"Ref: {n}"])

    def coord() -> str:
        return rng.choice(
            [
                f"{fk.latitude()}, {fk.longitude()}",
                f"{float(fk.latitude()):.4f} N {float(fk.longitude()):.4f} E",
            ]
        )

    def measure() -> str:
        return rng.choice(
            [
                f"{rng.randint(100, 3000)} x {rng.randint(100, 3000)} x {rng.randint(10, 900)} mm",
                f"{rng.uniform(0.1, 99):.2f} kg",
                f"{rng.randint(1000, 99999)} m²",
                f"{rng.randint(100, 999)}.{rng.randint(0, 99)} cm",
            ]
        )

    def years() -> str:
        y = rng.randint(1900, 2024)
        return rng.choice(
            [f"{y}", f"{y}-{y + 1}", f"{y}, {y + 3} and {y + 7}", f"from {y} to {y + 12}"]
        )

    def zipc() -> str:
        return rng.choice([fk.postcode(), Faker("de_DE").postcode(), "SW1A 1AA", "75008 Paris"])

    def dotted_quad() -> str:  # ambiguous on purpose: bare 4-part versions/section numbers
        return ".".join(str(rng.randint(1, 12)) for _ in range(4))

    def private_ip() -> str:
        return rng.choice([fk.ipv4_private(), "127.0.0.1", "192.168.0.1", "::1", "fe80::1"])

    def example_email() -> str:
        return fk.safe_email()

    return {
        "date": date,
        "time": tm,
        "version": version,
        "price": price,
        "isbn": isbn,
        "order_number": order,
        "coordinates": coord,
        "measurement": measure,
        "year": years,
        "zip_code": zipc,
        "private_ip": private_ip,
        "example_email": example_email,
        "bare_dotted_quad": dotted_quad,
    }


def build_lookalikes(n_per_class: int = 40, seed: int = 4321) -> list[Sample]:
    """Documents with a PII look-alike and no PII: any detection is a false positive."""
    rng = random.Random(seed)
    fk = Faker("en_US")
    fk.seed_instance(seed)
    sents = load_sentences("en") + load_sentences("de")
    out = []
    for kind, gen in _lookalike_values(rng, fk).items():
        for _ in range(n_per_class):
            out.append(Sample(f"{rng.choice(sents)} {gen()}. {rng.choice(sents)}", [], kind))
    return out


# ---------------------------------------------------------------- scoring
def score(
    samples: list[Sample], predictions: list[list[tuple[int, int, str]]]
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Span-overlap scoring.

    Returns (per-entity {tp, fp, fn, precision, recall}, per-look-alike-class FP rate = share
    of documents with any detection). Gold IP spans are split into IP_ADDRESS/v4 and /v6 rows.
    A prediction is a TP if it overlaps a gold span of the same entity.
    """
    tp, fp, fn = Counter(), Counter(), Counter()
    la_docs, la_hits = Counter(), Counter()
    for smp, pred in zip(samples, predictions, strict=True):
        if smp.kind != "pii":
            la_docs[smp.kind] += 1
            la_hits[smp.kind] += bool(pred)
            continue
        for s, e, ent, sub in smp.spans:
            key = f"{ent}/{sub}" if ent == "IP_ADDRESS" else ent
            hit = any(ps < e and s < pe and pent == ent for ps, pe, pent in pred)
            (tp if hit else fn)[key] += 1
            if ent == "IP_ADDRESS":
                (tp if hit else fn)[ent] += 1
        for ps, pe, pent in pred:
            if not any(ps < e and s < pe and pent == ent for s, e, ent, _ in smp.spans):
                fp[pent] += 1
    table = {}
    for k in sorted(set(tp) | set(fp) | set(fn)):
        t, f, n = tp[k], fp[k], fn[k]
        table[k] = {
            "tp": t,
            "fp": f,
            "fn": n,
            "precision": t / (t + f) if t + f else float("nan"),
            "recall": t / (t + n) if t + n else float("nan"),
        }
    fpr = {k: la_hits[k] / la_docs[k] for k in sorted(la_docs)}
    return table, fpr
