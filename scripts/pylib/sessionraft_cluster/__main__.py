"""python3 -m sessionraft_cluster ARGS: what scripts/cluster.sh runs (see cli.py)."""

import signal
import sys

from .cli import main

# `scripts/cluster.sh status | head` ends quietly, as the shell script did
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
sys.exit(main())
