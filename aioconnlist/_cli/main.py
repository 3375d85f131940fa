"""The command line: ``aioconnlist connect ADDRESS... | HOST PORT`` and ``aioconnlist demo``.

Exit status: 0 connected, 1 the connection failed (the errno name and message on stderr), 2 the
command line is wrong (one line naming the problem on stderr), 130 interrupted (the waterfall
of what the race had done is printed first). ``--timeout`` defaults to `DEFAULT_TIMEOUT`; on a
terminal a live line shows the attempts in flight. No path prints
a traceback (set AIOCONNLIST_DEBUG=1 to get one for an unexpected error).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, NoReturn

from .._core.addresses import Endpoint, parse_address, parse_ip
from .._core.errors import ConnectError, InvalidArgument
from .._core.events import Attempt, RaceEvent
from .._core.history import DEFAULT_HISTORY
from .._core.options import MIN_ATTEMPT_DELAY, make_options
from .._io import history_file
from ..api import connect_by_list, connect_by_name
from .waterfall import attempt_record, attempts_from_events, render_waterfall

PROG = "aioconnlist"
#: the default --timeout (seconds). An unanswered SYN fails only after ~130 s on Linux; 10 s
#: still lets a handshake through whose SYN was lost twice (retransmissions at 1 s and 3 s)
#: on a slow path, and never leaves the terminal silent for two minutes on a black hole.
DEFAULT_TIMEOUT = 10.0
#: how often the live line (a terminal only) is redrawn while attempts are in flight
LIVE_INTERVAL = 0.1
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: getaddrinfo's error codes are not errnos: name them from the socket module
_EAI_NAMES = {
    getattr(socket, name): name
    for name in dir(socket)
    if name.startswith("EAI_") and isinstance(getattr(socket, name), int)
}


class UsageError(Exception):
    """The command line cannot work; the message names the problem (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is raised (to become one line) instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _seconds_or_none(text: str) -> float | None:
    if text.lower() == "none":
        return None
    return _seconds(text)


class _VersionAction(argparse.Action):
    """``--version``: the installed version, read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        import aioconnlist

        sys.stdout.write(f"{PROG} {aioconnlist.__version__}\n")
        parser.exit()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("NaN is not a number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Connect to one of many TCP endpoints, Happy Eyeballs style, and show the "
        "race as a waterfall.",
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    connect = commands.add_parser(
        "connect",
        help="race connections to the given addresses (or a host name and port)",
        description="Race connection attempts to ADDRESS... ('192.0.2.1:80', '[2001:db8::1]:443') "
        "or to the addresses of HOST PORT; print the winning (local, remote) pair and a "
        "waterfall of every attempt. Exit status 0 when connected, 1 when every attempt "
        "failed, 2 on a bad command line.",
    )
    connect.add_argument(
        "targets", nargs="+", metavar="ADDRESS", help="ip:port / [ip6]:port ..., or HOST PORT"
    )
    connect.add_argument(
        "--timeout",
        type=_seconds_or_none,
        metavar="SECONDS",
        default=DEFAULT_TIMEOUT,
        help=f"hard deadline for the whole race (default: {DEFAULT_TIMEOUT:g}; 'none': wait as "
        "long as the kernel does, ~130 s for an unanswered SYN)",
    )
    connect.add_argument(
        "--attempt-delay",
        type=_seconds,
        metavar="SECONDS",
        default=0.25,
        help="RFC 8305 Connection Attempt Delay, >= 0.01; 'inf' for one attempt at a time "
        "(default: 0.25)",
    )
    connect.add_argument(
        "--local",
        action="append",
        metavar="ADDRESS",
        help="a local source IP to bind (repeatable), or 'auto' (default: the kernel's choice, "
        "then every other suitable local address) or 'none' (the kernel's choice only)",
    )
    connect.add_argument(
        "--no-history",
        action="store_true",
        help="use no pair history (default: one kept in $XDG_STATE_HOME/aioconnlist/history.json, "
        "~/.local/state when unset, or the file AIOCONNLIST_HISTORY names)",
    )
    connect.add_argument(
        "--no-sort", action="store_true", help="try the addresses in the order given"
    )
    connect.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    connect.add_argument(
        "--no-color", action="store_true", help="no colours (also: the NO_COLOR variable)"
    )
    demo = commands.add_parser(
        "demo",
        help="race against local black-hole, refused and working endpoints (no network, no root)",
        description="Build four endpoints on loopback (a black hole, a refused port, a working "
        "and a slow listener), race them three times with one private history, and explain "
        "each waterfall.",
    )
    demo.add_argument("--no-color", action="store_true", help="no colours")
    return parser


# -- the targets: ADDRESS... or HOST PORT -----------------------------------------------------


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int


def _parse_port(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"bad port {text!r}: a port is a number from 1 to 65535")
    port = int(text)
    if not 0 < port < 65536:
        raise UsageError(f"bad port {port}: a port is a number from 1 to 65535")
    return port


def _looks_like_host_port(targets: Sequence[str]) -> bool:
    # Every ADDRESS carries ":port"; a second word without ':' can only be HOST PORT's port.
    return len(targets) == 2 and ":" not in targets[1] and not targets[1].startswith("[")


def parse_targets(targets: Sequence[str]) -> list[Endpoint] | HostPort:
    """The destinations of ``connect``: a list of endpoints, or a host name to resolve."""
    if _looks_like_host_port(targets):
        host, port = targets[0], _parse_port(targets[1])
        literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ip, scope = parse_ip(literal)
        except InvalidArgument:
            if not host or any(c in host for c in " /[]:@") or len(host) > 253:
                raise UsageError(f"bad host {host!r}: not an IP address or a host name") from None
            return HostPort(host, port)
        return [Endpoint(ip, port, 0, scope)]
    endpoints: dict[Endpoint, None] = {}
    for target in targets:
        try:
            endpoints.setdefault(parse_address(target), None)
        except InvalidArgument as e:
            name, sep, number = target.rpartition(":")
            is_name = name and ":" not in name and not name.replace(".", "").isdigit()
            if sep and is_name and number.isdigit():
                raise UsageError(
                    f"bad address {target!r}: {name!r} is a host name, not an IP address; "
                    f"use: {PROG} connect {name} {number}"
                ) from None
            raise UsageError(f"bad address: {e.strerror}") from None
    return list(endpoints)


def _local_option(values: list[str] | None) -> Any:
    if not values:
        return "auto"
    words = [v.lower() for v in values]
    if len(values) == 1 and words[0] in ("auto", "none"):
        return "auto" if words[0] == "auto" else None
    if "auto" in words or "none" in words:
        raise UsageError("--local auto/none cannot be combined with addresses")
    for value in values:
        try:
            parse_ip(value)
        except InvalidArgument:
            raise UsageError(f"bad --local {value!r}: not an IP address of this machine") from None
    return values


def race_options(args: argparse.Namespace) -> dict[str, Any]:
    """The library options the command line asks for (validated: UsageError when bad)."""
    if args.attempt_delay < MIN_ATTEMPT_DELAY:
        raise UsageError(
            f"--attempt-delay {args.attempt_delay} is below the RFC 8305 floor of "
            f"{MIN_ATTEMPT_DELAY} s"
        )
    if args.timeout is not None and args.timeout < 0:
        raise UsageError(f"--timeout must not be negative, got {args.timeout}")
    options: dict[str, Any] = {
        "timeout": args.timeout,
        "attempt_delay": args.attempt_delay,
        "local_addresses": _local_option(args.local),
        "sort": not args.no_sort,
    }
    if args.no_history:
        options["history"] = None
    try:
        make_options(**options)
    except InvalidArgument as e:
        raise UsageError(error_message(e)) from None
    return options


# -- running and reporting --------------------------------------------------------------------


def error_name(error: BaseException) -> str:
    """The symbolic name of an OSError's code (ECONNREFUSED, EAI_NONAME...), else its type."""
    code = getattr(error, "errno", None)
    if isinstance(error, socket.gaierror) and code in _EAI_NAMES:
        return _EAI_NAMES[code]
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    return type(error).__name__


def error_message(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(text).split())  # one line, whatever the message holds


def format_address(sockaddr: Any) -> str:
    try:
        return str(parse_address(tuple(sockaddr)))
    except (InvalidArgument, TypeError):
        return str(sockaddr)


@dataclass
class ConnectResult:
    """What ``connect`` learned: the winning pair's addresses or the error, and the attempts."""

    attempts: list[Attempt]
    elapsed: float
    local: str | None = None
    remote: str | None = None
    error: OSError | None = None
    given: int = 0  # the addresses given (0: a name, its addresses unknown beforehand)
    interrupted: bool = False


class LiveLine:
    """One line on a terminal, redrawn while attempts are in flight: how many are running,
    how many failed, the time so far. Nothing at all when ``out`` is not a terminal."""

    def __init__(self, out: IO[str], events: list[RaceEvent], timeout: float | None) -> None:
        self.out, self.events, self.timeout = out, events, timeout
        self.shown = False

    def text(self, elapsed: float) -> str:
        attempts = attempts_from_events(self.events)
        running = [a for a in attempts if a.outcome == "running"]
        failed = sum(a.outcome == "failed" for a in attempts)
        newest = (
            f"; newest #{running[-1].index + 1} {running[-1].pair.destination}" if running else ""
        )
        limit = "" if self.timeout is None else f" of {self.timeout:g} s"
        return f"racing: {len(running)} in flight, {failed} failed, {elapsed:.1f} s{limit}{newest}"

    def draw(self, elapsed: float) -> None:
        width = terminal_width() - 1
        self.out.write("\r\x1b[K" + self.text(elapsed)[:width])
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.shown = False

    async def run(self, started: float) -> None:
        while True:
            await asyncio.sleep(LIVE_INTERVAL)
            self.draw(time.perf_counter() - started)


async def run_connect(
    target: list[Endpoint] | HostPort,
    options: dict[str, Any],
    events: list[RaceEvent] | None = None,
    live: LiveLine | None = None,
) -> ConnectResult:
    events = [] if events is None else events
    given = 0 if isinstance(target, HostPort) else len(target)
    started = time.perf_counter()
    drawing = None if live is None else asyncio.ensure_future(live.run(started))
    try:
        if isinstance(target, HostPort):
            sock = await connect_by_name(
                target.host, target.port, on_event=events.append, **options
            )
        else:
            sock = await connect_by_list(target, on_event=events.append, **options)
    except OSError as e:
        elapsed = time.perf_counter() - started
        recorded = list(getattr(e, "attempts", ()))
        return ConnectResult(
            recorded or attempts_from_events(events), elapsed, error=e, given=given
        )
    finally:
        if drawing is not None:
            drawing.cancel()
        if live is not None:
            live.clear()
    elapsed = time.perf_counter() - started
    with sock:
        local, remote = format_address(sock.getsockname()), format_address(sock.getpeername())
    return ConnectResult(attempts_from_events(events), elapsed, local, remote, given=given)


def winner_line(outcome: ConnectResult) -> str:
    """``connected from L to R in T ms (attempt n of m)``: m counts what could be tried (the
    addresses given, or the attempts started when there were more pairs or a name)."""
    won = [a for a in outcome.attempts if a.outcome == "won"]
    took = won[0].ended if won and won[0].ended is not None else outcome.elapsed
    total = max(len(outcome.attempts), outcome.given)
    which = f" (attempt {won[0].index + 1} of {total})" if won else ""
    return f"connected from {outcome.local} to {outcome.remote} in {took * 1000:.1f} ms{which}"


def report_connect(
    outcome: ConnectResult, *, as_json: bool, color: bool, width: int, out: IO[str]
) -> int:
    error = outcome.error
    if as_json:
        record: dict[str, Any] = {"connected": error is None and not outcome.interrupted}
        if outcome.interrupted:
            record["interrupted"] = True
        elif error is None:
            record.update(local=outcome.local, remote=outcome.remote)
        else:
            code = getattr(error, "errno", None)
            record.update(errno=code, errno_name=error_name(error), error=error_message(error))
        record["elapsed"] = outcome.elapsed
        record["attempts"] = [attempt_record(a) for a in outcome.attempts]
        out.write(json.dumps(record, indent=2) + "\n")
    else:
        if outcome.interrupted:
            out.write(f"interrupted after {outcome.elapsed * 1000:.1f} ms\n")
        elif error is None:
            out.write(winner_line(outcome) + "\n")
        if outcome.attempts:
            out.write(render_waterfall(outcome.attempts, width=width, color=color) + "\n")
    if outcome.interrupted:
        out.flush()
        return EXIT_INTERRUPTED
    if error is not None:
        out.flush()
        sys.stderr.write(f"{PROG}: {error_name(error)}: {error_message(error)}\n")
        return EXIT_FAILED
    return EXIT_OK


def use_color(no_color: bool, stream: IO[str]) -> bool:
    """Colour only on a terminal, and never with --no-color or a non-empty NO_COLOR."""
    return not no_color and not os.environ.get("NO_COLOR") and stream.isatty()


def terminal_width() -> int:
    return max(60, min(160, shutil.get_terminal_size((80, 24)).columns))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        raise UsageError("a command is required: connect or demo")
    color = use_color(args.no_color, sys.stdout)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(sys.stdout, color=color, width=terminal_width())
    target = parse_targets(args.targets)
    options = race_options(args)
    events: list[RaceEvent] = []
    on_terminal = not args.json and sys.stdout.isatty()
    live = LiveLine(sys.stdout, events, options["timeout"]) if on_terminal else None
    started = time.perf_counter()
    store = None if args.no_history else _state_history()
    try:
        outcome = asyncio.run(run_connect(target, options, events, live))
    except KeyboardInterrupt:
        # Ctrl-C: the race was cancelled (every socket closed); show what it had done
        if live is not None:
            live.clear()
        given = 0 if isinstance(target, HostPort) else len(target)
        outcome = ConnectResult(
            attempts_from_events(events),
            time.perf_counter() - started,
            given=given,
            interrupted=True,
        )
        report_connect(
            outcome, as_json=args.json, color=color, width=terminal_width(), out=sys.stdout
        )
        raise
    finally:
        if store is not None:
            store.flush()  # one write per run, after the race
    return report_connect(
        outcome, as_json=args.json, color=color, width=terminal_width(), out=sys.stdout
    )


def _state_history() -> history_file.HistoryFile | None:
    """Back the process-wide history with the user's state file (unless AIOCONNLIST_HISTORY
    did already); None when it cannot be had (a warning is logged then)."""
    if os.environ.get(history_file.ENV):
        return history_file.file_of(DEFAULT_HISTORY)
    path = history_file.default_state_path()
    if not history_file.ensure_private_dir(path):
        return None
    return history_file.attach(DEFAULT_HISTORY, path, coalesce=None, quiet_missing=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return status
    except UsageError as e:
        sys.stderr.write(f"{PROG}: error: {e} (see '{PROG} --help')\n")
        return EXIT_USAGE
    except SystemExit as e:  # --help / --version: argparse has printed what was asked
        return e.code if isinstance(e.code, int) else EXIT_OK
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): nothing left to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_FAILED
    except ConnectError as e:  # e.g. no usable address for the given sources
        sys.stderr.write(f"{PROG}: {error_name(e)}: {error_message(e)}\n")
        return EXIT_FAILED
    except Exception as e:
        if os.environ.get("AIOCONNLIST_DEBUG"):
            raise
        sys.stderr.write(f"{PROG}: unexpected {type(e).__name__}: {error_message(e)}\n")
        return EXIT_FAILED
