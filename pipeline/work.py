"""Where a run keeps its intermediate and final files, and what each is called.

Names derive only from the input file URI and the config hash, so a re-run finds the work of
an interrupted one and two runs with the same input and config write the same bytes to the
same names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pipeline import storage


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

    def decisions(self, rkey: str) -> str:
        return storage.join(self.work_dir(rkey), "dedup_decisions.parquet")

    def decisions_archive(self, rkey: str) -> str:
        return storage.join(self.out, "_dedup", f"decisions-{rkey}.parquet")

    def shard_name(self, file_key: str) -> str:
        return f"{file_key}-{self.cfg8}"

    def text_shard(self, lang: str, bucket: str, file_key: str) -> str:
        return storage.join(self.out, lang, bucket, self.shard_name(file_key) + ".parquet")

    def token_prefix(self, lang: str, bucket: str, file_key: str) -> str:
        return storage.join(self.out, lang, bucket, self.shard_name(file_key))

    def rejected_shard(self, lang: str, bucket: str, file_key: str) -> str:
        return storage.join(
            self.out, "_rejected", lang, bucket, self.shard_name(file_key) + ".parquet"
        )

    def index_dir(self) -> str:
        """Released documents' signatures, one part per committed input file, per config."""
        return storage.join(self.out, "_dedup_index", self.cfg8)

    def index_part(self, file_key: str) -> str:
        return storage.join(self.index_dir(), f"run={file_key}", "part-00000.parquet")

    def relative(self, uri: str) -> str:
        base = self.out.rstrip("/") + "/"
        return uri[len(base) :] if uri.startswith(base) else uri


def write_json_atomic(uri: str, obj: dict) -> None:
    storage.write_bytes_atomic(uri, json.dumps(obj, sort_keys=True, indent=1).encode())


def read_json(uri: str) -> dict | None:
    if not storage.exists(uri):
        return None
    return json.loads(storage.read_bytes(uri))
