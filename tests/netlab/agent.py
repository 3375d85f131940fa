"""The lab's server side: listeners, a SYN delay line, and a log of what the server saw.

Runs inside the server namespace (``ip netns exec SRV python agent.py CONFIG_JSON``) as one
asyncio process. Standalone on purpose (stdlib + netfilterqueue only): it is started by path.

- **Delay line.** iptables in this namespace sends chosen SYNs to NFQUEUE ``queue``. Each one is
  held, then released: the delay in milliseconds is the destination port minus 10000 (port
  10020 = 20 ms); a SYN to an address of role ``unreachable`` is marked ``REJECT_MARK`` and
  re-injected (``repeat``), so the rule at the top of INPUT answers it with ICMP unreachable.
  A SYN to a ``gate`` address is held until ``count`` different connections are held for that
  port (default 2), then all are released in the same instant: both handshakes complete in the
  same tick at the client. Every other SYN to a ``lossy`` address and port is lost, starting
  with the first: a connection's first SYN is lost, and the next SYN (its retransmission one
  second later, or another socket's) goes through.
- **Listeners** are opened on demand. Every accepted connection is logged (local, peer,
  accepted, closed, how) and echoes what it receives, so a client can show its socket works;
  a listener opened with ``"http": true`` answers each HTTP request instead (``200``, body
  ``ok``, ``Connection: close``) and closes, so every request is a new connection.
- **Control**: one JSON command per line on stdin, one JSON reply per line on stdout. EOF on
  stdin (the test process went away) ends the agent; nothing outlives the lab.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import struct
import sys
import time
from typing import Any

from netfilterqueue import NetfilterQueue, Packet

REJECT_MARK = 2
GATE_SAFETY_RELEASE = 5.0  # a gate never holds a SYN longer than this


def parse_syn(payload: bytes) -> tuple[str, str, int, int] | None:
    """(source, destination, source port, destination port) of an IPv4/IPv6 TCP packet."""
    if not payload:
        return None
    version = payload[0] >> 4
    if version == 4:
        header = (payload[0] & 0x0F) * 4
        if payload[9] != socket.IPPROTO_TCP:
            return None
        src = str(ipaddress.IPv4Address(payload[12:16]))
        dst = str(ipaddress.IPv4Address(payload[16:20]))
    elif version == 6:
        header = 40  # SYNs here carry no extension headers
        if payload[6] != socket.IPPROTO_TCP:
            return None
        src = str(ipaddress.IPv6Address(payload[8:24]))
        dst = str(ipaddress.IPv6Address(payload[24:40]))
    else:
        return None
    sport, dport = struct.unpack("!HH", payload[header : header + 4])
    return src, dst, sport, dport


class Agent:
    def __init__(self, config: dict[str, Any]) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue_num: int = config["queue"]
        self.unreachable = {str(ipaddress.ip_address(a)) for a in config.get("unreachable", [])}
        self.gates = {str(ipaddress.ip_address(a)) for a in config.get("gates", [])}
        self.lossy = {str(ipaddress.ip_address(a)) for a in config.get("lossy", [])}
        self.lossy_passed: set[tuple[str, int]] = set()  # (address, port): the next SYN passes
        self.gate_count: dict[int, int] = {}
        # port -> {(src, sport, dst): [packets]} held behind a gate
        self.gate_held: dict[int, dict[tuple[str, int, str], list[Packet]]] = {}
        self.listeners: dict[tuple[str, int], socket.socket] = {}
        self.http_listeners: set[tuple[str, int]] = set()
        self.http_requests: dict[int, bytes] = {}  # connection id -> request bytes so far
        self.connections: list[dict[str, Any]] = []
        self.open_socks: dict[int, socket.socket] = {}
        self.syns: list[dict[str, Any]] = []  # every queued SYN: what, when held, when released
        self.nfq = NetfilterQueue()
        self.nfq.bind(self.queue_num, self.on_packet, max_len=4096, range=128)
        self.loop.add_reader(self.nfq.get_fd(), self.nfq.run, False)

    # ---- delay line ----
    def on_packet(self, pkt: Packet) -> None:
        parsed = parse_syn(pkt.get_payload())
        if parsed is None:
            pkt.accept()
            return
        src, dst, sport, dport = parsed
        record = {"src": src, "dst": dst, "sport": sport, "dport": dport}
        record["held"] = time.monotonic()
        self.syns.append(record)
        if dst in self.lossy:
            key = (dst, dport)
            if key not in self.lossy_passed:  # lose this one; the next SYN passes
                self.lossy_passed.add(key)
                record["released"] = None
                record["dropped"] = True
                pkt.drop()
                return
            self.lossy_passed.discard(key)  # this one passes; the next is lost
        if dst in self.gates:
            key = (src, sport, dst)
            held = self.gate_held.setdefault(dport, {})
            held.setdefault(key, []).append(pkt)
            if len(held) >= self.gate_count.get(dport, 2):
                self.release_gate(dport)
            else:
                self.loop.call_later(GATE_SAFETY_RELEASE, self.release_gate, dport)
            return
        delay = max(0, dport - 10000) / 1000.0
        self.loop.call_later(delay, self.verdict, pkt, dst, record)

    def verdict(self, pkt: Packet, dst: str, record: dict[str, Any]) -> None:
        record["released"] = time.monotonic()
        if dst in self.unreachable:
            pkt.set_mark(REJECT_MARK)
            pkt.repeat()  # back through INPUT, where the mark rule rejects it
        else:
            pkt.accept()

    def release_gate(self, port: int) -> None:
        held = self.gate_held.pop(port, {})
        now = time.monotonic()
        for packets in held.values():
            for pkt in packets:
                pkt.accept()
        for record in self.syns:
            if record["dport"] == port and record["dst"] in self.gates and "released" not in record:
                record["released"] = now

    # ---- listeners ----
    def listen(self, host: str, port: int) -> None:
        if (host, port) in self.listeners:
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        lsock = socket.socket(family, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, port))
        lsock.listen(1024)
        lsock.setblocking(False)
        self.listeners[(host, port)] = lsock
        self.loop.add_reader(lsock.fileno(), self.on_accept, lsock)

    def on_accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                conn, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNABORTED: the client reset before we accepted
            conn.setblocking(False)
            local = conn.getsockname()
            entry: dict[str, Any] = {
                "http": (local[0], local[1]) in self.http_listeners,
                "id": len(self.connections),
                "local": [local[0], local[1]],
                "peer": [peer[0], peer[1]],
                "accepted": time.monotonic(),
                "closed": None,
                "how": None,
                "bytes": 0,
            }
            self.connections.append(entry)
            self.open_socks[entry["id"]] = conn
            self.loop.add_reader(conn.fileno(), self.on_data, conn, entry)

    def on_data(self, conn: socket.socket, entry: dict[str, Any]) -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.finish(conn, entry, "reset")
            return
        if not data:
            self.finish(conn, entry, "eof")
            return
        entry["bytes"] += len(data)
        if entry["http"]:
            request = self.http_requests[entry["id"]] = (
                self.http_requests.get(entry["id"], b"") + data
            )
            if b"\r\n\r\n" in request:
                del self.http_requests[entry["id"]]
                reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                with contextlib.suppress(OSError):
                    conn.sendall(reply)
                self.finish(conn, entry, "served")
            return
        with contextlib.suppress(OSError):
            conn.send(data)  # echo; small payloads only

    def finish(self, conn: socket.socket, entry: dict[str, Any], how: str) -> None:
        entry["closed"] = time.monotonic()
        entry["how"] = how
        self.loop.remove_reader(conn.fileno())
        conn.close()
        self.open_socks.pop(entry["id"], None)

    # ---- control ----
    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("op")
        if op == "listen":
            for host, port in cmd["endpoints"]:
                self.listen(host, port)
                if cmd.get("http"):
                    self.http_listeners.add((host, port))
            return {"ok": True}
        if op == "gate":
            self.gate_count[int(cmd["port"])] = int(cmd["count"])
            return {"ok": True}
        if op == "log":
            return {"ok": True, "connections": self.connections, "syns": self.syns}
        if op == "clear":
            self.connections = [c for c in self.connections if c["closed"] is None]
            self.syns = []
            return {"ok": True}
        if op == "ping":
            return {"ok": True, "now": time.monotonic(), "open": len(self.open_socks)}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def close(self) -> None:
        self.loop.remove_reader(self.nfq.get_fd())
        self.nfq.unbind()
        for sock in [*self.listeners.values(), *self.open_socks.values()]:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(sock.fileno())
            sock.close()


async def main() -> None:
    config = json.loads(sys.argv[1])
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ok": True, "ready": True, "now": time.monotonic()}), flush=True)
    try:
        while line := await reader.readline():
            try:
                reply = agent.command(json.loads(line))
            except Exception as e:  # report, keep serving
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            print(json.dumps(reply), flush=True)
    finally:
        agent.close()


if __name__ == "__main__":
    asyncio.run(main())
