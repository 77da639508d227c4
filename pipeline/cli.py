"""`python -m pipeline` / `ccpipe`: run the pipeline and its helper commands.

Exit status: 0 success; 1 the run failed; 2 user error (bad config, missing input, bad
arguments, no input is a WARC file), with a one-line message naming the problem and no
traceback; 3 partial: the WARC inputs were processed, some inputs were not WARC (listed on
stderr and in the summary); 75 another process writes the output (see --wait); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from core.output_lock import OutputLockedError, hold_output_lock
from pipeline.config import ConfigError, add_config_source_options, load_config
from pipeline.run import storage_failure

EXIT_USAGE = 2
EXIT_PARTIAL = 3  # the run succeeded for the WARC inputs; some inputs were not WARC (listed)
EXIT_LOCKED = 75  # sysexits.h EX_TEMPFAIL: another process writes this output; try again later


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="process WARC inputs into shards (default: the sample crawl)")
    r.add_argument("inputs", nargs="*", help="WARC files, globs, directories, listings, URIs")
    r.add_argument("--output", "-o", required=True, help="output directory or s3:// URI")
    add_config_source_options(r)
    r.add_argument("--workers", type=int, help="actor-pool size (execution.num_workers)")
    r.add_argument(
        "--address",
        help="Ray cluster to join (execution.ray_address; default: "
        "RAY_ADDRESS, set inside `ray job submit`, else an embedded local Ray)",
    )
    r.add_argument(
        "--engine",
        choices=["auto", "ray", "local"],
        help="execution.engine: `local` runs in this process without Ray; `auto` (default) "
        "does that for small inputs when no cluster is named",
    )
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    r.add_argument(
        "--shared-output",
        action="store_true",
        help="the local --output path is shared storage mounted on every node "
        "(execution.output_shared); needed for a local path on a multi-node cluster",
    )
    r.add_argument("--json", action="store_true", help="print the run summary as JSON")
    r.add_argument(
        "--wait",
        action="store_true",
        help="wait for another writer of the same output to finish instead of "
        f"exiting with status {EXIT_LOCKED}",
    )

    c = sub.add_parser("config", help="print the effective config (YAML) and its hash")
    add_config_source_options(c)
    c.add_argument(
        "--reference",
        action="store_true",
        help="print the configuration reference (Markdown) instead",
    )

    q = sub.add_parser("quality", help="quality model commands")
    qs = q.add_subparsers(dest="qcommand", metavar="SUBCOMMAND")
    qt = qs.add_parser("train", help="train a fastText quality classifier")
    qt.add_argument("--positive", required=True, help="text file (one doc per line) or parquet")
    qt.add_argument("--negative", required=True)
    qt.add_argument("--out", required=True, help="model path (.bin)")
    qt.add_argument("--epoch", type=int, default=10)
    qt.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("tokenizer", help="tokenizer commands")
    ts = t.add_subparsers(dest="tcommand", metavar="SUBCOMMAND")
    tt = ts.add_parser("train", help="train a byte-level BPE on a sample of kept documents")
    tt.add_argument(
        "--input",
        required=True,
        action="append",
        help="run output directory or parquet file(s) with a text column",
    )
    tt.add_argument("--vocab-size", type=int, default=32000)
    tt.add_argument(
        "--out",
        required=True,
        help="tokenizer directory to write (tokenizer.json, tokenizer_config.json, "
        "special_tokens_map.json)",
    )
    tt.add_argument("--sample-docs", type=int, default=20000)
    tt.add_argument("--seed", type=int, default=0)

    d = sub.add_parser("dedup", help="cross-run dedup index commands")
    ds = d.add_subparsers(dest="dcommand", metavar="SUBCOMMAND")
    dc = ds.add_parser("compact", help="merge the small partitions of the dedup index")
    dc.add_argument("--output", "-o", required=True, help="output directory or s3:// URI")
    add_config_source_options(dc)  # the runs' config selects the index
    dc.add_argument(
        "--min-files",
        type=int,
        default=2,
        help="merge a bucket only when it has at least this many files",
    )

    sub.add_parser("sample", help="print the paths of the shipped sample crawl")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.run import run_pipeline
    from pipeline.run_summary import funnel, summary_table

    overrides = list(args.overrides)
    if args.inputs:
        overrides.append("input.paths=" + json.dumps(args.inputs))
    overrides.append("output.dir=" + json.dumps(args.output))
    if args.workers is not None:
        overrides.append(f"execution.num_workers={args.workers}")
    if args.engine:
        overrides.append(f"execution.engine={args.engine}")
    if args.quiet:
        overrides.append("execution.progress=false")
    if args.address:
        overrides.append("execution.ray_address=" + json.dumps(args.address))
    if args.shared_output:
        overrides.append("execution.output_shared=true")
    cfg = load_config(args.config, overrides, profile=args.profile)
    result = run_pipeline(cfg, wait_for_lock=args.wait)
    if args.json:
        print(json.dumps({**result.__dict__, **funnel(result)}, default=str, indent=1))
    else:
        print(summary_table(result))
    if result.status != "succeeded":
        return 1
    if result.bad_inputs:
        for uri in result.bad_inputs:
            print(f"not WARC, skipped: {uri}", file=sys.stderr)
        print(
            f"partial: {len(result.bad_inputs)} inputs were not WARC files and were skipped "
            f"(exit status {EXIT_PARTIAL})",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    if args.reference:
        from pipeline.config_doc import reference_markdown

        print(reference_markdown())
        return 0
    cfg = load_config(args.config, args.overrides, profile=args.profile)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    print(f"# config_hash: {cfg.config_hash}")
    return 0


def _cmd_quality(args: argparse.Namespace) -> int:
    from stages.quality_model import train_quality_model

    if args.qcommand != "train":
        raise ConfigError(
            "usage: python -m pipeline quality train --positive A --negative B --out model.bin"
        )
    metrics = train_quality_model(
        args.positive, args.negative, args.out, epoch=args.epoch, seed=args.seed
    )
    print(json.dumps(metrics, indent=1, default=str))
    return 0


def _cmd_tokenizer(args: argparse.Namespace) -> int:
    from stages.tokenize import train_tokenizer

    if args.tcommand != "train":
        raise ConfigError(
            "usage: python -m pipeline tokenizer train --input DIR --out TOKENIZER_DIR"
        )
    stats = train_tokenizer(
        args.input, args.vocab_size, args.out, sample_docs=args.sample_docs, seed=args.seed
    )
    print(json.dumps(stats, indent=1, default=str))
    return 0


def _cmd_dedup(args: argparse.Namespace) -> int:
    from pipeline.dedup_index import compact
    from pipeline.work import Layout

    if args.dcommand != "compact":
        raise ConfigError("usage: python -m pipeline dedup compact --output DIR")
    cfg = load_config(args.config, args.overrides, profile=args.profile)
    index_dir = Layout(args.output, cfg.config_hash).index_dir()
    # compaction rewrites the index a run reads and appends to: never beside a writer
    with hold_output_lock(args.output, purpose="dedup compact"):
        stats = compact(index_dir, min_files=args.min_files)
    print(json.dumps({"index": index_dir, **stats}, indent=1))
    return 0


def _cmd_sample(_: argparse.Namespace) -> int:
    from pipeline.sample import sample_paths

    print("\n".join(sample_paths()))
    return 0


COMMANDS = {
    "run": _cmd_run,
    "config": _cmd_config,
    "quality": _cmd_quality,
    "tokenizer": _cmd_tokenizer,
    "dedup": _cmd_dedup,
    "sample": _cmd_sample,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from pipeline.progress import setup_cli_logging

    setup_cli_logging(quiet=getattr(args, "quiet", False))
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except OutputLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (OSError, ValueError) as exc:
        fatal = storage_failure(exc) if args.command == "run" else None
        if fatal:
            # disk full, I/O error, read-only file system: one line, not a traceback; the run
            # is recorded as failed (or will be, by the next run) and resumes from _work
            print(
                f"error: run failed: {fatal}; fix the storage and run the same command "
                "again to resume",
                file=sys.stderr,
            )
            return 1
        if args.command == "run" or not isinstance(exc, (FileNotFoundError, ValueError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> int:
    """Console-script entry point (`ccpipe`): main() with a quiet exit on a closed pipe."""
    from core.cli_io import run_cli

    return run_cli(main)


if __name__ == "__main__":
    sys.exit(entry())
