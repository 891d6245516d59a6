"""sessionraft_hosts: hosts made of Linux network namespaces, for running sessionraft as it runs
on separate machines (scripts/hosts.sh execs `python3 -m sessionraft_hosts "$@"` with
PYTHONPATH=scripts/pylib). Standard library only; needs root.

A run (its state in --state DIR): a switch namespace with a bridge; one namespace per host
(sessionraft-0, -1, ...) with a veth into the bridge, one IPv4 address on a private 10.A.B.0/24
that nothing on the machine uses, and /etc/netns/NS/hosts naming every host (full
sessionraft-N.sessionraft and short name) in every namespace; the node of each host started as
its Kubernetes pod would be (the ConfigMap's cluster.toml, names only; HOSTNAME; listeners on
0.0.0.0; the secrets in the environment; its data directory at the same path in every host);
HAProxy in a namespace of its own, servers by name, its listeners bound in the root namespace's
loopback. Operations on a host: reip (new IP, same data), wipe (new IP, empty data), cut/heal
(its link), delete, start/stop/kill, exec (a command as in its pod). `down` removes every
namespace, link, handle and /etc/netns directory the run recorded, and only those.

Module map:
    plan.py      names, subnet, addresses, the `ip` commands, hosts files, the nodes'
                 configuration, environment and command lines (pure: unit-tested)
    haproxy.py   HAProxy's configuration (pure) and its stats CSV
    state.py     the state directory: state.json (everything made, recorded before it is
                 made), the lock
    system.py    commands, processes by pid (only those inside the run's namespaces),
                 files rewritten in place
    ops.py       the operations; JSON-lines events
    cli.py       the command line
    __main__.py  python3 -m sessionraft_hosts

Tests: scripts/pylib/tests/test_hosts*.py (unittest, no root needed); tests/it/solo/hosts.rs drives
the real thing.
"""
