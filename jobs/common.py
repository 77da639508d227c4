"""What the cluster entrypoints share: options, config assembly, the lineage location, Ray job setup.

The lineage database is DuckDB, which writes only to a POSIX file (it cannot write to s3://).
For a local (or shared-mount) output it lives in the output, as for `python -m pipeline run`.
For an object-store output it lives on a POSIX path of the driver's node (`--lineage`, else
`$CCPIPE_LINEAGE_DIR/<hash of the output URI>/lineage.duckdb`, else the same under
`~/.cache/ccpipe/lineage/`), and every run mirrors the published snapshot to
`<output>/_lineage/lineage.duckdb` on the object store when it ends (success or failure). A
driver that starts without a local copy (new head node, fresh pod) first restores it from that
mirror, so "skip what is committed" survives the loss of the driver's disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from core import storage
from lineage.location import (  # noqa: F401 - re-exported for the entrypoints
    MIRROR_NAME,
    default_lineage_path,
    log,
    mirror_uri,
    publish_lineage,
    restore_lineage,
)
from pipeline.config import (
    ConfigError,
    PipelineConfig,
    add_config_source_options,
    load_config,
)
from pipeline.inputs import check_uri

# ray.init() inside a submitted job merges its runtime_env with the job's; the driver passes
# the same env vars the job's runtime_env sets, which Ray treats as a conflict unless told to
# let the driver's (identical) values win.
_RAY_OVERRIDE = "RAY_OVERRIDE_JOB_RUNTIME_ENV"


def in_ray_job() -> bool:
    """True inside a driver started by `ray job submit` (Ray injects the job config)."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


def prepare_ray_job_env() -> None:
    """Let `pipeline.plan.ensure_ray` connect from inside a submitted job (see _RAY_OVERRIDE)."""
    if in_ray_job():
        os.environ.setdefault(_RAY_OVERRIDE, "1")


def build_config(
    *,
    inputs: list[str],
    output: str,
    config: str | None,
    profile: str | None,
    overrides: list[str],
    lineage: str | None,
    workers: int | None,
    quiet: bool,
    listing_prefix: str | None = None,
) -> PipelineConfig:
    """The run config: profile, YAML, --set, then what the entrypoint's own options fix."""
    check_uri(output, "output.dir")
    if not storage.is_remote(output):
        output = os.path.abspath(output)
    over = list(overrides)
    if inputs:
        over.append("input.paths=" + json.dumps(inputs))
    if listing_prefix:
        over.append("input.listing_prefix=" + json.dumps(listing_prefix))
    over.append("output.dir=" + json.dumps(output))
    if workers:
        over.append(f"execution.num_workers={workers}")
    if quiet:
        over.append("execution.progress=false")
    cfg = load_config(config, over, profile=profile)
    if lineage:
        cfg.output.lineage_path = os.path.abspath(lineage)
    elif not cfg.output.lineage_path:
        cfg.output.lineage_path = default_lineage_path(output)
    return cfg


def add_config_options(p: argparse.ArgumentParser, *, lineage_help: str) -> None:
    """The options both entrypoints take to assemble a run config (see `job_config`)."""
    add_config_source_options(p)
    p.add_argument("--lineage", help=lineage_help)
    p.add_argument("--workers", type=int, help="actor-pool size (default: cluster CPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def job_config(
    args: argparse.Namespace, inputs: list[str], listing_prefix: str | None = None
) -> PipelineConfig | None:
    """The entrypoints' common start: logging, Ray job env, then the config from `args`
    (options of `add_config_options` plus `--output`). None after printing a config error
    (the caller exits with status 2)."""
    from pipeline.progress import setup_cli_logging

    setup_cli_logging(quiet=args.quiet)  # progress lines reach `ray job logs`
    prepare_ray_job_env()
    try:
        return build_config(
            inputs=inputs,
            output=args.output,
            config=args.config,
            profile=args.profile,
            overrides=args.overrides,
            lineage=args.lineage,
            workers=args.workers,
            quiet=args.quiet,
            listing_prefix=listing_prefix,
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None
