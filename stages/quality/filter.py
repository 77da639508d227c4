"""The quality stage itself: runs the rule families in FineWeb's order over a batch.

See the package docstring (stages/quality/__init__.py) for the contract and the rule order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stages.quality import bucket as bucket_rules
from stages.quality import c4, fineweb, gopher
from stages.quality.config import QualityConfig
from stages.quality.rules import Batch, Rule, fmt, param
from stages.quality.signals import INT_SIGNALS, SIGNAL_COLUMNS
from stages.quality_model import QualityScorer
from stages.segment import segment_texts
from stages.text_stats import TextStats
from stages.url_filter import UrlFilter

# First failing rule wins, in this order (FineWeb's pipeline order; C4's line filter first).
RULES: tuple[Rule, ...] = (
    *c4.LINE_RULES,
    *gopher.REPETITION_RULES,
    *gopher.QUALITY_RULES,
    *c4.DOC_RULES,
    *fineweb.RULES,
)

RULE_ORDER: tuple[str, ...] = (
    "url.blocklist",
    "url.banned_substring",
    *dict.fromkeys(r.reason for r in RULES),
    "quality_model.low_score",
)


class QualityFilter:
    """The quality stage: ``QualityFilter(cfg)(table) -> table`` (see the package docstring)."""

    def __init__(self, cfg: QualityConfig | None = None) -> None:
        self.cfg = cfg or QualityConfig()
        self.url_filter = UrlFilter(self.cfg.url)
        self.scorer = QualityScorer(self.cfg.model) if self.cfg.model.path else None
        # Memo of resolved per-language configs (a pure function of cfg and lang).
        self._lang_cfg: dict[str | None, QualityConfig] = {}
        self._units = tuple(self.cfg.char_unit_scripts)

    def _resolve(self, lang: str | None) -> QualityConfig:
        if lang not in self._lang_cfg:
            self._lang_cfg[lang] = self.cfg.for_language(lang)
        return self._lang_cfg[lang]

    def _groups(self, langs: list[str | None]) -> tuple[list[str | None], np.ndarray]:
        """Distinct effective languages and each document's index into them."""
        eff = [x if x else self.cfg.default_lang for x in langs]
        uniq: dict[str | None, int] = {}
        idx = np.fromiter((uniq.setdefault(x, len(uniq)) for x in eff), np.int64, len(eff))
        return list(uniq), idx

    def _segment(self, st: TextStats, glangs: list[str | None], gi: np.ndarray) -> dict[int, str]:
        """Segmenter words (spaced) for documents whose language has a segmenter."""
        out: dict[int, str] = {}
        for k, lang in enumerate(glangs):
            name = self.cfg.segmenters.get(lang or "")
            if name is None:
                continue
            idx = np.flatnonzero(gi == k)
            texts = st.text.take(pa.array(idx)).to_pylist()
            out.update(zip(idx.tolist(), segment_texts(texts, name, lang or ""), strict=True))
        return out

    @staticmethod
    def _evaluate(s: dict[str, np.ndarray], b: Batch) -> list[tuple[Rule, np.ndarray, np.ndarray]]:
        """Per rule: (rule, fails mask, threshold array) over the documents."""
        out = []
        for r in RULES:
            thr = param([r.get(c, lang) for c, lang in zip(b.cfgs, b.langs, strict=True)], b.gi)
            v = s[r.signal]
            with np.errstate(invalid="ignore"):
                if r.op == "<":
                    fail = v < thr
                elif r.op == ">":
                    fail = v > thr
                else:
                    fail = v >= thr
            out.append((r, fail & ~np.isnan(v) & ~np.isnan(thr), thr))
        return out

    def _compute(self, sub: pa.Table):
        """Signals, cleaned text (None if unchanged), the batch and rule evaluation."""
        langs = (
            sub.column("lang").to_pylist() if "lang" in sub.column_names else [None] * sub.num_rows
        )
        glangs, gi = self._groups(langs)
        cfgs = [self._resolve(x) for x in glangs]
        st0 = TextStats(sub.column("text"), self._units)
        c4sig, new_text = c4.line_filter(Batch(st0, cfgs, glangs, gi))
        st = TextStats(new_text, self._units) if new_text is not None else st0
        st.use_segmented(self._segment(st, glangs, gi))
        b = Batch(st, cfgs, glangs, gi)
        s: dict[str, np.ndarray] = {
            "q_char_count": st.char_len.astype(np.float64),
            "q_line_count": st.lines.count.astype(np.float64),
        }
        s.update(gopher.quality_signals(b))
        s.update(gopher.repetition_signals(b))
        s.update(fineweb.signals(b))
        s.update(c4sig)
        s["q_soft_signals"] = bucket_rules.soft_signals(s, cfgs, gi)
        return s, new_text, b, self._evaluate(s, b)

    def signals(self, table: pa.Table) -> tuple[dict[str, np.ndarray], list[list[str]]]:
        """All signals and every failing text rule per row, in rule order (for analysis/tests).

        Ignores existing drops and the URL/model rules.
        """
        s, _, _, ev = self._compute(table)
        failing: list[list[str]] = [[] for _ in range(table.num_rows)]
        for r, fail, _ in ev:
            for i in np.flatnonzero(fail):
                if r.reason not in failing[i]:
                    failing[i].append(r.reason)
        return s, failing

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        reason = (
            np.asarray(table.column("drop_reason").to_pylist(), dtype=object)
            if "drop_reason" in table.column_names
            else np.full(n, None, dtype=object)
        )
        detail = (
            np.asarray(table.column("drop_detail").to_pylist(), dtype=object)
            if "drop_detail" in table.column_names
            else np.full(n, None, dtype=object)
        )
        active = np.array([r is None for r in reason], bool) if n else np.zeros(0, bool)
        sig_full = {k: np.full(n, np.nan) for k in SIGNAL_COLUMNS}
        score_full = np.full(n, np.nan, np.float32)
        bucket = np.full(n, None, dtype=object)
        text_col = table.column("text") if "text" in table.column_names else None
        new_text_col = None

        if self.cfg.enabled and n and active.any():
            if "url" in table.column_names:
                ai = np.flatnonzero(active)
                ur, ud = self.url_filter.evaluate(table.column("url").take(pa.array(ai)))
                hit = ur != None  # noqa: E711
                reason[ai[hit]] = ur[hit]
                detail[ai[hit]] = ud[hit]
                active[ai[hit]] = False
            ai = np.flatnonzero(active)
            if len(ai) and text_col is not None:
                sub = table.select([c for c in ("text", "lang") if c in table.column_names]).take(
                    pa.array(ai)
                )
                s, cleaned, b = self._run(sub, ai, reason, detail)
                for k in SIGNAL_COLUMNS:
                    sig_full[k][ai] = s[k]
                if cleaned is not None:
                    full = pc.fill_null(text_col.combine_chunks().cast(pa.large_string()), "")
                    take = np.arange(n, dtype=np.int64)
                    take[ai] = n + np.arange(len(ai))
                    merged = pa.concat_arrays([full, cleaned.cast(pa.large_string())])
                    new_text_col = merged.take(pa.array(take)).cast(text_col.type)
                kept = ai[np.array([reason[i] is None for i in ai], bool)]
                if len(kept):
                    pos_in_sub = np.searchsorted(ai, kept)
                    if self.scorer is not None:
                        texts = cleaned if cleaned is not None else sub.column("text")
                        txt = texts.take(pa.array(pos_in_sub))
                        sc = self.scorer.score(txt)
                        score_full[kept] = sc
                        ms = self.cfg.model.min_score
                        if ms is not None:
                            low = sc < ms
                            reason[kept[low]] = "quality_model.low_score"
                            detail[kept[low]] = [
                                f"quality_score={fmt(v)} < {fmt(ms)}" for v in sc[low]
                            ]
                    self._bucket(kept, pos_in_sub, s, score_full, reason, bucket, b)
        elif not self.cfg.enabled:
            bucket[active] = "unfiltered"

        out = table
        if new_text_col is not None:
            out = out.set_column(out.column_names.index("text"), "text", new_text_col)
        cols: dict[str, pa.Array] = {}
        for k in SIGNAL_COLUMNS:
            v = sig_full[k]
            mask = np.isnan(v)
            if k in INT_SIGNALS:
                cols[k] = pa.array(np.nan_to_num(v).astype(np.int32), pa.int32(), mask=mask)
            else:
                cols[k] = pa.array(v.astype(np.float32), pa.float32(), mask=mask)
        cols["quality_score"] = pa.array(score_full, pa.float32(), mask=np.isnan(score_full))
        cols["quality_bucket"] = pa.array(bucket.tolist(), pa.string())
        cols["drop_reason"] = pa.array(reason.tolist(), pa.string())
        cols["drop_detail"] = pa.array(detail.tolist(), pa.string())
        for name, arr in cols.items():
            if name in out.column_names:
                out = out.set_column(out.column_names.index(name), name, arr)
            else:
                out = out.append_column(name, arr)
        return out

    def _run(self, sub: pa.Table, ai: np.ndarray, reason: np.ndarray, detail: np.ndarray):
        """Signals + first failing rule for the active rows ``ai`` (in place on reason)."""
        s, new_text, b, ev = self._compute(sub)
        decided = np.zeros(len(ai), bool)
        for r, fail, thr in ev:
            new = fail & ~decided
            if not new.any():
                continue
            decided |= new
            idx = np.flatnonzero(new)
            reason[ai[idx]] = r.reason
            v = s[r.signal]
            if r.signal in c4.FLAG_SIGNALS:
                detail[ai[idx]] = r.label
            else:
                detail[ai[idx]] = [f"{r.label}={fmt(v[i])} {r.op} {fmt(thr[i])}" for i in idx]
        return s, new_text, b

    def _bucket(self, kept, pos_in_sub, s, score_full, reason, bucket, b: Batch) -> None:
        """Assign quality_bucket to rows still kept."""
        still = np.array([reason[i] is None for i in kept], bool)
        kept, pos = kept[still], pos_in_sub[still]
        if not len(kept):
            return
        scores = score_full[kept] if self.scorer is not None else None
        bucket[kept] = bucket_rules.assign(b.cfgs, b.gi[pos], scores, s["q_soft_signals"][pos])
