"""Deterministic, resumable sample stream over a built mix (what a training job iterates).

Semantics (also in mixes/README.md):

- Each source's shards (manifest order) are one virtual token stream of T tokens. Sample k of
  a source is the window of ``seq_length + 1`` tokens starting at token ``k * seq_length``
  (consecutive samples overlap by one token, as Megatron's GPTDataset: inputs = ``[:-1]``,
  targets = ``[1:]``), so a source has ``A = (T - 1) // seq_length`` samples. Windows cross
  document and shard boundaries; documents are separated by the EOS token the tokenizer stage
  appended.
- The mix has ``N = target_tokens // seq_length`` samples. Source s gets exactly ``n_s`` of
  them (largest-remainder apportionment of N by weight, computed at build time and stored in
  the manifest), so its token share is exact up to one sample.
- Which source serves global sample i: a seeded shuffle of the multiset {s repeated n_s times}
  (like Megatron's BlendedDataset index arrays, but shuffled rather than greedy). The j-th
  sample drawn from source s is window ``perm_{s,e}[j mod A]`` of epoch ``e = j // A``, with
  ``perm_{s,e}`` a seeded permutation of ``range(A)``: downsampled sources (n_s < A) use a
  random subset of their windows, upsampled ones use every window of an epoch once.
- Epochs re-cut the windows, as Megatron's GPTDataset does by shuffling its document index:
  epoch 0 reads the source's documents in shard order; every later epoch e reads them in a
  seeded permutation of the documents (seed, source, e), so an upsampled source's windows in
  epoch 1 are not the windows of epoch 0 again. (A window can still coincide when a document
  longer than a window happens to start at the same offset modulo seq_length in two epochs;
  at seq_length >> document length that is rare.)
- Everything is a pure function of (manifest, seed, i), so ``iter_from(k)`` after a restart
  yields exactly what the uninterrupted stream yielded from position k on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mixes.plan import MANIFEST_FORMAT
from stages.token_shards import IndexedDataset


class MixSample(NamedTuple):
    """One training sample: global index, source name, seq_length + 1 token ids (int64)."""

    index: int
    source: str
    tokens: np.ndarray


class _SourceStream:
    """A source's shards as one token stream, read through IndexedDataset (memmap)."""

    def __init__(self, name: str, shards: list[dict[str, Any]], seq_length: int) -> None:
        self.name = name
        self.datasets: list[IndexedDataset] = []
        self.starts: list[np.ndarray] = []
        for e in shards:
            ds = IndexedDataset(e["prefix"])
            if ds.n_tokens != int(e["n_tokens"]):
                raise ValueError(
                    f"{e['prefix']}: {ds.n_tokens} tokens on disk but the manifest says "
                    f"{e['n_tokens']}; the shard changed since the mix was built, rebuild it"
                )
            self.datasets.append(ds)
            self.starts.append(ds.token_offsets())
        sizes = np.array([ds.n_tokens for ds in self.datasets], dtype=np.int64)
        self.cum = np.concatenate([[0], np.cumsum(sizes)])
        self.n_tokens = int(self.cum[-1])
        self.seq_length = seq_length
        self.available_samples = max(self.n_tokens - 1, 0) // seq_length
        self._docs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._order: tuple[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = None

    def _read_shard(self, k: int, a: int, b: int) -> np.ndarray:
        ds, starts = self.datasets[k], self.starts[k]
        i0 = int(np.searchsorted(starts, a, side="right")) - 1
        i1 = int(np.searchsorted(starts, b, side="left"))
        flat = np.concatenate([ds[i] for i in range(i0, i1)])
        off = a - int(starts[i0])
        return flat[off : off + (b - a)]

    def read(self, a: int, b: int) -> np.ndarray:
        """Tokens [a, b) of the stream as int64."""
        pieces = []
        while a < b:
            k = int(np.searchsorted(self.cum, a, side="right")) - 1
            end = min(b, int(self.cum[k + 1]))
            pieces.append(self._read_shard(k, a - int(self.cum[k]), end - int(self.cum[k])))
            a = end
        return np.concatenate(pieces).astype(np.int64, copy=False)

    def sample(self, k: int, epoch: int = 0, seed: int = 0, source: int = 0) -> np.ndarray:
        """Window k of `epoch`: epoch 0 in shard order, later epochs over shuffled documents."""
        start = k * self.seq_length
        if epoch == 0:
            return self.read(start, start + self.seq_length + 1)
        return self._read_shuffled(
            self._epoch_order(epoch, seed, source), start, start + self.seq_length + 1
        )

    def _documents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(length, shard index, index in shard) of every document of the stream, in order."""
        if self._docs is None:
            lens = [np.asarray(ds.lengths, dtype=np.int64) for ds in self.datasets]
            self._docs = (
                np.concatenate(lens) if lens else np.empty(0, dtype=np.int64),
                np.concatenate([np.full(x.size, k, dtype=np.int32) for k, x in enumerate(lens)])
                if lens
                else np.empty(0, dtype=np.int32),
                np.concatenate([np.arange(x.size, dtype=np.int64) for x in lens])
                if lens
                else np.empty(0, dtype=np.int64),
            )
        return self._docs

    def _epoch_order(self, epoch: int, seed: int, source: int) -> tuple[np.ndarray, np.ndarray]:
        """Seeded document permutation of `epoch` and the token offset where each starts."""
        if self._order is not None and self._order[0] == (epoch, seed):
            return self._order[1]
        lens, _, _ = self._documents()
        order = np.random.default_rng([seed, 2, source, epoch]).permutation(lens.size)
        starts = np.concatenate([[0], np.cumsum(lens[order])])
        self._order = ((epoch, seed), (order, starts))
        return order, starts

    def _read_shuffled(
        self, epoch_order: tuple[np.ndarray, np.ndarray], a: int, b: int
    ) -> np.ndarray:
        """Tokens [a, b) of the stream whose documents come in `epoch_order`."""
        order, starts = epoch_order
        _, shard, local = self._documents()
        i = int(np.searchsorted(starts, a, side="right")) - 1
        pieces = []
        while a < b:
            d = int(order[i])
            doc = self.datasets[int(shard[d])][int(local[d])]
            lo, hi = a - int(starts[i]), min(b, int(starts[i + 1])) - int(starts[i])
            pieces.append(doc[lo:hi])
            a += hi - lo
            i += 1
        return np.concatenate(pieces).astype(np.int64, copy=False)


class MixLoader:
    """``MixLoader(manifest, seed).iter_from(sample_index)``: the mix as fixed-length samples.

    ``manifest`` is the path of a build's manifest.json or its parsed dict; ``seed`` defaults to
    the mix's seed. ``len(loader)`` is the number of samples (target_tokens // seq_length);
    ``loader[i]`` is random access.
    """

    def __init__(self, manifest: str | os.PathLike[str] | dict[str, Any], seed: int | None = None):
        if not isinstance(manifest, dict):
            manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a mix manifest (format {manifest.get('format')!r})")
        self.manifest = manifest
        self.seed = int(manifest["seed"] if seed is None else seed)
        self.seq_length = int(manifest["seq_length"])
        self.source_names = [s["name"] for s in manifest["sources"]]
        counts = np.array([int(s["n_samples"]) for s in manifest["sources"]], dtype=np.int64)
        self.source_samples = dict(zip(self.source_names, counts.tolist(), strict=True))
        by_source: dict[str, list[dict[str, Any]]] = {n: [] for n in self.source_names}
        for e in manifest["shards"]:
            by_source[e["source"]].append(e)
        self.streams = [_SourceStream(n, by_source[n], self.seq_length) for n in self.source_names]
        for st, n in zip(self.streams, counts, strict=True):
            if n > 0 and st.available_samples == 0:
                raise ValueError(f"source {st.name!r} has no full sample of seq_length + 1")
        self.n_samples = int(counts.sum())
        # Global index -> (source, j-th draw from that source): seeded shuffle of exact counts.
        rng = np.random.default_rng([self.seed, 0])
        order = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        rng.shuffle(order)
        self._source_of = order
        self._rank = np.empty(self.n_samples, dtype=np.int64)
        for s in range(len(counts)):
            pos = np.flatnonzero(order == s)
            self._rank[pos] = np.arange(pos.size, dtype=np.int64)
        self._perm_cache: dict[int, tuple[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.n_samples

    def _perm(self, s: int, epoch: int) -> np.ndarray:
        hit = self._perm_cache.get(s)
        if hit is not None and hit[0] == epoch:
            return hit[1]
        a = self.streams[s].available_samples
        perm = np.random.default_rng([self.seed, 1, s, epoch]).permutation(a)
        self._perm_cache[s] = (epoch, perm)
        return perm

    def locate(self, i: int) -> tuple[str, int, int]:
        """(source, epoch, window index within that epoch of the source) of global sample i."""
        if not 0 <= i < self.n_samples:
            raise IndexError(f"sample {i} out of range for {self.n_samples} samples")
        s = int(self._source_of[i])
        j = int(self._rank[i])
        a = self.streams[s].available_samples
        epoch, pos = divmod(j, a)
        return self.source_names[s], epoch, int(self._perm(s, epoch)[pos])

    def __getitem__(self, i: int) -> MixSample:
        if not 0 <= i < self.n_samples:
            raise IndexError(f"sample {i} out of range for {self.n_samples} samples")
        s = int(self._source_of[i])
        _, epoch, k = self.locate(i)
        tokens = self.streams[s].sample(k, epoch, self.seed, s)
        return MixSample(i, self.source_names[s], tokens)

    def sources(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Source name of every sample in [start, stop) without reading tokens."""
        names = np.array(self.source_names, dtype=object)
        return names[self._source_of[start:stop]]

    def iter_from(self, sample_index: int = 0) -> Iterator[MixSample]:
        """Samples sample_index, sample_index + 1, ...: resume here after a restart."""
        if not 0 <= sample_index <= self.n_samples:
            raise IndexError(f"resume index {sample_index} outside [0, {self.n_samples}]")
        for i in range(sample_index, self.n_samples):
            yield self[i]

    def __iter__(self) -> Iterator[MixSample]:
        return self.iter_from(0)
