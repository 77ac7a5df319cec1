"""``python -m wanda_viz``: the command line (see wanda_viz.cli)."""
import sys

from .cli import main

sys.exit(main())
