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
Shards on an object store (s3://, gs://) are read and written through `core.storage`; a
token shard is fetched to a temporary directory to be sliced.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from core.urls import domain_forms, is_public_suffix, normalize_domain, url_hash
from lineage.blocklist import register_url_functions
from lineage.store import LineageStore, connect_snapshot, open_reader, output_root, resolve_path
from lineage.writer import now
from stages.token_shards import IndexedDataset, build_index_bytes

# Columns a deletion adds to tables created by older schema versions.
_MIGRATIONS = (
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS kind VARCHAR",
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS old_token_shard_id VARCHAR",
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS new_token_shard_id VARCHAR",
    "ALTER TABLE url_blocklist ADD COLUMN IF NOT EXISTS selector VARCHAR",
    "ALTER TABLE url_blocklist ADD COLUMN IF NOT EXISTS url_hash VARCHAR",
    "ALTER TABLE deletions ADD COLUMN IF NOT EXISTS url_hash VARCHAR",
)
_VERSION_SUFFIX = re.compile(r"\.v\d+$")


# Output root of the request being carried out: lineage paths are relative to it, so a
# deletion in a copied output reads and writes the copy only.
_ROOT: contextvars.ContextVar[str] = contextvars.ContextVar("ccpipe_delete_root", default="")


def _abs(path: str) -> str:
    return resolve_path(_ROOT.get(), path) if _ROOT.get() else path


class DeletionError(RuntimeError):
    """A request that cannot be carried out (remote shards, inconsistent token shard...)."""


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


def read_url_file(path: str | os.PathLike[str]) -> list[str]:
    """One URL per line; blank lines and `#` comments ignored; order kept, duplicates dropped."""
    seen: dict[str, None] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            seen[line] = None
    return list(seen)


def versioned_base(shard_id: str, suffix: str) -> str:
    """`en/high/x-cfg.parquet` -> `en/high/x-cfg` (also strips an existing `.vN`)."""
    base = shard_id[: -len(suffix)] if shard_id.endswith(suffix) else shard_id
    return _VERSION_SUFFIX.sub("", base)


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


def _pii_totals(col: pa.ChunkedArray | None) -> dict[str, int]:
    total: Counter[str] = Counter()
    if col is None:
        return {}
    for v in col.to_pylist():
        if v and v != "{}":
            total.update(json.loads(v))
    return dict(sorted(total.items()))


def _row_group_size(path: str) -> int:
    fs, p = storage.resolve(_abs(path))
    with fs.open_input_file(p) as f:
        md = pq.ParquetFile(f).metadata
    return max([md.row_group(i).num_rows for i in range(md.num_row_groups)] or [2000])


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
        _ROOT.set(output_root(lineage_path, con))
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
        res.shards_rewritten = [
            (r["shard_id"], None) for r in [*old_text.values(), *old_rej.values()]
        ]
        res.seconds = time.perf_counter() - t0
        return res

    new_shards: list[dict[str, Any]] = []
    new_inputs: list[dict[str, Any]] = []
    pii_rows: list[dict[str, Any]] = []
    deletion_rows: list[dict[str, Any]] = []
    superseded: list[str] = []
    old_files: list[str] = []
    ts = now()

    for path, old in sorted(old_text.items()):
        tok = old_tok.get(old["shard_id"])
        if tok is None:
            raise DeletionError(f"text shard {old['shard_id']} has no live token shard")
        new_id, new_tok_id, recs, pii = _rewrite_text_pair(
            old, tok, doomed_by_path[path], old_inputs[old["shard_id"]], ts
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
        for doc_id, (url, h) in sorted(doomed_by_path[path].items()):
            deletion_rows.append(
                {
                    "deletion_id": res.deletion_id,
                    "requested_at": ts,
                    "selector": selector,
                    "doc_id": doc_id,
                    "url": url,
                    "url_hash": h,
                    "old_shard_id": old["shard_id"],
                    "new_shard_id": new_id,
                    "kind": "text",
                    "old_token_shard_id": tok["shard_id"],
                    "new_token_shard_id": new_tok_id,
                }
            )
    for path, old in sorted(old_rej.items()):
        new_id, recs = _rewrite_rejected(old, doomed_by_path[path], old_inputs[old["shard_id"]], ts)
        new_shards += recs["shards"]
        new_inputs += recs["inputs"]
        superseded.append(old["shard_id"])
        old_files.append(old["path"])
        res.shards_rewritten.append((old["shard_id"], new_id))
        for doc_id, (url, h) in sorted(doomed_by_path[path].items()):
            deletion_rows.append(
                {
                    "deletion_id": res.deletion_id,
                    "requested_at": ts,
                    "selector": selector,
                    "doc_id": doc_id,
                    "url": url,
                    "url_hash": h,
                    "old_shard_id": old["shard_id"],
                    "new_shard_id": new_id,
                    "kind": "rejected",
                    "old_token_shard_id": None,
                    "new_token_shard_id": None,
                }
            )

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


def _new_record(old: dict[str, Any], shard_id: str, path: str, ts: Any, **fields) -> dict:
    rec = {
        **old,
        "shard_id": shard_id,
        "path": path,
        "version": int(old["version"] or 1) + 1,
        "status": "live",
        "created_at": ts,
    }
    rec.update(fields)
    return rec


def _input_rows(shard_id: str, table: pa.Table, sources: list[str]) -> list[dict[str, Any]]:
    rows = []
    src = table.column("source_uri")
    for s in sorted(set(sources) | set(src.unique().to_pylist()) - {None}):
        part = table.filter(pc.equal(src, s))
        if part.num_rows == 0:
            continue
        off = part.column("source_offset")
        rows.append(
            {
                "shard_id": shard_id,
                "source_uri": s,
                "n_docs": part.num_rows,
                "first_offset": pc.min(off).as_py(),
                "last_offset": pc.max(off).as_py(),
            }
        )
    return rows


def _read_table(path: str) -> pa.Table:
    fs, p = storage.resolve(_abs(path))
    return pq.read_table(p, filesystem=fs)


@contextlib.contextmanager
def _token_shard(bin_path: str) -> Iterator[IndexedDataset]:
    """The token shard as an IndexedDataset; an object-store pair is fetched to a temp dir."""
    prefix = _abs(bin_path)[: -len(".bin")]
    if not storage.is_remote(prefix):
        yield IndexedDataset(prefix)
        return
    with tempfile.TemporaryDirectory(prefix="ccpipe-delete-") as tmp:
        local = os.path.join(tmp, "shard")
        for ext in (".bin", ".idx"):
            Path(local + ext).write_bytes(storage.read_bytes(prefix + ext))
        yield IndexedDataset(local)


def _rewrite_text_pair(
    old: dict, tok: dict, doomed: dict[str, Any], sources: list[str], ts: Any
) -> tuple[str | None, str | None, dict, dict[str, int]]:
    """New text + token shard without `doomed` doc ids; (None, None) if nothing remains."""
    table = _read_table(old["path"])
    keep = pc.invert(pc.is_in(table.column("doc_id"), value_set=pa.array(list(doomed))))
    kept = table.filter(keep)
    with _token_shard(tok["path"]) as ds:
        return _rewrite_pair(old, tok, table, kept, ds, sources, ts)


def _rewrite_pair(
    old: dict,
    tok: dict,
    table: pa.Table,
    kept: pa.Table,
    ds: IndexedDataset,
    sources: list[str],
    ts: Any,
) -> tuple[str | None, str | None, dict, dict]:
    rows = kept.column("shard_row").to_numpy()
    lengths = np.asarray(ds.lengths, dtype=np.int64)
    if len(ds) != table.num_rows or not np.array_equal(
        lengths, table.column("n_tokens").to_numpy().astype(np.int64)
    ):
        raise DeletionError(f"token shard {tok['shard_id']} does not mirror {old['shard_id']}")
    if kept.num_rows == 0:
        return None, None, {"shards": [], "inputs": []}, {}
    new_lengths = lengths[rows]
    flat = (
        np.concatenate([ds[int(i)] for i in rows]) if rows.size else np.empty(0, ds.dtype)
    ).astype(ds.dtype.newbyteorder("<"), copy=False)
    starts = np.concatenate([[0], np.cumsum(new_lengths)[:-1]]).astype(np.int64)
    kept = kept.set_column(
        kept.column_names.index("token_start"), "token_start", pa.array(starts, pa.int64())
    )
    kept = kept.set_column(
        kept.column_names.index("shard_row"),
        "shard_row",
        pa.array(np.arange(kept.num_rows), pa.int64()),
    )
    version = int(old["version"] or 1) + 1
    text_base = versioned_base(old["shard_id"], ".parquet")
    tok_base = versioned_base(tok["shard_id"], ".bin")
    new_text_id = f"{text_base}.v{version}.parquet"
    new_tok_id = f"{tok_base}.v{version}.bin"
    root = old["path"][: -len(old["shard_id"])]
    tok_root = tok["path"][: -len(tok["shard_id"])]
    new_text_path, new_tok_path = root + new_text_id, tok_root + new_tok_id
    bin_b = flat.tobytes()
    idx_b = build_index_bytes(new_lengths, ds.dtype)
    # Token shard first, text shard last (the pipeline's order: text implies tokens).
    storage.write_bytes_atomic(_abs(new_tok_path), bin_b)
    storage.write_bytes_atomic(_abs(new_tok_path[: -len(".bin")] + ".idx"), idx_b)
    n_bytes, sha = storage.write_parquet_atomic(
        _abs(new_text_path), kept, _row_group_size(old["path"])
    )
    n_tok = int(new_lengths.sum())
    shards = [
        _new_record(
            old,
            new_text_id,
            new_text_path,
            ts,
            n_docs=kept.num_rows,
            n_bytes=n_bytes,
            sha256=sha,
            n_tokens=n_tok,
        ),
        _new_record(
            tok,
            new_tok_id,
            new_tok_path,
            ts,
            n_docs=kept.num_rows,
            n_bytes=len(bin_b),
            sha256=hashlib.sha256(bin_b).hexdigest(),
            n_tokens=n_tok,
            mirrors_shard=new_text_id,
        ),
    ]
    inputs = _input_rows(new_text_id, kept, sources) + _input_rows(new_tok_id, kept, sources)
    pii = _pii_totals(kept.column("pii_counts")) if "pii_counts" in kept.column_names else {}
    return new_text_id, new_tok_id, {"shards": shards, "inputs": inputs}, pii


def _rewrite_rejected(
    old: dict, doomed: dict[str, Any], sources: list[str], ts: Any
) -> tuple[str | None, dict]:
    table = _read_table(old["path"])
    kept = table.filter(
        pc.invert(pc.is_in(table.column("doc_id"), value_set=pa.array(list(doomed))))
    )
    if kept.num_rows == 0:
        return None, {"shards": [], "inputs": []}
    version = int(old["version"] or 1) + 1
    new_id = f"{versioned_base(old['shard_id'], '.parquet')}.v{version}.parquet"
    new_path = old["path"][: -len(old["shard_id"])] + new_id
    n_bytes, sha = storage.write_parquet_atomic(_abs(new_path), kept, _row_group_size(old["path"]))
    rec = _new_record(old, new_id, new_path, ts, n_docs=kept.num_rows, n_bytes=n_bytes, sha256=sha)
    return new_id, {"shards": [rec], "inputs": _input_rows(new_id, kept, sources)}
