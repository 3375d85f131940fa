"""The lab's synchronous-HTTP scenario: ``{"sync": {"library": ..., "url": ..., "count": n}}``.

Runs inside the client namespace (imported by ``client.py``). Makes ``count`` GET requests
with one library, as its users would, and reports each one's time and race events:

- ``requests``: one ``requests.Session()`` with `aioconnlist.requests.HTTPAdapter` mounted;
- ``urllib3``: one `aioconnlist.urllib3.PoolManager()`;
- ``urllib``: plain ``urllib.request.urlopen`` after `aioconnlist.blocking.install()`;
- ``requests-stock`` / ``urllib3-stock`` / ``urllib-stock``: the same libraries untouched.

The process-wide default history is used (the library's defaults, as a user gets them).
"""

from __future__ import annotations

import time
from typing import Any


def run_sync(spec: dict[str, Any]) -> list[dict[str, Any]]:
    library: str = spec["library"]
    url: str = spec["url"]
    timeout: float = spec.get("timeout", 5.0)
    events: list[dict[str, Any]] = []

    def on_event(event: Any) -> None:
        events.append(
            {
                "kind": event.kind,
                "destination": str(event.pair.destination),
                "time": event.time,
                "backup": getattr(event, "backup", False),
            }
        )

    fetch = _fetcher(library, on_event, timeout)
    results = []
    try:
        for _ in range(spec.get("count", 1)):
            events.clear()
            start = time.monotonic()
            try:
                body = fetch(url)
                error = None
            except Exception as e:  # reported, not raised: the stock libraries time out
                body, error = b"", f"{type(e).__name__}: {e}"
            results.append(
                {
                    "elapsed": time.monotonic() - start,
                    "body": body.decode(errors="replace"),
                    "error": error,
                    "events": list(events),
                }
            )
    finally:
        if library == "urllib":
            from aioconnlist import blocking

            blocking.uninstall()
    return results


def _fetcher(library: str, on_event: Any, timeout: float) -> Any:
    if library in ("requests", "requests-stock"):
        import requests

        session = requests.Session()
        if library == "requests":
            from aioconnlist.requests import HTTPAdapter

            session.mount("http://", HTTPAdapter(on_event=on_event))
        return lambda url: session.get(url, timeout=timeout).content
    if library in ("urllib3", "urllib3-stock"):
        import urllib3

        if library == "urllib3":
            from aioconnlist.urllib3 import PoolManager

            http: Any = PoolManager(on_event=on_event)
        else:
            http = urllib3.PoolManager()
        return lambda url: http.request("GET", url, timeout=timeout, retries=False).data
    if library in ("urllib", "urllib-stock"):
        import urllib.request

        if library == "urllib":
            from aioconnlist import blocking

            blocking.install(on_event=on_event)

        def fetch(url: str) -> bytes:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body: bytes = response.read()
            return body

        return fetch
    raise ValueError(f"unknown library {library!r}")
