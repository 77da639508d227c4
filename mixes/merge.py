"""Keep a Megatron blend under its dataset limit by merging a source's token shards.

Megatron-LM's ``BlendedDataset`` asserts ``len(datasets) < 32767`` (its dataset index is an
int16 array), and ``--data-path`` makes one dataset per prefix. A run over thousands of WARCs
can have more token shards than that, so ``mixes build`` groups each source's shards and
concatenates every group of two or more into one ``.bin``/``.idx`` pair:

- Groups never cross sources. All shards of a source have the same epochs, so a merged prefix
  gets exactly the summed blend weight of its members and the blend's token shares are
  unchanged.
- The prefix budget is split over sources in proportion to their shard counts (at least one
  each). Within a source, shards keep their lineage order (shard_id); a shard at least the
  source's average group size stays alone (no copy), runs of smaller neighbours are packed
  into groups up to that size. Large shards are therefore never copied; small tails are.
- A merged file is named by the hash of its members' (shard_id, version, sha256), so
  rebuilding a mix (or another mix with the same groups) reuses it instead of copying again,
  and a rewritten shard (new version) gives a new name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import storage
from mixes.plan import MEGATRON_MAX_PREFIXES, largest_remainder
from stages.token_shards import IndexedDataset, build_index_bytes

__all__ = [
    "MEGATRON_MAX_PREFIXES",
    "ensure_merged_all",
    "group_shards",
    "merge_indexed_datasets",
    "merged_name",
    "prefix_budgets",
]


def prefix_budgets(shard_counts: Sequence[int], max_prefixes: int) -> list[int]:
    """Prefixes each source may use: all its shards if everything fits, else a proportional
    share (at least 1, at most its shard count) of `max_prefixes`."""
    n = len(shard_counts)
    if sum(shard_counts) <= max_prefixes:
        return list(shard_counts)
    if n > max_prefixes:
        raise ValueError(f"{n} sources need at least {n} prefixes; the limit is {max_prefixes}")
    extra = largest_remainder(max_prefixes - n, [max(c, 1) for c in shard_counts])
    return [min(c, 1 + e) for c, e in zip(shard_counts, extra, strict=True)]


def group_shards(sizes: Sequence[int], budget: int) -> list[list[int]]:
    """Split shard indices 0..n-1 (in order) into at most `budget` contiguous groups.

    Shards of at least the target size (total / budget) stay alone; smaller neighbours are
    packed into groups up to the target (next fit). If that makes too many groups the target
    grows by 25% and packing repeats; at a target above the total everything is one group.
    """
    n = len(sizes)
    if budget < 1:
        raise ValueError("budget must be >= 1")
    if n <= budget:
        return [[i] for i in range(n)]
    target = max(sum(sizes) / budget, 1.0)
    while True:
        groups: list[list[int]] = []
        cur: list[int] = []
        cur_size = 0
        for i, size in enumerate(sizes):
            if size >= target:
                if cur:
                    groups.append(cur)
                    cur, cur_size = [], 0
                groups.append([i])
                continue
            if cur and cur_size + size > target:
                groups.append(cur)
                cur, cur_size = [], 0
            cur.append(i)
            cur_size += size
        if cur:
            groups.append(cur)
        if len(groups) <= budget:
            return groups
        target *= 1.25


def merged_name(source: str, members: Sequence[dict[str, Any]]) -> str:
    """Content-addressed file name (without extension) of a merged group."""
    h = hashlib.sha256()
    for e in members:
        h.update(f"{e['shard_id']}\t{e['version']}\t{e['sha256']}\n".encode())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in source)
    return f"{safe}-{h.hexdigest()[:20]}"


def _write_merged(prefixes: Sequence[str], tmp_bin: str, tmp_idx: str) -> int:
    """Write the concatenated .bin and rebuilt .idx of `prefixes` to the given (temporary)
    paths; returns the token count."""
    datasets = [IndexedDataset(p) for p in prefixes]
    dtypes = {ds.dtype.name for ds in datasets}
    if len(dtypes) != 1:
        raise ValueError(f"cannot merge token shards of different dtypes {sorted(dtypes)}")
    dtype = datasets[0].dtype
    lengths = np.concatenate([np.asarray(ds.lengths, dtype=np.int64) for ds in datasets])
    with open(tmp_bin, "wb") as out:
        for p in prefixes:
            with open(f"{p}.bin", "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    with open(tmp_idx, "wb") as out:
        out.write(build_index_bytes(lengths, dtype))
    return int(lengths.sum())


def merge_indexed_datasets(prefixes: Sequence[str], out_prefix: str | os.PathLike[str]) -> dict:
    """Concatenate Megatron indexed datasets into one (documents in the given order).

    The .bin files are streamed byte for byte; the .idx is rebuilt from the concatenated
    sequence lengths (the result equals writing all documents as one shard).
    """
    ensure_merged_all([(list(prefixes), str(out_prefix), None)])
    ds = IndexedDataset(out_prefix)
    return {"n_docs": len(ds), "n_tokens": ds.n_tokens, "dtype": ds.dtype.name}


def ensure_merged_all(jobs: Sequence[tuple[Sequence[str], str, int | None]]) -> int:
    """Write every merged file `(member prefixes, out prefix, expected tokens)` that is not
    already there with the expected token count; returns how many were written.

    All new files are written under temporary names (core.storage.atomic_path), flushed to
    disk with one `os.sync()` (one flush instead of two fsyncs per file: 17k merges at
    10k-WARC scale), then renamed into place, .bin before .idx, so an existing .idx always
    sits next to its complete .bin and a crash leaves only temporary files, never a visible
    partial merge.
    """
    written = 0
    with contextlib.ExitStack() as publish:  # renames run when the block ends, last in first
        for prefixes, out_prefix, n_tokens in jobs:
            if n_tokens is not None:
                try:
                    if IndexedDataset(out_prefix).n_tokens == n_tokens:
                        continue
                except (FileNotFoundError, ValueError):
                    pass
            Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
            # .idx entered first so that its rename runs after the .bin's
            tmp_idx = publish.enter_context(storage.atomic_path(f"{out_prefix}.idx", fsync=False))
            tmp_bin = publish.enter_context(storage.atomic_path(f"{out_prefix}.bin", fsync=False))
            got = _write_merged(prefixes, tmp_bin, tmp_idx)
            written += 1
            if n_tokens is not None and got != n_tokens:
                raise ValueError(
                    f"{out_prefix}: merged {got} tokens but lineage says {n_tokens}; "
                    f"a member shard changed on disk"
                )
        if written:
            os.sync()
    return written
