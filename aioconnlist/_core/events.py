"""Race records: one `Attempt` per started pair, and the `RaceEvent`s given to ``on_event``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .pairs import Pair

Outcome = Literal["running", "won", "failed", "cancelled", "timed out"]
EventKind = Literal["started", "failed", "won", "cancelled"]


@dataclass(slots=True)
class Attempt:
    """One connection attempt. Times are seconds since the race started."""

    index: int
    pair: Pair
    started: float
    ended: float | None = None
    outcome: Outcome = "running"
    error: OSError | None = None
    backup: bool = False  # a second attempt on a pair whose first one was silent

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; ``None`` while it runs."""
        return None if self.ended is None else self.ended - self.started


@dataclass(frozen=True, slots=True)
class RaceEvent:
    """What ``on_event`` receives. ``time`` is seconds since the race started.

    ``kind`` is "started", "failed", "won" or "cancelled" ("cancelled" also when the deadline
    or the caller ended the attempt; then ``outcome`` says "timed out" or "cancelled").
    ``backup`` is true for a backup attempt: a second attempt, on a fresh socket, of a pair
    whose first attempt stayed silent (a lost SYN).
    """

    kind: EventKind
    index: int
    pair: Pair
    time: float
    started: float
    ended: float | None
    outcome: Outcome
    error: OSError | None
    backup: bool = False

    @classmethod
    def of(cls, kind: EventKind, attempt: Attempt, time: float) -> RaceEvent:
        return cls(
            kind,
            attempt.index,
            attempt.pair,
            time,
            attempt.started,
            attempt.ended,
            attempt.outcome,
            attempt.error,
            attempt.backup,
        )
