"""Which WARC files a benchmark reads: the default input and cutting inputs to N documents.

Split out of benchmarks/run.py so every section (stage timing, e2e, start-up, peer) reads the
same records.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.data import real_data_dir

EVAL_WARC = real_data_dir() / "extraction" / "trafilatura-eval.warc.gz"


def default_inputs() -> list[str]:
    """trafilatura-eval (989 real pages) if the shared data is there, else the shipped sample."""
    if EVAL_WARC.is_file():
        return [str(EVAL_WARC.resolve())]
    from pipeline.sample import sample_paths

    return sample_paths()


def limit_inputs(paths: list[str], limit: int, workdir: Path) -> list[str]:
    """The inputs cut after their first ``limit`` HTML documents (in order across files).

    A cut file is the byte prefix of the original up to the end of the limit-th document's
    record (records are whole gzip members), so the pipeline, the stage run and the peer all
    read exactly the same records.
    """
    from stages.warc_reader import ReadConfig, read_warc

    out: list[str] = []
    left = limit
    for path in paths:
        if left <= 0:
            break
        end = None
        n = 0
        for chunk in read_warc(path, ReadConfig()):
            d = chunk.docs
            if n + d.num_rows >= left:
                i = left - n - 1
                end = d.column("source_offset")[i].as_py() + d.column("source_length")[i].as_py()
                n = left
                break
            n += d.num_rows
        left -= n
        if end is None:
            out.append(path)
            continue
        workdir.mkdir(parents=True, exist_ok=True)
        cut = workdir / f"limit{limit}-{Path(path).name}"
        with open(path, "rb") as src, open(cut, "wb") as dst:
            dst.write(src.read(end))
        out.append(str(cut))
    return out
