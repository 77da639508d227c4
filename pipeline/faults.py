"""Moved to :mod:`core.faults` (lineage may not import pipeline).

Kept so that code written against the old location still runs; new code imports core.faults.
"""

from core.faults import POINTS, point  # noqa: F401
