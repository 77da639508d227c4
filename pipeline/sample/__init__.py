"""The project's own sample crawl: two small CommonCrawl-style WARC files and a manifest.

``python -m pipeline run`` uses these when no input is given, so the pipeline runs offline on a
fresh machine. The files are made by ``python -m pipeline.sample.generate``; ``planted()``
describes what was planted in them (duplicates, PII, junk pages, exact record counts).
"""

from __future__ import annotations

import json
from importlib import resources

SAMPLE_FILES = ("sample-00000.warc.gz", "sample-00001.warc.gz")


def sample_paths() -> list[str]:
    """Filesystem paths of the shipped sample WARC files, in order."""
    base = resources.files(__name__)
    return [str(base / name) for name in SAMPLE_FILES]


def planted() -> dict:
    """The manifest (planted.json) of the shipped sample: counts, planted groups, PII values."""
    return json.loads((resources.files(__name__) / "planted.json").read_text(encoding="utf-8"))
