"""urllib3 with Happy Eyeballs: aioconnlist.urllib3.PoolManager instead of urllib3's.

    python examples/urllib3_client.py                  # a local demo server (a thread)
    python examples/urllib3_client.py https://example.org/

The same PoolManager (every argument of urllib3's), whose connections race the host's
addresses; ``Timeout(connect=...)`` is the whole race's hard deadline.
"""

from __future__ import annotations

import http.server
import sys
import threading

import urllib3

from aioconnlist import RaceEvent
from aioconnlist.urllib3 import PoolManager


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

    timeout = urllib3.Timeout(connect=5, read=30)
    with PoolManager(timeout=timeout, retries=urllib3.Retry(2), on_event=show) as pool:
        response = pool.request("GET", url)
        print(f"GET {url}: {response.status}, {len(response.data)} bytes")
    if server is not None:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
