"""Pipeline stages: plain Python over pyarrow batches. Nothing here imports Ray.

See docs/architecture.md for the batch contract every stage follows.
"""
