"""The mix YAML: which partitions of the token shards feed a training mix, and how much of each.

A mix names its tokenizer (so shards tokenized differently can never be blended by accident),
a target token count, the training sequence length, a seed, and sources. A source selects
partitions by the columns lineage records for every shard (`lang`, `quality_bucket`,
`crawl_id`, `run_id`) and carries a weight (its share of the target) and `max_epochs` (how
often its data may be repeated). Unknown keys are errors, so a typo never silently changes a
mix. The field reference in mixes/README.md follows the descriptions below.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: Largest values lineage can hold: `mixes.target_tokens` and `mixes.seed` are BIGINT (the
#: loader's index is int64 too), `mixes.seq_length` is INTEGER.
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


class MixError(ValueError):
    """A user error in a mix (bad YAML, selection, tokenizer, budget); the CLI exits with 2."""


def _as_list(v: Any) -> Any:
    """Let a selector key take one value or a list (`lang: en` == `lang: [en]`)."""
    if v is None or isinstance(v, list):
        return v
    if isinstance(v, (str, int)):
        return [str(v)]
    return v


def _real_number(v: Any) -> Any:
    """Refuse what pydantic's lax mode would turn into a number: `true` is not a weight of 1
    and `"0.5"` (quoted) is not 0.5; a typo must not silently change a mix."""
    if isinstance(v, bool):
        raise ValueError(f"must be a number, not a boolean ({str(v).lower()})")
    if isinstance(v, str):
        raise ValueError(
            f"must be a number, not a string ({v!r}): drop the quotes; YAML reads 1e9 and 1.0e9 "
            "as strings, write 1.0e+9"
        )
    return v


class Select(BaseModel):
    """Partition selector: a shard matches when it matches every key that is set."""

    model_config = ConfigDict(extra="forbid")

    lang: list[str] | None = Field(
        default=None,
        description="Language codes (the `lang` partition, e.g. `en`, `zh`); one value or a "
        "list. Unset = any language.",
    )
    quality_bucket: list[str] | None = Field(
        default=None,
        description="Quality buckets (`high`, `mid`, `low`, or `all` for languages without a "
        "quality model); one value or a list. Unset = any bucket.",
    )
    crawl_id: list[str] | None = Field(
        default=None,
        description="Crawl ids (e.g. `CC-MAIN-2024-10`); one value or a list. Unset = any crawl.",
    )
    run_id: list[str] | None = Field(
        default=None,
        description="Pipeline run ids (lineage `runs.run_id`), to pin a source to specific runs. "
        "Unset = any run.",
    )

    _coerce = field_validator("lang", "quality_bucket", "crawl_id", "run_id", mode="before")(
        _as_list
    )

    @field_validator("lang", "quality_bucket", "crawl_id", "run_id")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("an empty list selects nothing; leave the key out to match any")
        return v

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether a `shards` row (dict with lang, quality_bucket, crawl_id, run_id) matches."""
        for key in ("lang", "quality_bucket", "crawl_id", "run_id"):
            allowed = getattr(self, key)
            if allowed is not None and row.get(key) not in allowed:
                return False
        return True

    def describe(self) -> str:
        parts = [f"{k}={','.join(v)}" for k, v in self.model_dump().items() if v is not None]
        return " ".join(parts) or "(all shards)"


class Source(BaseModel):
    """One component of the mix."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Source name (letters, digits, `_.-`), unique within the mix; appears in "
        "the manifest, the summary and lineage `mix_components.source`.",
    )
    select: Select = Field(description="Which live token shards belong to this source.")
    weight: float = Field(
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Relative weight: the source's token budget is target_tokens * weight / "
        "(sum of weights). Weights need not sum to 1. A finite number (not a string, not "
        "true/false); their sum must be finite too.",
    )
    max_epochs: float = Field(
        default=4.0,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Largest allowed number of passes over the source's tokens (budget / "
        "available). The build refuses a mix that needs more. Default 4: Muennighoff et al. "
        "2023, 'Scaling Data-Constrained Language Models', find up to ~4 epochs of repeated "
        "data almost as good as unique data.",
    )

    _numbers = field_validator("weight", "max_epochs", mode="before")(_real_number)


class MixConfig(BaseModel):
    """A training data mix."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Mix name (letters, digits, `_.-`); lineage `mixes.name`.",
    )
    description: str | None = Field(default=None, description="Free text for humans.")
    tokenizer: str = Field(
        description="The tokenizer the shards must have been tokenized with: a path to its "
        "directory or its tokenizer.json (absolute, or relative to the YAML file's directory, "
        "then to the working directory) or the sha256 of its tokenizer.json (64 hex digits, as "
        "in lineage `shards.tokenizer_hash`).",
    )
    target_tokens: int = Field(
        gt=0,
        le=INT64_MAX,
        description="Total tokens the mix delivers (the training run's token budget); at "
        "most 2**63 - 1 (lineage BIGINT), and at most --max-samples * seq_length in practice.",
    )
    seq_length: int = Field(
        gt=0,
        le=INT32_MAX,
        description="Training sequence length. The loader yields seq_length + 1 tokens per "
        "sample (inputs = [:-1], targets = [1:], as Megatron's GPTDataset); the mix has "
        "target_tokens // seq_length samples.",
    )
    seed: int = Field(
        default=1234,
        ge=0,
        le=INT64_MAX,
        description="Seed of the loader's interleaving and shuffles.",
    )
    sources: list[Source] = Field(min_length=1, description="The mix components.")

    _numbers = field_validator("target_tokens", "seq_length", "seed", mode="before")(_real_number)

    @field_validator("sources")
    @classmethod
    def _finite_weight_sum(cls, v: list[Source]) -> list[Source]:
        """Budgets divide by the sum of weights; two weights of 1e308 sum to inf (NaN shares)."""
        if not math.isfinite(sum(s.weight for s in v)):
            raise ValueError(
                "the weights sum to more than the largest float; scale them down (only their "
                "ratios matter)"
            )
        return v

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, v: list[Source]) -> list[Source]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dup)}")
        return v

    def to_yaml(self) -> str:
        """YAML that `load_mix` reads back to an equal config (unset keys left out)."""
        return yaml.safe_dump(
            self.model_dump(exclude_none=True), sort_keys=False, allow_unicode=True
        )

    def canonical_json(self, tokenizer_hash: str) -> str:
        """Canonical form for hashing: the tokenizer by content hash, not by path."""
        d = self.model_dump()
        d["tokenizer"] = tokenizer_hash
        d.pop("description", None)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))


def _format_validation(err: ValidationError, origin: str) -> str:
    lines = [f"invalid mix {origin}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not in the mix schema; see mixes/README.md)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_mix(text: str, origin: str = "<string>") -> MixConfig:
    """Validate mix YAML text; every problem is a MixError naming the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise MixError(f"invalid YAML in {origin}: {e}") from e
    if not isinstance(data, dict):
        raise MixError(f"invalid mix {origin}: expected a mapping at the top level")
    try:
        return MixConfig.model_validate(data)
    except ValidationError as e:
        raise MixError(_format_validation(e, origin)) from e


def load_mix(path: str | Path) -> MixConfig:
    """Read and validate a mix YAML file."""
    p = Path(path)
    if p.is_dir():
        raise MixError(f"mix file {p} is a directory")
    if not p.is_file():
        raise MixError(
            f"mix file {p} is not a regular file" if p.exists() else f"mix file not found: {p}"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MixError(f"mix file {p} is not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise MixError(f"cannot read mix file {p}: {e.strerror or e}") from e
    return parse_mix(text, str(p))


def resolve_tokenizer_hash(tokenizer: str, base_dir: str | Path | None = None) -> str:
    """sha256 of the mix's tokenizer: given directly, or hashed from the file it names."""
    t = tokenizer.strip()
    if _HEX64.match(t.lower()):
        return t.lower()
    from stages.tokenize import tokenizer_hash

    p = Path(t).expanduser()
    candidates = (
        [p]
        if p.is_absolute()
        else [
            *([Path(base_dir) / p] if base_dir is not None else []),
            Path.cwd() / p,
        ]
    )
    for c in candidates:
        if c.is_file() or (c / "tokenizer.json").is_file():
            return tokenizer_hash(c)
    raise MixError(
        f"tokenizer {tokenizer!r} is neither a sha256 (64 hex digits) nor an existing file "
        f"(looked at: {', '.join(str(c) for c in candidates)})"
    )


def sha256_text(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()
