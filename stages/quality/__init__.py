"""Quality stage: URL rules, Gopher / C4 / FineWeb heuristics, optional fastText score, bucket.

One module per rule family: ``gopher`` (quality + repetition), ``c4`` (line filter + document
rules), ``fineweb``, ``bucket``; ``stages.quality_model`` holds the optional classifier;
``rules`` the shared mechanics; ``config`` composes the families; ``filter`` runs them.

Why this shape: the published rule sets (thresholds in docs/ANCHORS, cited per field) are cheap
per document but datatrove runs them as separate Python filters that re-split the text each
time (~25 docs/s for the chain). Here every split is made once per batch by
:class:`stages.text_stats.TextStats` with Arrow string kernels and numpy, and every rule is a
vectorized comparison of a signal column against a per-document threshold array (so
``per_language`` overrides cost nothing extra).

Contract (docs/architecture.md): same rows, same order; appends ``q_*`` signal columns,
``quality_score`` (float32, P(hq) from the model, null without one), ``quality_bucket``
(``high``/``mid``/``low`` for kept rows), sets ``drop_reason``/``drop_detail`` only on rows
whose ``drop_reason`` is null. Rows dropped earlier get null signals.

Fixed rule order (first failing rule wins; the order of FineWeb's pipeline):
  1. ``url.blocklist``, ``url.banned_substring``
  2. C4 line filter (see below), then ``c4.all_lines_removed``
  3. ``gopher_repetition.``: dup_para_fraction, dup_para_char_fraction, dup_line_fraction,
     dup_line_char_fraction, top_{2,3,4}gram, dup_{5..10}gram
  4. ``gopher_quality.``: word_count, mean_word_length, symbol_word_ratio, bullet_lines,
     ellipsis_lines, alpha_words, stop_words
  5. ``c4.``: lorem_ipsum, curly_bracket, too_few_sentences
  6. ``fineweb.``: line_punct_ratio, short_line_ratio, dup_line_char_ratio, newline_word_ratio
  7. ``quality_model.low_score`` (only with a model and ``model.min_score``)

C4 line filter and ``text``: as FineWeb's C4 filter, lines with a word > 1000 chars, < 3 words,
"javascript" or policy text are REMOVED from ``text`` (``c4.remove_lines``, default on). We do
this before all other rules (FineWeb ran Gopher before it), so every signal describes the text
that is actually kept; blank lines between kept lines are kept (collapsed to one) so paragraph
rules still see paragraphs. Documents with no removed line keep their text byte-identical; the
number of removed lines is ``q_c4_lines_removed`` and the original is one range read away
(source_offset/length). With ``remove_lines: false`` the lines are only counted, never removed.

Words: documents whose ``lang`` has a segmenter (``segmenters``: th/lo/km/my/ja ICU, zh rjieba;
stages/segment.py) are judged on the segmenter's words; elsewhere see text_stats (whitespace,
each CJK/Thai/... character a word). Mean word length is skipped (null) when more than
``gopher_quality.max_char_unit_fraction`` of the words are such characters. Stop words apply to
documents whose ``lang`` has a list (explicit, else stopwords-iso, else spaCy). Thresholds
derived per language from clean reference text (``per_language_defaults``, derived.py) sit
under the user's ``per_language``; docs/languages.md has the tables.

Bucket without a model (cheap, deterministic): count the "soft signals" of a kept document,
i.e. signals on the wrong side of the softer bounds in ``bucket.soft_min``/``bucket.soft_max``
(column ``q_soft_signals``); ``<= bucket.high_max_soft`` -> high, ``<= bucket.mid_max_soft`` ->
mid, else low. With a model: P(hq) >= ``bucket.high_min_score`` -> high, >= ``mid_min_score``
-> mid, else low.
"""

from stages.quality.bucket import BucketConfig
from stages.quality.c4 import C4Config
from stages.quality.config import QualityConfig
from stages.quality.filter import RULE_ORDER, RULES, QualityFilter
from stages.quality.fineweb import FineWebConfig
from stages.quality.gopher import GopherQualityConfig, GopherRepetitionConfig
from stages.quality.signals import SIGNAL_COLUMNS

__all__ = [
    "BucketConfig",
    "C4Config",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "QualityConfig",
    "QualityFilter",
    "RULES",
    "RULE_ORDER",
    "SIGNAL_COLUMNS",
]
