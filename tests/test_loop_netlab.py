"""aioconnlist.loop on a real broken network: real clients, real servers, by name.

The lab (`tests.netlab`) gives the client namespace a name, ``broken6.lab``, with an AAAA
record whose address black-holes every packet and an A record ~20 ms away (the delay line
holds each SYN ``port - 10000`` ms). Real servers run in the server namespace on the A
address: the lab agent's echo listener, a websockets server, a ``redis-server`` and a
PostgreSQL server. Each scenario is a fresh process (``tests/netlab/loop_client.py``) that
connects several times through a real client library on one loop: ours (`new_event_loop`),
a stock loop after `install()`, and the stock loop alone, side by side.

What is checked is the race's events, not tight wall-clock bounds: on our loops the first
connection starts with IPv6 and wins on IPv4, and every later one starts with IPv4 and wins on
it (one RTT); the stock loop pays the attempt delay (or the whole timeout) every time, which is
a lower bound that load cannot break.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netlab import require_netlab
from tests.netlab.lab import NetLab, service_ip
from tests.support import skip_or_fail
from tests.test_loop import postgres_bin, postgres_cluster, wait_ready

pytestmark = pytest.mark.netlab

HERE = Path(__file__).resolve().parent
LOOP_CLIENT = HERE / "netlab" / "loop_client.py"
REPO = HERE.parent
NAME = "broken6.lab"
BROKEN6 = service_ip("drop", 6)  # every packet dropped
IPV4 = service_ip("ok", 4)
PORTS = {"open_connection": 10020, "websockets": 10021, "redis": 10022, "asyncpg": 10023}
STOCK_DELAY = 0.25  # asyncio's happy_eyeballs_delay where a client passes it through
CONNECT_TIMEOUT = 0.6  # the stock loop's bound on a black hole (instead of ~130 s)

WS_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, sys.argv[1], int(sys.argv[2])):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class Servers:
    """Processes in the server namespace, ended (by pid) at the end."""

    def __init__(self, lab: NetLab) -> None:
        self.lab = lab
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], marker: str, *, user: str | None = None) -> None:
        prefix = ["runuser", "-u", user, "--"] if user else []
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.server_ns, *prefix, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        if not wait_ready(proc, marker):
            raise RuntimeError(f"{args[0]} did not start in the lab")

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.terminate()  # our own child, by its pid
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[NetLab, set[str]]]:
    """The lab with ``broken6.lab`` and the servers; yields (lab, clients whose server runs)."""
    require_netlab()
    with NetLab.build("loop", hosts={NAME: [BROKEN6, IPV4]}) as built:
        servers = Servers(built)
        running = {"open_connection"}
        datadir = None
        try:
            built.endpoint("ok", port=PORTS["open_connection"])  # the agent's echo listener
            ws = [sys.executable, "-c", WS_SERVER, IPV4, str(PORTS["websockets"])]
            servers.start(ws, "ready")
            running.add("websockets")
            redis = shutil.which("redis-server")
            if redis is not None:
                servers.start(
                    [redis, "--port", str(PORTS["redis"]), "--bind", IPV4, "--save", "",
                     "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp"],
                    "Ready to accept connections",
                )  # fmt: skip
                running.add("redis")
            pg = postgres_bin()
            if pg is not None and shutil.which("runuser"):
                datadir = tempfile.mkdtemp(prefix="aioconnlist-pg-")
                if postgres_cluster(pg, datadir, trust="198.51.100.0/24"):  # the lab clients
                    sockets = f"unix_socket_directories={datadir}"
                    servers.start(
                        [str(pg / "postgres"), "-D", datadir, "-p", str(PORTS["asyncpg"]),
                         "-c", f"listen_addresses={IPV4}", "-c", sockets],
                        "ready to accept connections",
                        user="postgres",
                    )  # fmt: skip
                    running.add("asyncpg")
            yield built, running
        finally:
            servers.close()
            if datadir is not None:
                shutil.rmtree(datadir, ignore_errors=True)


def run_scenario(built: NetLab, **spec: Any) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        ["ip", "netns", "exec", built.client_ns, sys.executable, str(LOOP_CLIENT)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"loop_client failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    result["stderr"] = proc.stderr
    return result


def started(call: dict[str, Any]) -> list[str]:
    return [ip for kind, ip, _t in call["events"] if kind == "started"]


def winner(call: dict[str, Any]) -> str | None:
    won = [ip for kind, ip, _t in call["events"] if kind == "won"]
    assert len(won) <= 1, call
    return won[0] if won else None


def check_ours(result: dict[str, Any], what: str) -> None:
    first, *later = result["calls"]
    assert first["ok"], (what, first)
    assert started(first)[0] == BROKEN6 and winner(first) == IPV4, (what, first)
    for n, call in enumerate(later, 2):
        assert call["ok"], (what, n, call)
        assert started(call)[0] == IPV4 and winner(call) == IPV4, (what, n, call)
    # no fd grows from call to call (the first may open the loop's own, e.g. uvloop's)
    assert result["fds_after"] == first["fds"], (what, result)
    assert result["tasks"] == 0, (what, result)


def figures(result: dict[str, Any]) -> str:
    return " ".join(
        f"{c['elapsed'] * 1000:.0f}" + ("" if c["ok"] else "!") for c in result["calls"]
    )


@pytest.mark.parametrize("client", ["open_connection", "websockets", "redis", "asyncpg"])
@pytest.mark.parametrize("flavour", ["asyncio", "uvloop"])
def test_later_connections_cost_one_rtt_where_the_stock_loop_pays_the_delay(
    lab: tuple[NetLab, set[str]], flavour: str, client: str
) -> None:
    built, running = lab
    if client not in running:
        why = {
            "redis": "redis-server is not installed (Debian: apt-get install redis-server)",
            "asyncpg": "no PostgreSQL server could be started (Debian: apt-get install postgresql)",
        }[client]
        skip_or_fail(why)
    pytest.importorskip({"open_connection": "asyncio"}.get(client, client))
    common = {"flavour": flavour, "client": client, "host": NAME, "port": PORTS[client]}
    ours = run_scenario(built, mode="ours", count=4, connect_timeout=5.0, **common)
    check_ours(ours, f"new_event_loop(uvloop={flavour == 'uvloop'})")
    installed = run_scenario(built, mode="install", count=3, connect_timeout=5.0, **common)
    check_ours(installed, "install()")
    assert installed["restored"], installed

    # the stock loop: asyncio's Happy Eyeballs where the client passes the delay through
    # (uvloop has none), else one address after another, the first black-holed
    delay = STOCK_DELAY if flavour == "asyncio" and client != "redis" else None
    if client == "asyncpg":
        delay = None  # asyncpg passes no happy_eyeballs_delay either
    stock = run_scenario(
        built,
        mode="stock",
        count=2,
        connect_timeout=CONNECT_TIMEOUT,
        happy_eyeballs_delay=delay,
        **common,
    )
    bound = STOCK_DELAY if delay is not None else CONNECT_TIMEOUT
    print(
        f"{client} on {flavour}: ours {figures(ours)} ms, install() {figures(installed)} ms, "
        f"stock {figures(stock)} ms (! = failed)"
    )
    for call in stock["calls"]:
        # a lower bound: every stock connection waits out the delay or the timeout
        assert call["elapsed"] >= bound - 0.01, stock
