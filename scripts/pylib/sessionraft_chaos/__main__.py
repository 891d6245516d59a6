"""python3 -m sessionraft_chaos ARGS: what scripts/chaos.sh runs (see cli.py)."""

import sys

from .cli import main

# progress lines must show up at once, also through a pipe (CI logs, tee)
sys.stdout.reconfigure(line_buffering=True)
sys.exit(main())
