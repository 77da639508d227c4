"""Build a mix: lineage shard inventory + mix YAML -> manifest, Megatron blend, summary, lineage.

Available tokens come from the `shards` table (kind='tokens', status='live'); no shard is read.
For each source: budget = target_tokens * weight / sum(weights); epochs = budget / available
(> 1 upsamples, < 1 downsamples). Every selected shard contributes epochs * its tokens, so its
Megatron blend weight is that contribution / target_tokens. Everything the training side needs
is in the manifest; the mix, its hash and its shards are recorded in lineage (`mixes`,
`mix_components`) so "which shards fed mix X" is one SQL query. When the mix has more shards
than Megatron can blend (32,766 prefixes), a source's shards are grouped and each group of two
or more is concatenated into one .bin/.idx (mixes/merge.py); weights stay per source.

This module runs a build; the parts live apart: `inventory` (shard rows from lineage),
`plan` (budgets, epochs, blend), `merge` (concatenated shards), `record` (lineage rows).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core import storage
from mixes.config import MixConfig, MixError, load_mix, resolve_tokenizer_hash
from mixes.inventory import open_lineage, prefix_of, read_token_shards
from mixes.plan import (
    DEFAULT_MAX_SAMPLES,
    MEGATRON_MAX_PREFIXES,
    MixPlan,
    check,
    compute_plan,
)
from mixes.record import record_mix

#: The files a build writes in `--out` (merged/ only when the blend merges shards).
OUT_FILES = ("manifest.json", "megatron_blend.txt", "summary.txt")


class LineageWriteError(RuntimeError):
    """Recording the mix in lineage failed after its files were written (e.g. the writer copy
    is locked by a running pipeline); the CLI suggests --no-record and exits 1."""


@dataclass
class BuildResult:
    plan: MixPlan
    out_dir: Path
    manifest_path: Path
    blend_path: Path
    summary_path: Path
    recorded: bool


def plan_from_lineage(
    cfg: MixConfig,
    lineage_path: str | os.PathLike[str],
    base_dir: str | Path | None = None,
    *,
    max_prefixes: int = MEGATRON_MAX_PREFIXES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    output_root: str | os.PathLike[str] | None = None,
) -> MixPlan:
    """Read the published lineage snapshot (read-only) and resolve the mix against it.

    Relative shard paths resolve against `output_root` (default: the root the lineage
    store records, `lineage.store.output_root`: the lineage file's directory, i.e. `OUT`
    for `OUT/lineage.duckdb`, or the output URI of an object-store run).
    """
    from lineage.store import output_root as store_root

    tok = resolve_tokenizer_hash(cfg.tokenizer, base_dir)
    if output_root is not None:
        _check_output_root(output_root)
    con = open_lineage(lineage_path)
    try:
        root = output_root if output_root is not None else store_root(lineage_path, con)
        try:
            shards = read_token_shards(con, root)
        except (duckdb.CatalogException, duckdb.BinderException) as e:  # DuckDB, not lineage
            raise MixError(
                f"not a lineage database: {lineage_path} (no `shards` table with token columns)"
            ) from e
    finally:
        con.close()
    plan = compute_plan(cfg, shards, tok, max_prefixes, max_samples)
    missing = [
        s["file"]
        for sp in plan.sources
        for s in sp.shards
        if "://" not in s["file"]
        and not (os.path.exists(s["file"]) and os.path.exists(prefix_of(s["file"]) + ".idx"))
    ]
    if missing:
        plan.problems.append(
            f"{len(missing)} selected token shard(s) not found, e.g. {', '.join(missing[:3])}; "
            f"relative lineage paths resolve against --output-root (now {root})"
        )
    return plan


def _check_output_root(root: str | os.PathLike[str]) -> None:
    """--output-root must be a directory (or a URI): otherwise every shard would be reported
    missing, which hides that the option itself is wrong."""
    r = os.fspath(root)
    if "://" in r:
        return
    if not Path(r).is_dir():
        what = "is not a directory" if Path(r).exists() else "does not exist"
        raise MixError(f"--output-root {r} {what}")


def check_out_dir(out: Path, merged: bool) -> None:
    """Refuse an --out the build could not write, before anything is written.

    `out` must be a directory or creatable as one (its nearest existing ancestor a writable
    directory); the files the build replaces must not be directories; `merged/` (used only
    when shards are merged) must be a directory if it exists.
    """
    if out.exists() and not out.is_dir():
        raise MixError(f"--out {out} exists and is not a directory")
    anc = out
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise MixError(f"--out {out}: {anc} is not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise MixError(f"--out {out}: {anc} is not writable")
    for name in OUT_FILES:
        if (out / name).is_dir():
            raise MixError(f"--out {out}: {out / name} is a directory")
    if merged and (out / "merged").exists() and not (out / "merged").is_dir():
        raise MixError(f"--out {out}: {out / 'merged'} is not a directory")


def _write_text_atomic(path: Path, text: str) -> None:
    storage.write_bytes_atomic(str(path), text.encode("utf-8"))


def build_mix(
    mix_path: str | os.PathLike[str],
    lineage_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    record: bool = True,
    max_prefixes: int = MEGATRON_MAX_PREFIXES,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    output_root: str | os.PathLike[str] | None = None,
) -> BuildResult:
    """Validate, resolve, merge shards if over `max_prefixes`, write manifest/blend/summary
    to `out_dir`, record in lineage."""
    from mixes.merge import ensure_merged_all

    mix_path = Path(mix_path)
    cfg = load_mix(mix_path)
    lineage_path = Path(lineage_path).resolve()
    plan = plan_from_lineage(
        cfg,
        lineage_path,
        base_dir=mix_path.resolve().parent,
        max_prefixes=max_prefixes,
        max_samples=max_samples,
        output_root=output_root,
    )
    check(plan)
    out = Path(out_dir).resolve()
    plan.merged_dir = out / "merged"
    blend = plan.blend()
    merged = [b for b in blend if b["merged"]]
    check_out_dir(out, bool(merged))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MixError(f"--out {out}: cannot create it ({e.strerror or e})") from e
    ensure_merged_all([(b["member_prefixes"], b["prefix"], b["n_tokens"]) for b in merged])
    keep = {Path(b["prefix"] + ext).name for b in merged for ext in (".bin", ".idx")}
    if plan.merged_dir.is_dir():  # merged files of earlier builds that this blend no longer uses
        for f in plan.merged_dir.iterdir():
            if f.name not in keep:
                f.unlink()
    manifest_path = out / "manifest.json"
    blend_path = out / "megatron_blend.txt"
    summary_path = out / "summary.txt"
    _write_text_atomic(
        manifest_path, json.dumps(plan.manifest(str(lineage_path), blend), indent=1) + "\n"
    )
    _write_text_atomic(blend_path, plan.megatron_blend(blend) + "\n")
    _write_text_atomic(summary_path, plan.summary_table() + "\n")
    if record:
        try:
            record_mix(
                lineage_path,
                plan,
                mix_path.read_text(encoding="utf-8"),
                str(manifest_path),
                blend,
            )
        except duckdb.IOException as e:  # the writer copy is locked by a running pipeline
            raise LineageWriteError(str(e)) from e
    return BuildResult(plan, out, manifest_path, blend_path, summary_path, record)
