"""Real servers on loopback for the synchronous integrations: HTTP (and HTTPS with a
certificate made by trustme), an HTTP proxy (CONNECT tunnels and absolute-URI forwarding) and
enough SMTP for smtplib. Each runs in threads of this process and is stopped by ``close()``."""

from __future__ import annotations

import contextlib
import http.server
import os
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from typing import Any


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Peer", self.client_address[0])
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Server6(_Server):
    address_family = socket.AF_INET6


class HTTPServer:
    """``GET /x`` answers ``hello /x``; ``tls``: a trustme server certificate for ``hosts``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        cls = _Server6 if ":" in host else _Server
        self.server = cls((host, port), _Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.host = host
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class _ProxyHandler(socketserver.BaseRequestHandler):
    """CONNECT host:port (a tunnel) or an absolute-URI request (forwarded as is)."""

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ", 2)
        server: ProxyServer = self.server  # type: ignore[assignment]
        server.requests.append(line)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
            if rest:
                upstream.sendall(rest)
        else:  # http://host:port/path
            hostport = target.split("/", 3)[2]
            host, port = hostport.rsplit(":", 1)
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            upstream.sendall(head)
        with upstream:
            self._pump(client, upstream)

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        for _ in range(10_000):  # bounded; ends when either side closes
            ready, _, _ = select.select([a, b], [], [], 10)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.requests: list[str] = []
        self.port: int = self.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(10)


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib.SMTP().sendmail(): greeting, EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        server: SMTPServer = self.server  # type: ignore[assignment]
        self.wfile.write(b"220 test ESMTP\r\n")
        for _ in range(1000):
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                body = b""
                while (more := self.rfile.readline()) not in (b".\r\n", b""):
                    body += more
                server.messages.append(body)
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list[bytes] = []
        self.port: int = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(10)


@contextlib.contextmanager
def tls_pair() -> Iterator[tuple[ssl.SSLContext, str]]:
    """(server context, CA bundle path) for 127.0.0.1 and localhost, made by trustme."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    with ca.cert_pem.tempfile() as bundle:
        yield server, bundle


def client_sockets(port: int) -> int:
    """How many TCP sockets of this process are connected *to* ``port`` (client side; the
    server's own accepted sockets, which close in their threads later, are not counted)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[9] in inodes:
                    count += 1
    return count
