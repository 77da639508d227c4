"""notebooks/mix_tuning.ipynb runs headless against a real sample run and writes a buildable mix.

The notebook is executed with nbclient on the `python3` kernel (ipykernel's spec; jupyter_client
substitutes this interpreter for its "python" argv). If the venv has no kernel spec, install
one with `python -m ipykernel install --sys-prefix`; the test skips (with that
hint) only when no kernel can start at all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from nbclient.exceptions import CellExecutionError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "mix_tuning.ipynb"


def _execute(nb, monkeypatch, lineage: Path, out: Path):
    """Run all cells in a fresh kernel; skip only if the kernel itself cannot start."""
    monkeypatch.setenv("MIX_LINEAGE", str(lineage))
    monkeypatch.setenv("MIX_OUT", str(out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        startup_timeout=90,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    kernel = client.setup_kernel()
    try:
        kernel.__enter__()
    except Exception as e:  # noqa: BLE001 - any failure to start a kernel is the skip reason
        pytest.skip(
            f"no Jupyter kernel could start ({type(e).__name__}: {e}); install one with "
            f"`{sys.executable} -m ipykernel install --sys-prefix`"
        )
    try:  # cell errors (CellExecutionError) propagate: they are failures, not skips
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    finally:
        kernel.__exit__(None, None, None)
    return nb


def _outputs(nb, output_type: str | None = None) -> list[dict]:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if output_type is None or o["output_type"] == output_type
    ]


def _text(nb) -> str:
    parts = []
    for o in _outputs(nb):
        if o["output_type"] == "stream":
            parts.append(o["text"])
        elif "data" in o and "text/plain" in o["data"]:
            parts.append(o["data"]["text/plain"])
    return "\n".join(parts)


@pytest.mark.ray
def test_notebook_writes_a_mix_that_builds(sample_run, tmp_path, monkeypatch):
    lin = tmp_path / "lineage.duckdb"
    shutil.copyfile(sample_run.lineage_path, lin)
    out_yaml = tmp_path / "tuned" / "mix.yaml"
    nb = _execute(nbformat.read(NOTEBOOK, as_version=4), monkeypatch, lin, out_yaml)

    text = _text(nb)
    assert "en/high" in text and "tokens" in text  # the partition table
    pngs = [o for o in _outputs(nb, "display_data") if "image/png" in o["data"]]
    assert len(pngs) == 2  # partition bar chart and epochs chart
    assert "OK:" in text and "WARNING" not in text
    assert out_yaml.is_file()

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mixes",
            "build",
            str(out_yaml),
            "--lineage",
            str(lin),
            "--out",
            str(tmp_path / "built"),
            # the lineage file was copied alone: its relative shard paths are the run's
            "--output-root",
            str(Path(sample_run.lineage_path).parent),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "built" / "manifest.json").read_text())
    assert manifest["name"] == "tuned"
    # the notebook planned exactly the mix the build made (same config, shards and hash)
    assert f"mix id would be {manifest['mix_id']}" in text

    from lineage.store import open_reader

    con = open_reader(lin)
    n = con.execute(
        "SELECT count(*) FROM mixes m JOIN mix_components c USING (mix_id) WHERE m.name = 'tuned'"
    ).fetchone()[0]
    con.close()
    assert n == len(manifest["shards"]) > 0


@pytest.mark.ray
def test_notebook_warns_and_refuses_to_write_an_over_epoch_mix(sample_run, tmp_path, monkeypatch):
    lin = tmp_path / "lineage.duckdb"
    shutil.copyfile(sample_run.lineage_path, lin)
    out_yaml = tmp_path / "mix.yaml"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "TARGET_TOKENS = " in c.source)
    cell.source = cell.source.replace("TARGET_TOKENS = 80_000", "TARGET_TOKENS = 10_000_000")
    with pytest.raises(CellExecutionError, match="mixes build` would refuse it"):
        _execute(nb, monkeypatch, lin, out_yaml)
    assert "epochs > max_epochs" in _text(nb)
    assert not out_yaml.exists()


@pytest.mark.parametrize("start_dir", ["notebooks", "."])
def test_notebook_default_paths_are_repository_relative(start_dir, monkeypatch):
    """Without MIX_LINEAGE/MIX_OUT the notebook finds README command 1's `out/` from the
    repository root, whichever directory the kernel starts in."""
    monkeypatch.delenv("MIX_LINEAGE", raising=False)
    monkeypatch.delenv("MIX_OUT", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type == "code"][:1]  # the setup cell only
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        startup_timeout=90,
        resources={"metadata": {"path": str(REPO / start_dir)}},
    )
    client.execute()
    text = _text(nb)
    assert f"lineage: {REPO / 'out' / 'lineage.duckdb'}" in text, text
    assert f"written to: {REPO / 'mix_tuned.yaml'}" in text, text
