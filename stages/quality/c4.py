"""C4 rules (Raffel et al. 2020, as run by FineWeb): line removal, then document rules.

As FineWeb's C4 filter, lines with a word > 1000 chars, < 3 words, "javascript" or policy text
are REMOVED from ``text`` (``c4.remove_lines``, default on). The filter does this before all
other rules, so every signal describes the text that is actually kept; blank lines between kept
lines are kept (collapsed to one) so paragraph rules still see paragraphs. Documents with no
removed line keep their text byte-identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import Output
from stages.quality.rules import ANCHOR, Batch, Rule, alt, flag, mask_by_group, param, section
from stages.text_stats import per_doc_sum

if TYPE_CHECKING:
    from stages.quality.config import QualityConfig

POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)


class C4Config(BaseModel):
    """C4 rules (Raffel et al. 2020, as run by FineWeb): line removal and document rules."""

    model_config = ConfigDict(extra="forbid")

    enabled: Output[bool] = Field(default=True, description="Apply the c4 family (lines and docs).")
    remove_lines: Output[bool] = Field(
        default=True,
        description="Remove failing lines from `text` before all other rules (FineWeb's C4 "
        "filter modifies text). False = lines are only counted (q_c4_lines_removed).",
    )
    line_max_word_length: Output[int | None] = Field(
        default=1000, description=f"Remove lines with a word longer than this (C4 1000; {ANCHOR})."
    )
    line_min_words: Output[int | None] = Field(
        default=3, description=f"Remove lines with fewer words (C4 3; {ANCHOR})."
    )
    line_drop_javascript: Output[bool] = Field(
        default=True, description=f"Remove lines containing 'javascript' (C4; {ANCHOR})."
    )
    line_drop_policy: Output[bool] = Field(
        default=True, description=f"Remove lines containing policy_substrings (C4; {ANCHOR})."
    )
    policy_substrings: Output[list[str]] = Field(
        default_factory=lambda: list(POLICY_SUBSTRINGS),
        description="Case-insensitive policy/cookie phrases (C4's list).",
    )
    line_require_terminal_punct: Output[bool] = Field(
        default=False,
        description=f"Remove lines not ending in terminal punctuation (C4 on; FineWeb turned "
        f"it off: default off; {ANCHOR}).",
    )
    drop_lorem_ipsum: Output[bool] = Field(
        default=True, description=f"Drop docs containing 'lorem ipsum' (C4; {ANCHOR})."
    )
    drop_curly_bracket: Output[bool] = Field(
        default=True, description=f"Drop docs containing '{{' (C4; {ANCHOR})."
    )
    min_sentences: Output[int | None] = Field(
        default=5, description=f"Drop docs with fewer sentences (C4 5; {ANCHOR})."
    )


INT_SIGNALS = (
    "q_c4_lines_removed",
    "q_c4_all_lines_removed",
    "q_c4_lorem_ipsum",
    "q_c4_curly_bracket",
    "q_sentence_count",
)
# Signals that are yes/no: their drop_detail is the rule's label, not "label=value op thr".
FLAG_SIGNALS = ("q_c4_lorem_ipsum", "q_c4_curly_bracket", "q_c4_all_lines_removed")


def line_filter(b: Batch) -> tuple[dict[str, np.ndarray], pa.Array | None]:
    """C4 line signals and the cleaned text (None when no document lost a line)."""
    st, cfgs, gi = b.st, b.cfgs, b.gi
    raw = st.raw_lines
    g = gi[raw.doc] if len(raw.doc) else np.zeros(0, np.int64)
    nonempty = raw.lengths > 0
    on = np.array([c.c4.enabled for c in cfgs], bool)[g] if len(g) else np.zeros(0, bool)
    bad = np.zeros(len(g), bool)
    # words per line, char units counted one each (as TextStats.words)
    unit = st._unit_class
    wpat = f"{unit}[\\p{{Mn}}\\p{{Mc}}]*|[^\\s{unit[1:-1]}]+" if unit else r"\S+"
    nwords = (
        np.asarray(pc.count_substring_regex(raw.values, wpat).to_numpy(zero_copy_only=False))
        if len(g)
        else np.zeros(0)
    )
    minw = param([c.c4.line_min_words for c in cfgs], g)
    bad |= nwords < minw
    maxw = param([c.c4.line_max_word_length for c in cfgs], g)
    long_cand = np.flatnonzero(raw.lengths > np.nan_to_num(maxw, nan=np.inf))
    if len(long_cand):
        vals = raw.values.take(pa.array(long_cand)).to_pylist()
        longest = np.array([max((len(w) for w in v.split()), default=0) for v in vals])
        bad[long_cand[longest > maxw[long_cand]]] = True
    term = [c.c4.line_require_terminal_punct for c in cfgs]
    if any(term):
        ends = mask_by_group(
            raw, g, [r"[.!?\"']$" if t else None for t in term], False
        ) & ~raw.mask(r"\.\.\.$")
        bad |= ~ends & np.array(term, bool)[g]
    structural_ok = ~bad  # lines the doc-level lorem/curly checks look at
    js = [("javascript" if c.c4.line_drop_javascript else None) for c in cfgs]
    bad |= mask_by_group(raw, g, js, True)
    pol = [(alt(c.c4.policy_substrings) if c.c4.line_drop_policy else None) for c in cfgs]
    bad |= mask_by_group(raw, g, pol, True)
    bad &= on & nonempty
    kept = nonempty & ~bad
    n = st.n_docs
    look = nonempty & structural_ok
    lorem = raw.mask("lorem ipsum", True) & look if len(g) else bad
    curly = raw.mask(r"\{") & look if len(g) else bad
    # sentences: terminators (+ closing quotes) followed by space/end, CJK ones anywhere,
    # plus one for a kept line that does not end with a terminator (as C4 per line).
    if len(g):
        s_pat = r"[。！？]+|[.!?…]+[\"'”’)\]]*(?:\s|$)"
        n_sent = np.asarray(
            pc.count_substring_regex(raw.values, s_pat).to_numpy(zero_copy_only=False)
        )
        ends_term = raw.mask(r"(?:[。！？]|[.!?…][\"'”’)\]]*)$")
        n_sent = n_sent + (~ends_term)
    else:
        n_sent = np.zeros(0)
    sig = {
        "q_c4_lines_removed": per_doc_sum(raw.doc[bad], None, n),
        "q_c4_lorem_ipsum": (per_doc_sum(raw.doc[lorem], None, n) > 0).astype(np.float64),
        "q_c4_curly_bracket": (per_doc_sum(raw.doc[curly], None, n) > 0).astype(np.float64),
        "q_sentence_count": per_doc_sum(raw.doc[kept], n_sent[kept].astype(np.float64), n),
    }
    remove = (
        np.array([c.c4.enabled and c.c4.remove_lines for c in cfgs], bool)[gi]
        if n
        else (np.zeros(0, bool))
    )
    had_lines = per_doc_sum(raw.doc[nonempty], None, n) > 0
    n_kept = per_doc_sum(raw.doc[kept], None, n)
    sig["q_c4_all_lines_removed"] = (remove & had_lines & (n_kept == 0)).astype(np.float64)
    changed = remove & (sig["q_c4_lines_removed"] > 0)
    if not changed.any():
        return sig, None
    keep_piece = kept | ~nonempty
    idx = np.flatnonzero(keep_piece)
    counts = per_doc_sum(raw.doc[idx], None, n).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), raw.values.take(pa.array(idx)))
    new = pc.binary_join(lists, pa.scalar("\n", pa.large_string()))
    new = pc.replace_substring_regex(new, r"\n{3,}", "\n\n")
    new = pc.utf8_trim(new, "\n")
    text = pc.if_else(pa.array(changed), new, st.text)
    return sig, text


# --------------------------------------------------------------------------- rules


def _all_removed(c: QualityConfig, _lang: str | None) -> float | None:
    return 0.5 if c.c4.enabled and c.c4.remove_lines else None


LINE_RULES: tuple[Rule, ...] = (
    Rule("c4.all_lines_removed", "q_c4_all_lines_removed", ">", _all_removed, "all lines removed"),
)
DOC_RULES: tuple[Rule, ...] = (
    Rule(
        "c4.lorem_ipsum",
        "q_c4_lorem_ipsum",
        ">",
        flag("c4", "drop_lorem_ipsum"),
        "contains 'lorem ipsum'",
    ),
    Rule(
        "c4.curly_bracket",
        "q_c4_curly_bracket",
        ">",
        flag("c4", "drop_curly_bracket"),
        "contains '{'",
    ),
    Rule(
        "c4.too_few_sentences",
        "q_sentence_count",
        "<",
        section("c4", "min_sentences"),
        "sentence_count",
    ),
)
