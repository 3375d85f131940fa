"""``aioconnlist demo``: a race against endpoints built on loopback, no network and no root.

The endpoints (all on 127.0.0.1, so any OS's loopback works):

- **black hole**: a listener with ``listen(0)`` whose accept queue is filled first by our own
  connections; the kernel then drops new SYNs, so a connect there is never answered;
- **refused**: a port bound but not listening; the kernel answers a SYN with RST at once;
- **working**: an ordinary listener (the kernel completes the handshake without ``accept()``);
- **slow**: filled like the black hole, then released (its queue accepted) shortly after a
  race starts: the dropped SYN is answered only on the kernel's retransmission, about 1 s
  after the first (Linux's initial SYN retransmission timeout). There is no unprivileged way
  to delay a handshake on loopback otherwise (no netem, no NFQUEUE without root); this is a
  real slow handshake, the one a server whose first SYN was lost gives.

Three runs share one private `PairHistory`: the first meets the black hole first (the
caller's order: all destinations rank equal under RFC 6724); the second starts with what the
first taught the history; the third races the black hole and the slow server alone, so the
race has to wait for the slow one.
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import sys
import textwrap
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import IO

from .._core.addresses import Endpoint, parse_address
from .._core.errors import ConnectError, errno_name
from .._core.events import Attempt, RaceEvent
from .._core.history import PairHistory
from .._core.options import ATTEMPT_DELAY
from .waterfall import (
    MIN_BAR_WIDTH,
    attempts_from_events,
    race_span,
    render_waterfall,
    result_label,
)

HOST = "127.0.0.1"
#: a safety net: a demo run that has not finished by then is reported, not waited for
RUN_LIMIT = 3.0
#: the race's own deadline (seconds); far above what a run needs
RACE_TIMEOUT = 2.0
#: how many of our own connections may be needed to fill a listen(0) queue (Linux: 1)
MAX_FILLERS = 16
#: how long a filler connect may take on loopback before we decide it was dropped
FILLER_WAIT = 1.0

#: when the slow server's queue is released after its race starts (before the 1 s retransmit)
SLOW_RELEASE = 0.3

BLACK_HOLE, REFUSED, WORKING, SLOW = "black hole", "refused", "working", "slow"
ROLE_NOTES = {
    BLACK_HOLE: "full accept queue: SYNs dropped, never answers",
    REFUSED: "bound, not listening: the kernel answers RST",
    WORKING: "an ordinary listener",
    SLOW: "drops its first SYN, answers the retry ~1 s later",
}


def _accept_queue_full(listener: socket.socket) -> bool | None:
    """Linux: TCP_INFO of a listener reports its accept queue length (tcpi_unacked) and limit
    (tcpi_sacked); the kernel drops SYNs once length > limit. ``None`` where unknown."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or not sys.platform.startswith("linux"):
        return None
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, tcp_info, 104)
    except OSError:
        return None
    if len(info) < 32:
        return None
    queued, limit = struct.unpack_from("II", info, 24)
    return bool(queued > limit)


@dataclass
class LoopbackLab:
    """The demo's endpoints; every socket it opens is closed by `close` (or ``with``)."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    fillers: int = 0
    _sockets: ExitStack = field(default_factory=ExitStack)
    _slow_listener: socket.socket | None = None

    def __enter__(self) -> LoopbackLab:
        try:
            self.endpoints[BLACK_HOLE] = self._black_hole()
            self.endpoints[REFUSED] = self._refused()
            self.endpoints[WORKING] = self._working()
            self._slow_listener, self.endpoints[SLOW] = self._full_listener()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sockets.close()

    def _socket(self) -> socket.socket:
        return self._sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))

    def _listener(self, backlog: int) -> tuple[socket.socket, Endpoint]:
        sock = self._socket()
        sock.bind((HOST, 0))
        sock.listen(backlog)
        return sock, parse_address(sock.getsockname())

    def _working(self) -> Endpoint:
        return self._listener(16)[1]

    def _refused(self) -> Endpoint:
        # Bound, never listening: the port stays ours (nobody else can take it) and refuses.
        sock = self._socket()
        sock.bind((HOST, 0))
        return parse_address(sock.getsockname())

    def release_slow(self) -> None:
        """Accept what fills the slow server's queue: its next (retransmitted) SYN gets in."""
        listener = self._slow_listener
        if listener is None:
            return
        listener.setblocking(False)
        for _ in range(MAX_FILLERS + 1):  # bounded: the queue holds at most the fillers
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                break
            self._sockets.enter_context(conn)

    def _black_hole(self) -> Endpoint:
        return self._full_listener()[1]

    def _full_listener(self) -> tuple[socket.socket, Endpoint]:
        listener, endpoint = self._listener(0)
        # Fill the accept queue with our own connections, which stay open until close().
        for _ in range(MAX_FILLERS):
            if _accept_queue_full(listener):
                return listener, endpoint
            filler = self._socket()
            filler.setblocking(False)
            filler.connect_ex(endpoint.sockaddr())
            _, writable, _ = select.select([], [filler], [], FILLER_WAIT)
            if not writable:
                # Not answered: the queue was already full (the portable way to find out).
                return listener, endpoint
            if filler.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                raise OSError("could not fill the black hole's accept queue")
            self.fillers += 1
        raise OSError(f"the accept queue of listen(0) took more than {MAX_FILLERS} connections")


@dataclass
class Run:
    attempts: list[Attempt]
    elapsed: float  # wall time of the call
    local: str | None = None
    error: ConnectError | None = None
    given: int = 0  # how many addresses the race was given

    @property
    def winner(self) -> Attempt | None:
        return next((a for a in self.attempts if a.outcome == "won"), None)

    @property
    def took(self) -> float:
        won = self.winner
        return won.ended if won is not None and won.ended is not None else self.elapsed


async def race_once(destinations: Sequence[Endpoint], history: PairHistory) -> Run:
    from ..api import connect_by_list

    events: list[RaceEvent] = []
    started = time.perf_counter()
    try:
        sock = await asyncio.wait_for(
            connect_by_list(
                destinations,
                local_addresses=None,
                history=history,
                timeout=RACE_TIMEOUT,
                on_event=events.append,
                backup_attempts=False,  # the demo shows the stagger and history alone
            ),
            RUN_LIMIT,
        )
    except ConnectError as e:
        attempts = list(e.attempts) or attempts_from_events(events)
        return Run(attempts, time.perf_counter() - started, error=e, given=len(destinations))
    elapsed = time.perf_counter() - started
    with sock:
        local = str(parse_address(sock.getsockname()))
    return Run(attempts_from_events(events), elapsed, local, given=len(destinations))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def explain(attempt: Attempt, role: str, run: Run, first_role: str) -> str:
    """One line on what happened to ``attempt`` and why it matters to the race."""
    label = result_label(attempt)
    took = _ms(attempt.duration or 0.0)
    winner = run.winner
    following = f"#{attempt.index + 2}" if attempt.index + 1 < len(run.attempts) else "none"
    if label == "won":
        if role == SLOW:
            return f"{role}: first SYN dropped, the resent one answered: won in {took}"
        if attempt.index == 0 and role != first_role:
            return f"{role}: tried first, as history knows it works; connected in {took}"
        if len(run.attempts) == 1:
            return f"{role}: connected in {took}"
        return f"{role}: connected in {took} and won; the others were cancelled and closed"
    if label == "refused":
        if following == "none":
            return f"{role}: refused in {took}; no pair was left to try"
        return f"{role}: refused in {took}, so {following} started at once, not after the delay"
    if label == "cancelled":
        by = f" when #{winner.index + 1} won" if winner is not None else ""
        later = [a for a in run.attempts if a.index == attempt.index + 1]
        after = f" {_ms(later[0].started - attempt.started)} later" if later else ""
        return f"{role}: no answer; {following} started{after}; cancelled{by}"
    if label == "timed out":
        return f"{role}: no answer before the {RACE_TIMEOUT:g} s deadline"
    err = attempt.error
    detail = f"{errno_name(err.errno)} {err.strerror or err}" if err is not None else label
    return f"{role}: failed: {detail}"


def _print_run(
    title: str,
    shows: str,
    run: Run,
    roles: dict[Endpoint, str],
    *,
    first_role: str,
    span: float,
    bar_width: int,
    out: IO[str],
    color: bool,
) -> None:
    out.write(f"\n{title}\n")
    out.write("".join(f"  {line}\n" for line in textwrap.wrap(shows, 76)))
    if run.error is None:
        out.write(f"  connected from {run.local} in {_ms(run.took)}")
        won = run.winner
        total = max(len(run.attempts), run.given)
        out.write(f" (attempt {won.index + 1} of {total})\n" if won else "\n")
    else:
        out.write(f"  failed: {errno_name(run.error.errno)} {run.error.strerror}\n")
    chart = render_waterfall(run.attempts, color=color, span=span, bar_width=bar_width)
    out.write("".join(f"  {line}\n" for line in chart.splitlines()))
    for attempt in run.attempts:
        role = roles.get(attempt.pair.destination, str(attempt.pair.destination))
        out.write(f"  #{attempt.index + 1} {explain(attempt, role, run, first_role)}\n")


async def _demo(out: IO[str], *, color: bool, width: int) -> int:
    with LoopbackLab() as lab:
        roles = {endpoint: role for role, endpoint in lab.endpoints.items()}
        destinations = [lab.endpoints[BLACK_HOLE], lab.endpoints[REFUSED], lab.endpoints[WORKING]]
        out.write("aioconnlist demo: four endpoints on loopback; no network, no root needed.\n\n")
        out.write("".join(line + "\n" for line in textwrap.wrap(INTRO, 78)))
        out.write("\n")
        for role, endpoint in lab.endpoints.items():
            out.write(f"  {endpoint!s:<16} {role:<10}  {ROLE_NOTES[role]}\n")
        out.write(
            f"\nThree runs: attempt_delay={ATTEMPT_DELAY:g} s, local_addresses=None (the kernel "
            "picks\nthe source), one fresh private PairHistory shared by all three.\n"
        )
        history = PairHistory()
        first = await race_once(destinations, history)
        second = await race_once(destinations, history)
        release = asyncio.get_running_loop().call_later(SLOW_RELEASE, lab.release_slow)
        try:
            third = await race_once([lab.endpoints[BLACK_HOLE], lab.endpoints[SLOW]], history)
        finally:
            release.cancel()
    # Runs 1 and 2 share a time axis, so run 2's bar shows how much sooner it ended; run 3,
    # ten times longer, has its own.
    span = max(race_span(first.attempts), race_span(second.attempts))
    runs = (
        ("Run 1: black hole, refused, working; no history yet", first, BLACK_HOLE, span),
        ("Run 2: the same race, with what run 1 taught the history", second, BLACK_HOLE, span),
        (
            "Run 3: the black hole and the slow server; nothing fast works",
            third,
            SLOW,
            race_span(third.attempts),
        ),
    )
    bar_width = max(MIN_BAR_WIDTH, min(60, width - 55))  # the rest of a row: 53 columns
    for (title, run, first_role, run_span), shows in zip(runs, RUN_SHOWS, strict=True):
        _print_run(
            title,
            shows,
            run,
            roles,
            first_role=first_role,
            span=run_span,
            bar_width=bar_width,
            out=out,
            color=color,
        )
    out.write("\n" + summary(first, second, roles) + "\n")
    if (
        third.error is None
        and third.attempts
        and third.attempts[0].pair.destination != (lab.endpoints[BLACK_HOLE])
    ):
        out.write("In run 3 history tried the black hole last, and only as a backup.\n")
    return 0 if all(run.error is None for _, run, _, _ in runs) else 1


INTRO = (
    "Happy Eyeballs (RFC 8305) is how a client connects fast when a server has several "
    "addresses and some of them do not answer: it tries them one after another without "
    f"waiting for a silent one. When an attempt has no answer after a short delay (here "
    f"{ATTEMPT_DELAY:g} s), the next one starts while the first keeps trying; an attempt that "
    "fails starts the next one at once; the first to connect wins and every other is "
    "closed. aioconnlist also remembers how each address did and tries the good ones first."
)

#: in plain words, what each run shows
RUN_SHOWS = (
    "Shows the stagger: the black hole gets its delay, then the next address starts; the "
    "refusal moves on at once; the working one wins and the black hole is given up.",
    "Shows the memory: the address that worked is tried first and wins at once; the black "
    "hole is not waited for again.",
    "Shows a slow server: nothing answers within the delay, so the second address starts as "
    "a backup while the first keeps trying; the slow one answers first and wins.",
)


def summary(first: Run, second: Run, roles: dict[Endpoint, str]) -> str:
    if first.error is not None or second.error is not None:
        return "A run failed: this machine's loopback does not behave as the demo expects."
    lead = second.attempts[0] if second.attempts else None
    lead_role = roles.get(lead.pair.destination, "?") if lead is not None else "?"
    times = f"{_ms(first.took)} -> {_ms(second.took)}"
    if lead_role != WORKING:
        return f"History did not reorder the pairs (run 2 began with {lead_role}): {times}."
    factor = first.took / second.took if second.took > 0 else float("inf")
    return (
        f"History tried run 1's winner first: {times} ({factor:.0f}x faster).\n"
        "The black hole, silent past the attempt delay, now counts as a failure."
    )


def run_demo(out: IO[str], *, color: bool = False, width: int = 80) -> int:
    """Build the endpoints, race twice, print the waterfalls; returns the exit status."""
    try:
        return asyncio.run(_demo(out, color=color, width=width))
    except asyncio.TimeoutError:
        out.write(f"\nA run did not finish in {RUN_LIMIT:g} s; something is wrong.\n")
        return 1
