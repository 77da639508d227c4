"""Turn what the user typed (paths, globs, directories, listings, URIs) into input files.

A name the user typed that does not exist is a config error (exit 2). An entry of a listing
file that turns out to be missing is not: the reader counts it as `file.missing` for that file
and the run goes on, because nightly listings routinely name files that are not there yet.

Input that is not WARC (a PDF, a text file that is no listing, a directory without WARC files)
is found here for local files (the first bytes are read) and by the reader (`file.not_warc`)
for object-store files. When every input is bad the run stops before it starts, with one line
naming the file (exit 2); otherwise the good files are processed and the bad ones are listed
(the CLI's "partial" exit status 3).
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import hashlib
import os
import posixpath
import re
import zlib
from dataclasses import dataclass, field

from core import storage
from pipeline.config import ConfigError

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
LISTING_SUFFIXES = (".paths", ".paths.gz", ".txt", ".txt.gz", ".lst", ".list")


@dataclass(frozen=True)
class InputFile:
    """One input file and the stable key its outputs are named after."""

    uri: str
    file_key: str
    # bytes, when the listing that found the file said (object stores); None: ask when needed
    size: int | None = field(default=None, compare=False)


def file_key(uri: str) -> str:
    """`<stem>-<hash8 of the full URI>`: readable, and unique even for equal basenames."""
    base = uri.rstrip("/").rsplit("/", 1)[-1]
    for suf in (".gz", ".warc", ".arc"):
        if base.endswith(suf):
            base = base[: -len(suf)]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:80] or "input"
    return f"{base}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}"


@dataclass
class Resolution:
    """Input files to process, and inputs that are not WARC: (what the user named, why)."""

    files: list[InputFile]
    bad: list[tuple[str, str]] = field(default_factory=list)


class NotWarcError(ConfigError):
    """Every input is something other than a WARC file."""


def sniff_not_warc(path: str) -> str | None:
    """Why a local file is not WARC (None if its first bytes start a WARC record, or it is
    empty: the reader counts an empty file as `file.empty`). The same test as the reader's."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return None  # unreadable/missing: the reader counts it with its precise reason
    if not head:
        return None
    if head[:2] == b"\x1f\x8b":
        try:
            first = zlib.decompressobj(wbits=31).decompress(head, 4096)
        except zlib.error:
            first = b""
        if first.lstrip(b"\r\n").startswith(b"WARC/"):
            return None
        return "gzip file that does not contain a WARC record"
    if head.lstrip(b"\r\n").startswith(b"WARC/"):
        return None
    return f"not a WARC file (starts {head[:8]!r})"


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


class _NotAListing(ValueError):
    pass


def _read_listing(uri: str, prefix: str | None) -> list[str]:
    data = storage.read_bytes(uri)
    if data[:2] == b"\x1f\x8b":
        # a corrupt .gz listing (truncated download) is a failure of the run, not bad input
        data = gzip.decompress(data)
    if b"\0" in data[:65536]:
        raise _NotAListing("not a WARC file nor a listing of WARC files (binary)")
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
    if out and not any(e.rstrip("/").endswith(WARC_SUFFIXES) for e in out):
        raise _NotAListing(
            "not a WARC file nor a listing of WARC files (no entry ends in "
            + "/".join(WARC_SUFFIXES)
            + ")"
        )
    return out


def walk_local(root: str) -> list[str]:
    """Files under a local directory, symlinks resolved once, sorted real paths.

    Why not a plain recursive listing: a symlink loop (``sub/up -> ..``) made it hang or list
    the same file dozens of times (issue 19). Each directory is entered once by its real
    path (loop detection), and each file is returned once by its real path, so a file reached
    through two links is one input.
    """
    seen_dirs: set[str] = set()
    files: set[str] = set()
    stack = [os.path.realpath(root)]
    while stack:
        d = stack.pop()
        if d in seen_dirs:
            continue
        seen_dirs.add(d)
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue  # unreadable directory: nothing to list (the run reports missing inputs)
        for e in entries:
            real = os.path.realpath(e.path)
            if os.path.isdir(real):
                if real not in seen_dirs:
                    stack.append(real)
            elif os.path.isfile(real):
                files.add(real)
    return sorted(files)


def _expand_one(
    item: str, prefix: str | None, bad: list[tuple[str, str]], sizes: dict[str, int | None]
) -> list[str]:
    """The input files `item` names; object-store sizes the listing returned go to `sizes`."""
    has_glob = any(c in item for c in "*?[")
    if has_glob:
        if storage.is_remote(item):
            root = item.split("*", 1)[0].rsplit("/", 1)[0]
            listed = [(u, n) for u, n in storage.list_file_sizes(root) if fnmatch.fnmatch(u, item)]
            sizes.update(listed)
            matches = [u for u, _ in listed]
        else:
            # real paths, once each: links to one file are one input
            matches = sorted({os.path.realpath(m) for m in glob.glob(item, recursive=True)})
        if not matches:
            raise ConfigError(f"config error: input.paths: glob matched nothing: {item}")
        return [m for m in matches if not os.path.isdir(m)]
    if not storage.exists(item):
        raise ConfigError(f"config error: input.paths: input not found: {item}")
    if not storage.is_remote(item) and os.path.isdir(item):
        fs_files = walk_local(item)
    else:
        listed = storage.list_file_sizes(item)
        sizes.update(listed)
        fs_files = [u for u, _ in listed]
    if fs_files == [item] or (
        len(fs_files) == 1 and not storage.is_remote(item) and os.path.isfile(item)
    ):
        if _is_listing(item):
            try:
                return _read_listing(item, prefix)
            except _NotAListing as exc:
                bad.append((item, str(exc)))
                return []
        return [item if storage.is_remote(item) else os.path.abspath(item)]
    warcs = [f for f in fs_files if f.endswith(WARC_SUFFIXES)]
    if not warcs:
        bad.append((item, "directory holds no WARC files (" + ", ".join(WARC_SUFFIXES) + ")"))
    return warcs


def resolve_inputs_report(paths: list[str], listing_prefix: str | None = None) -> Resolution:
    """Expand inputs, set aside local files that are not WARC, deduplicate, sort and key.

    Raises ConfigError for a name that does not exist, and NotWarcError when nothing usable
    is left (the message names the bad input).
    """
    uris: list[str] = []
    bad: list[tuple[str, str]] = []
    sizes: dict[str, int | None] = {}
    for item in paths:
        check_uri(item, "input.paths")
        uris.extend(_expand_one(item, listing_prefix, bad, sizes))
    seen: dict[str, InputFile] = {}
    for u in uris:
        if u in seen:
            continue
        why = None if storage.is_remote(u) else sniff_not_warc(u)
        if why:
            bad.append((u, why))
        else:
            seen[u] = InputFile(uri=u, file_key=file_key(u), size=sizes.get(u))
    if not seen:
        if bad:
            more = f" (and {len(bad) - 1} more inputs like it)" if len(bad) > 1 else ""
            raise NotWarcError(f"error: input.paths: {bad[0][0]}: {bad[0][1]}{more}")
        raise ConfigError("config error: input.paths: no input files found")
    return Resolution(sorted(seen.values(), key=lambda f: f.uri), sorted(set(bad)))


def resolve_inputs(paths: list[str], listing_prefix: str | None = None) -> list[InputFile]:
    """The WARC input files of `paths` (see resolve_inputs_report for the bad ones)."""
    return resolve_inputs_report(paths, listing_prefix).files
