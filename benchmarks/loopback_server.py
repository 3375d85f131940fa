"""A loopback accept-and-close server in its own process (no GIL shared with the benchmark).

Run: python benchmarks/loopback_server.py HOST  -> prints the port, serves until stdin closes.
"""

from __future__ import annotations

import socket
import sys
import threading


def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, 0))
    server.listen(4096)
    print(server.getsockname()[1], flush=True)

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    main()
