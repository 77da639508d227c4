"""Every config field is output-affecting (hashed) or execution-only (not hashed), and it is true.

Fails when a new field carries no mark (core/config_effects.py says how to mark one), when an
execution-only field changes the hash or a single output byte of the sample run, and when an
output-affecting field does not change the hash.
"""

from __future__ import annotations

import hashlib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.config_effects import field_effect, leaf_fields
from pipeline.config import PipelineConfig, _set_dotted
from pipeline.sample import sample_paths

LEAVES = dict(leaf_fields(PipelineConfig))
EXECUTION = sorted(p for p, f in LEAVES.items() if field_effect(f) == "execution")
OUTPUT = sorted(p for p, f in LEAVES.items() if field_effect(f) == "output")

# One changed value per execution-only field: the sample run below uses all of them at once.
# A new execution-only field needs an entry here (test_every_execution_field_has_a_change).
EXECUTION_CHANGES: dict[str, Any] = {
    "input.paths": sample_paths(),  # the same files, named explicitly instead of by default
    "input.listing_prefix": "s3://unused-prefix/",
    "read.library": "warcio",
    "read.chunk_records": 7,
    "read.chunk_bytes": 20_000,
    "extract.timeout_s": 30.0,
    "dedup.chunk_shingles": 64,
    "dedup.num_partitions": 3,
    "pii.prefilter": False,
    "tokenize.batch_size": 3,
    "output.dir": None,  # set per test (a different directory)
    "output.lineage_path": None,  # set per test (a different file)
    "output.keep_work": True,
    "execution.engine": "local",  # in this process: the same bytes as the Ray run
    "execution.local_max_bytes": 0,
    "execution.num_workers": 1,
    "execution.ray_address": "local",
    "execution.progress": True,
    "execution.dedup_local_max_docs": 0,  # the Ray shuffle instead of the in-driver clustering
    "execution.lineage_publish_interval_s": 0.0,  # publish after every unit commit
    "execution.output_shared": True,  # a one-node run: the multi-node guard has nothing to say
}

# Output-affecting fields whose changed value cannot be derived from the type alone.
OUTPUT_CHANGES: dict[str, Any] = {
    "stages": ["extract", "lang", "quality", "digit_ratio", "signatures"],
    "quality.per_language": {"de": {"gopher_quality": {"min_words": 10}}},
    "quality.bucket.soft_min": {"q_word_count": 100},
    "quality.bucket.soft_max": {"q_short_line_ratio": 0.3},
    "quality.char_unit_scripts": ["Han"],
    "quality.gopher_repetition.max_top_ngram_char_fraction": {2: 0.3},
    "quality.gopher_repetition.max_dup_ngram_char_fraction": {5: 0.3},
    "quality.gopher_quality.stop_words": {"en": ["the"]},
    "pii.entities": ["EMAIL_ADDRESS"],
    "pii.languages": ["de"],
    "pii.phone_regions": ["US"],
    "langid.languages": ["en", "de"],
}


def _cfg(changes: dict[str, Any]) -> PipelineConfig:
    data: dict[str, Any] = {}
    for k, v in changes.items():
        _set_dotted(data, k, v)
    return PipelineConfig.model_validate(data)


def _candidates(path: str, default: Any) -> list[Any]:
    """Values different from the default that the field's type admits (first valid one wins)."""
    if path in OUTPUT_CHANGES:
        return [OUTPUT_CHANGES[path]]
    ann = LEAVES[path].annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    literal = [a for a in args if typing.get_origin(a) is typing.Literal]
    if typing.get_origin(ann) is typing.Literal or literal:
        choices = typing.get_args(ann if not literal else literal[0])
        return [c for c in choices if c != default]
    if isinstance(default, bool):
        return [not default]
    if isinstance(default, int):
        return [default + 1, default - 1, 1, None]
    if isinstance(default, float):
        return [default / 2, default + 0.1, 0.5, None]
    if isinstance(default, str):
        return [default + "-changed"]
    if isinstance(default, list):
        return [default[:-1] if default else ["x"], [*default, "x"]]
    if isinstance(default, dict):
        return [{}]
    if default is None:  # optional: a value of the inner type
        inner = args[0] if args else str
        return {int: [1], float: [0.5], str: ["changed"]}.get(inner, [["en"]])
    raise AssertionError(f"{path}: no candidate value for {default!r}")


def test_every_field_is_classified():
    unmarked = [p for p, f in LEAVES.items() if field_effect(f) is None]
    assert not unmarked, (
        f"config fields without an effect mark: {unmarked}. Annotate each as Output[T] (changes "
        "output bytes: hashed) or Execution[T] (speed/location only: not hashed), see "
        "core/config_effects.py."
    )
    assert len(EXECUTION) + len(OUTPUT) == len(LEAVES)


def test_every_execution_field_has_a_change():
    assert sorted(EXECUTION_CHANGES) == EXECUTION


@pytest.mark.parametrize("path", OUTPUT)
def test_output_field_changes_hash(path):
    base = PipelineConfig()
    default = base.model_dump()
    for part in path.split("."):
        default = default[part]
    errors = []
    for value in _candidates(path, default):
        try:
            cfg = _cfg({path: value})
        except ValidationError as exc:
            errors.append(str(exc).splitlines()[0])
            continue
        assert cfg.config_hash != base.config_hash, f"{path}={value!r} does not change the hash"
        assert cfg.canonical_json() != base.canonical_json()
        return
    pytest.fail(f"{path}: no valid changed value found ({errors})")


@pytest.mark.parametrize("path", EXECUTION)
def test_execution_field_keeps_hash(path, tmp_path):
    value = EXECUTION_CHANGES[path]
    if value is None:
        value = str(tmp_path / "x")
    cfg = _cfg({path: value})
    assert cfg.config_hash == PipelineConfig().config_hash
    assert cfg.canonical_json() == PipelineConfig().canonical_json()


DEFAULT_HASH = "02f2e32ac3685e7b"  # see test_default_hash_is_unchanged_since_v1
POLICY_HASH_HASH = "0a74a73e24806da1"


def test_default_hash_is_unchanged_since_v1():
    """Outputs made before the effect split keep their names (their bytes did not change).

    Issue 19 added output fields (read.keep_record_id, extract.max_attributes) and changed
    doc_id to a hash; issue 21 added language-ID and word-statistics fields and the
    `lang_detector` column; issue 18 added work units and shard caps (output.shard_max_bytes,
    unit_max_files, unit_max_bytes) and the published data/ layout; issue 20 turned
    extract.deduplicate off by default (no cross-document state; F1 in its description):
    output bytes changed, so the default hash moved on purpose (v1 was 9845ce6c3f5c3000;
    pii.policy=hash a94ecb8c8acf88a7).
    """
    assert PipelineConfig().config_hash == DEFAULT_HASH
    # v1 hashed these execution fields and left these output fields out: same names
    assert _cfg({"pii.policy": "hash"}).config_hash == POLICY_HASH_HASH
    assert _cfg({"dedup.num_partitions": 8}).config_hash == DEFAULT_HASH
    assert _cfg({"input.crawl_id": "CC-X"}).config_hash != DEFAULT_HASH


def _output_bytes(root: Path) -> dict[str, str]:
    """sha256 of every file the run leaves, except lineage databases and staging."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel.startswith(("_work/", "_lineage/")) or ".duckdb" in rel:
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.ray
@pytest.mark.slow  # two sample runs, one with the Ray shuffle and 7-record chunks (~4 min)
def test_execution_fields_keep_sample_output_bytes(sample_run, tmp_path):
    from pipeline.run import run_pipeline

    changes = dict(EXECUTION_CHANGES)
    changes["output.dir"] = str(tmp_path / "out")
    changes["output.lineage_path"] = str(tmp_path / "elsewhere" / "lineage.duckdb")
    cfg = _cfg(changes)
    assert cfg.config_hash == PipelineConfig().config_hash
    result = run_pipeline(cfg)
    base = _output_bytes(Path(sample_run.output))
    new = _output_bytes(tmp_path / "out")
    assert base, "the baseline run left no files"
    assert sorted(new) == sorted(base)
    differ = [k for k in base if base[k] != new[k]]
    assert not differ, f"execution-only settings changed output bytes: {differ}"
    assert result.status == "succeeded"


# ---- model paths count by content ---------------------------------------------------------
def _model_files(tmp_path: Path) -> dict[str, Path]:
    """A copy of each kind of model file the config names: a fastText language-ID model, a
    tokenizer directory, and a quality classifier (any bytes: only hashed here)."""
    import shutil

    from stages.langid import default_model_path
    from stages.tokenize import SAMPLE_TOKENIZER_DIR

    src = tmp_path / "a"
    src.mkdir()
    lid = src / "lid.176.ftz"
    shutil.copyfile(default_model_path(), lid)
    tok = src / "tokenizer"
    shutil.copytree(SAMPLE_TOKENIZER_DIR, tok)
    clf = src / "quality.bin"
    clf.write_bytes(b"__label__hq model bytes " * 100)
    return {"langid.model_path": lid, "tokenize.tokenizer_path": tok, "quality.model.path": clf}


MODEL_FIELDS = ["langid.model_path", "tokenize.tokenizer_path", "quality.model.path"]


def test_model_path_fields_are_the_content_hashed_ones():
    from core.config_effects import hashed_by_content

    assert sorted(p for p, f in LEAVES.items() if hashed_by_content(f)) == sorted(MODEL_FIELDS)


@pytest.mark.parametrize("path", MODEL_FIELDS)
def test_moving_a_model_keeps_the_hash(path, tmp_path):
    model = _model_files(tmp_path)[path]
    before = _cfg({path: str(model)}).config_hash
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    model.rename(moved)
    assert _cfg({path: str(moved)}).config_hash == before


@pytest.mark.parametrize("path", MODEL_FIELDS)
def test_replacing_a_models_bytes_changes_the_hash(path, tmp_path):
    model = _model_files(tmp_path)[path]
    before = _cfg({path: str(model)}).config_hash
    target = model / "tokenizer.json" if model.is_dir() else model
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, same size
    target.write_bytes(bytes(data))
    after = _cfg({path: str(model)}).config_hash
    assert after != before
    assert after != PipelineConfig().config_hash


def test_a_tokenizer_directory_hashes_all_its_files(tmp_path):
    tok = _model_files(tmp_path)["tokenize.tokenizer_path"]
    before = _cfg({"tokenize.tokenizer_path": str(tok)}).config_hash
    cfg_file = tok / "tokenizer_config.json"
    cfg_file.write_text(cfg_file.read_text() + "\n")
    assert _cfg({"tokenize.tokenizer_path": str(tok)}).config_hash != before


def test_lineage_config_json_records_the_content_not_the_path(tmp_path):
    model = _model_files(tmp_path)["quality.model.path"]
    cfg = _cfg({"quality.model.path": str(model)})
    assert str(model) not in cfg.canonical_json()
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert cfg.hashed_part()["quality"]["model"]["path"] == f"sha256:{digest}"
