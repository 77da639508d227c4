"""`python -m mixes build|plan MIX.yaml --lineage DB [--out DIR]`.

Exit status: 0 success, 2 a refused mix (bad YAML, unknown key, empty source, tokenizer
mismatch, budget over max_epochs, more samples than --max-samples, missing shard files, a
path argument that is missing or of the wrong kind, a lineage path that is not a lineage
database), 1 anything unexpected (or lineage could not be written after the build).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mixes.config import MixError, load_mix
from mixes.plan import DEFAULT_MAX_SAMPLES, MEGATRON_MAX_PREFIXES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mixes", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser(
        "build",
        help="write manifest.json, megatron_blend.txt, summary.txt and record the mix in lineage",
    )
    b.add_argument("mix", help="mix YAML file (see mixes/README.md)")
    b.add_argument(
        "--lineage", required=True, help="lineage database (e.g. <output>/lineage.duckdb)"
    )
    b.add_argument("--out", help="output directory (default: <lineage dir>/mixes/<mix name>)")
    b.add_argument("--no-record", action="store_true", help="do not write the mix to lineage")
    _common(b)
    b.add_argument("--json", action="store_true", help="print the manifest's source table as JSON")
    pl = sub.add_parser("plan", help="resolve and check a mix; print the summary, write nothing")
    pl.add_argument("mix")
    pl.add_argument("--lineage", required=True)
    _common(pl)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-prefixes",
        type=int,
        default=MEGATRON_MAX_PREFIXES,
        help="most Megatron prefixes in the blend; above it each source's shards are merged "
        f"into fewer .bin/.idx files (default {MEGATRON_MAX_PREFIXES}: Megatron's "
        "BlendedDataset limit)",
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=DEFAULT_MAX_SAMPLES,
        help="most samples (target_tokens // seq_length) the mix may have: the loader keeps a "
        f"12-byte index entry per sample in every training process (default {DEFAULT_MAX_SAMPLES:,}"
        " = 24 GiB)",
    )
    p.add_argument(
        "--output-root",
        help="directory that relative shard paths in lineage are relative to "
        "(default: the root the lineage store records, normally its own directory)",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from mixes.build import LineageWriteError, build_mix, plan_from_lineage
    from mixes.plan import check

    try:
        for opt in ("max_prefixes", "max_samples"):
            if getattr(args, opt) < 1:
                raise MixError(f"--{opt.replace('_', '-')} must be at least 1")
        if args.cmd == "plan":
            path = Path(args.mix)
            cfg = load_mix(path)
            plan = plan_from_lineage(
                cfg,
                args.lineage,
                base_dir=path.resolve().parent,
                max_prefixes=args.max_prefixes,
                max_samples=args.max_samples,
                output_root=args.output_root,
            )
            print(plan.summary_table())
            check(plan)
            return 0
        out = args.out
        if out is None:
            out = Path(args.lineage).resolve().parent / "mixes" / load_mix(args.mix).name
        res = build_mix(
            args.mix,
            args.lineage,
            out,
            record=not args.no_record,
            max_prefixes=args.max_prefixes,
            max_samples=args.max_samples,
            output_root=args.output_root,
        )
    except MixError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except LineageWriteError as e:
        print(
            f"error: cannot write the lineage store ({e}); is a pipeline run writing it? "
            "retry when it has finished, or use --no-record",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(res.plan.manifest()["sources"], indent=1))
    else:
        print(res.plan.summary_table())
        print()
        print("Megatron-LM --data-path (also in megatron_blend.txt):")
        print(res.plan.megatron_blend())
        print()
        where = f"lineage mix_id {res.plan.mix_id}" if res.recorded else "not recorded in lineage"
        print(f"manifest: {res.manifest_path}\nblend: {res.blend_path}\n{where}")
    return 0
