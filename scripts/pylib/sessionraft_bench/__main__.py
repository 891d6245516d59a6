"""`python3 -m sessionraft_bench ARGS`: what scripts/bench.sh runs (PYTHONPATH=scripts/pylib)."""

import sys

from .cli import main

sys.exit(main())
