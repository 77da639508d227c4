"""What the mixes tests share: the sample tokenizer's hash and a small valid mix config."""

from __future__ import annotations

from mixes.config import MixConfig
from stages.tokenize import SAMPLE_TOKENIZER, tokenizer_hash

TOK = tokenizer_hash(SAMPLE_TOKENIZER)
VOCAB = 5000


def mix_yaml(**over) -> str:
    d = {
        "name": "t",
        "tokenizer": TOK,
        "target_tokens": 12000,
        "seq_length": 64,
        "seed": 3,
        "sources": [
            {"name": "en", "select": {"lang": "en"}, "weight": 0.5, "max_epochs": 4},
            {"name": "de", "select": {"lang": "de"}, "weight": 0.3, "max_epochs": 4},
            {"name": "fr", "select": {"lang": "fr"}, "weight": 0.2, "max_epochs": 4},
        ],
    }
    d.update(over)
    return MixConfig.model_validate(d).to_yaml()
