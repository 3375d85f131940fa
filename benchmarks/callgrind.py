"""Instruction counts under valgrind's callgrind for the benchmarks: on a shared, noisy machine
steadier than time (``valgrind`` must be installed; CI's machines have it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def instructions(args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> int:
    """Instructions (callgrind's Ir) of a fresh interpreter run as ``python *args``."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(env),
    ).stderr
    for line in out.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise RuntimeError(out)
