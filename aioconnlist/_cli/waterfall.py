"""Draw a race as a waterfall: one row per attempt on a shared time axis. Pure: no I/O, no clock.

    #  destination      |0 ms        251.3 ms|  result
    1  127.0.0.1:46035  |===================/|  cancelled    0.1 - 251.3 ms
    2  127.0.0.1:56331  |                   x|  refused    250.7 - 251.1 ms
    3  127.0.0.1:40707  |                   *|  won        251.2 - 251.3 ms
       = in flight  * won  x refused  / cancelled

Input is a list of `Attempt` (from `ConnectError.attempts`, or rebuilt from the ``on_event``
stream with `attempts_from_events`). The text is plain ASCII; ``color=True`` adds ANSI colours.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from typing import Any

from .._core.events import Attempt, RaceEvent

#: errnos shown as "unreachable": no route, or a route that refuses (prohibit → EACCES)
UNREACHABLE_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES})

#: the character that ends each attempt's bar, by result (anything else: "?")
MARKS = {
    "won": "*",
    "refused": "x",
    "unreachable": "!",
    "timed out": "T",
    "cancelled": "/",
    "running": ">",
}
OTHER_MARK = "?"
BAR = "="
LEGEND = [*MARKS.items(), ("other error", OTHER_MARK)]

#: ANSI SGR codes by result (anything else: red)
COLORS = {
    "won": "1;32",
    "refused": "31",
    "unreachable": "35",
    "timed out": "33",
    "cancelled": "90",
    "running": "36",
}
OTHER_COLOR = "31"

MIN_BAR_WIDTH = 12


def result_label(attempt: Attempt) -> str:
    """What happened to an attempt, in a word: won / refused / unreachable / timed out /
    cancelled / running, or the errno name (``EPERM``...) of another failure."""
    if attempt.outcome != "failed":
        return attempt.outcome
    code = attempt.error.errno if attempt.error is not None else None
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in UNREACHABLE_ERRNOS:
        return "unreachable"
    if code == errno.ETIMEDOUT:
        return "timed out"
    if code is None:
        return "failed"
    return errno.errorcode.get(code, f"errno {code}")


def attempts_from_events(events: Iterable[RaceEvent]) -> list[Attempt]:
    """Rebuild the attempts of a race from its ``on_event`` stream (the last event of each wins)."""
    by_index: dict[int, Attempt] = {}
    for event in events:
        by_index[event.index] = Attempt(
            event.index, event.pair, event.started, event.ended, event.outcome, event.error
        )
    return [by_index[i] for i in sorted(by_index)]


def source_label(attempt: Attempt) -> str:
    """The source column: the bound address, or ``kernel(ip)`` for the kernel's own choice."""
    pair = attempt.pair
    if pair.source is not None:
        return str(pair.source)
    return "kernel" if pair.kernel_source is None else f"kernel({pair.kernel_source})"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def race_span(attempts: Sequence[Attempt]) -> float:
    """The end of the time axis: the latest start or end of any attempt (seconds)."""
    return max((max(a.started, a.ended or 0.0) for a in attempts), default=0.0)


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and text.strip() else text


def render_waterfall(
    attempts: Sequence[Attempt],
    *,
    width: int = 80,
    color: bool = False,
    span: float | None = None,
    bar_width: int | None = None,
    legend: bool = True,
) -> str:
    """Render ``attempts`` as text lines (no trailing newline).

    ``width`` is the target line width (the bar shrinks to fit, never below 12 columns);
    ``span`` the time the axis covers (default: the latest time of any attempt); ``bar_width``
    fixes the axis width instead (to compare races drawn on the same axis). An attempt
    without an end (still running) is drawn up to the end of the axis.
    """
    if not attempts:
        return "(no attempt was started)"
    rows = sorted(attempts, key=lambda a: a.index)
    end = max(span if span is not None else 0.0, race_span(rows))
    labels = [result_label(a) for a in rows]
    numbers = [str(a.index + 1) for a in rows]
    destinations = [str(a.pair.destination) for a in rows]
    sources = [source_label(a) for a in rows]
    starts = [ms(a.started) for a in rows]
    ends = [ms(a.ended) if a.ended is not None else "" for a in rows]

    # The source column only when some attempt binds one: otherwise every row says "kernel".
    show_source = any(a.pair.source is not None for a in rows)
    num_w = max(1, *map(len, numbers))
    dst_w = max(len("destination"), *map(len, destinations))
    src_w = max(len("source"), *map(len, sources)) if show_source else 0
    label_w = max(map(len, labels))
    start_w = max(map(len, starts))
    end_w = max(3, *map(len, ends))
    # number, destination and (maybe) source columns, then "|bar|", then the result column
    prefix_w = num_w + 2 + dst_w + 2 + (src_w + 2 if show_source else 0)
    result_w = 2 + label_w + 2 + start_w + 3 + end_w + 3
    bar_w = bar_width if bar_width is not None else width - prefix_w - 2 - result_w
    bar_w = max(MIN_BAR_WIDTH, bar_w)

    def column(t: float) -> int:
        if end <= 0:
            return 0
        return min(bar_w - 1, max(0, round(t / end * (bar_w - 1))))

    def prefix(num: str, dst: str, src: str) -> str:
        text = f"{num.rjust(num_w)}  {dst.ljust(dst_w)}  "
        return text + f"{src.ljust(src_w)}  " if show_source else text

    left, right = "0 ms", f"{ms(end)} ms"
    if len(left) + 1 + len(right) > bar_w:
        left, right = "0", ms(end)
    axis = left + right.rjust(bar_w - len(left))
    lines = [f"{prefix('#', 'destination', 'source')}|{axis}|  result"]
    used: set[str] = set()
    for a, label, num, dst, src, start, stop in zip(
        rows, labels, numbers, destinations, sources, starts, ends, strict=True
    ):
        mark = MARKS.get(label, OTHER_MARK)
        used.add(mark)
        first = column(a.started)
        last = column(a.ended if a.ended is not None else end)
        bar = BAR * (last - first) + mark
        code = COLORS.get(label, OTHER_COLOR)
        cells = " " * first + _paint(bar, code, color) + " " * (bar_w - last - 1)
        when = f"{start.rjust(start_w)} - {(stop or '...').rjust(end_w)}" + (" ms" if stop else "")
        result = _paint(label.ljust(label_w), code, color)
        lines.append(f"{prefix(num, dst, src)}|{cells}|  {result}  {when}".rstrip())
    if legend:
        keys = [f"{mark} {what}" for what, mark in LEGEND if mark in used]
        lines.append("  ".join([" " * num_w, f"{BAR} in flight", *keys]))
    return "\n".join(lines)


def attempt_record(attempt: Attempt) -> dict[str, Any]:
    """A JSON-ready description of one attempt (times in seconds since the race started)."""
    pair = attempt.pair
    err = attempt.error
    code = err.errno if err is not None else None
    return {
        "index": attempt.index,
        "destination": str(pair.destination),
        "source": None if pair.source is None else str(pair.source),
        "kernel_source": None if pair.kernel_source is None else str(pair.kernel_source),
        "started": attempt.started,
        "ended": attempt.ended,
        "outcome": attempt.outcome,
        "result": result_label(attempt),
        "errno": code,
        "errno_name": errno.errorcode.get(code) if code is not None else None,
        "error": None if err is None else (err.strerror or str(err)),
    }
