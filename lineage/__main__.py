"""`python -m lineage`: see lineage/cli.py."""

import sys

from core.cli_io import run_cli
from lineage.cli import main

sys.exit(run_cli(main))
