"""Generate a crawl of many sample-sized WARC files (for scale tests of units and shards).

Each pair of files is the shipped sample generator (`pipeline.sample.generate`) run with its
own seed, renamed `crawl-<i>.warc.gz`; byte-identical for the same `n_files` and `seed0`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def generate_crawl(out_dir: Path, n_files: int, seed0: int = 1000) -> list[str]:
    """Write `n_files` WARCs into `out_dir` (reused when already there); returns their paths.

    Seeds are tried in order from `seed0`; a seed whose pages break the generator's own
    dedup contract (unplanted near-duplicates) is skipped, so the crawl is deterministic.
    """
    from pipeline.sample.generate import generate

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"crawl-{i:05d}.warc.gz" for i in range(n_files)]
    if all(p.exists() for p in paths):
        return [str(p) for p in paths]
    seed = seed0
    for pair in range((n_files + 1) // 2):
        targets = paths[2 * pair : 2 * pair + 2]
        while True:
            with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
                try:
                    generate(Path(tmp), seed=seed)
                except RuntimeError:  # this seed planted an unplanned near-duplicate
                    seed += 1
                    continue
                seed += 1
                made = sorted(Path(tmp).glob("*.warc.gz"))
                for src, dst in zip(made, targets, strict=False):
                    shutil.move(str(src), dst)
                break
    return [str(p) for p in paths]


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=200)
    a = ap.parse_args()
    print(len(generate_crawl(Path(a.out), a.files)), "files in", a.out)
