"""PII scrubbing stage (phase 3): offline Presidio behind a vectorized prefilter.

What is scrubbed (entities, see `stages.pii_engine` for the recognizer choice and why):
EMAIL_ADDRESS, PHONE_NUMBER, IP_ADDRESS (v4 and v6, public addresses only by default),
CREDIT_CARD (Luhn-validated), IBAN_CODE (mod-97-validated), US_SSN (dashed/spaced form), and
URL_CREDENTIAL (values of secret query parameters such as `token=`/`api_key=`/`session=` and
`user:password@` passwords inside URLs).

URL policy: URLs in text are **not** scrubbed as such: almost all URLs in web text point to
public pages, and removing them destroys content the model should learn (Presidio's URL
recognizer also fires on "john.doe"). What *is* scrubbed inside URLs in text: e-mail addresses
(e.g. `mailto:`), IPs, and URL_CREDENTIAL values; the rest of the URL is left intact.

Look-alike policy (decided, measured by `benchmarks/pii_quality.py`):
* IPv4-like version strings: a dotted quad preceded by a version marker (`v`, `version`,
  `ver.`, `build`, `release`, `firmware`, `rev`) or part of a longer dotted run (`1.2.3.4.5`)
  is not an IP. A bare `1.2.3.4` with no marker is ambiguous and *is* scrubbed when public.
* Non-global IPs (private, loopback, link-local, documentation, multicast, reserved) are not
  personal data (FineWeb scrubs public IPv4 only) -> kept when `ip_public_only`.
* E-mails at reserved example domains (RFC 2606/6761: example.com/.org/.net, *.example,
  *.test, *.invalid, *.localhost) are not personal -> kept (this also makes the `dummy`
  policy idempotent).
* Phone/credit-card/SSN matches directly preceded by an identifier label (ISBN, ISSN, DOI,
  order, invoice, ref, SKU, art.-nr ...) are not personal numbers -> kept.
* Phone matches that are part of a decimal number (coordinates, measurements, arXiv ids),
  dotted quads, dates (`05.11.2022`, `2022-11-05 14`, `09-12-06-2016`), thousands-grouped
  numbers (`3 000 000`), or unformatted digit runs not starting with `0`/`+` or longer than 12
  digits (ids far more often than phones) are not phones. Cost: a national number printed like
  a date or as `123 456 789` is missed.
* A card-shaped run of years (`1945 1960 1980 2000`, passes Luhn by chance) is not a card.
* A `ddd-dd-dddd` span found by the phone recognizer is labeled US_SSN when US_SSN is enabled.

Replacement policy (`PiiConfig.policy`), always deterministic (same value + key -> same output):
* `dummy` (default): realistic values of the same shape that cannot be the original or, where
  a checksum exists, any real one: e-mail -> `email@example.com` (FineWeb), IPv4 -> an address
  in the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and IPv6 ->
  2001:db8::/32 (chosen by keyed hash), phone -> same separators/length with hash-derived
  digits, credit card -> same grouping, first digit kept, Luhn made invalid, IBAN -> same
  country/length with an invalid checksum, SSN -> `000-dd-dddd` (area 000 is never issued),
  URL credential -> `REDACTED`.
  Why default: the output is training text. Dummy values keep the text distribution natural
  (the model still learns what an e-mail line looks like) without teaching it special tokens
  it will never see at inference; this is what FineWeb released.
* `placeholder`: typed tags such as `<EMAIL_ADDRESS>` (explicit, easy to audit).
* `hash`: `<EMAIL_ADDRESS:0123456789abcdef>`, a keyed BLAKE2b of the value: joinable across
  documents without revealing it. Set a secret `hash_key`; phone numbers and SSNs have so
  little entropy that an unkeyed hash is reversible by enumeration.

Cost: (1) one RE2 pass over the whole batch (`pyarrow.compute.match_substring_regex` with a
combined candidate regex: `@`, digit runs of 7+ digits with separators, dotted quads, hex
groups with colons, IBAN heads, secret query parameters) selects candidate documents;
(2) in those, Python `re` finds the candidate spans, each widened by `window_chars` of context
and snapped outward to whitespace, overlapping windows merged; (3) Presidio analyzes only these
windows and offsets are shifted back. Values split by line breaks are inside the window because
candidate digit runs may span whitespace including newlines, and windows never end inside a
token; a single line break between digits is shown to the recognizers as spaces of the same
length (offsets unchanged), so a card or phone number wrapped across lines is found. The analyzer is built once per stage instance.

Output columns: `text` rewritten; `pii_counts` (string, a JSON object entity -> count with
sorted keys and only non-zero entries, `{}` when none; sum per shard with
`sum_pii_counts`) and `pii_total` (int32).

Metadata (`PiiScrubber.scrub_metadata`): values containing `://` are treated as URLs, others as
text (titles). For URLs (the stored-URL policy, issue 19): the whole userinfo becomes
`REDACTED` (user names are account ids no detector recognises; passwords are credentials);
the value of every query/fragment parameter whose name is in
`pii_engine.SECRET_PARAM_NAMES` is replaced; every other query/fragment value and each path
segment (between `/` and `;`) are percent-decoded, scrubbed as text (e-mails, phones, IPs,
cards, IBANs, SSNs) and re-encoded only if something was found; scheme, host and untouched parts are kept byte-identical. The host
itself is kept (an IP literal host is scrubbed, public ones only by default, when IP_ADDRESS is enabled;
a host name is never touched, whatever digits it holds). Text values get
exactly the in-text scrubbing above.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config_effects import Execution, Output
from stages.pii_names import SECRET_PARAM_NAMES, SUPPORTED_ENTITIES


def _is_phone_lookalike(val: str, text: str, s: int, e: int) -> bool:
    from stages.pii_engine import is_phone_lookalike, phone_cued

    return is_phone_lookalike(val, phone_cued(text, s, e))


DEFAULT_ENTITIES = list(SUPPORTED_ENTITIES)

_SECRET_ALT = "|".join(re.escape(n) for n in SECRET_PARAM_NAMES)
# Candidate regexes, each with the entities whose recognizers a hit must run. RE2 (pyarrow)
# and Python `re` compatible; together they over-approximate every entity.
CANDIDATES: list[tuple[str, frozenset[str]]] = [
    (r"[^\s@]@[^\s@]+\.", frozenset({"EMAIL_ADDRESS", "URL_CREDENTIAL"})),
    (r"[^\s%]%40[^\s%]+\.", frozenset({"EMAIL_ADDRESS"})),
    (
        r"\d(?:[\s().\-/]{0,3}\d){6,}",  # 7+ digits with separators (may span line breaks)
        frozenset({"PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE"}),
    ),
    (r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", frozenset({"IP_ADDRESS"})),
    (r"(?:[0-9A-Fa-f]{1,4}:){2,}|::", frozenset({"IP_ADDRESS"})),
    (r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}", frozenset({"IBAN_CODE"})),
    (r"[?&;#](?i:" + _SECRET_ALT + r")=", frozenset({"URL_CREDENTIAL"})),
    (r"://[^\s/@:]+:[^\s/@]+@", frozenset({"URL_CREDENTIAL", "EMAIL_ADDRESS"})),
]
CANDIDATE_PATTERN = "|".join(f"(?:{rx})" for rx, _ in CANDIDATES)
_CANDIDATE_RES = [(re.compile(rx), ents) for rx, ents in CANDIDATES]

_VERSION_BEFORE = re.compile(
    r"(?i)(?:\bv|\bversion|\bver\.?|\bbuild|\brelease|\bfirmware|\brev\.?|\bupdate)\s*[:#]?\s*$"
)
_ID_LABEL_BEFORE = re.compile(
    r"(?i)(?:isbn(?:-1[03])?|issn|doi|order|invoice|ref(?:erence)?|sku|art\.?-?nr\.?|"
    r"item|bestell-?(?:nr\.?|nummer)|rechnungs-?(?:nr\.?|nummer)|tracking|ean|gtin|upc|"
    r"kunden-?(?:nr\.?|nummer)|commande|pedido|ordine)\s*(?:no\.?|nr\.?|number|#)?"
    r"\s*[:#]?\s*$"
)
# An e-mail percent-encoded inside a URL (`?contact=jane.doe%40mail.com`): Presidio's email
# pattern needs a literal '@', so these are matched here, on the whole text.
_PCT_EMAIL = re.compile(r"[A-Za-z0-9._+-]+%40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_DIGIT_BREAK = re.compile(r"(?<=\d)[ \t]*\r?\n[ \t]*(?=[\d+(])")
_YEAR_RUN = re.compile(r"^(?:(?:1[89]|20)\d{2}[ -]){2,}(?:1[89]|20)\d{2}$")
_SSN_SHAPE = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_EXAMPLE_DOMAIN = re.compile(
    r"(?i)@(?:[\w-]+\.)*(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test|invalid|localhost))$"
)


class PiiConfig(BaseModel):
    """Configuration of the PII scrubbing stage."""

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(
        True, description="Run PII scrubbing at all (phase 1, before anything is staged)."
    )
    entities: Output[list[str]] = Field(
        default_factory=lambda: list(DEFAULT_ENTITIES),
        description=(
            "Entities to scrub, a subset of "
            + ", ".join(SUPPORTED_ENTITIES)
            + ". Default: all; chosen pattern/checksum recognizers only (see stages/pii_engine)."
        ),
    )
    languages: Output[list[str]] = Field(
        default_factory=lambda: ["en"],
        description=(
            "spaCy languages the analyzer registers (blank pipelines). Recognizers are pattern"
            " based and language independent; a document whose `lang` is listed uses that"
            " pipeline, any other uses the first."
        ),
    )
    score_threshold: Output[float] = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description=(
            "Minimum Presidio score. 0.3 keeps phone (0.4), IP (0.6), dashed SSN (0.5) and"
            " checksum-validated card/IBAN/e-mail (1.0) and drops Presidio's 'very weak' SSN"
            " patterns (0.05: any 9-digit run). Scores are Presidio 2.2 recognizer constants."
        ),
    )
    policy: Output[Literal["dummy", "placeholder", "hash"]] = Field(
        "dummy",
        description=(
            "Replacement: dummy = realistic same-shape values (FineWeb: email@example.com,"
            " fixed dummy IPs; keeps training text natural), placeholder = <ENTITY>, hash ="
            " <ENTITY:keyed-blake2b>. All deterministic."
        ),
    )
    hash_key: Output[str] = Field(
        "ccpipe-pii-v1",
        description=(
            "Key for the keyed hash that makes dummy/hash replacements deterministic. Set a"
            " secret for policy=hash: low-entropy values (phones, SSNs) are enumerable."
        ),
    )
    phone_regions: Output[list[str]] = Field(
        default_factory=lambda: ["US", "GB", "DE", "FR", "IT", "ES", "NL", "PL", "BR", "IN"],
        description=(
            "python-phonenumbers regions for national-format numbers (+CC numbers match"
            " anyway). Each region is one matcher pass: cost grows linearly. Default: the"
            " largest languages of the corpus."
        ),
    )
    ip_public_only: Output[bool] = Field(
        True,
        description=(
            "Scrub only globally routable IPs; private/loopback/documentation ones are not"
            " personal (FineWeb scrubs public IPv4 only)."
        ),
    )
    prefilter: Execution[bool] = Field(
        True,
        description=(
            "Send only documents matching the combined candidate regex (one RE2 pass over the"
            " batch) to Presidio. Off = analyze every document whole (for benchmarks)."
        ),
    )
    window_chars: Output[int] = Field(
        96,
        ge=0,
        description=(
            "Context characters kept on each side of a candidate span; Presidio sees only these"
            " windows (snapped to whitespace) instead of whole documents. 0 = whole documents."
            " 96 > longest IBAN (42 chars spaced); context words for scores fit in it."
        ),
    )
    text_column: Output[str] = Field("text", description="Column holding the document text.")

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, v: list[str]) -> list[str]:
        unknown = [e for e in v if e not in SUPPORTED_ENTITIES]
        if unknown:
            raise ValueError(f"unknown {unknown}; supported: {', '.join(SUPPORTED_ENTITIES)}")
        return v

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, v: list[str]) -> list[str]:
        import phonenumbers

        unknown = [r for r in v if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(
                f"unknown {unknown}; python-phonenumbers region codes are upper-case ISO 3166 "
                "alpha-2, e.g. US, GB, DE"
            )
        return v


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(s: str) -> bool:
    s = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in s)) % 97 == 1
    except ValueError:
        return False


class PiiScrubber:
    """Stage: rewrite `text` with PII replaced; append `pii_counts` and `pii_total`."""

    def __init__(self, cfg: PiiConfig | None = None) -> None:
        self.cfg = cfg or PiiConfig()
        self.entities = list(dict.fromkeys(self.cfg.entities))
        from stages.pii_engine import build_analyzer  # Presidio + spaCy load here, once

        self.analyzer = build_analyzer(self.entities, self.cfg.languages, self.cfg.phone_regions)
        self._candidate_res = [(rx, ents & set(self.entities)) for rx, ents in _CANDIDATE_RES]
        self._candidate_res = [(rx, ents) for rx, ents in self._candidate_res if ents]
        self._key = hashlib.blake2b(self.cfg.hash_key.encode()).digest()[:32]
        # warm-up: Presidio's first call compiles/caches patterns (~0.5 s)
        self._analyze("warm-up a@b.de 8.8.8.8 +1 202 555 0143", self.cfg.languages[0])

    # ---------------------------------------------------------------- detection
    def _analyze(
        self, text: str, lang: str, ents: frozenset[str] | None = None
    ) -> list[tuple[int, int, str]]:
        wanted = [e for e in self.entities if ents is None or e in ents]
        if not wanted:
            return []
        # Empty NLP artifacts: a blank spaCy pipeline yields no entities and no lemmas, so
        # tokenizing every window would be pure cost (context enhancement is inert either way).
        from presidio_analyzer.nlp_engine import NlpArtifacts

        arts = NlpArtifacts([], [], [], [], None, lang)
        res = self.analyzer.analyze(
            text,
            language=lang,
            entities=wanted,
            score_threshold=self.cfg.score_threshold,
            nlp_artifacts=arts,
        )
        out = []
        for r in res:
            ent, s, e = r.entity_type, r.start, r.end
            val = text[s:e]
            if not self._keep(ent, val, text, s, e):
                continue
            if ent == "PHONE_NUMBER" and "US_SSN" in self.entities and _SSN_SHAPE.match(val):
                ent = "US_SSN"
            out.append((s, e, ent))
        return out

    def _keep(self, ent: str, val: str, text: str, s: int, e: int) -> bool:
        before = text[max(0, s - 24) : s]
        if ent == "IP_ADDRESS":
            if "." in val and ":" not in val:
                if _VERSION_BEFORE.search(before):
                    return False
                if re.match(r"\.\d", text[e : e + 2]) or re.search(r"\d\.$", before):
                    return False
            if self.cfg.ip_public_only:
                try:
                    return ipaddress.ip_interface(val).ip.is_global
                except ValueError:
                    return False
            return True
        if ent == "EMAIL_ADDRESS":
            return not _EXAMPLE_DOMAIN.search(val)
        if ent in ("PHONE_NUMBER", "CREDIT_CARD", "US_SSN"):
            if _ID_LABEL_BEFORE.search(before):
                return False
        if ent == "CREDIT_CARD" and _YEAR_RUN.match(val):
            return False  # "1945 1960 1980 2000" passes Luhn by chance
        if ent == "PHONE_NUMBER":
            # part of a decimal number (coordinates, measurements) or a dotted quad (IP)
            if re.search(r"\d[.,]$", before) or re.match(r"[.,]\d", text[e : e + 2]):
                return False
            if _is_phone_lookalike(val, text, s, e):
                return False
        return True

    def _windows(self, text: str) -> list[tuple[int, int, frozenset[str]]]:
        """Merged candidate windows with the entities their candidates call for."""
        w = self.cfg.window_chars
        n = len(text)
        if w <= 0:
            return [(0, n, frozenset(self.entities))]
        raw = []
        for rx, ents in self._candidate_res:
            for m in rx.finditer(text):
                s, e = max(0, m.start() - w), min(n, m.end() + w)
                # snap outward to whitespace so no token (entity) is cut; bounded
                lo = max(0, s - 128)
                while s > lo and not text[s - 1].isspace():
                    s -= 1
                hi = min(n, e + 128)
                while e < hi and not text[e].isspace():
                    e += 1
                raw.append((s, e, ents))
        raw.sort(key=lambda t: t[0])
        spans: list[tuple[int, int, frozenset[str]]] = []
        for s, e, ents in raw:
            if spans and s <= spans[-1][1]:
                ps, pe, pents = spans[-1]
                spans[-1] = (ps, max(pe, e), pents | ents)
            else:
                spans.append((s, e, ents))
        return spans

    def find(self, text: str, lang: str | None = None) -> list[tuple[int, int, str]]:
        """Merged, non-overlapping (start, end, entity) spans of PII in `text`."""
        lang = lang if lang in self.cfg.languages else self.cfg.languages[0]
        found: list[tuple[int, int, str]] = []
        for ws, we, ents in self._windows(text):
            # a line break inside a digit group ("4111 1111\n1111 1111") becomes a space of the
            # same length: recognizers see one value, offsets stay valid
            win = _DIGIT_BREAK.sub(lambda m: " " * len(m.group()), text[ws:we])
            found.extend((s + ws, e + ws, ent) for s, e, ent in self._analyze(win, lang, ents))
        if "EMAIL_ADDRESS" in self.cfg.entities and "%40" in text:
            found.extend((m.start(), m.end(), "EMAIL_ADDRESS") for m in _PCT_EMAIL.finditer(text))
        # union overlapping spans (partial overlaps must not leak), label = longest member
        found.sort(key=lambda t: (t[0], -(t[1] - t[0])))
        merged: list[list] = []
        for s, e, ent in found:
            if merged and s < merged[-1][1]:
                m = merged[-1]
                if e - s > m[3]:
                    m[2], m[3] = ent, e - s
                m[1] = max(m[1], e)
            else:
                merged.append([s, e, ent, e - s])
        return [(s, e, ent) for s, e, ent, _ in merged]

    # ---------------------------------------------------------------- replacement
    def _digest(self, ent: str, val: str) -> bytes:
        return hashlib.blake2b(f"{ent}\x00{val}".encode(), key=self._key, digest_size=32).digest()

    def replacement(self, ent: str, val: str) -> str:
        """Deterministic replacement of `val` (entity `ent`) under the configured policy."""
        pol = self.cfg.policy
        if pol == "placeholder":
            return f"<{ent}>"
        h = self._digest(ent, val)
        if pol == "hash":
            return f"<{ent}:{h[:8].hex()}>"
        digits = "".join(str(b % 10) for b in h) * 2
        if ent == "EMAIL_ADDRESS":
            return "email@example.com"
        if ent == "IP_ADDRESS":
            suffix = val[val.index("/") :] if "/" in val else ""
            if ":" in val:
                return f"2001:db8::{h[0]:02x}{h[1]:02x}:{h[2]:02x}{h[3]:02x}" + suffix
            net = ("192.0.2", "198.51.100", "203.0.113")[h[0] % 3]
            return f"{net}.{1 + h[1] % 254}" + suffix
        if ent == "URL_CREDENTIAL":
            return "REDACTED"
        if ent == "US_SSN":
            out, i = [], 0
            for j, c in enumerate(val):
                if c.isdigit():
                    out.append("0" if i < 3 else digits[j])
                    i += 1
                else:
                    out.append(c)
            return "".join(out)
        if ent == "IBAN_CODE":
            chars = [c for c in val]
            alnum_idx = [i for i, c in enumerate(chars) if c.isalnum()]
            for k, i in enumerate(alnum_idx):
                if k < 2:
                    continue  # keep country code
                chars[i] = digits[k] if chars[i].isdigit() else chr(65 + h[k % 32] % 26)
            out = "".join(chars)
            if _iban_ok(re.sub(r"[^A-Za-z0-9]", "", out).upper()):
                i = alnum_idx[2]  # flip a check digit: invalid on purpose
                out = out[:i] + str((int(out[i]) + 1) % 10) + out[i + 1 :]
            return out
        # PHONE_NUMBER, CREDIT_CARD: keep separators and length
        out, k = [], 0
        for j, c in enumerate(val):
            if c.isdigit():
                out.append(c if (ent == "CREDIT_CARD" and k == 0) else digits[j])
                k += 1
            else:
                out.append(c)
        res = "".join(out)
        if ent == "CREDIT_CARD":
            pure = re.sub(r"\D", "", res)
            if _luhn_ok(pure):  # make the dummy checksum-invalid: never a real card
                i = max(i for i, c in enumerate(res) if c.isdigit())
                res = res[:i] + str((int(res[i]) + 1) % 10) + res[i + 1 :]
        return res

    def scrub_text(
        self, text: str, lang: str | None = None, view: str | None = None
    ) -> tuple[str, Counter]:
        """Scrub one string; return the new string and per-entity counts. ``view``: a string
        of the same length that detection reads instead of ``text`` (offsets shared)."""
        spans = self.find(text if view is None else view, lang)
        if not spans:
            return text, Counter()
        parts, pos, counts = [], 0, Counter()
        for s, e, ent in spans:
            parts.append(text[pos:s])
            parts.append(self.replacement(ent, text[s:e]))
            counts[ent] += 1
            pos = e
        parts.append(text[pos:])
        return "".join(parts), counts

    # ---------------------------------------------------------------- batch API
    def candidate_mask(self, arr: pa.Array) -> pa.Array:
        """Boolean mask (nulls -> False) of values that may contain PII: one RE2 pass."""
        if not self.cfg.prefilter:
            return pc.is_valid(arr)
        return pc.fill_null(pc.match_substring_regex(arr, CANDIDATE_PATTERN), False)

    def __call__(self, table: pa.Table) -> pa.Table:
        """Scrub the text column of a batch; append `pii_counts` and `pii_total`."""
        col = self.cfg.text_column
        n = table.num_rows
        counts_json = ["{}"] * n
        totals = [0] * n
        if not self.cfg.enabled or n == 0:
            new_text = table.column(col)
        else:
            text = table.column(col).combine_chunks()
            mask = self.candidate_mask(text)
            idx_arr = pc.indices_nonzero(mask)
            idx = idx_arr.to_pylist()
            langs = (
                table.column("lang").take(idx_arr).to_pylist()
                if "lang" in table.column_names
                else [None] * len(idx)
            )
            texts = text.take(idx_arr).to_pylist()
            new_vals = []
            for i, t, lg in zip(idx, texts, langs, strict=True):
                new, c = self.scrub_text(t, lg)
                new_vals.append(new)
                if c:
                    counts_json[i] = json.dumps(dict(sorted(c.items())), separators=(",", ":"))
                    totals[i] = sum(c.values())
            if idx:
                new_text = pc.replace_with_mask(text, mask, pa.array(new_vals, type=text.type))
            else:
                new_text = text
        out = table.set_column(table.column_names.index(col), col, new_text)
        for name, arr in (
            ("pii_counts", pa.array(counts_json, pa.string())),
            ("pii_total", pa.array(totals, pa.int32())),
        ):
            if name in out.column_names:
                out = out.set_column(out.column_names.index(name), name, arr)
            else:
                out = out.append_column(name, arr)
        return out

    # ---------------------------------------------------------------- metadata
    def _scrub_component(self, s: str, safe: str) -> str:
        dec = unquote(s)
        # Detection sees '+' as the space it is in form encoding (`q=call+me+at+4155550111`:
        # otherwise the number is glued to the word before it); same length, so the spans
        # apply to `dec`, whose '+' signs stay as they were.
        new, c = self.scrub_text(dec, view=dec.replace("+", " "))
        return quote(new, safe=safe + "+") if c else s

    def _scrub_params(self, q: str) -> str:
        if not q:
            return q
        out = []
        for part in re.split(r"([&;])", q):
            if part in ("&", ";") or "=" not in part:
                out.append(self._scrub_component(part, safe="=/:@+,") if part not in "&;" else part)
                continue
            k, v = part.split("=", 1)
            if "URL_CREDENTIAL" in self.entities and unquote(k).lower() in SECRET_PARAM_NAMES:
                v = quote(self.replacement("URL_CREDENTIAL", v), safe="") if v else v
            else:
                v = self._scrub_component(v, safe="/:@+,")
            out.append(f"{k}={v}")
        return "".join(out)

    def _scrub_url(self, url: str) -> str:
        try:
            sp = urlsplit(url)
        except ValueError:
            return self.scrub_text(url)[0]
        netloc = _without_userinfo(sp.netloc)
        host = sp.hostname or ""
        if "IP_ADDRESS" in self.entities and _is_ip(host):
            # only an IP literal: a host name of digits (0615235.com) is a domain, not a phone
            new_host, c = self.scrub_text(host)
            if c:
                netloc = netloc.replace(host, new_host, 1)
        # Path: segment by segment (a '/' glued to an email defeats the detectors), each
        # percent-decoded first so `john%40mail.org` is seen as the email it is.
        path = "".join(
            part
            if part in ("/", ";") or not part
            else self._scrub_component(part, safe=":@+,=~!$&'()*")
            for part in re.split(r"([/;])", sp.path)
        )
        return urlunsplit(
            (sp.scheme, netloc, path, self._scrub_params(sp.query), self._scrub_params(sp.fragment))
        )

    def scrub_metadata(self, values: Iterable[str | None]) -> list[str | None]:
        """Scrub URLs/titles before they reach outputs, audit or lineage (see module doc)."""
        vals = list(values)
        arr = pa.array(vals, pa.string())
        mask = pc.fill_null(
            pc.or_(
                pc.match_substring_regex(arr, CANDIDATE_PATTERN),
                pc.match_substring_regex(arr, r"://.*[?@%#]"),
            ),
            False,
        ).to_pylist()
        if not self.cfg.enabled:  # credentials go all the same (README "PII")
            return [_redact_userinfo(v) if v and "@" in v else v for v in vals]
        out: list[str | None] = []
        for v, m in zip(vals, mask, strict=True):
            if v is None or not m:
                out.append(v)
            elif "://" in v:
                out.append(self._scrub_url(v))
            else:
                out.append(self.scrub_text(v)[0])
        return out

    def scrub_metadata_array(self, arr: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Arrow version of `scrub_metadata` (string column in, string column out)."""
        vals = arr.to_pylist()
        return pa.array(self.scrub_metadata(vals), type=arr.type)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _without_userinfo(netloc: str) -> str:
    """The userinfo never survives (URL policy, README "PII"): a user name is an account id
    the detectors cannot recognise, a password is a credential."""
    return f"REDACTED@{netloc.rsplit('@', 1)[1]}" if "@" in netloc else netloc


def _redact_userinfo(url: str) -> str:
    """`url` with only its userinfo replaced (what stays of the URL policy without PII)."""
    try:
        sp = urlsplit(url)
    except ValueError:
        return url
    if "@" not in sp.netloc:
        return url
    return urlunsplit(sp._replace(netloc=_without_userinfo(sp.netloc)))


def sum_pii_counts(col: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> dict[str, int]:
    """Sum a `pii_counts` column (JSON objects) into one entity -> count dict."""
    vals = col.to_pylist() if hasattr(col, "to_pylist") else list(col)
    total: Counter = Counter()
    for v in vals:
        if v and v != "{}":
            total.update(json.loads(v))
    return dict(sorted(total.items()))
