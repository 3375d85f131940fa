"""Happy Eyeballs for code you do not change: aioconnlist.blocking.install().

    python examples/install_stdlib.py                  # a local demo server (a thread)
    python examples/install_stdlib.py https://example.org/

After ``install()``, ``socket.create_connection`` races - and with it ``http.client``,
``urllib.request``, ``smtplib``, ``ftplib``, ``xmlrpc.client`` and urllib3 (imported before or
after). ``uninstall()`` puts back what was there. It is process-wide: opt in where you own
the process (an application, a script), not from a library.
"""

from __future__ import annotations

import http.client
import http.server
import sys
import threading
import urllib.parse
import urllib.request

from aioconnlist import RaceEvent, blocking


def main(url: str | None) -> None:
    server = None
    if url is None:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"

    def show(event: RaceEvent) -> None:
        print(f"  {event.time * 1000:7.1f} ms  {event.kind:<9} {event.pair.destination}")

    blocking.install(attempt_delay=0.25, on_event=show)
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # unchanged stdlib code
            print(f"urllib.request {url}: {response.status}, {len(response.read())} bytes")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "http":
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=5)
            conn.request("GET", parts.path or "/")
            print(f"http.client {url}: {conn.getresponse().status}")
            conn.close()
    finally:
        blocking.uninstall()
    if server is not None:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
