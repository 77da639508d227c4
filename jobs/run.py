"""Cluster entrypoint: the full pipeline as a Ray job.

    ray job submit --address http://HEAD:8265 --working-dir . \\
        --runtime-env jobs/runtime_env.yaml -- \\
        python -m jobs.run --config my.yaml --output s3://bucket/out s3://bucket/crawl/

Inside a submitted job Ray sets RAY_ADDRESS, so `pipeline.plan.ensure_ray` connects to the
cluster instead of starting an embedded Ray. Run outside a job (with RAY_ADDRESS set, or
without it for a local Ray) it behaves the same. Exit status: 0 success, 1 run failed,
2 usage/config error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence

from core import storage
from jobs.common import add_config_options, in_ray_job, job_config, log, publish_lineage
from jobs.common import restore_lineage as _restore
from pipeline.config import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_PARTIAL = 3  # some inputs were not WARC (listed); the others were processed
EXIT_LOCKED = 75  # another process writes the output (core/output_lock.py)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.run", description=__doc__.splitlines()[0])
    p.add_argument(
        "inputs",
        nargs="*",
        help="WARC files, globs, directories, listings, s3:// URIs (default: the "
        "sample crawl shipped in the working dir)",
    )
    p.add_argument(
        "--output",
        "-o",
        required=True,
        help="output root: a path every node sees (shared mount) or s3:// URI",
    )
    add_config_options(
        p,
        lineage_help="lineage DuckDB path (POSIX). Default <output>/lineage.duckdb, or for "
        "s3:// outputs a per-output file under $CCPIPE_LINEAGE_DIR "
        "(~/.cache/ccpipe/lineage) mirrored to <output>/_lineage/",
    )
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = job_config(args, args.inputs)
    if cfg is None:
        return EXIT_USAGE
    assert cfg.output.dir and cfg.output.lineage_path
    if in_ray_job() and not storage.is_remote(args.output) and not os.path.isabs(args.output):
        log(
            f"warning: relative --output resolved inside the job's working dir: {cfg.output.dir}"
            " (it is deleted with the job; pass an absolute shared path or s3:// URI)"
        )
    # always on stderr, --quiet included: which cluster and config a job ran with
    print(
        f"jobs.run: RAY_ADDRESS={os.environ.get('RAY_ADDRESS', '(embedded)')} "
        f"output={cfg.output.dir} lineage={cfg.output.lineage_path} "
        f"config_hash={cfg.config_hash}",
        file=sys.stderr,
        flush=True,
    )

    from core.output_lock import OutputLockedError
    from pipeline.run import run_pipeline
    from pipeline.run_summary import summary_table

    _restore(cfg.output.dir, cfg.output.lineage_path, args.quiet)
    try:
        result = run_pipeline(cfg, kind="job")
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except OutputLockedError as exc:
        print(f"jobs.run: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except Exception as exc:  # noqa: BLE001 - traceback for the job log, then one line
        traceback.print_exc()
        print(f"jobs.run: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        publish_lineage(cfg.output.dir, cfg.output.lineage_path, args.quiet)
    if args.json:
        print(json.dumps(result.__dict__, default=str, indent=1))
    else:
        print(summary_table(result), flush=True)
    if result.status != "succeeded":
        return EXIT_FAILED
    if result.bad_inputs:  # the same "partial" status as `python -m pipeline run`
        for uri in result.bad_inputs:
            print(f"not WARC, skipped: {uri}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
