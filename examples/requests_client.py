"""requests with Happy Eyeballs: mount aioconnlist's HTTPAdapter on a Session.

    python examples/requests_client.py                 # a local demo server (a thread)
    python examples/requests_client.py https://example.org/

Every connection the session makes races the host's addresses (IPv6 and IPv4, ranked,
staggered by the attempt delay, remembered), instead of trying them one after another, each
until its own timeout. Everything else is requests: retries, proxies, TLS, its exceptions.
"""

from __future__ import annotations

import http.server
import sys
import threading

import requests

from aioconnlist import RaceEvent
from aioconnlist.requests import HTTPAdapter


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

    session = requests.Session()
    session.mount("http://", HTTPAdapter(attempt_delay=0.25, on_event=show))
    session.mount("https://", HTTPAdapter(attempt_delay=0.25, on_event=show))
    with session:
        response = session.get(url, timeout=(5, 30))  # 5 s: the whole race's deadline
        print(f"GET {url}: {response.status_code}, {len(response.content)} bytes")
    if server is not None:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
