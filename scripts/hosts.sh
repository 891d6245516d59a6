#!/usr/bin/env bash
# Hosts for sessionraft on one machine, made of Linux network namespaces (as root): each host a
# namespace with its own IPv4 address on a private bridge (itself in a namespace of its own) and
# its own /etc/hosts naming every host; a sessionraft node in each, started with the environment
# the Kubernetes manifest gives a pod (deploy/kubernetes/configmap.yaml's cluster.toml, names
# only; HOSTNAME=sessionraft-N gives the node id; SESSIONRAFT_LISTEN__IP=0.0.0.0); HAProxy in a
# namespace of its own, its listeners on this machine's 127.0.0.1. Nothing touches the machine's
# own interfaces or routes.
#
#   scripts/hosts.sh --state DIR up [--hosts 3] [--bin PATH] [--env K=V]... [--no-start] [--tls]
#                                               --tls: [tls] on every node (scripts/dev-certs.sh,
#                                               certificates by host name in DIR/certs), HAProxy
#                                               over HTTPS verifying them; the Redis protocol TLS
#                                               passed through
#   scripts/hosts.sh --state DIR down           everything the run made removed (also after a failure)
#   scripts/hosts.sh --state DIR status         hosts, addresses, pids, URLs (JSON)
#   scripts/hosts.sh --state DIR start|stop|kill HOST
#   scripts/hosts.sh --state DIR reip HOST      destroyed, made again: same name, new IP, same data
#   scripts/hosts.sh --state DIR wipe HOST      the same with an empty data directory
#   scripts/hosts.sh --state DIR cut|heal HOST  the host's link down / up
#   scripts/hosts.sh --state DIR delete HOST    node SIGKILLed, host removed, name gone
#   scripts/hosts.sh --state DIR exec HOST -- CMD...   CMD inside the host, as in its pod
#   scripts/hosts.sh --state DIR lb-reload
#
# HOST is sessionraft-N or a node id. Every command prints JSON lines ({"event": ..., "t_ms": ...})
# on stdout. The program is the Python package scripts/pylib/sessionraft_hosts (module map in its
# __init__.py; tests in scripts/pylib/tests/test_hosts*.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT/scripts/pylib${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m sessionraft_hosts "$@"
