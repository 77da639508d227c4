"""Where a run keeps its intermediate and final files, and what each is called.

Names derive only from the input file URI and the config hash, so a re-run finds the work of
an interrupted one and two runs with the same input and config write the same bytes to the
same names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from core import storage

DATA_DIR = "data"  # kept documents (the published dataset)
TOKENS_DIR = "tokens"  # token files mirroring data/ shard by shard
REJECTED_DIR = "_rejected"  # audit output: dropped documents with their reason


def run_key(config_hash: str, uris: list[str]) -> str:
    """Identity of a run for resuming: the config and the exact set of input files."""
    h = hashlib.sha256(config_hash.encode())
    for u in sorted(uris):
        h.update(b"\0" + u.encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Layout:
    """Paths under the output root for one config."""

    out: str
    config_hash: str

    @property
    def cfg8(self) -> str:
        return self.config_hash[:8]

    def work_dir(self, rkey: str) -> str:
        return storage.join(self.out, "_work", rkey)

    def chunk_prefix(self, rkey: str, file_key: str, chunk_index: int) -> str:
        return storage.join(self.work_dir(rkey), "p1", file_key, f"chunk-{chunk_index:05d}")

    def file_done(self, rkey: str, file_key: str) -> str:
        return storage.join(self.work_dir(rkey), "p1", file_key, "_done.json")

    def decisions_dir(self, rkey: str) -> str:
        """Phase-2 decisions, one Parquet file per input file with drops (+ _SUCCESS.json)."""
        return storage.join(self.work_dir(rkey), "dedup_decisions")

    def decisions_archive(self, rkey: str) -> str:
        return storage.join(self.out, "_dedup", f"decisions-{rkey}.parquet")

    # Published dataset: kept documents only, hive-partitioned, so any Parquet reader pointed
    # at <out>/data sees exactly the kept documents. Token files live in a parallel tree (a
    # reader of <out>/data must not meet .bin/.idx files); the audit output is outside both.
    def part_name(self, unit_id: str, seq: int) -> str:
        """`part-<unit>-<cfg8>-<seq>`: unit and config make names unique and stable."""
        return f"part-{unit_id}-{self.cfg8}-{seq:05d}"

    def partition_dir(self, tree: str, lang: str, bucket: str) -> str:
        return storage.join(self.out, tree, f"lang={lang}", f"bucket={bucket}")

    def text_part(self, lang: str, bucket: str, unit_id: str, seq: int) -> str:
        return storage.join(
            self.partition_dir(DATA_DIR, lang, bucket), self.part_name(unit_id, seq) + ".parquet"
        )

    def token_part(self, lang: str, bucket: str, unit_id: str, seq: int) -> str:
        """Megatron prefix (no extension) of the token files mirroring `text_part`."""
        return storage.join(
            self.partition_dir(TOKENS_DIR, lang, bucket), self.part_name(unit_id, seq)
        )

    def rejected_part(self, lang: str, bucket: str, unit_id: str, seq: int) -> str:
        return storage.join(
            self.partition_dir(REJECTED_DIR, lang, bucket),
            self.part_name(unit_id, seq) + ".parquet",
        )

    def units_plan(self, rkey: str) -> str:
        return storage.join(self.work_dir(rkey), "units.json")

    def index_dir(self) -> str:
        """Cross-run dedup index of this config (range-partitioned; pipeline/dedup_index.py)."""
        return storage.join(self.out, "_dedup_index", self.cfg8)

    def relative(self, uri: str) -> str:
        base = self.out.rstrip("/") + "/"
        return uri[len(base) :] if uri.startswith(base) else uri


def write_json_atomic(uri: str, obj: dict) -> None:
    storage.write_bytes_atomic(uri, json.dumps(obj, sort_keys=True, indent=1).encode())


def read_json(uri: str) -> dict | None:
    if not storage.exists(uri):
        return None
    return json.loads(storage.read_bytes(uri))


def read_jsons(uris: list[str]) -> list[dict | None]:
    """`read_json` of each URI, in order; an object store is asked concurrently."""
    return storage.map_uris(read_json, uris)


@dataclass(frozen=True)
class WorkUnit:
    """A fixed group of input files: the unit of phase-3 work, commit, resume and lineage."""

    unit_id: str
    file_keys: tuple[str, ...]


def unit_id_of(file_keys: list[str] | tuple[str, ...]) -> str:
    h = hashlib.sha256("\0".join(sorted(file_keys)).encode()).hexdigest()[:12]
    return f"u{h}"


def plan_units(
    files: list[tuple[str, str, int | None]], max_files: int, max_bytes: int
) -> list[WorkUnit]:
    """Group (uri, file_key, size) into units: sorted by URI, greedy up to both caps.

    Greedy from a sorted list is deterministic, and a unit's members depend only on where it
    starts, so dropping whole committed units from the list leaves the other units unchanged.
    A file larger than `max_bytes` forms a unit of its own.
    """
    units: list[WorkUnit] = []
    cur: list[str] = []
    cur_bytes = 0
    for _uri, key, size in sorted(files):
        size = size or 0
        if cur and (len(cur) >= max_files or cur_bytes + size > max_bytes):
            units.append(WorkUnit(unit_id_of(cur), tuple(cur)))
            cur, cur_bytes = [], 0
        cur.append(key)
        cur_bytes += size
    if cur:
        units.append(WorkUnit(unit_id_of(cur), tuple(cur)))
    return units


def load_or_plan_units(
    uri: str, files: list[tuple[str, str, int | None]], max_files: int, max_bytes: int
) -> list[WorkUnit]:
    """The persisted plan when there is one (a resume groups files exactly as before)."""
    saved = read_json(uri)
    keys = {k for _, k, _ in files}
    if saved is not None:
        units = [WorkUnit(u["unit_id"], tuple(u["file_keys"])) for u in saved["units"]]
        if keys <= {k for u in units for k in u.file_keys}:
            return units
    units = plan_units(files, max_files, max_bytes)
    write_json_atomic(
        uri, {"units": [{"unit_id": u.unit_id, "file_keys": list(u.file_keys)} for u in units]}
    )
    return units
