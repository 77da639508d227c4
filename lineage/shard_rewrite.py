"""New versions of the shards a deletion request touches: the old shard minus its doomed rows.

Split out of lineage/delete.py (which owns finding documents and the lineage commit): this
module only reads old shard files and writes the new ones (`<name>.v<N>.parquet`,
`<name>.v<N>.bin/.idx`) with atomic writes, and returns the lineage rows describing them.
A text shard and its token shard are rewritten as a pair so they keep mirroring each other;
the token shard is sliced from the old `.bin` (no re-tokenization).

``root`` is the output root lineage paths are relative to (a deletion in a copied output
reads and writes the copy only); "" when the paths are absolute.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import storage
from lineage.store import resolve_path
from stages.token_shards import IndexedDataset, build_index_bytes

_VERSION_SUFFIX = re.compile(r"\.v\d+$")


class DeletionError(RuntimeError):
    """A request that cannot be carried out (remote shards, inconsistent token shard...)."""


def _abs(root: str, path: str) -> str:
    return resolve_path(root, path) if root else path


def versioned_base(shard_id: str, suffix: str) -> str:
    """`en/high/x-cfg.parquet` -> `en/high/x-cfg` (also strips an existing `.vN`)."""
    base = shard_id[: -len(suffix)] if shard_id.endswith(suffix) else shard_id
    return _VERSION_SUFFIX.sub("", base)


def _pii_totals(col: pa.ChunkedArray | None) -> dict[str, int]:
    total: Counter[str] = Counter()
    if col is None:
        return {}
    for v in col.to_pylist():
        if v and v != "{}":
            total.update(json.loads(v))
    return dict(sorted(total.items()))


def _row_group_size(root: str, path: str) -> int:
    fs, p = storage.resolve(_abs(root, path))
    with fs.open_input_file(p) as f:
        md = pq.ParquetFile(f).metadata
    return max([md.row_group(i).num_rows for i in range(md.num_row_groups)] or [2000])


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


def _read_table(root: str, path: str) -> pa.Table:
    fs, p = storage.resolve(_abs(root, path))
    return pq.read_table(p, filesystem=fs)


@contextlib.contextmanager
def _token_shard(root: str, bin_path: str) -> Iterator[IndexedDataset]:
    """The token shard as an IndexedDataset; an object-store pair is fetched to a temp dir."""
    prefix = _abs(root, bin_path)[: -len(".bin")]
    if not storage.is_remote(prefix):
        yield IndexedDataset(prefix)
        return
    with tempfile.TemporaryDirectory(prefix="ccpipe-delete-") as tmp:
        local = os.path.join(tmp, "shard")
        for ext in (".bin", ".idx"):
            Path(local + ext).write_bytes(storage.read_bytes(prefix + ext))
        yield IndexedDataset(local)


def new_shard_ids(old: dict, tok: dict | None = None) -> tuple[str, str | None]:
    """Ids of the next version of text/audit shard `old` (and its token shard `tok`)."""
    version = int(old["version"] or 1) + 1
    text_id = f"{versioned_base(old['shard_id'], '.parquet')}.v{version}.parquet"
    tok_id = f"{versioned_base(tok['shard_id'], '.bin')}.v{version}.bin" if tok else None
    return text_id, tok_id


def _keep_mask(doc_ids: pa.ChunkedArray | pa.Array, doomed: dict[str, Any]) -> pa.Array:
    """Rows that stay: the one rule for both the rewrite and a dry run's count."""
    return pc.invert(pc.is_in(doc_ids, value_set=pa.array(list(doomed), pa.string())))


def remaining_docs(root: str, path: str, doomed: dict[str, Any]) -> int:
    """Documents shard `path` keeps once `doomed` go (a dry run's answer; reads `doc_id`)."""
    fs, p = storage.resolve(_abs(root, path))
    ids = pq.read_table(p, filesystem=fs, columns=["doc_id"]).column("doc_id")
    return int(pc.sum(_keep_mask(ids, doomed).cast(pa.int64())).as_py() or 0)


def planned_ids(
    root: str, old: dict, tok: dict | None, doomed: dict[str, Any]
) -> tuple[str | None, str | None]:
    """What `rewrite_text_pair` / `rewrite_rejected` will name the new versions, or
    (None, None) when no document remains: the dry run reports exactly the real run."""
    if remaining_docs(root, old["path"], doomed) == 0:
        return None, None
    return new_shard_ids(old, tok)


def rewrite_text_pair(
    root: str, old: dict, tok: dict, doomed: dict[str, Any], sources: list[str], ts: Any
) -> tuple[str | None, str | None, dict, dict[str, int]]:
    """New text + token shard without `doomed` doc ids; (None, None) if nothing remains."""
    table = _read_table(root, old["path"])
    kept = table.filter(_keep_mask(table.column("doc_id"), doomed))
    with _token_shard(root, tok["path"]) as ds:
        return _rewrite_pair(root, old, tok, table, kept, ds, sources, ts)


def _rewrite_pair(
    root: str,
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
    new_text_id, new_tok_id = new_shard_ids(old, tok)
    assert new_tok_id is not None
    text_dir = old["path"][: -len(old["shard_id"])]  # lineage paths: <dir> + shard_id
    tok_dir = tok["path"][: -len(tok["shard_id"])]
    new_text_path, new_tok_path = text_dir + new_text_id, tok_dir + new_tok_id
    bin_b = flat.tobytes()
    idx_b = build_index_bytes(new_lengths, ds.dtype)
    # Token shard first, text shard last (the pipeline's order: text implies tokens).
    storage.write_bytes_atomic(_abs(root, new_tok_path), bin_b)
    storage.write_bytes_atomic(_abs(root, new_tok_path[: -len(".bin")] + ".idx"), idx_b)
    n_bytes, sha = storage.write_parquet_atomic(
        _abs(root, new_text_path), kept, _row_group_size(root, old["path"])
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


def rewrite_rejected(
    root: str, old: dict, doomed: dict[str, Any], sources: list[str], ts: Any
) -> tuple[str | None, dict]:
    table = _read_table(root, old["path"])
    kept = table.filter(_keep_mask(table.column("doc_id"), doomed))
    if kept.num_rows == 0:
        return None, {"shards": [], "inputs": []}
    new_id, _ = new_shard_ids(old)
    new_path = old["path"][: -len(old["shard_id"])] + new_id
    n_bytes, sha = storage.write_parquet_atomic(
        _abs(root, new_path), kept, _row_group_size(root, old["path"])
    )
    rec = _new_record(old, new_id, new_path, ts, n_docs=kept.num_rows, n_bytes=n_bytes, sha256=sha)
    return new_id, {"shards": [rec], "inputs": _input_rows(new_id, kept, sources)}
