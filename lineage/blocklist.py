"""The persistent deletion blocklist: URLs and domains that must never reappear in an output.

`lineage delete` adds every deleted URL (as requested and as stored) or the requested domain
to the `url_blocklist` table; the pipeline loads it once per run (`load_blocklist`) and drops
matching documents in phase 1 under the reason `url.deleted` (`blocked_mask` is the
vectorized test).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Host part of an absolute URL (no userinfo, no port), as a DuckDB/RE2 regular expression.
HOST_REGEX = r"^[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?([^:/?#]+)"
_NAMED_HOST_REGEX = HOST_REGEX.replace("([^:", "(?P<h>[^:")
_HOST = re.compile(HOST_REGEX)


def normalize_domain(domain: str) -> str:
    """Lower-case, no scheme, no leading `*.`/`.`, no trailing dot or path."""
    d = domain.strip().lower()
    m = _HOST.match(d)
    if m:
        d = m.group(1)
    d = d.split("/", 1)[0].lstrip("*").lstrip(".").rstrip(".")
    return d


def host_of(url: str) -> str:
    m = _HOST.match(url or "")
    return m.group(1).lower().rstrip(".") if m else ""


def load_blocklist(lineage_path: str | os.PathLike[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(blocked URLs, blocked domains) from the published lineage; empty when there is none.

    Reads the published snapshot read-only, so it never waits for or blocks a writer.
    """
    if not os.path.exists(lineage_path):
        return frozenset(), frozenset()
    from lineage.store import connect_snapshot

    con = connect_snapshot(lineage_path)
    try:
        has = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'url_blocklist'"
        ).fetchone()[0]
        if not has:
            return frozenset(), frozenset()
        urls = {r[0] for r in con.execute(
            "SELECT DISTINCT url FROM url_blocklist WHERE url IS NOT NULL").fetchall()}
        domains = {normalize_domain(r[0]) for r in con.execute(
            "SELECT DISTINCT domain FROM url_blocklist WHERE domain IS NOT NULL").fetchall()}
    finally:
        con.close()
    return frozenset(urls), frozenset(d for d in domains if d)


def is_blocked(url: str, urls: frozenset[str], domains: frozenset[str]) -> bool:
    """One URL: exact URL match, or its host is a blocked domain or a subdomain of one."""
    if url in urls:
        return True
    host = host_of(url)
    while host:
        if host in domains:
            return True
        host = host.partition(".")[2]
    return False


def blocked_mask(
    url: pa.Array | pa.ChunkedArray, urls: frozenset[str], domains: frozenset[str]
) -> pa.BooleanArray:
    """Vectorized `is_blocked` over a URL column (null URLs are not blocked)."""
    if isinstance(url, pa.ChunkedArray):
        url = url.combine_chunks()
    n = len(url)
    mask = np.zeros(n, dtype=bool)
    if urls:
        mask |= pc.fill_null(pc.is_in(url, value_set=pa.array(sorted(urls), pa.string())),
                             False).to_numpy(zero_copy_only=False)
    if domains:
        host = pc.utf8_lower(pc.extract_regex(url, _NAMED_HOST_REGEX)
                             .field("h"))
        host = pc.fill_null(host, "")
        dom = pa.array(sorted(domains), pa.string())
        hit = pc.fill_null(pc.is_in(host, value_set=dom), False).to_numpy(zero_copy_only=False)
        for d in domains:  # subdomains: few blocked domains, one vectorized test each
            hit |= pc.ends_with(host, "." + d).to_numpy(zero_copy_only=False)
        mask |= hit
    return pa.array(mask, pa.bool_())
