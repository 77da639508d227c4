"""Deletion requests: remove documents (by URL list or domain) from every shard that holds them.

Order of operations, so that a crash at any point leaves a consistent, retryable state:

0. take the output lock of every output the lineage covers (core/output_lock.py: the lock
   every run holds; `wait` or a one-line OutputLockedError naming the holder) and open the writer, which publishes its
   working copy: a commit a killed earlier attempt made but did not publish becomes visible;
1. find the matching documents through lineage (`documents` and `rejections` views), by
   `url_hash` (core/urls.py: hash of the normalised ORIGINAL url) or stored url, or by
   normalised host for a domain (a public suffix needs `force`);
2. write new versions of every affected shard next to the old one (`<name>.v<N>.parquet`,
   `<name>.v<N>.bin/.idx`; atomic renames; the token shard is sliced from the old `.bin`,
   no re-tokenization; `shard_row` and `token_start` recomputed);
3. one lineage transaction (the commit point): old shard rows -> `superseded`, new rows
   (version + 1, `shard_inputs`, `pii_stats`), one `deletions` row per removed document,
   the URL hashes / domain into `url_blocklist`, mixes that used an old shard -> `stale`;
   rows an earlier attempt committed are replaced, never inserted twice;
4. delete the superseded files from disk (they hold the data subject's content). Files of
   superseded shards left by a crash between 3 and 4 are removed by the next request;
5. remove staged `_work/` of unfinished runs (`purge_caches`; it predates the deletion and
   a resumed run would finish it). Runs on every request (idempotent).

A crash before 3 leaves only unreferenced new files, overwritten by the retry (same names).
A retry after a crash anywhere completes the request.
The new shard files are written by ``lineage/shard_rewrite.py``.
Shards on an object store (s3://, gs://) are read and written through `core.storage`; a
token shard is fetched to a temporary directory to be sliced.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from core import storage
from core.urls import domain_forms, host_of, is_public_suffix, normalize_domain, url_hash
from lineage.blocklist import register_url_functions
from lineage.shard_rewrite import (
    DeletionError,
    planned_ids,
    rewrite_rejected,
    rewrite_text_pair,
)
from lineage.store import LineageStore, connect_snapshot, open_reader, output_root, resolve_path
from lineage.writer import now

# Columns a deletion adds to tables created by older schema versions.
_MIGRATIONS = (
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS kind VARCHAR",
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS old_token_shard_id VARCHAR",
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS new_token_shard_id VARCHAR",
    "ALTER TABLE url_blocklist ADD COLUMN IF NOT EXISTS selector VARCHAR",
    "ALTER TABLE url_blocklist ADD COLUMN IF NOT EXISTS url_hash VARCHAR",
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS url_hash VARCHAR",
)


@dataclass
class DeletionResult:
    deletion_id: str
    selector: str
    docs_deleted: int = 0
    docs_by_kind: dict[str, int] = field(default_factory=dict)
    shards_rewritten: list[tuple[str, str | None]] = field(default_factory=list)
    stale_mixes: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    blocklisted: list[str] = field(default_factory=list)
    unmatched_urls: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class UrlFileError(ValueError):
    """A URL file that cannot be used as written: refused before anything is deleted."""


# `#` starts a comment at the start of a line or after whitespace (a URL has no raw space,
# and `#` right after a URL character is its fragment).
_INLINE_COMMENT = re.compile(r"(^|\s)#.*$")


def is_http_url(s: str) -> bool:
    """An absolute http(s) URL with a host: what a document's URL can be."""
    try:
        scheme = urlsplit(s).scheme.lower()
    except ValueError:
        return False
    return scheme in ("http", "https") and bool(host_of(s))


def read_url_file(path: str | os.PathLike[str]) -> list[str]:
    """One URL per line; blank lines and `#` comments (whole-line, or inline after
    whitespace) ignored; a UTF-8 BOM (Notepad) stripped; order kept, duplicates dropped.

    Why strict: a line that is not an absolute http(s) URL (`example.com/`, a BOM-prefixed
    URL) matches nothing and used to be blocklisted as written, deleting nothing with exit 0.
    Such a line raises `UrlFileError` naming its line number, before anything changes.
    """
    p = Path(path)
    if p.is_dir():
        raise UrlFileError(f"URL file {path} is a directory, not a file of URLs")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UrlFileError(f"URL file {path} is not UTF-8 text (byte {e.start})") from e
    seen: dict[str, None] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = _INLINE_COMMENT.sub("", raw.strip()).strip()
        if not line:
            continue
        if not is_http_url(line):
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise UrlFileError(
                f"{path} line {n}: {shown!r} is not an absolute http(s) URL "
                "(write it as https://host/path; nothing was deleted)"
            )
        seen[line] = None
    return list(seen)


# Characters no host name has: a path, query, fragment, userinfo, port or scheme separator.
_NOT_A_HOST = re.compile(r"[/\\?#@:\s]")


def check_domain(domain: str) -> str:
    """`domain` if it is a bare host name (`Example.COM.`, `*.example.com`, `example%2ecom`).

    Why: `normalize_domain` turns `https://example.com/x` or `example.com/research` into
    `example.com`, so a request meant for one page silently became a whole-site deletion.
    """
    if not domain.strip() or _NOT_A_HOST.search(domain.strip()):
        raise DeletionError(
            f"--domain {domain!r}: give a domain such as example.com, not a URL "
            "(use --urls FILE for pages)"
        )
    return domain.strip()


def _match_sql(view: str, by_domain: bool, has_hash: bool) -> str:
    """Documents of `view` a request covers, matched through the one normaliser (core/urls).

    By URL: the `url_hash` column (hash of the normalised ORIGINAL url, computed at read time)
    or the hash of the stored url, so the original, any equivalent spelling and the stored
    (scrubbed) form all match. By domain: the normalised host of the stored url.
    """
    h = "coalesce(url_hash, url_hash(url))" if has_hash else "url_hash(url)"
    cols = f"doc_id, url, filename, {h} AS h" + (", source_uri" if view == "documents" else "")
    if by_domain:
        return (
            f"SELECT {cols} FROM (SELECT *, url_host(url) AS _host FROM {view}) WHERE "
            "_host = $d0 OR ends_with(_host, '.' || $d0) OR "
            "_host = $d1 OR ends_with(_host, '.' || $d1)"
        )
    return (
        f"SELECT {cols} FROM {view} WHERE list_contains($h, {h}) "
        "OR list_contains($h, url_hash(url)) OR list_contains($urls, url)"
    )


def _find(con: duckdb.DuckDBPyConnection, urls: list[str] | None, domain: str | None):
    register_url_functions(con)
    if domain:
        forms = domain_forms(domain)  # punycode and Unicode spellings of the domain
        params: dict[str, Any] = {"d0": forms[0], "d1": forms[-1]}
    else:
        params = {"h": sorted({url_hash(u) for u in urls or []}), "urls": list(urls or [])}
    found = {}
    for view in ("documents", "rejections"):
        cols = [d[0] for d in con.execute(f"SELECT * FROM {view} LIMIT 0").description]
        if "url" not in cols or "filename" not in cols or "source_uri" not in cols:
            found[view] = []
            continue
        found[view] = con.execute(
            _match_sql(view, domain is not None, "url_hash" in cols), params
        ).fetchall()
    return found


def _shard_rows(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict]:
    cur = con.execute(f"SELECT * FROM shards WHERE {where}", params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def output_roots(lineage_path: str | os.PathLike[str]) -> list[str]:
    """The output root this lineage's paths are relative to (`store.output_root`)."""
    con = connect_snapshot(lineage_path)
    try:
        return [output_root(lineage_path, con)]
    finally:
        con.close()


def delete_documents(
    lineage_path: str | os.PathLike[str],
    *,
    urls: list[str] | None = None,
    domain: str | None = None,
    selector: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    wait: bool = False,
    lock_timeout_s: float | None = None,
) -> DeletionResult:
    """Carry out a deletion request under the output lock of every output the lineage covers
    (core/output_lock.py, the lock runs take), so no run writes shards or lineage meanwhile.

    Raises `OutputLockedError` (naming the holder) when a run holds one, unless `wait`.
    A dry run reads only and takes no lock. See `_delete` for the arguments.
    """
    if domain is not None:
        domain = check_domain(domain)
    if dry_run:
        return _delete(
            lineage_path, urls=urls, domain=domain, selector=selector, dry_run=True, force=force
        )
    from core.output_lock import hold_output_lock

    with contextlib.ExitStack() as stack:
        for root in output_roots(lineage_path):
            stack.enter_context(
                hold_output_lock(
                    root, purpose="lineage delete", wait=wait, timeout_s=lock_timeout_s
                )
            )
        _fault("delete.locked")
        return _delete(
            lineage_path, urls=urls, domain=domain, selector=selector, dry_run=False, force=force
        )


def _delete(
    lineage_path: str | os.PathLike[str],
    *,
    urls: list[str] | None = None,
    domain: str | None = None,
    selector: str | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> DeletionResult:
    """Remove every stored document whose URL is one of `urls` (any spelling of the original,
    or the stored scrubbed form) or whose host is `domain` or a subdomain of it; see the module
    docstring for the protocol. A public suffix (`com`, `co.uk`) as `domain` needs `force`.

    Every step is idempotent: a retry after a kill anywhere completes the request.
    """
    if (urls is None) == (domain is None):
        raise ValueError("give exactly one of urls or domain")
    t0 = time.perf_counter()
    if domain is not None:
        raw_domain = domain
        domain = normalize_domain(domain)
        if not domain:
            raise ValueError("empty domain")
        if is_public_suffix(domain) and not force:
            raise DeletionError(
                f"--domain {raw_domain!r} is a public suffix ({domain}): it would delete every "
                "site registered under it; pass --force if that is really meant"
            )
    urls = list(dict.fromkeys(u.strip() for u in urls or [] if u.strip())) if urls else urls
    selector = selector or (f"domain:{domain}" if domain else f"urls:{len(urls or [])}")
    res = DeletionResult(deletion_id=uuid.uuid4().hex[:16], selector=selector)

    # Open the writer first: it publishes the working copy, so a commit a killed request made
    # but did not publish is visible below and is not applied twice.
    store = None if dry_run else _open_store(lineage_path)
    # Every config's documents: a deletion request is about the data, not one config.
    con = open_reader(lineage_path, all_configs=True)
    try:
        root = output_root(lineage_path, con)
        found = _find(con, urls, domain)
        text_paths = sorted({r[2] for r in found["documents"]})
        rej_paths = sorted({r[2] for r in found["rejections"]})
        old_text = {
            r["path"]: r
            for r in _shard_rows(
                con, "path IN (SELECT unnest(?)) AND status = 'live'", [text_paths]
            )
        }
        old_rej = {
            r["path"]: r
            for r in _shard_rows(con, "path IN (SELECT unnest(?)) AND status = 'live'", [rej_paths])
        }
        text_ids = [r["shard_id"] for r in old_text.values()]
        old_tok = {
            r["mirrors_shard"]: r
            for r in _shard_rows(
                con,
                "kind = 'tokens' AND status = 'live' AND mirrors_shard IN (SELECT unnest(?))",
                [text_ids],
            )
        }
        old_inputs = defaultdict(list)
        for sid, src in con.execute(
            "SELECT shard_id, source_uri FROM shard_inputs WHERE shard_id IN (SELECT unnest(?))",
            [text_ids + [r["shard_id"] for r in old_rej.values()]],
        ).fetchall():
            old_inputs[sid].append(src)
    finally:
        con.close()

    matched_hashes = {r[3] for v in found.values() for r in v if r[3]}
    matched_urls = {r[1] for v in found.values() for r in v}
    if urls:
        res.unmatched_urls = [
            u for u in urls if url_hash(u) not in matched_hashes and u not in matched_urls
        ]
    doomed_by_path: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for view in ("documents", "rejections"):
        for doc_id, url, path, h, *_ in found[view]:
            doomed_by_path[path][doc_id] = (url, h)
    res.docs_by_kind = {"text": len(found["documents"]), "rejected": len(found["rejections"])}
    res.docs_deleted = sum(res.docs_by_kind.values())
    # Blocked by hash: the requested spellings and the originals of what matched. The
    # requested strings themselves are not stored (they may carry the data subject's PII).
    block_hashes = sorted({url_hash(u) for u in urls or []} | matched_hashes)
    res.blocklisted = [f"domain:{domain}"] if domain else block_hashes
    if dry_run:
        # What the real run below will write, in its order: the same remaining-document rule
        # and the same names (a shard keeps a new version unless no document is left).
        for path, old in sorted(old_text.items()):
            tok = old_tok.get(old["shard_id"])
            if tok is None:
                raise DeletionError(f"text shard {old['shard_id']} has no live token shard")
            new_id, new_tok_id = planned_ids(root, old, tok, doomed_by_path[path])
            res.shards_rewritten.append((old["shard_id"], new_id))
            res.shards_rewritten.append((tok["shard_id"], new_tok_id))
        for path, old in sorted(old_rej.items()):
            new_id, _ = planned_ids(root, old, None, doomed_by_path[path])
            res.shards_rewritten.append((old["shard_id"], new_id))
        res.seconds = time.perf_counter() - t0
        return res

    new_shards: list[dict[str, Any]] = []
    new_inputs: list[dict[str, Any]] = []
    pii_rows: list[dict[str, Any]] = []
    deletion_rows: list[dict[str, Any]] = []
    superseded: list[str] = []
    old_files: list[str] = []
    ts = now()

    def deleted(path: str, kind: str, old: str, new: str | None, tok: tuple = (None, None)):
        """One `deletions` row per removed document of shard `path` (token shards: `tok`)."""
        deletion_rows.extend(
            {
                "deletion_id": res.deletion_id,
                "requested_at": ts,
                "selector": selector,
                "doc_id": doc_id,
                "url": url,
                "url_hash": h,
                "old_shard_id": old,
                "new_shard_id": new,
                "kind": kind,
                "old_token_shard_id": tok[0],
                "new_token_shard_id": tok[1],
            }
            for doc_id, (url, h) in sorted(doomed_by_path[path].items())
        )

    for path, old in sorted(old_text.items()):
        tok = old_tok.get(old["shard_id"])
        if tok is None:
            raise DeletionError(f"text shard {old['shard_id']} has no live token shard")
        new_id, new_tok_id, recs, pii = rewrite_text_pair(
            root, old, tok, doomed_by_path[path], old_inputs[old["shard_id"]], ts
        )
        _fault("delete.files_written")
        new_shards += recs["shards"]
        new_inputs += recs["inputs"]
        if new_id and pii:
            pii_rows += [
                {"run_id": old["run_id"], "shard_id": new_id, "entity": e, "count": n}
                for e, n in pii.items()
            ]
        superseded += [old["shard_id"], tok["shard_id"]]
        old_files += [old["path"], tok["path"], tok["path"][: -len(".bin")] + ".idx"]
        res.shards_rewritten.append((old["shard_id"], new_id))
        res.shards_rewritten.append((tok["shard_id"], new_tok_id))
        deleted(path, "text", old["shard_id"], new_id, (tok["shard_id"], new_tok_id))
    for path, old in sorted(old_rej.items()):
        new_id, recs = rewrite_rejected(
            root, old, doomed_by_path[path], old_inputs[old["shard_id"]], ts
        )
        new_shards += recs["shards"]
        new_inputs += recs["inputs"]
        superseded.append(old["shard_id"])
        old_files.append(old["path"])
        res.shards_rewritten.append((old["shard_id"], new_id))
        deleted(path, "rejected", old["shard_id"], new_id)

    if domain:
        block_rows = [
            {
                "url": None,
                "url_hash": None,
                "domain": domain,
                "added_at": ts,
                "deletion_id": res.deletion_id,
                "selector": selector,
            }
        ]
    else:
        stored = {r[3]: r[1] for v in found.values() for r in v if r[3]}
        block_rows = [
            {
                "url": stored.get(h),
                "url_hash": h,
                "domain": None,
                "added_at": ts,
                "deletion_id": res.deletion_id,
                "selector": selector,
            }
            for h in block_hashes
        ]

    assert store is not None
    with store.transaction() as con:
        for ddl in _MIGRATIONS:
            con.execute(ddl)
        if superseded:
            con.execute(
                "UPDATE shards SET status = 'superseded' WHERE shard_id IN (SELECT unnest(?))",
                [superseded],
            )
        # Idempotent inserts: rows a half-applied earlier attempt left are replaced.
        new_ids = [r["shard_id"] for r in new_shards]
        if new_ids:
            con.execute("DELETE FROM shards WHERE shard_id IN (SELECT unnest(?))", [new_ids])
            con.execute("DELETE FROM shard_inputs WHERE shard_id IN (SELECT unnest(?))", [new_ids])
            con.execute("DELETE FROM pii_stats WHERE shard_id IN (SELECT unnest(?))", [new_ids])
        store.insert_rows(con, "shards", new_shards)
        store.insert_rows(con, "shard_inputs", new_inputs)
        store.insert_rows(con, "pii_stats", pii_rows)
        store.insert_rows(con, "deletions", deletion_rows)
        existing = {
            (h, d)
            for h, d in con.execute(
                "SELECT coalesce(url_hash, ''), coalesce(domain, '') FROM url_blocklist"
            ).fetchall()
        }
        store.insert_rows(
            con,
            "url_blocklist",
            [b for b in block_rows if (b["url_hash"] or "", b["domain"] or "") not in existing],
        )
        if superseded:
            res.stale_mixes = [
                r[0]
                for r in con.execute(
                    "UPDATE mixes SET stale = true WHERE mix_id IN (SELECT mix_id FROM "
                    "mix_components WHERE shard_id IN (SELECT unnest(?))) RETURNING mix_id",
                    [superseded],
                ).fetchall()
            ]
    _fault("delete.committed")
    res.files_removed = remove_superseded_files(store, extra=old_files)
    _fault("delete.files_removed")
    purge_caches(store)
    res.seconds = time.perf_counter() - t0
    return res


def _fault(name: str) -> None:
    """Fault-injection hook (core/faults.py) for the kill-and-retry tests."""
    if os.environ.get("CCPIPE_KILL_AT"):
        from core import faults

        faults.point(name)


def purge_caches(store: LineageStore) -> list[str]:
    """Remove staged work (`<output>/_work/`) of every output this lineage records.

    Staged phase-1 results of an unfinished run were written before the deletion and hold the
    deleted pages (unscrubbed); a resumed run would finish them into new shards. The caller
    holds the output lock, so no run is using them; a resumed run redoes its work. The
    released-signature dedup index keeps deleted documents' signatures on purpose (no URL,
    no text): mirrors of the same content under other URLs stay dropped as duplicates.
    Idempotent; runs on every request. Returns the directories removed.
    """
    outs = [store.root]
    removed = []
    for out in outs:
        work = storage.join(out, "_work")
        if storage.exists(work):
            storage.delete_tree(work)
            removed.append(work)
    return removed


def _open_store(lineage_path: str | os.PathLike[str]) -> LineageStore:
    """The writer; retried briefly in case another lineage user (a second output sharing this
    lineage, a mix build) holds it for a short commit."""
    for attempt in range(20):
        try:
            return LineageStore(lineage_path)
        except duckdb.IOException:
            if attempt == 19:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def remove_superseded_files(store: LineageStore, extra: list[str] | None = None) -> list[str]:
    """Delete from disk every file of a superseded shard (and `extra`); returns what went."""
    paths = {resolve_path(store.root, p) for p in extra or []}
    for (p,) in store.query("SELECT path FROM shards WHERE status = 'superseded'"):
        p = resolve_path(store.root, p)
        paths.add(p)
        if p.endswith(".bin"):
            paths.add(p[: -len(".bin")] + ".idx")
    live = {
        resolve_path(store.root, p)
        for (p,) in store.query("SELECT path FROM shards WHERE status = 'live'")
    }
    live |= {p[: -len(".bin")] + ".idx" for p in live if p.endswith(".bin")}
    removed = []
    for p in sorted(paths - live):
        if storage.exists(p):
            fs, fp = storage.resolve(p)
            fs.delete_file(fp)
            removed.append(p)
    return removed
