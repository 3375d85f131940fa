"""Race records: one `Attempt` per started pair, and the `RaceEvent`s given to ``on_event``."""

from __future__ import annotations

from typing import Literal

from .pairs import Pair
from .records import FrozenRecord, Record

Outcome = Literal["running", "won", "failed", "cancelled", "timed out"]
EventKind = Literal["started", "failed", "won", "cancelled"]


class Attempt(Record):
    """One connection attempt. Times are seconds since the race started."""

    __slots__ = ("backup", "ended", "error", "index", "outcome", "pair", "started")
    _fields = ("index", "pair", "started", "ended", "outcome", "error", "backup")

    index: int
    pair: Pair
    started: float
    ended: float | None
    outcome: Outcome
    error: OSError | None
    backup: bool  # a second attempt on a pair whose first one was silent

    def __init__(
        self,
        index: int,
        pair: Pair,
        started: float,
        ended: float | None = None,
        outcome: Outcome = "running",
        error: OSError | None = None,
        backup: bool = False,
    ) -> None:
        self.index = index
        self.pair = pair
        self.started = started
        self.ended = ended
        self.outcome = outcome
        self.error = error
        self.backup = backup

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; ``None`` while it runs."""
        return None if self.ended is None else self.ended - self.started


class RaceEvent(FrozenRecord):
    """What ``on_event`` receives. ``time`` is seconds since the race started.

    ``kind`` is "started", "failed", "won" or "cancelled" ("cancelled" also when the deadline
    or the caller ended the attempt; then ``outcome`` says "timed out" or "cancelled").
    ``backup`` is true for a backup attempt: a second attempt, on a fresh socket, of a pair
    whose first attempt stayed silent (a lost SYN).
    """

    __slots__ = ("backup", "ended", "error", "index", "kind", "outcome", "pair", "started", "time")
    _fields = ("kind", "index", "pair", "time", "started", "ended", "outcome", "error", "backup")

    kind: EventKind
    index: int
    pair: Pair
    time: float
    started: float
    ended: float | None
    outcome: Outcome
    error: OSError | None
    backup: bool

    def __init__(
        self,
        kind: EventKind,
        index: int,
        pair: Pair,
        time: float,
        started: float,
        ended: float | None,
        outcome: Outcome,
        error: OSError | None,
        backup: bool = False,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "kind", kind)
        setattr_(self, "index", index)
        setattr_(self, "pair", pair)
        setattr_(self, "time", time)
        setattr_(self, "started", started)
        setattr_(self, "ended", ended)
        setattr_(self, "outcome", outcome)
        setattr_(self, "error", error)
        setattr_(self, "backup", backup)

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
