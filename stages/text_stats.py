"""Per-document splitting (lines, paragraphs, words, word n-grams) done once per batch.

Why: Gopher, C4 and FineWeb rules all look at the same lines and words. Splitting them once,
for the whole Arrow batch at a time (Arrow's C++ string kernels, then numpy over flat arrays
with a per-element document index) is what makes the quality stage fast: there is no Python
loop over documents or words here. Every rule reads the cached pieces of :class:`TextStats`.

Word splitting: whitespace-separated tokens, except that every character of a script written
without spaces (default Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar, Tibetan; Hangul is
spaced and stays word-based) is one word ("char unit"), together with its combining marks. So a
Chinese paragraph of 300 characters has about 300 words, and word-count rules work for it.
Documents of a language with a segmenter (stages/segment.py) take their words from it instead
(``segmented``/``use_segmented``): real words, so n-gram repetition is about words, not letters.
Identity of words/lines/n-grams within a batch comes from Arrow's ``dictionary_encode``
(exact), n-grams are combined with a 64-bit mix of those ids (collision chance ~n²/2⁶⁴).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DEFAULT_CHAR_UNIT_SCRIPTS",
    "Segments",
    "TextStats",
    "duplicates",
    "per_doc_sum",
]

DEFAULT_CHAR_UNIT_SCRIPTS: tuple[str, ...] = (
    "Han",
    "Hiragana",
    "Katakana",
    "Thai",
    "Lao",
    "Khmer",
    "Myanmar",
    "Tibetan",
)

# Characters trimmed from word ends for the "core" word (mean length, stop words).
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«»‹›“”„‘’‚…–—·•¡¿、。，！？：；（）【】《》「」『』〈〉"
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over a uint64 array (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def per_doc_sum(doc: np.ndarray, weights: np.ndarray | None, n_docs: int) -> np.ndarray:
    """Sum (or count, without weights) of flat elements per document."""
    return np.bincount(doc, weights=weights, minlength=n_docs)[:n_docs]


def duplicates(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For flat keys (already unique per document): (is_repeat, group_count) per element.

    ``is_repeat`` is True for every occurrence after the first (in array order), which is the
    Gopher/datatrove notion of a duplicate; ``group_count`` is how often the key occurs.
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, np.int64)
    order = np.argsort(keys)
    sk = keys[order]
    same = sk[1:] == sk[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    sizes = np.diff(np.concatenate((starts, [n])))
    first = np.repeat(np.minimum.reduceat(order, starts), sizes)
    rep = np.empty(n, bool)
    rep[order] = order != first
    counts = np.empty(n, np.int64)
    counts[order] = np.repeat(sizes, sizes)
    return rep, counts


@dataclass
class Segments:
    """Flat pieces of all documents of a batch: ``values[i]`` belongs to document ``doc[i]``."""

    values: pa.Array
    doc: np.ndarray
    n_docs: int

    @cached_property
    def lengths(self) -> np.ndarray:
        """Length of each piece in code points."""
        return np.asarray(pc.utf8_length(self.values).to_numpy(zero_copy_only=False), np.int64)

    @cached_property
    def ids(self) -> np.ndarray:
        """Exact identity of each piece within the batch (dictionary code)."""
        enc = pc.dictionary_encode(self.values)
        return np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)

    @cached_property
    def count(self) -> np.ndarray:
        """Number of pieces per document."""
        return per_doc_sum(self.doc, None, self.n_docs).astype(np.int64)

    def doc_keys(self) -> np.ndarray:
        """Keys unique per (document, piece value): equal pieces in other docs differ."""
        n_ids = int(self.ids.max()) + 1 if len(self.ids) else 1
        return self.doc * n_ids + self.ids

    def repeated(self) -> tuple[np.ndarray, np.ndarray]:
        """Per document: (number of repeated pieces, code points in repeated pieces)."""
        rep, _ = duplicates(self.doc_keys())
        n = per_doc_sum(self.doc[rep], None, self.n_docs)
        chars = per_doc_sum(self.doc[rep], self.lengths[rep].astype(np.float64), self.n_docs)
        return n.astype(np.int64), chars

    def mask(self, pattern: str, ignore_case: bool = False) -> np.ndarray:
        """Boolean per piece: the RE2 ``pattern`` matches somewhere in it."""
        if len(self.values) == 0:
            return np.zeros(0, bool)
        m = pc.match_substring_regex(self.values, pattern, ignore_case=ignore_case)
        return np.asarray(m.to_numpy(zero_copy_only=False), bool)

    def select(self, keep: np.ndarray) -> Segments:
        """The pieces where ``keep`` is True (document indices preserved)."""
        idx = np.flatnonzero(keep)
        return Segments(self.values.take(pa.array(idx)), self.doc[idx], self.n_docs)


def _flat_split(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    doc = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), np.int64)
    return pc.list_flatten(lists), doc


class TextStats:
    """Lazily computed, cached splits of a batch of texts; each split is done at most once."""

    def __init__(
        self,
        text: pa.Array | pa.ChunkedArray,
        char_unit_scripts: tuple[str, ...] | list[str],
        segmented: dict[int, str] | None = None,
    ) -> None:
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks() if text.num_chunks else pa.array([], pa.large_string())
        text = pc.fill_null(text.cast(pa.large_string()), "")
        self.text: pa.Array = text
        self.n_docs = len(text)
        self.segmented = np.zeros(self.n_docs, bool)
        self._seg_text: pa.Array | None = None
        if segmented:
            self.use_segmented(segmented)
        scripts = "".join(f"\\p{{{s}}}" for s in char_unit_scripts)
        self._unit_class = f"[{scripts}]" if scripts else ""

    def use_segmented(self, segmented: dict[int, str]) -> None:
        """Take the words of documents ``i`` from ``segmented[i]`` (a segmenter's words joined
        by spaces, stages.segment) instead of whitespace/char units. Call before ``words``."""
        if "words" in self.__dict__:
            raise RuntimeError("use_segmented() after words were split")
        if not segmented:
            return
        idx = np.fromiter(segmented, np.int64, len(segmented))
        self.segmented[idx] = True
        vals = self.text.to_pylist()
        for i, t in segmented.items():
            vals[i] = t
        self._seg_text = pa.array(vals, pa.large_string())

    @cached_property
    def char_len(self) -> np.ndarray:
        """Code points per document."""
        return np.asarray(pc.utf8_length(self.text).to_numpy(zero_copy_only=False), np.int64)

    @cached_property
    def raw_lines(self) -> Segments:
        """All lines (split on ``\\n``), whitespace-stripped, empty ones included."""
        vals, doc = _flat_split(pc.split_pattern(self.text, "\n"))
        return Segments(pc.utf8_trim_whitespace(vals), doc, self.n_docs)

    @cached_property
    def lines(self) -> Segments:
        """Non-empty stripped lines."""
        raw = self.raw_lines
        return raw.select(raw.lengths > 0)

    @cached_property
    def paragraphs(self) -> Segments:
        """Non-empty stripped paragraphs (separated by at least one blank line)."""
        vals, doc = _flat_split(pc.split_pattern_regex(self.text, r"\n\s*\n"))
        seg = Segments(pc.utf8_trim_whitespace(vals), doc, self.n_docs)
        return seg.select(seg.lengths > 0)

    @cached_property
    def words(self) -> Segments:
        """Words: whitespace tokens, each char-unit-script character a word of its own;
        for segmented documents the segmenter's words."""
        text = self.text
        if self._unit_class:
            text = pc.replace_substring_regex(
                text, f"({self._unit_class}[\\p{{Mn}}\\p{{Mc}}]*)", r" \1 "
            )
        if self._seg_text is not None:
            text = pc.if_else(pa.array(self.segmented), self._seg_text, text)
        vals, doc = _flat_split(pc.utf8_split_whitespace(text))
        seg = Segments(vals, doc, self.n_docs)
        return seg.select(seg.lengths > 0)

    @cached_property
    def word_is_unit(self) -> np.ndarray:
        """True for words that are a single char-unit-script character."""
        if not self._unit_class:
            return np.zeros(len(self.words.values), bool)
        return self.words.mask(f"^{self._unit_class}") & ~self.segmented[self.words.doc]

    @cached_property
    def word_core(self) -> pa.Array:
        """Lower-cased words without leading/trailing punctuation (the _PUNCT set)."""
        return pc.utf8_lower(pc.utf8_trim(self.words.values, _PUNCT))

    @cached_property
    def word_core_lengths(self) -> np.ndarray:
        return np.asarray(pc.utf8_length(self.word_core).to_numpy(zero_copy_only=False), np.int64)

    def repeated_ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Word n-grams (n >= 2) occurring at least twice in their document.

        Returns (start positions in the flat word array, occurrence count, is_repeat i.e. not
        the first occurrence), in position order. Computed as a cascade: an n-gram can only
        occur twice if both of its (n-1)-gram halves do, so each n only sorts the surviving
        candidates (n=2 sorts all word pairs; n=10 usually a few percent).
        """
        if n < 2:
            raise ValueError("n >= 2")
        cache = self._ngram_cache
        if n in cache:
            return cache[n][:3]
        w = self.words
        ids = w.ids.astype(np.uint64) + np.uint64(1)
        doc = w.doc
        n_w = len(ids)
        if n == 2:
            if n_w < 2:
                cand = np.zeros(0, np.int64)
                prev_h = np.zeros(0, np.uint64)
            else:
                cand = np.flatnonzero(doc[:-1] == doc[1:])
                prev_h = _mix(doc[cand].astype(np.uint64) * _K + ids[cand])
        else:
            p_starts, _, _, p_hash = self._ngram_full(n - 1)
            mark = np.zeros(n_w + 1, bool)
            mark[p_starts] = True
            sel = mark[p_starts + 1]
            cand = p_starts[sel]
            prev_h = p_hash[sel]
        keys = _mix(prev_h * _K + ids[cand + (n - 1)]) if len(cand) else prev_h
        rep, cnt = duplicates(keys)
        keep = cnt >= 2
        cache[n] = (cand[keep], cnt[keep], rep[keep], keys[keep])
        return cache[n][:3]

    def _ngram_full(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        self.repeated_ngrams(n)
        return self._ngram_cache[n]

    @cached_property
    def _ngram_cache(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        return {}
