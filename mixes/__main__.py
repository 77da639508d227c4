import sys

from mixes.cli import main

sys.exit(main())
