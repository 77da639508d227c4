"""Training data mixes over the pipeline's token shards.

`mixes.config` (the YAML model), `mixes.build` (lineage inventory -> manifest, Megatron blend,
summary, lineage record), `mixes.loader` (deterministic, resumable sample stream). CLI:
`python -m mixes build MIX.yaml --lineage DB --out DIR`. Reference: mixes/README.md.
"""
