"""`python -m lineage`: see lineage/cli.py."""

import sys

from lineage.cli import main

sys.exit(main())
