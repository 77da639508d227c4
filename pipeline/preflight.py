"""What a run checks before it touches its output: the settings only a model file can judge.

The config validators catch what the settings alone show (unknown keys, PII entities, quality
signal names, per-language overrides). What needs a file is checked here, in the driver,
before the output lock: the model files are readable (their hashes go to lineage), the
tokenizer has the end-of-document token, and every language in `langid.languages` is a label
the detectors can give. Without this a typo was a traceback after phases 1 and 2 had run, or
(`languages: [english]`) a run that kept nothing and exited 0.
"""

from __future__ import annotations

from pipeline.config import ConfigError, PipelineConfig


def model_hashes(cfg: PipelineConfig) -> dict[str, dict[str, str]]:
    """Content hashes of every model file the run uses: outputs depend on their bytes."""
    from stages.langid import default_model_path
    from stages.tokenize import tokenizer_hash

    try:
        tokenizer = str(cfg.tokenize.resolved_tokenizer_path())
    except FileNotFoundError as exc:
        raise ConfigError(f"config error: tokenize.tokenizer_path: {exc}") from exc
    paths = {"langid": cfg.langid.model_path or default_model_path(), "tokenizer": tokenizer}
    if cfg.quality.model.path:
        paths["quality_model"] = cfg.quality.model.path
    out = {}
    for name, path in paths.items():
        try:
            out[name] = {"path": path, "sha256": tokenizer_hash(path)}
        except OSError as exc:
            raise ConfigError(f"config error: {name} model not readable: {path}: {exc}") from exc
    return out


def check_tokenizer(cfg: PipelineConfig) -> None:
    """The tokenizer loads and knows `tokenize.eos_token` (what phase 3 would find out)."""
    from stages.tokenize import Tokenize

    try:
        Tokenize(cfg.tokenize)
    except ValueError as exc:
        raise ConfigError(f"config error: tokenize.eos_token: {exc}") from exc
    except Exception as exc:  # tokenizers raises its own error types for a malformed file
        raise ConfigError(f"config error: tokenize.tokenizer_path: cannot load: {exc}") from exc


def check_languages(cfg: PipelineConfig) -> None:
    """Every code in `langid.languages` is a label the language detectors can give."""
    if cfg.langid.languages is None:
        return
    from stages.langid import known_labels

    unknown = sorted(set(cfg.langid.languages) - known_labels(cfg.langid))
    if unknown:
        raise ConfigError(
            f"config error: langid.languages: {unknown} are not language labels the detectors "
            "give (lid.176 codes such as en, de, zh, pt; see docs/languages.md)"
        )


def preflight(cfg: PipelineConfig) -> dict[str, dict[str, str]]:
    """All of the above; raises ConfigError (exit 2) naming the setting. Returns the model
    hashes, which the run records in lineage."""
    models = model_hashes(cfg)
    check_tokenizer(cfg)
    check_languages(cfg)
    return models
