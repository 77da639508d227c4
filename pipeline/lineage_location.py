"""Moved to :mod:`lineage.location` (it is about the lineage store, not the pipeline).

Kept so that code written against the old location still runs; new code imports
lineage.location.
"""

from lineage.location import *  # noqa: F403
