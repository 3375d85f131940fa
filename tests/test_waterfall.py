"""The waterfall renderer: pure text from hand-built attempt lists, compared exactly."""

from __future__ import annotations

import errno
import json

import pytest

from aioconnlist._cli.waterfall import (
    attempt_record,
    attempts_from_events,
    race_span,
    render_waterfall,
    result_label,
)
from aioconnlist._core.addresses import parse_address, parse_ip
from aioconnlist._core.events import Attempt, RaceEvent
from aioconnlist._core.pairs import LocalAddress, Pair

LOOPBACK = parse_ip("127.0.0.1")[0]


def pair(address: str, source: str | None = None) -> Pair:
    local = None if source is None else LocalAddress(parse_ip(source)[0])
    return Pair(local, parse_address(address), LOOPBACK)


def oserror(code: int) -> OSError:
    return OSError(code, f"error {code}")


def demo_race() -> list[Attempt]:
    """Black hole first, then a refusal that falls through at once to the winner."""
    return [
        Attempt(0, pair("127.0.0.1:41000"), 0.0, 0.2512, "cancelled"),
        Attempt(1, pair("127.0.0.1:41001"), 0.2501, 0.2503, "failed", oserror(111)),
        Attempt(2, pair("127.0.0.1:41002"), 0.2504, 0.2512, "won"),
    ]


def test_exact_text_of_a_race() -> None:
    assert render_waterfall(demo_race(), width=80) == "\n".join(
        [
            "#  destination      |0 ms                 251.2 ms|  result",
            "1  127.0.0.1:41000  |============================/|  cancelled    0.0 - 251.2 ms",
            "2  127.0.0.1:41001  |                            x|  refused    250.1 - 250.3 ms",
            "3  127.0.0.1:41002  |                            *|  won        250.4 - 251.2 ms",
            "   = in flight  * won  x refused  / cancelled",
        ]
    )


def test_exact_text_with_sources_every_outcome_and_a_running_attempt() -> None:
    attempts = [
        Attempt(0, pair("[2001:db8::1]:443", "2001:db8::9"), 0.0, 0.1, "failed", oserror(113)),
        Attempt(1, pair("192.0.2.1:443"), 0.1, 0.4, "timed out"),
        Attempt(2, pair("192.0.2.2:443", "192.0.2.9"), 0.2, 0.3, "failed", oserror(1)),
        Attempt(3, pair("192.0.2.3:443"), 0.3, None, "running"),
    ]
    # 26 columns for 0.4 s: column = round(t / 0.4 * 25)
    assert render_waterfall(attempts, width=100) == "\n".join(
        [
            "#  destination        source             |0 ms              400.0 ms|  result",
            "1  [2001:db8::1]:443  2001:db8::9        |======!                   |  unreachable"
            "    0.0 - 100.0 ms",
            "2  192.0.2.1:443      kernel(127.0.0.1)  |      ===================T|  timed out  "
            "  100.0 - 400.0 ms",
            "3  192.0.2.2:443      192.0.2.9          |            =======?      |  EPERM      "
            "  200.0 - 300.0 ms",
            "4  192.0.2.3:443      kernel(127.0.0.1)  |                   ======>|  running    "
            "  300.0 -   ...",
            "   = in flight  ! unreachable  T timed out  > running  ? other error",
        ]
    )


def test_bar_positions_follow_the_times() -> None:
    # 12 columns for 1.1 s: one column per 0.1 s
    attempts = [
        Attempt(0, pair("127.0.0.1:1"), 0.0, 0.3, "cancelled"),
        Attempt(1, pair("127.0.0.1:2"), 0.3, 0.9, "won"),
    ]
    lines = render_waterfall(attempts, bar_width=12, span=1.1, legend=False).splitlines()
    bars = [line.split("|")[1] for line in lines[1:]]
    assert bars == ["===/        ", "   ======*  "]
    assert lines[0].split("|")[1] == "0     1100.0"  # too narrow for units: numbers only


def test_span_puts_a_short_race_at_the_left_of_a_longer_axis() -> None:
    quick = [Attempt(0, pair("127.0.0.1:1"), 0.0001, 0.0002, "won")]
    line = render_waterfall(quick, span=0.25, bar_width=20).splitlines()[1]
    assert line.split("|")[1] == "*" + " " * 19


def test_an_instant_race_draws_at_column_zero() -> None:
    text = render_waterfall([Attempt(0, pair("127.0.0.1:1"), 0.0, 0.0, "won")], bar_width=12)
    assert text.splitlines()[1].split("|")[1] == "*" + " " * 11


@pytest.mark.parametrize(
    ("outcome", "code", "label"),
    [
        ("won", None, "won"),
        ("cancelled", None, "cancelled"),
        ("timed out", None, "timed out"),
        ("running", None, "running"),
        ("failed", errno.ECONNREFUSED, "refused"),
        ("failed", errno.EHOSTUNREACH, "unreachable"),
        ("failed", errno.ENETUNREACH, "unreachable"),
        ("failed", errno.EACCES, "unreachable"),
        ("failed", errno.ETIMEDOUT, "timed out"),
        ("failed", errno.EPERM, "EPERM"),
        ("failed", errno.EADDRNOTAVAIL, "EADDRNOTAVAIL"),
        ("failed", None, "failed"),
    ],
)
def test_result_labels(outcome: str, code: int | None, label: str) -> None:
    error = (
        None if outcome != "failed" else (OSError("no errno") if code is None else oserror(code))
    )
    attempt = Attempt(0, pair("127.0.0.1:1"), 0.0, 0.1, outcome, error)  # type: ignore[arg-type]
    assert result_label(attempt) == label


def test_colour_only_when_asked_and_invisible_in_width() -> None:
    plain = render_waterfall(demo_race(), width=80)
    coloured = render_waterfall(demo_race(), width=80, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[1;32m*\x1b[0m" in coloured  # the winner green
    assert "\x1b[31mx\x1b[0m" in coloured  # the refusal red
    assert "\x1b[90m" in coloured  # the cancelled attempt grey
    strip = coloured
    for code in ("\x1b[1;32m", "\x1b[31m", "\x1b[90m", "\x1b[0m"):
        strip = strip.replace(code, "")
    assert strip == plain


@pytest.mark.parametrize("width", [63, 80, 120])
def test_lines_fit_the_width(width: int) -> None:
    lines = render_waterfall(demo_race(), width=width).splitlines()
    assert max(map(len, lines)) == width
    assert lines[1].endswith("251.2 ms")


def test_a_narrow_width_keeps_a_readable_bar() -> None:
    lines = render_waterfall(demo_race(), width=40).splitlines()
    assert len(lines[1].split("|")[1]) == 12  # MIN_BAR_WIDTH: the line overflows instead


def test_no_attempts() -> None:
    assert render_waterfall([]) == "(no attempt was started)"
    assert race_span([]) == 0.0


def test_attempts_from_events_keeps_the_last_event_of_each() -> None:
    race = demo_race()
    started = [
        RaceEvent.of("started", Attempt(a.index, a.pair, a.started), a.started) for a in race
    ]
    events = [
        started[0],
        started[1],
        RaceEvent.of("failed", race[1], 0.2503),
        started[2],
        RaceEvent.of("won", race[2], 0.2512),
        RaceEvent.of("cancelled", race[0], 0.2512),
    ]
    rebuilt = attempts_from_events(events)
    assert [(a.index, a.outcome, a.ended) for a in rebuilt] == [
        (0, "cancelled", 0.2512),
        (1, "failed", 0.2503),
        (2, "won", 0.2512),
    ]
    assert rebuilt[1].error is race[1].error
    assert render_waterfall(rebuilt) == render_waterfall(race)
    # an attempt whose only event is "started" is still running
    assert [a.outcome for a in attempts_from_events(started[:1])] == ["running"]


def test_attempt_record_is_json_ready() -> None:
    bound = Attempt(1, pair("127.0.0.1:41001", "127.0.0.2"), 0.25, 0.26, "failed", oserror(111))
    record = json.loads(json.dumps(attempt_record(bound)))
    assert record == {
        "index": 1,
        "destination": "127.0.0.1:41001",
        "source": "127.0.0.2",
        "kernel_source": "127.0.0.1",
        "started": 0.25,
        "ended": 0.26,
        "outcome": "failed",
        "result": "refused",
        "errno": 111,
        "errno_name": "ECONNREFUSED",
        "error": "error 111",
    }
    won = attempt_record(demo_race()[2])
    assert [won[k] for k in ("source", "errno", "errno_name", "error")] == [None] * 4
