"""Labelled multilingual documents from real sentences: clean pages and junk pages per language.

Why: language ID and the quality rules must be judged per language on text that is really
in that language (issue 21). This builds, from ``<lang>.txt`` files of sentences (one per
line, label = file name), deterministic test documents:

- clean: ``sentences_per_doc`` sentences in paragraphs of ``sentences_per_para`` (default 24
  in 6 paragraphs of 4), ``n_clean`` documents, sentences taken in a seeded shuffled order
  from ``offset`` on (so ``offset`` separates held-out reference text from test documents);
- junk: one page per language made of the same language's words, of one of three kinds
  (rotating over the languages in sorted order, so each kind covers a third of them):
  ``repeated`` (a few lines repeated many times), ``salad`` (lines of random words, no
  sentence structure), ``boilerplate`` (navigation/footer lines: short, separated by ``|``).

The sentences themselves are not shipped: a caller passes a directory (the benchmark and the
shared-data tests use the Leipzig sentences of the shared data); tests in a clean clone pass
short texts of their own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JUNK_KINDS", "LabelledDoc", "build_docs", "junk_page", "load_sentences"]

JUNK_KINDS = ("repeated", "salad", "boilerplate")


@dataclass(frozen=True)
class LabelledDoc:
    """One generated document: its language label, kind (clean or a junk kind), text."""

    lang: str
    kind: str
    text: str


def load_sentences(directory: Path) -> dict[str, list[str]]:
    """Non-empty stripped lines of every ``<lang>.txt`` in ``directory``, by language."""
    out = {}
    for f in sorted(Path(directory).glob("*.txt")):
        lines = [x.strip() for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
        if lines:
            out[f.stem] = lines
    return out


def clean_doc(sentences: list[str], per_para: int) -> str:
    """Paragraphs of ``per_para`` sentences separated by blank lines."""
    paras = [" ".join(sentences[i : i + per_para]) for i in range(0, len(sentences), per_para)]
    return "\n\n".join(paras)


def _words(sentences: list[str]) -> list[str]:
    words = []
    for s in sentences:
        words += s.split()
    if len(words) < len(sentences) * 3:  # written without spaces: take character chunks
        text = "".join(sentences)
        words = [text[i : i + 2] for i in range(0, len(text) - 1, 2)]
    return [w.strip(".,;:!?\"'()[]«»“”„。，、！？：；") or w for w in words]


def junk_page(sentences: list[str], kind: str, rng: random.Random) -> str:
    """One junk page of ``kind`` from the words of ``sentences`` (see module docstring)."""
    words = _words(sentences)
    if kind == "repeated":
        lines = rng.sample(sentences, min(3, len(sentences)))
        return "\n".join(lines[i % len(lines)] for i in range(30))
    if kind == "salad":
        out = []
        for _ in range(30):
            out.append(" ".join(rng.choice(words) for _ in range(rng.randint(4, 10))))
        return "\n".join(out)
    if kind == "boilerplate":
        nav = [rng.choice(words) for _ in range(8)]
        lines = []
        for i in range(40):
            if i % 4 == 0:
                lines.append(" | ".join(nav[:5]))
            else:
                lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 3))))
        lines.append(" | ".join(nav[3:]) + " © 2024")
        return "\n".join(lines)
    raise ValueError(f"unknown junk kind {kind!r}; one of {JUNK_KINDS}")


def build_docs(
    sentences: dict[str, list[str]],
    *,
    n_clean: int = 4,
    sentences_per_doc: int = 24,
    sentences_per_para: int = 4,
    offset: int = 0,
    junk: bool = True,
    seed: int = 21,
) -> list[LabelledDoc]:
    """Clean documents (sentences from ``offset`` on) and one junk page per language."""
    docs: list[LabelledDoc] = []
    for li, lang in enumerate(sorted(sentences)):
        # the Leipzig files are sorted alphabetically: neighbours share openings ("X ay isang
        # planetang ..."), so consecutive sentences make artificially repetitive documents.
        # A seeded shuffle per language gives documents of unrelated sentences instead.
        order = list(sentences[lang])
        random.Random(f"{seed}:order:{lang}").shuffle(order)
        sents = order[offset:]
        for k in range(n_clean):
            chunk = sents[k * sentences_per_doc : (k + 1) * sentences_per_doc]
            if len(chunk) < sentences_per_doc:
                break
            docs.append(LabelledDoc(lang, "clean", clean_doc(chunk, sentences_per_para)))
        if junk:
            kind = JUNK_KINDS[li % len(JUNK_KINDS)]
            rng = random.Random(f"{seed}:{lang}")
            src = sents[: n_clean * sentences_per_doc] or sents
            docs.append(LabelledDoc(lang, f"junk.{kind}", junk_page(src, kind, rng)))
    return docs
