"""Model-based quality: train and apply a fastText ``__label__hq`` / ``__label__lq`` classifier.

Why fastText: DCLM showed a bigram fastText classifier (positives = instruction/ELI5-style
high-quality text, negatives = random web text) beats heuristic filtering, and it scores
thousands of documents per second per core. Any positive/negative sets work here: text files
(one document per line) or Parquet files/directories with a ``text`` column.

Environment notes (docs/ENVIRONMENT): with numpy 2 fastText's ``model.predict`` raises, so we
call the low-level ``model.f.multilinePredict`` (a batch call); with the source-built fastText
0.9.3 (the last PyPI release) ``DenseMatrix::uniform`` initialises the input matrix in ten
blocks, one per training thread, and the matrix now lives in an uninitialised aligned buffer:
with fewer than 11 threads part of it keeps whatever the allocator left there (valgrind shows
the uninitialised reads in ``SoftmaxLoss::computeOutput``). Measured here: half of all
single-thread trainings died with "Encountered NaN", more often the smaller ``bucket`` is
(the buffer is then recycled heap, not fresh zero pages), and surviving models held garbage in
n-gram rows training never touched. So training always runs with at least 11 threads, which
initialises every block. fastText's SGD is lock-free across threads, so retraining gives a
slightly different model (same held-out accuracy); lineage records each model's content hash.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pydantic import BaseModel, ConfigDict, Field

from core.config_effects import ModelPath, Output

__all__ = [
    "HQ_LABEL",
    "LQ_LABEL",
    "QualityModelConfig",
    "QualityScorer",
    "normalize_for_model",
    "read_documents",
    "train_quality_model",
]

HQ_LABEL = "__label__hq"
LQ_LABEL = "__label__lq"
_MIN_TRAIN_THREADS = 11  # fastText initialises its input matrix in 10 blocks, one per thread


class QualityModelConfig(BaseModel):
    """Optional fastText quality classifier applied after the heuristic rules."""

    model_config = ConfigDict(extra="forbid")

    path: ModelPath[str | None] = Field(
        default=None,
        description="Path of a fastText model trained by `train_quality_model` (labels "
        "__label__hq/__label__lq, as DCLM's classifier). None = no model: quality_score is "
        "null and quality_bucket comes from the heuristic signals.",
    )
    max_chars: Output[int] = Field(
        default=10_000,
        ge=100,
        description="Characters of each document given to the model (prefix; whitespace "
        "collapsed, lower-cased). Our choice: bounds scoring cost on huge pages.",
    )
    min_score: Output[float | None] = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Drop documents with P(hq) below this as `quality_model.low_score`. "
        "None = keep all and only bucket (DCLM instead kept the top 10% by score).",
    )


def normalize_for_model(texts: pa.Array | pa.ChunkedArray, max_chars: int) -> list[str]:
    """One line per document, whitespace collapsed and lower-cased (batch Arrow kernels)."""
    t = pc.fill_null(texts.cast(pa.large_string()), "")
    t = pc.utf8_slice_codeunits(t, 0, max_chars)
    t = pc.replace_substring_regex(t, r"\s+", " ")
    t = pc.utf8_trim_whitespace(pc.utf8_lower(t))
    return t.to_pylist()


def read_documents(path: str) -> list[str]:
    """Documents from a text file (one per line), a Parquet file, or a directory of Parquet."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".parquet":
        table = ds.dataset(str(p), format="parquet").to_table(columns=["text"])
        return [t for t in table.column("text").to_pylist() if t and t.strip()]
    with p.open(encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def train_quality_model(
    positive: str,
    negative: str,
    out: str,
    *,
    epoch: int = 20,
    lr: float = 0.1,
    wordNgrams: int = 2,  # noqa: N803 - fastText's own parameter name
    dim: int = 64,
    seed: int = 0,
    holdout: float = 0.1,
    max_chars: int = 10_000,
    min_count: int = 1,
    bucket: int = 200_000,
    thread: int = 11,
) -> dict:
    """Train a fastText hq/lq classifier, save it to ``out``, return held-out metrics.

    Each class is split into train/holdout separately (stratified, shuffled with ``seed``).
    Defaults follow DCLM's classifier (bigrams); epoch/lr/dim are ours for small sets.
    ``bucket`` (hashed n-gram rows) defaults to 200k instead of fastText's 2M: the model file
    is (vocabulary + bucket) x dim floats, 51 MB instead of 512 MB at dim 64.
    ``thread`` below 11 is raised to 11: fewer threads leave part of fastText 0.9.3's input
    matrix uninitialised (module docstring).
    """
    import fasttext

    rng = random.Random(seed)
    pos = normalize_for_model(pa.array(read_documents(positive), pa.large_string()), max_chars)
    neg = normalize_for_model(pa.array(read_documents(negative), pa.large_string()), max_chars)
    pos = [t for t in pos if t]
    neg = [t for t in neg if t]
    if not pos or not neg:
        raise ValueError(
            f"need documents of both classes (positive={len(pos)}, negative={len(neg)})"
        )
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for label, docs in ((HQ_LABEL, pos), (LQ_LABEL, neg)):
        docs = docs[:]
        rng.shuffle(docs)
        n_hold = int(round(len(docs) * holdout)) if holdout > 0 else 0
        n_hold = min(n_hold, len(docs) - 1)
        test += [(label, d) for d in docs[:n_hold]]
        train += [(label, d) for d in docs[n_hold:]]
    rng.shuffle(train)
    with tempfile.TemporaryDirectory(prefix="ccpipe-qm-") as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"{lab} {doc}\n" for lab, doc in train), encoding="utf-8")
        try:
            model = fasttext.train_supervised(
                input=str(train_file),
                epoch=epoch,
                lr=lr,
                wordNgrams=wordNgrams,
                dim=dim,
                seed=seed,
                thread=max(thread, _MIN_TRAIN_THREADS),
                minCount=min_count,
                bucket=bucket,
                verbose=0,
            )
        except RuntimeError as e:
            if "NaN" in str(e):
                raise ValueError(
                    f"fastText training diverged (NaN) at lr={lr}; retry with a lower lr"
                ) from e
            raise
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_model(str(out_path))
    metrics: dict = {
        "model": str(out_path),
        "n_train": len(train),
        "n_holdout": len(test),
        "n_positive": len(pos),
        "n_negative": len(neg),
        "params": {
            "epoch": epoch,
            "lr": lr,
            "wordNgrams": wordNgrams,
            "dim": dim,
            "seed": seed,
            "holdout": holdout,
            "bucket": bucket,
            "thread": max(thread, _MIN_TRAIN_THREADS),
        },
    }
    if test:
        scores = _hq_prob(model, [d for _, d in test])
        pred_hq = scores >= 0.5
        true_hq = np.array([lab == HQ_LABEL for lab, _ in test])
        tp = int((pred_hq & true_hq).sum())
        metrics["accuracy"] = float((pred_hq == true_hq).mean())
        metrics["precision_hq"] = float(tp / max(1, int(pred_hq.sum())))
        metrics["recall_hq"] = float(tp / max(1, int(true_hq.sum())))
    return metrics


def _hq_prob(model, texts: list[str]) -> np.ndarray:  # noqa: ANN001 - fasttext model
    """P(hq) per text via the numpy-2-safe batch call."""
    if not texts:
        return np.zeros(0, np.float32)
    labels, probs = model.f.multilinePredict(texts, -1, 0.0, "strict")
    out = np.empty(len(texts), np.float32)
    for i, (labs, pr) in enumerate(zip(labels, probs, strict=True)):
        p = 0.0
        for lab, v in zip(labs, pr, strict=True):
            if lab == HQ_LABEL:
                p = float(v)
                break
        out[i] = min(1.0, max(0.0, p))
    return out


class QualityScorer:
    """Loads a quality model once; ``score`` returns P(hq) per document (float32)."""

    def __init__(self, cfg: QualityModelConfig) -> None:
        import fasttext

        if not cfg.path:
            raise ValueError("QualityScorer needs QualityModelConfig.path")
        self.cfg = cfg
        self.model = fasttext.load_model(cfg.path)
        labels = set(self.model.get_labels())
        if HQ_LABEL not in labels:
            raise ValueError(f"{cfg.path}: model has no {HQ_LABEL} label (labels: {labels})")
        self.model_sha256 = hashlib.sha256(Path(cfg.path).read_bytes()).hexdigest()

    def score(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """P(hq) for each text."""
        return _hq_prob(self.model, normalize_for_model(texts, self.cfg.max_chars))
