"""python3 -m sessionraft_hosts (what scripts/hosts.sh runs)."""

import sys

from .cli import main

sys.exit(main())
