"""Rewrite README.md's generated configuration reference in place (`python -m pipeline.readme_sync`)."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.config_doc import BEGIN, END, reference_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def synced(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + reference_markdown() + text[end:]


if __name__ == "__main__":
    README.write_text(synced(README.read_text()))
    sys.exit(0)
