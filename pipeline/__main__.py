import sys

from core.cli_io import run_cli
from pipeline.cli import main

sys.exit(run_cli(main))
