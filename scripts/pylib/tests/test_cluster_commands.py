"""sessionraft_cluster.commands.start_node: a node is not started over an address something
else already answers on (that process would answer the readiness probes in its stead), nor from
a binary of another name than sessionraft (its pid would never be recognised as a node's)."""

import http.server
import os
import socket
import tempfile
import threading
import unittest

from sessionraft_cluster import commands
from sessionraft_cluster.console import Die
from sessionraft_cluster.rundir import RunDir
from sessionraft_cluster.settings import Settings
from sessionraft_cluster.topology import Node, Topology


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class StartNodeTest(unittest.TestCase):
    def refused_start(self, d: str, addr: str, binary_name: str) -> str:
        """start_node of node 1 on addr from a binary named binary_name in d, which must be
        refused before anything starts: the refusal's message."""
        run = RunDir(d)
        topo = Topology(run, [Node("1", addr, f"{d}/data", addr, None)])
        marker = f"{d}/started"
        # a "binary" that would leave a mark if it were ever run
        os.makedirs(f"{d}/bin")
        binary = f"{d}/bin/{binary_name}"
        with open(binary, "w") as f:
            f.write(f"#!/bin/sh\ntouch {marker}\n")
        os.chmod(binary, 0o755)
        s = Settings(root=d, config=f"{d}/cluster.toml", run_dir=d, bin=binary, ready_timeout=1)
        with self.assertRaises(Die) as caught:
            commands.start_node(s, topo, "1", out=lambda *_: None)
        self.assertFalse(os.path.exists(run.pid_file("1")), "no pid recorded")
        self.assertFalse(os.path.exists(marker), "nothing started")
        return caught.exception.message

    def test_an_address_already_answering_is_refused_before_anything_starts(self):
        server = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with tempfile.TemporaryDirectory() as d:
                addr = f"127.0.0.1:{server.server_address[1]}"
                message = self.refused_start(d, addr, "sessionraft")
                self.assertIn(f"{addr} already answers (HTTP 200)", message)
        finally:
            server.shutdown()
            server.server_close()

    def test_a_binary_of_another_name_is_refused_before_it_starts(self):
        with tempfile.TemporaryDirectory() as d:
            # a free address: nothing answers there
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                addr = f"127.0.0.1:{sock.getsockname()[1]}"
            self.assertIn("must be named sessionraft", self.refused_start(d, addr, "sessionraft-copy"))


if __name__ == "__main__":
    unittest.main()
