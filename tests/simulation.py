"""A virtual-time network for the sans-I/O `Race`: exact, instant, deterministic.

A script maps a destination to what its attempts do: ``("ok", d)`` connects after d seconds,
``("refused", d)`` / ``("unreachable", d)`` fail after d, ``("drop",)`` never answers. The loop
below mirrors the driver's: start what is due, then jump to the earliest of the next attempt
outcome, the race's wake-up time and an optional caller cancellation.
"""

from __future__ import annotations

import errno
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioconnlist._core.addresses import Endpoint, parse_address
from aioconnlist._core.events import RaceEvent
from aioconnlist._core.history import PairHistory
from aioconnlist._core.pairs import Pair
from aioconnlist._core.race import Race

ERRORS = {
    "refused": errno.ECONNREFUSED,
    "unreachable": errno.EHOSTUNREACH,
    "prohibited": errno.EACCES,
    "emfile": errno.EMFILE,
}

Behaviour = tuple[Any, ...]


@dataclass
class Result:
    race: Race
    end: float
    events: list[RaceEvent] = field(default_factory=list)

    @property
    def starts(self) -> list[float]:
        return [round(a.started, 6) for a in self.race.attempts]

    @property
    def started_destinations(self) -> list[str]:
        return [str(a.pair.destination) for a in self.race.attempts]

    @property
    def winner(self) -> str | None:
        w = self.race.winner
        return None if w is None else str(w.pair.destination)

    @property
    def outcomes(self) -> list[tuple[str, float | None, str]]:
        return [
            (str(a.pair.destination), None if a.ended is None else round(a.ended, 6), a.outcome)
            for a in self.race.attempts
        ]


def kernel_pairs(*addresses: object) -> list[Pair]:
    return [Pair(None, parse_address(a), None) for a in addresses]


def simulate(
    pairs: Sequence[Pair],
    script: Mapping[str, Behaviour],
    *,
    attempt_delay: float = 0.25,
    min_attempt_delay: float = 0.1,
    history: PairHistory | None = None,
    timeout: float | None = None,
    cancel_at: float | None = None,
    origin: float = 1000.0,
) -> Result:
    """Run a race in virtual time. Times in the result are relative to ``origin``."""
    events: list[RaceEvent] = []
    race = Race(
        pairs,
        now=origin,
        attempt_delay=attempt_delay,
        min_attempt_delay=min_attempt_delay,
        history=history,
        timeout=timeout,
        on_event=events.append,
    )
    outcomes: list[tuple[float, int, str]] = []  # (time, attempt index, kind)
    now = origin
    for _ in range(10_000):  # bounded: a race of n pairs takes at most ~3n steps
        if race.deadline is not None and now >= race.deadline:
            race.time_out(now)
            break
        while (attempt := race.start_due(now)) is not None:
            behaviour = script[str(attempt.pair.destination)]
            if behaviour[0] != "drop":
                heapq.heappush(outcomes, (now + behaviour[1], attempt.index, behaviour[0]))
        if race.finished:
            break
        wake = race.wake_at()
        candidates = [
            outcomes[0][0] if outcomes else math.inf,
            math.inf if wake is None else wake,
            math.inf if cancel_at is None else origin + cancel_at,
        ]
        now = min(candidates)
        assert now < math.inf, "the race would wait forever"
        if cancel_at is not None and now >= origin + cancel_at:
            race.cancel(now)
            break
        while outcomes and outcomes[0][0] <= now:
            _, index, kind = heapq.heappop(outcomes)
            attempt = race.attempts[index]
            if attempt.outcome != "running":
                continue
            if kind == "ok":
                race.connected(attempt, now)
            else:
                race.failed(attempt, OSError(ERRORS[kind], kind), now)
        if race.winner is not None:
            break
    else:
        raise AssertionError("simulation did not end")
    return Result(race, round(now - origin, 6), events)


def endpoints(*addresses: object) -> list[Endpoint]:
    return [parse_address(a) for a in addresses]
