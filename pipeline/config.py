"""The one typed run configuration: YAML file + `--set key=value` overrides.

Each stage owns its config model (in `stages/`); this module composes them, validates the whole
thing with pydantic (unknown keys and wrong types are errors that name the field), and hashes
the canonical form. `config_hash` covers only the fields marked ``Output[...]`` (they change
output bytes); ``Execution[...]`` fields (inputs, locations, chunk/batch sizes, partitions,
workers, progress) are excluded so that the same data processed on a laptop or on a cluster,
fast or slow, gets the same shard names and bytes (see core/config_effects.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import reprlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.config_effects import Execution, Output, output_dump
from stages.extract import ExtractConfig
from stages.langid import LangIdConfig
from stages.minhash import DedupConfig
from stages.pii import PiiConfig
from stages.quality import QualityConfig
from stages.registry import DEFAULT_STAGES, REGISTRY, stage_class
from stages.tokenize import TokenizeConfig
from stages.warc_reader import DOC_SCHEMA, ReadConfig


class ConfigError(ValueError):
    """A user error in the configuration; the CLI prints it and exits with status 2."""


# Hostile-config limits (issue 19): a YAML alias bomb expands exponentially when anything walks
# the loaded structure (validation errors repr it: 4.6 GB measured); a config never needs more
# than a handful of aliases or more than a few MB of text.
MAX_YAML_NODES = 100_000
MAX_YAML_BYTES = 4 * 1024 * 1024
# Integers beyond int64 overflow Arrow/Parquet writers much later, mid-run; non-finite floats
# compare false with every bound. Both are refused for every field, present and future.
_INT_LIMIT = 2**63 - 1


def _expanded_nodes(root: yaml.Node) -> int:
    """Nodes the document would have with every alias expanded, computed without expanding."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:
            raise ConfigError("config error: recursive YAML alias")
        active.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        memo[key] = n
        if n > MAX_YAML_NODES:
            raise OverflowError
        return n

    return size(root)


def safe_yaml_load(text: str, what: str) -> Any:
    """`yaml.safe_load` that refuses alias bombs and oversized documents with a ConfigError."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            f"config error: {what}: too large ({len(text):,} characters > {MAX_YAML_BYTES:,})"
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            try:
                _expanded_nodes(root)
            except (OverflowError, RecursionError):
                raise ConfigError(
                    f"config error: {what}: YAML aliases expand to more than "
                    f"{MAX_YAML_NODES:,} values (alias expansion is limited; write values out)"
                ) from None
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config error: {what} is not valid YAML: {exc}") from exc


def _check_numbers(node: Any, loc: str = "") -> None:
    """Refuse ints outside int64 and NaN/inf anywhere in the raw config data."""
    if isinstance(node, bool):
        return
    if isinstance(node, int) and abs(node) > _INT_LIMIT:
        raise ConfigError(
            f"config error: {loc or '<root>'}: number out of range "
            f"(|value| > 2**63-1, got {str(node)[:40]})"
        )
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"config error: {loc or '<root>'}: number must be finite (got {node})")
    if (
        isinstance(node, str)
        and not loc.endswith("]")
        and node.strip().lower()
        in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity", "+infinity")
    ):
        raise ConfigError(f"config error: {loc or '<root>'}: number must be finite (got {node!r})")
    if isinstance(node, dict):
        for k, v in node.items():
            _check_numbers(v, f"{loc}.{k}" if loc else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_numbers(v, f"{loc}[{i}]")


class InputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: Execution[list[str]] = Field(
        default_factory=list,
        description="Input WARC files, globs, directories, listing files (warc.paths[.gz]) or "
        "s3:// / gs:// URIs and prefixes. Empty = the sample crawl shipped with the package.",
    )
    listing_prefix: Execution[str | None] = Field(
        default=None,
        description="Prefix joined to relative entries of a listing file (e.g. "
        "'s3://commoncrawl/' for CommonCrawl's warc.paths.gz). Default: the listing's own "
        "directory.",
    )
    crawl_id: Output[str | None] = Field(
        default=None,
        description="Crawl id for files without a warcinfo isPartOf; default is derived from "
        "the path (a CC-MAIN-YYYY-WW substring, else the file name).",
    )


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Execution[str | None] = Field(
        default=None, description="Output root (local path or s3:// URI). Set by --output."
    )
    lineage_path: Execution[str | None] = Field(
        default=None,
        description="DuckDB lineage database. Default <output>/lineage.duckdb for local outputs, "
        "./lineage.duckdb for object-store outputs.",
    )
    write_rejected: Output[bool] = Field(
        default=True,
        description="Write dropped documents (reason, measured value, PII-scrubbed text prefix) to "
        "<output>/_rejected/lang=<xx>/bucket=<yy>/ for auditing.",
    )
    rejected_text_chars: Output[int] = Field(
        default=2000,
        ge=0,
        le=1_000_000,
        description="Characters of text kept per rejected document (at most 1,000,000).",
    )
    row_group_docs: Output[int] = Field(
        default=2000,
        ge=1,
        le=10_000_000,
        description="Rows per Parquet row group in text shards (at most 10,000,000).",
    )
    shard_max_bytes: Output[int] = Field(
        default=1_000_000_000,
        ge=1,
        description="Rolling shard cap: a text shard is closed (and its token files with it, at "
        "the same rows) once its Parquet file reaches this many bytes; checked after each row "
        "group, so a shard ends at most one row group past the cap.",
    )
    unit_max_files: Output[int] = Field(
        default=32,
        ge=1,
        description="Work unit size in input files: phase 3 finishes, commits and resumes input "
        "files in fixed units (sorted by URI); each unit writes its own shards.",
    )
    unit_max_bytes: Output[int] = Field(
        default=32_000_000_000,
        ge=1,
        description="Work unit size in compressed input bytes (a larger single file forms a "
        "unit of its own).",
    )
    keep_work: Execution[bool] = Field(
        default=False,
        description="Keep the run's staging directory (<output>/_work/<run_key>) after success. "
        "Staging holds (PII-scrubbed) document text and is large, so it is deleted by default.",
    )


class ExecutionConfig(BaseModel):
    """How the run executes; every field is execution-only (not part of config_hash)."""

    model_config = ConfigDict(extra="forbid")

    engine: Execution[Literal["auto", "ray", "local"]] = Field(
        default="auto",
        description="`ray`: the phases run on Ray (embedded, or the cluster `ray_address` / "
        "RAY_ADDRESS names). `local`: in this process, without Ray (what a small run spends "
        "mostly on starting Ray and its workers). `auto`: `local` when no cluster is named or "
        "connected and either `num_workers` is 1 or it is unset and the inputs total at most "
        "`local_max_bytes`; else `ray`. Same output bytes either way.",
    )
    local_max_bytes: Execution[int] = Field(
        default=8 * 2**20,
        ge=0,
        description="The largest input (sum of the WARC files' sizes) `engine: auto` runs "
        "in-process: about where a 2-core machine's Ray start-up (~12 s) is repaid by the "
        "second worker.",
    )
    num_workers: Execution[int | None] = Field(
        default=None, ge=1, description="Actor-pool size per phase; default = cluster CPUs."
    )
    lineage_publish_interval_s: Execution[float] = Field(
        default=10.0,
        ge=0,
        description="Publish the lineage snapshot analysts read at most this often during a "
        "run (always at its start and end); 0 publishes after every unit commit, whose cost "
        "then grows with the store.",
    )
    ray_address: Execution[str | None] = Field(
        default=None,
        description="Ray cluster address; default: RAY_ADDRESS or an embedded local Ray.",
    )
    progress: Execution[bool] = Field(
        default=True, description="Print progress lines while running."
    )
    dedup_local_max_docs: Execution[int] = Field(
        default=200_000,
        ge=0,
        description="Phase 2 runs as ONE Ray task (scipy components, no shuffle overhead) when "
        "this run plus the released index hold at most this many documents; above it, as Ray "
        "Data shuffles (star rounds). Same decisions either way. The driver holds documents "
        "only up to 20,000 (it then clusters them itself: no worker process to start) or "
        "with `engine: local`. 0 = always shuffle.",
    )
    output_shared: Execution[bool] = Field(
        default=False,
        description="Declare a local --output path to be shared storage mounted at the same "
        "place on every node (NFS, Lustre). Without it a multi-node Ray cluster refuses a "
        "local output path before doing any work.",
    )


class StageEntry(BaseModel):
    """One stage of the phase-1 chain: a registered name and (for plug-in stages) its params."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A name registered in stages/registry.py.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The stage's settings, validated by its Params model (built-in stages take "
        "theirs from their config section instead, e.g. `quality:`).",
    )


# Columns phase 2 and phase 3 need from the phase-1 chain.
_CHAIN_MUST_ADD = ("text", "text_hash", "minhash_bands")


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stages: Output[list[StageEntry]] = Field(
        default_factory=lambda: [StageEntry(name=n) for n in DEFAULT_STAGES],
        description="Phase-1 chain, in order: registered stage names (stages/registry.py), or "
        "{name, params} for stages configured inline. Default: extract, lang, quality, "
        "signatures. See docs/adding-a-filter.md.",
    )
    input: InputConfig = Field(default_factory=InputConfig)
    read: ReadConfig = Field(default_factory=ReadConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_names(cls, v: Any) -> Any:
        """A bare name is shorthand for {name: NAME}."""
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("stages")
    @classmethod
    def _check_stages(cls, v: list[StageEntry]) -> list[StageEntry]:
        """Registered names, valid params, and every column a stage reads made before it."""
        available = set(DOC_SCHEMA.names)
        for i, entry in enumerate(v):
            where = f"stages.{i}"
            if entry.name not in REGISTRY:
                raise ValueError(
                    f"{where}.name: unknown stage {entry.name!r}; known: {sorted(REGISTRY)}"
                )
            klass = stage_class(entry.name)
            if klass.section is not None and entry.params:
                raise ValueError(
                    f"{where}.params: stage {entry.name!r} is configured in the "
                    f"`{klass.section}:` section, not inline"
                )
            if klass.section is None:
                try:
                    params = klass.Params.model_validate(entry.params)
                except ValidationError as exc:
                    e = exc.errors()[0]
                    loc = ".".join(str(p) for p in e["loc"])
                    raise ValueError(f"{where}.params.{loc}: {e['msg']}") from None
                entry.params = params.model_dump(mode="json")
            missing = [c for c in klass.reads if c not in available]
            if missing:
                raise ValueError(
                    f"{where} ({entry.name}): reads {missing}, which no earlier stage adds"
                )
            available.update(klass.adds)
            available.difference_update(getattr(klass, "consumes", ()))
        lacking = [c for c in _CHAIN_MUST_ADD if c not in available]
        if lacking:
            raise ValueError(f"the chain must produce {lacking} (end it with 'signatures')")
        return v

    def hashed_part(self) -> dict[str, Any]:
        """The output-affecting fields (``Output[...]``), as recorded in lineage ``config_json``."""
        return output_dump(self)

    def canonical_json(self) -> str:
        return json.dumps(self.hashed_part(), sort_keys=True, separators=(",", ":"))

    @property
    def config_hash(self) -> str:
        """sha256 of the output-affecting fields, in the v1-compatible form (see _v1_form)."""
        form = json.dumps(_v1_form(self.hashed_part()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(form.encode()).hexdigest()[:16]


# Hash compatibility with outputs made before fields were split by effect ("v1"). v1 hashed a
# few execution-only fields and left a few output-affecting fields out. To keep every existing
# output's hash (its bytes did not change): the v1-hashed execution fields enter the hash as
# these frozen constants (whatever the run uses), and the v1-unhashed output fields enter it
# only when they differ from their v1 default. Never edit these two tables; new fields need
# no entry (an execution field is simply not hashed, an output field simply is).
_V1_EXECUTION_CONSTANTS: tuple[tuple[str, Any], ...] = (
    ("read.library", "fastwarc"),
    ("read.chunk_records", 1000),
    ("read.chunk_bytes", 67108864),
    ("extract.timeout_s", 10.0),
    ("dedup.chunk_shingles", 4096),
    ("dedup.num_partitions", 0),
    ("pii.prefilter", True),
    ("tokenize.batch_size", 1024),
)
_V1_UNHASHED_OUTPUT_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("input.crawl_id", None),
    ("output.write_rejected", True),
    (
        "stages",
        [
            {"name": "extract", "params": {}},
            {"name": "lang", "params": {}},
            {"name": "quality", "params": {}},
            {"name": "signatures", "params": {}},
        ],
    ),
)
_V1_SECTIONS_OMITTED = ("input", "execution")
# Output fields added later whose default reproduces the bytes made before they existed: they
# enter the hash only when set to something else, so upgrading the code does not rename every
# shard or start an empty cross-run dedup index. Add a field here ONLY if its default leaves
# the output bytes of every earlier version unchanged (test_config_effects checks the hash).
_ADDED_OUTPUT_DEFAULTS: tuple[tuple[str, Any], ...] = (("extract.trafilatura_fast", False),)


def _v1_form(hashed: dict[str, Any]) -> dict[str, Any]:
    """The hashed dict in v1's shape (see the tables above)."""
    form = json.loads(json.dumps(hashed))  # deep copy
    for dotted, value in _V1_EXECUTION_CONSTANTS:
        section, key = dotted.split(".")
        form.setdefault(section, {})[key] = value
    for dotted, v1_default in (*_V1_UNHASHED_OUTPUT_DEFAULTS, *_ADDED_OUTPUT_DEFAULTS):
        *parents, key = dotted.split(".")
        node = form
        for part in parents:
            node = node.get(part, {})
        if node.get(key, v1_default) == v1_default:
            node.pop(key, None)
    for section in _V1_SECTIONS_OMITTED:
        if not form.get(section):
            form.pop(section, None)
    return form


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    """`key.sub=value` -> (key.sub, YAML-parsed value): `x=3` is an int, `x=[a,b]` a list."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = safe_yaml_load(raw, f"--set {key}") if raw.strip() else ""
    except ConfigError as exc:
        if "alias" in str(exc) or "too large" in str(exc):  # hostile, not just "not YAML"
            raise
        value = raw
    return key, value


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = str(e.get("ctx", {}).get("error", e["msg"]))  # without pydantic's "Value error, "
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = _SHORT_REPR.repr(e.get("input"))[:200]  # bounded, whatever the input holds
        lines.append(f"config error: {loc}: {msg} (got {got})")
        if len(lines) >= 20:
            lines.append(f"config error: ... and {len(err.errors()) - 20} more")
            break
    return "\n".join(lines)


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 2
_SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxdict = _SHORT_REPR.maxset = 4
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 80


PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def add_config_source_options(p: argparse.ArgumentParser) -> None:
    """`--config`, `--profile` and `--set`: the three sources `load_config` merges, declared
    once for every command that builds a run config."""
    p.add_argument("--config", "-c", help="YAML config file")
    p.add_argument(
        "--profile",
        choices=list_profiles(),
        help="preset applied before --config (default: quality)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. langid.threshold=0.5 (repeatable, applied last)",
    )


def load_config(
    path: str | None = None, overrides: list[str] | None = None, profile: str | None = None
) -> PipelineConfig:
    """Profile preset, then YAML file, then `--set` overrides; validate.

    Raises ConfigError naming the field for unknown keys, wrong types, or a missing file.
    """
    data: dict[str, Any] = {}
    if profile:
        pfile = PROFILES_DIR / f"{profile}.yaml"
        if not pfile.is_file():
            raise ConfigError(
                f"config error: unknown profile {profile!r}; choose from {list_profiles()}"
            )
        data = safe_yaml_load(pfile.read_text(), f"profile {profile}") or {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config error: config file not found: {path}")
        loaded = safe_yaml_load(p.read_text(), path) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config error: {path} must be a mapping at the top level")
        data = _deep_merge(data, loaded)
    for item in overrides or []:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    _check_numbers(data)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc
