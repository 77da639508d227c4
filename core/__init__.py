"""Code shared by every layer (pipeline, stages, lineage): no Ray, no DuckDB."""
