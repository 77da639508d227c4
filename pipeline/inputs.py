"""Turn what the user typed (paths, globs, directories, listings, URIs) into input files.

A name the user typed that does not exist is a config error (exit 2). An entry of a listing
file that turns out to be missing is not: the reader counts it as `file.missing` for that file
and the run goes on, because nightly listings routinely name files that are not there yet.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import hashlib
import os
import posixpath
import re
from dataclasses import dataclass

from pipeline import storage
from pipeline.config import ConfigError

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
LISTING_SUFFIXES = (".paths", ".paths.gz", ".txt", ".txt.gz", ".lst", ".list")


@dataclass(frozen=True)
class InputFile:
    """One input file and the stable key its outputs are named after."""

    uri: str
    file_key: str


def file_key(uri: str) -> str:
    """`<stem>-<hash8 of the full URI>`: readable, and unique even for equal basenames."""
    base = uri.rstrip("/").rsplit("/", 1)[-1]
    for suf in (".gz", ".warc", ".arc"):
        if base.endswith(suf):
            base = base[: -len(suf)]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:80] or "input"
    return f"{base}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}"


def check_uri(uri: str, field: str) -> None:
    """Reject URI query options (`s3://b/k?endpoint_override=...`): pyarrow would honour them
    for that one URI, but URIs derived from it (listed files, output names) would silently
    lose them and could reach another endpoint. Endpoints come from the environment instead.
    """
    if storage.is_remote(uri) and "?" in uri:
        raise ConfigError(
            f"config error: {field}: URI query options are not supported: {uri!r}; set the "
            "endpoint in the environment instead (e.g. AWS_ENDPOINT_URL=http://host:port)"
        )


def _is_listing(name: str) -> bool:
    return name.endswith(LISTING_SUFFIXES) and not name.endswith(WARC_SUFFIXES)


def _read_listing(uri: str, prefix: str | None) -> list[str]:
    data = storage.read_bytes(uri)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    base = prefix
    if base is None:
        base = uri.rsplit("/", 1)[0] + "/" if "/" in uri else ""
    out = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if storage.is_remote(line) or line.startswith("/"):
            out.append(line)
        elif storage.is_remote(base):
            out.append(posixpath.join(base, line))
        else:
            # Absolute, so that file keys (and so resume) do not depend on the cwd, and
            # workers whose cwd differs from the driver's find the file.
            out.append(os.path.abspath(os.path.join(base, line)))
    return out


def _expand_one(item: str, prefix: str | None) -> list[str]:
    has_glob = any(c in item for c in "*?[")
    if has_glob:
        if storage.is_remote(item):
            root = item.split("*", 1)[0].rsplit("/", 1)[0]
            matches = [u for u in storage.list_files(root) if fnmatch.fnmatch(u, item)]
        else:
            matches = sorted(os.path.abspath(m) for m in glob.glob(item, recursive=True))
        if not matches:
            raise ConfigError(f"config error: input.paths: glob matched nothing: {item}")
        return [m for m in matches if not os.path.isdir(m)]
    if not storage.exists(item):
        raise ConfigError(f"config error: input.paths: input not found: {item}")
    fs_files = storage.list_files(item)
    if fs_files == [item] or (len(fs_files) == 1 and not storage.is_remote(item)
                              and os.path.isfile(item)):
        if _is_listing(item):
            return _read_listing(item, prefix)
        return [item if storage.is_remote(item) else os.path.abspath(item)]
    return [f for f in fs_files if f.endswith(WARC_SUFFIXES)]


def resolve_inputs(paths: list[str], listing_prefix: str | None = None) -> list[InputFile]:
    """Expand inputs, deduplicate, sort (deterministic order) and key them."""
    uris: list[str] = []
    for item in paths:
        check_uri(item, "input.paths")
        uris.extend(_expand_one(item, listing_prefix))
    seen: dict[str, InputFile] = {}
    for u in uris:
        if u not in seen:
            seen[u] = InputFile(uri=u, file_key=file_key(u))
    if not seen:
        raise ConfigError("config error: input.paths: no input files found")
    return sorted(seen.values(), key=lambda f: f.uri)
