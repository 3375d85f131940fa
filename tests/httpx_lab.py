"""The network lab with an HTTP server behind a broken-IPv6 name, for the httpx tests and
benchmarks/bench_httpx.py.

``broken6.lab`` resolves (client namespace /etc/hosts) to a black-holed IPv6 address
(iptables DROP) and to an IPv4 address whose SYNs the lab's delay line holds ``RTT``; the
server namespace runs tests/httpx_servers.py (hypercorn) on that IPv4 address and port.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.netlab.lab import NETNS_EXEC, REPO, NetLab, delay_port, service_ip

RTT = 0.02
HOST = "broken6.lab"
PORT = delay_port(RTT)
BROKEN_V6 = service_ip("drop", 6)
WORKING_V4 = service_ip("ok", 4)
URL = f"http://{HOST}:{PORT}/"
SERVERS = Path(__file__).with_name("httpx_servers.py")
CLIENT = Path(__file__).with_name("httpx_lab_client.py")
NICE = ["nice", "-n", "-10"]


@contextlib.contextmanager
def http_lab(tag: str = "httpx") -> Iterator[NetLab]:
    """The lab with ``broken6.lab`` and hypercorn serving on its IPv4 address; torn down."""
    with NetLab.build(tag, hosts={HOST: [BROKEN_V6, WORKING_V4]}) as lab:
        spec = json.dumps({"host": WORKING_V4, "plain_port": PORT})
        server = subprocess.Popen(
            [*NETNS_EXEC, lab.server_ns, sys.executable, str(SERVERS), spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            if not server.stdout.readline():
                raise RuntimeError("the HTTP server did not start in the lab's server namespace")
            yield lab
        finally:
            assert server.stdin is not None
            server.stdin.close()  # EOF: it stops by itself
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()  # our own child, by its pid
                server.wait(timeout=5)
            if server.stdout is not None:
                server.stdout.close()


def run_client(lab: NetLab, job: dict[str, Any], timeout: float = 120.0) -> list[dict[str, Any]]:
    """Run tests/httpx_lab_client.py in the client namespace; its per-request results."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [*NETNS_EXEC, lab.client_ns, *NICE, sys.executable, str(CLIENT)],
        input=json.dumps({"url": URL, **job}),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"httpx lab client failed ({proc.returncode}):\n{proc.stderr}")
    results: list[dict[str, Any]] = json.loads(proc.stdout)["results"]
    return results
