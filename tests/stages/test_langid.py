"""Language ID on real labelled sentences (Leipzig corpora via lingua-rs) and drop semantics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.langid import LangIdConfig, LanguageIdentifier, default_model_path

# label-file languages lid.176 has no label for; nb is `no` in lid.176
UNSUPPORTED = {"lg", "mi", "sn", "st", "tn", "ts", "xh", "zu"}
ALIASES = {"nb": {"nb", "no"}}
PER_FILE = 100
# measured here on the first 100 sentences of the 67 supported files: 0.892 (lid.176.ftz);
# all 500 sentences x 67 supported languages: 0.893; floors leave a margin.
OVERALL_FLOOR = 0.85
MAJOR = {"en": 0.97, "de": 0.97, "fr": 0.95, "es": 0.95, "ru": 0.95, "zh": 0.9, "ja": 0.9}


@pytest.fixture(scope="module")
def lid() -> LanguageIdentifier:
    return LanguageIdentifier(LangIdConfig())


@pytest.fixture(scope="module")
def labelled(shared_data: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for f in sorted((shared_data / "langid").glob("*.txt")):
        if f.stem in UNSUPPORTED:
            continue
        lines = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
        texts += lines[:PER_FILE]
        labels += [f.stem] * len(lines[:PER_FILE])
    assert len(set(labels)) == 67
    return texts, labels


def test_accuracy_on_real_sentences(lid: LanguageIdentifier, labelled) -> None:
    texts, labels = labelled
    out = lid(pa.table({"text": texts}))
    pred = out["lang"].to_pylist()
    hit, total = Counter(), Counter()
    for p, gold in zip(pred, labels, strict=True):
        total[gold] += 1
        hit[gold] += p in ALIASES.get(gold, {gold})
    overall = sum(hit.values()) / len(labels)
    assert overall >= OVERALL_FLOOR, overall
    for lang, floor in MAJOR.items():
        assert hit[lang] / total[lang] >= floor, (lang, hit[lang] / total[lang])
    scores = out["lang_score"]
    assert scores.type == pa.float32()
    assert 0.0 <= min(scores.to_pylist()) and max(scores.to_pylist()) <= 1.0


def test_drops_and_details(lid: LanguageIdentifier) -> None:
    texts = [
        "The committee will publish its final report on the new railway line next spring.",
        "Der Ausschuss wird seinen Abschlussbericht über die neue Bahnstrecke im Frühjahr vorlegen.",
        "ok 12 34",
        "",
    ]
    table = pa.table({"text": texts})
    out = LanguageIdentifier(LangIdConfig(languages=["en"]))(table)
    assert out["lang"].to_pylist()[:2] == ["en", "de"]
    reasons = out["drop_reason"].to_pylist()
    assert reasons[0] is None and reasons[1] == "lang.not_wanted"
    assert reasons[3] == "lang.low_score"
    assert out["drop_detail"][1].as_py() == "lang=de not in ['en']"
    assert out["drop_detail"][3].as_py().startswith("lang_score=0.00 <= 0.65")
    # all languages wanted: nothing but low scores dropped
    out = lid(table)
    assert out["drop_reason"].to_pylist()[:2] == [None, None]
    assert out["drop_detail"].to_pylist()[:2] == [None, None]
    # threshold 0 keeps anything with a label
    out = LanguageIdentifier(LangIdConfig(threshold=0.0))(table.slice(0, 3))
    assert out["drop_reason"].null_count == 3


def test_pre_dropped_rows_untouched(lid: LanguageIdentifier) -> None:
    table = pa.table(
        {
            "text": ["Ceci est une phrase française tout à fait ordinaire.", None],
            "drop_reason": [None, "extract.empty"],
            "drop_detail": [None, "text_chars=0 < 1"],
        }
    )
    out = lid(table)
    assert out["lang"].to_pylist() == ["fr", None]
    assert out["lang_score"][1].as_py() is None
    assert out["drop_reason"].to_pylist() == [None, "extract.empty"]
    assert out["drop_detail"].to_pylist() == [None, "text_chars=0 < 1"]
    assert out.column_names[:3] == ["text", "drop_reason", "drop_detail"]


def test_model_path_override() -> None:
    path = default_model_path()
    assert path.endswith("lid.176.ftz")
    lid = LanguageIdentifier(LangIdConfig(model_path=path, max_chars=40))
    langs, scores = lid.predict(["Dit is een gewone Nederlandse zin over het weer van morgen."])
    assert langs == ["nl"] and scores.dtype.name == "float32"
    with pytest.raises(ValueError):
        LanguageIdentifier(LangIdConfig(model_path="/nonexistent/lid.176.bin"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=20))
def test_any_text_gets_a_row(texts: list[str]) -> None:
    """Newlines, control chars, emoji, empty strings: same rows, scores in [0, 1]."""
    lid = _shared_lid()
    out = lid(pa.table({"text": texts}))
    assert out.num_rows == len(texts)
    for s, r in zip(out["lang_score"].to_pylist(), out["drop_reason"].to_pylist(), strict=True):
        assert 0.0 <= s <= 1.0
        assert r in (None, "lang.low_score")
    # newlines do not change the prediction (they are replaced, not cut at)
    joined = lid.predict([t.replace("\n", " ").replace("\r", " ") for t in texts])
    assert lid.predict(texts)[0] == joined[0]


_LID: list[LanguageIdentifier] = []


def _shared_lid() -> LanguageIdentifier:
    """One model for all hypothesis examples (function-scoped fixtures do not mix with @given)."""
    if not _LID:
        _LID.append(LanguageIdentifier())
    return _LID[0]
