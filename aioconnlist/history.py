"""PairHistory: what past races taught about each (source, destination) pair and each path.

STUB — being implemented (helper B). The interface below is what the race driver uses.
No clock of its own: every method takes ``now`` (seconds, time.monotonic() scale).
"""

from __future__ import annotations

import socket
from typing import Literal

from .addresses import IPAddress
from .pairs import Pair

FailureKind = Literal["refused", "unreachable", "timeout", "soft", "error"]


class PairHistory:
    def __init__(self, *, max_pairs: int = 4096, failure_ttl: float = 600.0) -> None:
        self.max_pairs = max_pairs
        self.failure_ttl = failure_ttl

    def record_success(self, pair: Pair, rtt: float, now: float) -> None:
        """A connect on ``pair`` succeeded after ``rtt`` seconds."""

    def record_failure(self, pair: Pair, kind: FailureKind, now: float) -> None:
        """An attempt on ``pair`` failed (``soft``: still unanswered when another pair won)."""

    def rto(self, pair: Pair, now: float) -> float | None:
        """srtt + 4*rttvar of the pair's successes, ``None`` when unknown or expired."""
        return None

    def rank(self, pair: Pair, now: float) -> int:
        """Sort key placed between RFC 6724 rules 8 and 9 (lower first); 0 = neutral."""
        return 0

    def path_demoted(self, source: IPAddress | None, family: socket.AddressFamily, now: float) -> bool:
        """True when this family through this source recently black-holed towards several
        destinations while the other family worked: new destinations of it go after the other."""
        return False

    def clear(self) -> None:
        """Forget everything."""


#: the process-wide shared history (thread-safe, bounded)
DEFAULT_HISTORY = PairHistory()
