"""TLS of the cluster (`[tls]` in the config, read with `sessionraft tls-files`): the
scheme every node and the load balancer serve, and the client context that trusts the cluster's
CA alone (hostnames verified: the node certificates carry the IPs and names of the nodes, the
load balancer's certificate `lb.crt` in cert_dir its address). Without `[tls]`, plain HTTP.

Set once per command by topology.load (use), read by probe and haproxy."""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert_dir: str

    @property
    def lb_crt(self) -> str:
        """The load balancer's certificate (scripts/dev-certs.sh issues it for [load_balancer] addr)."""
        return os.path.join(self.cert_dir, "lb.crt")

    @property
    def lb_key(self) -> str:
        return os.path.join(self.cert_dir, "lb.key")


_files: TlsFiles | None = None
_context: ssl.SSLContext | None = None


def parse(text: str) -> TlsFiles | None:
    """The output of `sessionraft tls-files`: a JSON object {ca, cert_dir}, or nothing."""
    text = text.strip()
    if not text:
        return None
    d = json.loads(text)
    if not isinstance(d, dict) or not d.get("ca") or not d.get("cert_dir"):
        raise ValueError(f"not a tls-files answer: {text!r}")
    return TlsFiles(ca=str(d["ca"]), cert_dir=str(d["cert_dir"]))


def use(files: TlsFiles | None) -> None:
    """The TLS of this command's cluster (None: plain HTTP)."""
    global _files, _context
    _files = files
    _context = None


def files() -> TlsFiles | None:
    return _files


def scheme() -> str:
    return "https" if _files is not None else "http"


def url(addr: str, path: str = "") -> str:
    """`{scheme}://{addr}{path}`."""
    return f"{scheme()}://{addr}{path}"


def context() -> ssl.SSLContext | None:
    """A client context trusting the cluster's CA alone, hostnames checked (None without TLS).
    Built on first use; an unreadable CA makes every request fail (no answer), as a node that
    is down would."""
    global _context
    if _files is None:
        return None
    if _context is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            ctx.load_verify_locations(cafile=_files.ca)
        except (OSError, ssl.SSLError):
            pass
        _context = ctx
    return _context
