"""Planning a mix: per-source token budgets, epochs, sample counts and the Megatron blend.

Split out of mixes/build.py: pure computation over the shard inventory (no lineage, no files
written), so a plan can be checked (`mixes plan`) before anything is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixes.config import MixConfig, MixError, sha256_text
from mixes.inventory import prefix_of

MANIFEST_FORMAT = "ccpipe-mix-manifest/1"

#: Megatron-LM's BlendedDataset asserts len(datasets) < 32767 (an int16 dataset index).
MEGATRON_MAX_PREFIXES = 32766

#: Most samples a mix may have (`mixes build --max-samples`). MixLoader keeps a 12-byte index
#: entry per sample (int32 source + int64 rank, like Megatron's blended-dataset index) in every
#: training process, built in memory when the loader starts: 2**31 samples are 24 GiB per
#: process (about 8.8T tokens at seq_length 4096, 17.6T at 8192). A target past that is a
#: typo or a units mistake, and must fail when the mix is built, not when training starts.
DEFAULT_MAX_SAMPLES = 2**31
#: Bytes of MixLoader index per sample (see DEFAULT_MAX_SAMPLES).
LOADER_INDEX_BYTES_PER_SAMPLE = 12


def largest_remainder(total: int, weights: list[float]) -> list[int]:
    """Integers proportional to `weights` that sum exactly to `total` (Hamilton's method).

    Weights near the largest float have a finite sum, but `total * w` overflows; they are
    then divided first (not always: that rounds differently and could move a sample).
    """
    wsum = float(sum(weights))
    raw = [total * w / wsum for w in weights]
    if not all(math.isfinite(r) for r in raw):
        raw = [total * (w / wsum) for w in weights]
    out = [int(r) for r in raw]
    short = total - sum(out)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[:short]:
        out[i] += 1
    return out


@dataclass
class SourcePlan:
    """One source after resolution against the shard inventory."""

    name: str
    selector: str
    select: dict[str, Any]
    weight: float
    max_epochs: float
    shards: list[dict[str, Any]]
    share: float = 0.0
    available_tokens: int = 0
    budget_tokens: float = 0.0
    epochs: float = 0.0
    n_samples: int = 0
    available_samples: int = 0

    @property
    def partitions(self) -> list[str]:
        return sorted({f"{s['lang']}/{s['quality_bucket']}" for s in self.shards})


@dataclass
class MixPlan:
    """The resolved mix; `problems` lists every reason the build would refuse it."""

    cfg: MixConfig
    tokenizer_hash: str
    sources: list[SourcePlan]
    problems: list[str] = field(default_factory=list)
    #: Megatron's BlendedDataset limit; more shards than this are merged per source.
    max_prefixes: int = MEGATRON_MAX_PREFIXES
    #: most samples the mix may have (the loader's index size); see DEFAULT_MAX_SAMPLES
    max_samples: int = DEFAULT_MAX_SAMPLES
    #: where merged .bin/.idx files go (build_mix sets `<out>/merged`)
    merged_dir: Path = Path("merged")

    @property
    def n_samples(self) -> int:
        return self.cfg.target_tokens // self.cfg.seq_length

    @property
    def mix_hash(self) -> str:
        """Identity of the blend: canonical config + the exact shard versions it uses."""
        lines = [self.cfg.canonical_json(self.tokenizer_hash)]
        for sp in self.sources:
            for s in sp.shards:
                lines.append(f"{sp.name}\t{s['shard_id']}\t{s['version']}\t{s['sha256']}")
        return sha256_text("\n".join(lines))

    @property
    def mix_id(self) -> str:
        return f"{self.cfg.name}-{self.mix_hash[:12]}"

    def shard_entries(self) -> list[dict[str, Any]]:
        """Every token shard with its source, prefix, tokens, epochs and blend weight."""
        out = []
        for sp in self.sources:
            for s in sp.shards:
                contrib = sp.epochs * int(s["n_tokens"])
                out.append(
                    {
                        "source": sp.name,
                        "shard_id": s["shard_id"],
                        "version": s["version"],
                        "sha256": s["sha256"],
                        "path": s["path"],
                        "prefix": prefix_of(s.get("file") or s["path"]),
                        "lang": s["lang"],
                        "quality_bucket": s["quality_bucket"],
                        "crawl_id": s["crawl_id"],
                        "run_id": s["run_id"],
                        "mirrors_shard": s["mirrors_shard"],
                        "n_docs": s["n_docs"],
                        "n_tokens": int(s["n_tokens"]),
                        "token_dtype": s["token_dtype"],
                        "epochs": sp.epochs,
                        "tokens_contributed": contrib,
                        "sampling_weight": contrib / self.cfg.target_tokens,
                    }
                )
        return out

    def blend(self) -> list[dict[str, Any]]:
        """The Megatron datasets: one per shard, or per merged group of a source's shards when
        the mix has more than `max_prefixes` shards (see mixes/merge.py)."""
        from mixes.merge import group_shards, merged_name, prefix_budgets

        entries = self.shard_entries()
        budgets = prefix_budgets([len(sp.shards) for sp in self.sources], self.max_prefixes)
        out = []
        for sp, budget in zip(self.sources, budgets, strict=True):
            ents = [e for e in entries if e["source"] == sp.name]
            for g in group_shards([e["n_tokens"] for e in ents], budget) if ents else []:
                members = [ents[i] for i in g]
                merged = len(members) > 1
                out.append(
                    {
                        "source": sp.name,
                        "prefix": str(self.merged_dir / merged_name(sp.name, members))
                        if merged
                        else members[0]["prefix"],
                        "merged": merged,
                        "shards": [m["shard_id"] for m in members],
                        "member_prefixes": [m["prefix"] for m in members],
                        "n_tokens": sum(m["n_tokens"] for m in members),
                        "tokens_contributed": sum(m["tokens_contributed"] for m in members),
                        "sampling_weight": sum(m["sampling_weight"] for m in members),
                    }
                )
        return out

    def megatron_blend(self, blend: list[dict[str, Any]] | None = None) -> str:
        """`--data-path` value: "w1 prefix1 w2 prefix2 ...", w proportional to contributed tokens."""
        return " ".join(
            f"{b['sampling_weight']:.10g} {b['prefix']}" for b in (blend or self.blend())
        )

    def manifest(
        self, lineage_path: str | None = None, blend: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        c = self.cfg
        blend = blend if blend is not None else self.blend()
        prefix_of_shard = {sid: b["prefix"] for b in blend for sid in b["shards"]}
        return {
            "format": MANIFEST_FORMAT,
            "name": c.name,
            "description": c.description,
            "mix_id": self.mix_id,
            "mix_hash": self.mix_hash,
            "tokenizer_hash": self.tokenizer_hash,
            "target_tokens": c.target_tokens,
            "seq_length": c.seq_length,
            "seed": c.seed,
            "n_samples": self.n_samples,
            "lineage": lineage_path,
            "config": c.model_dump(),
            "sources": [
                {
                    "name": sp.name,
                    "select": sp.select,
                    "partitions": sp.partitions,
                    "weight": sp.weight,
                    "share": sp.share,
                    "max_epochs": sp.max_epochs,
                    "n_shards": len(sp.shards),
                    "available_tokens": sp.available_tokens,
                    "budget_tokens": sp.budget_tokens,
                    "epochs": sp.epochs,
                    "n_samples": sp.n_samples,
                    "available_samples": sp.available_samples,
                }
                for sp in self.sources
            ],
            "shards": [
                dict(e, blend_prefix=prefix_of_shard.get(e["shard_id"]))
                for e in self.shard_entries()
            ],
            "blend": {
                "max_prefixes": self.max_prefixes,
                "n_prefixes": len(blend),
                "n_merged": sum(1 for b in blend if b["merged"]),
                "prefixes": [{k: v for k, v in b.items() if k != "member_prefixes"} for b in blend],
            },
        }

    def summary_table(self) -> str:
        """Human summary: one row per source plus a total."""
        c = self.cfg
        head = (
            f"mix {c.name}  id {self.mix_id}  tokenizer {self.tokenizer_hash[:12]}  "
            f"target {c.target_tokens:,} tokens  seq_length {c.seq_length}  "
            f"samples {self.n_samples:,}  seed {c.seed}"
        )
        cols = ("source", "partitions", "shards", "available", "budget", "epochs", "max", "share")
        rows = [
            (
                sp.name,
                ", ".join(sp.partitions) or "-",
                str(len(sp.shards)),
                f"{sp.available_tokens:,}",
                f"{round(sp.budget_tokens):,}",
                f"{sp.epochs:.2f}",
                f"{sp.max_epochs:g}",
                f"{100 * sp.share:.1f}%",
            )
            for sp in self.sources
        ]
        rows.append(
            (
                "total",
                "",
                str(sum(len(sp.shards) for sp in self.sources)),
                f"{sum(sp.available_tokens for sp in self.sources):,}",
                f"{c.target_tokens:,}",
                "",
                "",
                "100.0%",
            )
        )
        widths = [max(len(r[i]) for r in (cols, *rows)) for i in range(len(cols))]
        left = {0, 1}

        def fmt(r: tuple[str, ...]) -> str:
            return "  ".join(
                r[i].ljust(widths[i]) if i in left else r[i].rjust(widths[i])
                for i in range(len(cols))
            ).rstrip()

        lines = [head, fmt(cols), *(fmt(r) for r in rows)]
        n_shards = sum(len(sp.shards) for sp in self.sources)
        if n_shards > self.max_prefixes and not self.problems:
            blend = self.blend()
            merged = [b for b in blend if b["merged"]]
            lines.append(
                f"blend: {len(blend):,} Megatron prefixes for {n_shards:,} shards (limit "
                f"{self.max_prefixes:,}): {len(merged):,} merged files hold "
                f"{sum(len(b['shards']) for b in merged):,} shards"
            )
        return "\n".join(lines)


def compute_plan(
    cfg: MixConfig,
    shards: list[dict[str, Any]],
    tokenizer_hash: str,
    max_prefixes: int = MEGATRON_MAX_PREFIXES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
) -> MixPlan:
    """Resolve `cfg` against the shard inventory; collects problems instead of raising."""
    wsum = sum(s.weight for s in cfg.sources)
    plan = MixPlan(
        cfg=cfg,
        tokenizer_hash=tokenizer_hash,
        sources=[],
        max_prefixes=max_prefixes,
        max_samples=max_samples,
    )
    if len(cfg.sources) > max_prefixes:
        plan.problems.append(
            f"{len(cfg.sources)} sources need at least as many Megatron prefixes; the limit "
            f"is {max_prefixes}"
        )
    owner: dict[str, str] = {}
    for src in cfg.sources:
        sel = [s for s in shards if src.select.matches(s)]
        sp = SourcePlan(
            name=src.name,
            selector=src.select.describe(),
            select=src.select.model_dump(exclude_none=True),
            weight=src.weight,
            max_epochs=src.max_epochs,
            shards=sel,
            share=src.weight / wsum,
        )
        plan.sources.append(sp)
        if not sel:
            parts = sorted({f"{s['lang']}/{s['quality_bucket']}" for s in shards})
            plan.problems.append(
                f"source {src.name!r} ({sp.selector}) selects no live token shard; available "
                f"partitions (lang/quality_bucket): {', '.join(parts) or '(none)'}"
            )
            continue
        other = sorted({str(s["tokenizer_hash"])[:12] for s in sel} - {tokenizer_hash[:12]})
        if other:
            n_bad = sum(1 for s in sel if s["tokenizer_hash"] != tokenizer_hash)
            plan.problems.append(
                f"tokenizer mismatch: source {src.name!r} selects {n_bad} of {len(sel)} shards "
                f"tokenized with {', '.join(other)}..., but the mix names {tokenizer_hash[:12]}...; "
                f"fix `tokenizer` or narrow the selection (e.g. run_id)"
            )
        for s in sel:
            prev = owner.setdefault(s["shard_id"], src.name)
            if prev != src.name:
                plan.problems.append(
                    f"shard {s['shard_id']} is selected by sources {prev!r} and {src.name!r}; "
                    f"make the selectors disjoint"
                )
        missing = [s["shard_id"] for s in sel if s["n_tokens"] is None]
        if missing:
            plan.problems.append(
                f"source {src.name!r}: lineage has no n_tokens for {', '.join(missing[:3])}"
            )
            continue
        sp.available_tokens = sum(int(s["n_tokens"]) for s in sel)
        sp.budget_tokens = cfg.target_tokens * sp.share
        sp.available_samples = max(sp.available_tokens - 1, 0) // cfg.seq_length
        if sp.available_tokens == 0:
            plan.problems.append(f"source {src.name!r}: its shards hold 0 tokens")
            continue
        sp.epochs = sp.budget_tokens / sp.available_tokens
        if sp.epochs > sp.max_epochs:
            plan.problems.append(
                f"source {src.name!r} needs {sp.epochs:.2f} epochs (budget "
                f"{round(sp.budget_tokens):,} tokens / {sp.available_tokens:,} available) but "
                f"max_epochs is {sp.max_epochs:g}: lower its weight or target_tokens, raise "
                f"max_epochs, or select more data"
            )
        if sp.available_samples == 0:
            plan.problems.append(
                f"source {src.name!r} has {sp.available_tokens} tokens, fewer than one sample "
                f"of seq_length + 1 = {cfg.seq_length + 1}"
            )
    if plan.n_samples == 0:
        plan.problems.append(
            f"target_tokens {cfg.target_tokens} is less than one sequence of {cfg.seq_length}"
        )
    if plan.n_samples > max_samples:
        gib = plan.n_samples * LOADER_INDEX_BYTES_PER_SAMPLE / 2**30
        plan.problems.append(
            f"target_tokens {cfg.target_tokens:,} at seq_length {cfg.seq_length} is "
            f"{plan.n_samples:,} samples; the loader's index would take {gib:,.0f} GiB in every "
            f"training process (limit --max-samples {max_samples:,}): lower target_tokens"
        )
        return plan  # no apportionment of a sample count nothing can index
    counts = largest_remainder(plan.n_samples, [sp.weight for sp in plan.sources])
    for sp, n in zip(plan.sources, counts, strict=True):
        sp.n_samples = n
        if n == 0 and plan.n_samples > 0:
            plan.problems.append(
                f"source {sp.name!r} gets 0 of {plan.n_samples} samples: its weight is too small "
                f"for target_tokens"
            )
    return plan


def check(plan: MixPlan) -> None:
    """Raise MixError listing every problem (the CLI turns it into exit status 2)."""
    if plan.problems:
        raise MixError(
            f"mix {plan.cfg.name!r} refused:\n" + "\n".join(f"  - {p}" for p in plan.problems)
        )
