"""Moved to :mod:`core.storage` (layering: lineage and stages may not import pipeline).

Kept so that code written against the old location still runs; new code imports core.storage.
"""

from core.storage import *  # noqa: F403
