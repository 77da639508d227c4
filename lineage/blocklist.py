"""The persistent deletion blocklist: URLs and domains that must never reappear in an output.

`lineage delete` adds the `url_hash` (core/urls.py: hash of the normalised ORIGINAL url) of
every deleted or requested URL, or the requested domain, to the `url_blocklist` table; the
pipeline loads it once per run (`load_blocklist`) and drops matching documents in phase 1
under the reason `url.deleted` and again in phase 3 (staged work of an interrupted run may
predate the deletion). `blocked_mask` is the vectorized test. Matching goes through the one
normaliser, so `HTTP://Example.com.:80/a`, `http://example%2ecom/a` and the original spelling
are one URL, and a domain covers its subdomains however their hosts are spelled.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.urls import host_array, host_matches, host_of, normalize_domain, url_hash, url_hash_array

__all__ = ["load_blocklist", "is_blocked", "blocked_mask", "register_url_functions"]


def load_blocklist(lineage_path: str | os.PathLike[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(blocked url hashes, blocked domains) from the published lineage; empty when none.

    Reads the published snapshot read-only, so it never waits for or blocks a writer. Rows
    written before `url_hash` existed are hashed from their `url`.
    """
    if not os.path.exists(lineage_path):
        return frozenset(), frozenset()
    from lineage.store import connect_snapshot

    con = connect_snapshot(lineage_path)
    try:
        cols = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'url_blocklist'"
            ).fetchall()
        }
        if not cols:
            return frozenset(), frozenset()
        hash_col = "url_hash" if "url_hash" in cols else "NULL"
        rows = con.execute(f"SELECT DISTINCT {hash_col}, url, domain FROM url_blocklist").fetchall()
    finally:
        con.close()
    hashes = {h or url_hash(u) for h, u, _ in rows if h or u}
    domains = {normalize_domain(d) for _, _, d in rows if d}
    return frozenset(hashes), frozenset(d for d in domains if d)


def is_blocked(
    url: str, hashes: frozenset[str], domains: frozenset[str], hash_: str | None = None
) -> bool:
    """One URL: its hash is blocked, or its host is a blocked domain or a subdomain of one."""
    if (hash_ or url_hash(url)) in hashes:
        return True
    return bool(domains) and host_matches(host_of(url), domains) is not None


def blocked_mask(table: pa.Table, hashes: frozenset[str], domains: frozenset[str]) -> pa.Array:
    """Vectorized `is_blocked` over a document table (`url_hash`, else `url`; nulls pass).

    The hash column is the one computed from the original url at read time; a table without
    it (staged before it existed) is hashed from `url`.
    """
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    if n == 0 or not (hashes or domains):
        return pa.array(mask, pa.bool_())
    url = table.column("url") if "url" in table.column_names else pa.nulls(n, pa.string())
    if hashes:
        h = table.column("url_hash") if "url_hash" in table.column_names else None
        if h is None or h.null_count == n:
            h = url_hash_array(url)
        vs = pa.array(sorted(hashes), pa.string())
        mask |= pc.fill_null(pc.is_in(h, value_set=vs), False).to_numpy(zero_copy_only=False)
    if domains:
        hosts = host_array(url).to_pylist()
        mask |= np.array(
            [bool(x) and host_matches(x, domains) is not None for x in hosts], dtype=bool
        )
    return pa.array(mask, pa.bool_())


def register_url_functions(con) -> None:  # noqa: ANN001 - duckdb connection
    """SQL access to the one normaliser: `url_host(url)`, `url_hash(url)`, `url_domain(d)`.

    Registered on every lineage connection (analyst sessions included: pure functions, no I/O)
    so queries and deletions match hosts exactly as ingest does.
    """
    import contextlib

    import duckdb

    from core.urls import normalize_url

    # DuckDB refuses new work while an earlier execute() has an unfetched result.
    with contextlib.suppress(duckdb.Error):
        con.fetchall()
    for name, fn in (
        ("url_host", host_of),
        ("url_hash", url_hash),
        ("url_normalize", normalize_url),
        ("url_domain", normalize_domain),
    ):
        try:
            con.create_function(name, _null_safe(fn), ["VARCHAR"], "VARCHAR", side_effects=False)
        except Exception as e:  # noqa: BLE001 - already registered on this connection
            if "already exists" not in str(e):
                raise


def _null_safe(fn):  # noqa: ANN001, ANN202
    def f(v: str | None) -> str | None:
        return None if v is None else fn(v)

    f.__name__ = fn.__name__
    return f
