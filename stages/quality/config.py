"""The quality stage's configuration: the rule families, model, buckets, per-language overrides."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.config_effects import Output
from stages.quality.bucket import BucketConfig
from stages.quality.c4 import C4Config
from stages.quality.derived import DERIVED_PER_LANGUAGE
from stages.quality.fineweb import FineWebConfig
from stages.quality.gopher import GopherQualityConfig, GopherRepetitionConfig
from stages.quality_model import QualityModelConfig
from stages.segment import DEFAULT_SEGMENTERS
from stages.text_stats import DEFAULT_CHAR_UNIT_SCRIPTS
from stages.url_filter import UrlFilterConfig

LANG_SECTIONS = ("gopher_quality", "gopher_repetition", "c4", "fineweb", "bucket")


class QualityConfig(BaseModel):
    """Quality stage configuration (rule families, model, buckets, per-language overrides)."""

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(default=True, description="Run the quality stage at all.")
    url: UrlFilterConfig = Field(default_factory=UrlFilterConfig, description="URL rules.")
    gopher_repetition: GopherRepetitionConfig = Field(
        default_factory=GopherRepetitionConfig, description="Gopher repetition rules."
    )
    gopher_quality: GopherQualityConfig = Field(
        default_factory=GopherQualityConfig, description="Gopher quality rules."
    )
    c4: C4Config = Field(default_factory=C4Config, description="C4 line and document rules.")
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig, description="FineWeb rules.")
    model: QualityModelConfig = Field(
        default_factory=QualityModelConfig, description="Optional fastText quality classifier."
    )
    bucket: BucketConfig = Field(default_factory=BucketConfig, description="quality_bucket rules.")
    char_unit_scripts: Output[list[str]] = Field(
        default_factory=lambda: list(DEFAULT_CHAR_UNIT_SCRIPTS),
        description="Unicode scripts (RE2 names) written without spaces: each character counts "
        "as one word (ours; keeps word-count rules meaningful for zh/ja/th).",
    )
    segmenters: Output[dict[str, str]] = Field(
        default_factory=lambda: dict(DEFAULT_SEGMENTERS),
        description="Word segmenter per language for the word statistics (stages/segment.py): "
        "'icu' (ICU word boundaries, dictionary-based for th/lo/km/my/ja), 'rjieba' (zh), "
        "'fugashi' (MeCab+unidic-lite, ja), 'unicode' (script runs). Languages not listed "
        "split on whitespace (char_unit_scripts characters one word each).",
    )
    default_lang: Output[str | None] = Field(
        default="en",
        description="Language assumed when the batch has no `lang` column or it is null "
        "(Gopher's rules are English-centred).",
    )
    per_language_defaults: Output[dict[str, dict[str, Any]]] = Field(
        default_factory=lambda: {k: _copy(v) for k, v in DERIVED_PER_LANGUAGE.items()},
        description="Thresholds per language where the defaults are wrong for a script, "
        "derived from clean reference text (table and method: docs/languages.md; "
        "`python -m benchmarks.multilingual --derive`). `per_language` is merged over these.",
    )
    per_language: Output[dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Per language code, overrides deep-merged over the sections "
        f"{', '.join(LANG_SECTIONS)}, e.g. {{zh: {{gopher_quality: {{min_words: 100}}}}}}.",
    )

    @field_validator("per_language", "per_language_defaults")
    @classmethod
    def _check_sections(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for lang, over in v.items():
            bad = set(over) - set(LANG_SECTIONS)
            if bad:
                raise ValueError(
                    f"per_language.{lang}: cannot override {sorted(bad)}; allowed: {LANG_SECTIONS}"
                )
        return v

    @model_validator(mode="after")
    def _check_languages(self, info: ValidationInfo) -> QualityConfig:
        """Every language's merged config is valid, checked when the config is loaded: a
        typo in an override must not surface as a traceback in the middle of a run."""
        if (info.context or {}).get("resolving"):
            return self
        for lang in sorted({*self.per_language_defaults, *self.per_language}):
            try:
                self.for_language(lang)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err["loc"])
                msg = err.get("ctx", {}).get("error", err["msg"])
                msg = "unknown key" if err["type"] == "extra_forbidden" else msg
                raise ValueError(f"per_language.{lang}.{where}: {msg}") from None
        return self

    def for_language(self, lang: str | None) -> QualityConfig:
        """This config with ``per_language[lang]`` deep-merged over it (validated)."""
        base = self.per_language_defaults.get(lang or "")
        over = self.per_language.get(lang or "")
        if not over and not base:
            return self
        merged = _deep_merge(self.model_dump(), base or {})
        return QualityConfig.model_validate(
            _deep_merge(merged, over or {}), context={"resolving": True}
        )


def _copy(v: Any) -> Any:
    return {k: _copy(x) for k, x in v.items()} if isinstance(v, dict) else v


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
