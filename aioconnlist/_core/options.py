"""The options every entry point takes, validated once into an `Options` value.

`RaceOptions` (a ``TypedDict``) is the one definition of the option set: its keys, their types
(for type checkers, through ``**options: Unpack[RaceOptions]``) and, with the defaults of
`make_options`, what ``inspect.signature`` and ``help()`` show for every entry point
(`takes_options`)."""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from .addresses import parse_ip
from .errors import InvalidArgument
from .history import DEFAULT_HISTORY, PairHistory
from .pairs import LocalAddress
from .records import FrozenRecord, replaced

if TYPE_CHECKING:
    from .events import RaceEvent

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

    __all__ = ["ConnectOptions", "RaceOptions", "Unpack"]

#: RFC 8305 §8: Connection Attempt Delay 250 ms (floor 10 ms, recommended minimum 100 ms),
#: Resolution Delay 50 ms, First Address Family Count 1
ATTEMPT_DELAY = 0.25
MIN_ATTEMPT_DELAY = 0.01
RECOMMENDED_MIN_ATTEMPT_DELAY = 0.1
RESOLUTION_DELAY = 0.05
FIRST_ADDRESS_FAMILY_COUNT = 1


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT_HISTORY"


#: sentinel for "the process-wide shared history"
DEFAULT: Any = _Default()

LocalAddressesOption = Literal["auto"] | None | Iterable[object]
EventCallback = Callable[["RaceEvent"], object]


class ConnectOptions(TypedDict, total=False):
    """`RaceOptions` less ``timeout``: for entry points whose own ``timeout`` parameter (with
    a meaning of its library's) is the race's deadline, such as ``create_connection``."""

    local_addresses: LocalAddressesOption
    attempt_delay: float
    min_attempt_delay: float
    interleave: int
    sort: bool
    history: PairHistory | None
    on_event: EventCallback | None
    backup_attempts: bool


class RaceOptions(ConnectOptions, total=False):
    """The race options every entry point takes as keyword arguments, all optional.

    The one definition of the option set: entry points declare ``**options:
    Unpack[RaceOptions]``, so a type checker sees each option's name and type (a misspelled
    one is an error), and `OPTION_NAMES` is derived from it.
    """

    timeout: float | None


OPTION_NAMES: frozenset[str] = RaceOptions.__optional_keys__


class Options(FrozenRecord):
    """Validated race options (made by `make_options`); `replace` makes a changed copy."""

    __slots__ = (
        "attempt_delay",
        "backup_attempts",
        "history",
        "interleave",
        "local_addresses",
        "min_attempt_delay",
        "on_event",
        "sort",
        "timeout",
    )
    _fields = (
        "local_addresses",
        "timeout",
        "attempt_delay",
        "min_attempt_delay",
        "interleave",
        "sort",
        "history",
        "on_event",
        "backup_attempts",
    )

    local_addresses: Literal["auto"] | tuple[LocalAddress, ...] | None
    timeout: float | None
    attempt_delay: float
    min_attempt_delay: float
    interleave: int
    sort: bool
    history: PairHistory | None
    on_event: EventCallback | None
    #: a second attempt on a fresh socket for a pair whose first attempt stays silent
    backup_attempts: bool

    def __init__(
        self,
        local_addresses: Literal["auto"] | tuple[LocalAddress, ...] | None = "auto",
        timeout: float | None = None,
        attempt_delay: float = ATTEMPT_DELAY,
        min_attempt_delay: float = RECOMMENDED_MIN_ATTEMPT_DELAY,
        interleave: int = FIRST_ADDRESS_FAMILY_COUNT,
        sort: bool = True,
        history: PairHistory | None = None,
        on_event: EventCallback | None = None,
        backup_attempts: bool = True,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "local_addresses", local_addresses)
        setattr_(self, "timeout", timeout)
        setattr_(self, "attempt_delay", attempt_delay)
        setattr_(self, "min_attempt_delay", min_attempt_delay)
        setattr_(self, "interleave", interleave)
        setattr_(self, "sort", sort)
        setattr_(self, "history", history)
        setattr_(self, "on_event", on_event)
        setattr_(self, "backup_attempts", backup_attempts)

    def replace(self, **changes: Any) -> Options:
        """A copy with ``changes`` (as `dataclasses.replace`), not validated again."""
        return replaced(self, changes)

    @property
    def backups_possible(self) -> bool:
        """Whether a race of these options may start backup attempts."""
        return self.backup_attempts and self.attempt_delay != math.inf


def _local_address(value: object) -> LocalAddress:
    if isinstance(value, LocalAddress):
        return value
    if isinstance(value, tuple) and value:  # (ip, port) / (ip6, port, flow, scope) as for bind
        ip, scope = parse_ip(value[0], what="local address")
        if len(value) == 4 and isinstance(value[3], int) and value[3]:
            scope = value[3]
        if len(value) >= 2 and value[1] not in (0, None):
            raise InvalidArgument(f"local address {value!r}: the port must be 0 (any)")
        return LocalAddress(ip, scope)
    ip, scope = parse_ip(value, what="local address")
    return LocalAddress(ip, scope)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{name} must be a number of seconds, not {value!r}")
    if math.isnan(value):
        raise InvalidArgument(f"{name} must not be NaN")
    return float(value)


def peer_attempt_delay(value: object) -> object:
    """A Happy Eyeballs delay given the way asyncio and aiohappyeyeballs take it (``0`` and
    other values below the RFC 8305 floor included) as our ``attempt_delay``: a number below
    `MIN_ATTEMPT_DELAY` is raised to it; anything else is left for `make_options` to judge."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return max(float(value), MIN_ATTEMPT_DELAY)
    return value


def make_options(
    *,
    local_addresses: LocalAddressesOption = "auto",
    timeout: float | None = None,
    attempt_delay: float = ATTEMPT_DELAY,
    min_attempt_delay: float = RECOMMENDED_MIN_ATTEMPT_DELAY,
    interleave: int = FIRST_ADDRESS_FAMILY_COUNT,
    sort: bool = True,
    history: PairHistory | None = DEFAULT,
    on_event: EventCallback | None = None,
    backup_attempts: bool = True,
) -> Options:
    """Validate the options; every problem raises `InvalidArgument` naming it."""
    if timeout is not None:
        timeout = _number("timeout", timeout)
        if timeout < 0:
            raise InvalidArgument(f"timeout must not be negative, got {timeout}")
        if timeout == math.inf:
            timeout = None  # no deadline (a poll(2) or a timer cannot take an infinite one)
    attempt_delay = _number("attempt_delay", attempt_delay)
    if attempt_delay < MIN_ATTEMPT_DELAY:
        raise InvalidArgument(
            f"attempt_delay {attempt_delay} is below the RFC 8305 floor of {MIN_ATTEMPT_DELAY} s"
        )
    min_attempt_delay = _number("min_attempt_delay", min_attempt_delay)
    if min_attempt_delay < MIN_ATTEMPT_DELAY:
        raise InvalidArgument(
            f"min_attempt_delay {min_attempt_delay} is below the RFC 8305 floor of "
            f"{MIN_ATTEMPT_DELAY} s"
        )
    if isinstance(interleave, bool) or not isinstance(interleave, int) or interleave < 0:
        raise InvalidArgument(f"interleave must be an integer >= 0, got {interleave!r}")
    if not isinstance(sort, bool):
        raise InvalidArgument(f"sort must be True or False, got {sort!r}")
    if not isinstance(backup_attempts, bool):
        raise InvalidArgument(f"backup_attempts must be True or False, got {backup_attempts!r}")
    if history is DEFAULT:
        history = DEFAULT_HISTORY
    elif history is not None and not isinstance(history, PairHistory):
        raise InvalidArgument(f"history must be a PairHistory or None, got {history!r}")
    if on_event is not None and not callable(on_event):
        raise InvalidArgument(f"on_event must be callable, got {on_event!r}")
    local: Literal["auto"] | tuple[LocalAddress, ...] | None
    if local_addresses is None or local_addresses == "auto":
        local = local_addresses
    elif isinstance(local_addresses, (str, bytes)) or not isinstance(local_addresses, Iterable):
        raise InvalidArgument(
            f'local_addresses must be "auto", None or a list of addresses, not {local_addresses!r}'
        )
    else:
        local = tuple(dict.fromkeys(_local_address(v) for v in local_addresses))
        if not local:
            raise InvalidArgument("local_addresses is an empty list; use None for the kernel's")
    return Options(
        local,
        timeout,
        attempt_delay,
        min_attempt_delay,
        interleave,
        sort,
        history,
        on_event,
        backup_attempts,
    )


# Validated options for repeated keyword sets: connect_by_list(addrs) is usually called with
# the same few options over and over. Only plain scalar values (and the history sentinels) are
# cached: the key holds each value's exact type, since ``True == 1 == 1.0`` under ``==`` but
# ``sort=1`` is an error and ``sort=True`` is not. Values such as lists, callables or private
# histories are validated every time (and so never kept alive by the cache).
_SCALAR_TYPES = frozenset({type(None), bool, int, float, str})
_OPTIONS_CACHE: dict[tuple[tuple[str, type, object], ...], Options] = {}
_OPTIONS_CACHE_SIZE = 64
_DEFAULT_OPTIONS = make_options()  # no option given: the everyday call


#: option names of other connection libraries, and ours that mean the same
OTHER_LIBRARY_NAMES: Mapping[str, str] = {
    "happy_eyeballs_delay": "attempt_delay",  # asyncio, aiohappyeyeballs, aiohttp, trio, anyio
    "delay": "attempt_delay",
    "connection_attempt_delay": "attempt_delay",
    "local_addr": "local_addresses",  # asyncio.loop.create_connection
    "local_address": "local_addresses",  # httpcore, anyio
    "source_address": "local_addresses",  # socket.create_connection, http.client, urllib3
    "local_addr_infos": "local_addresses",  # aiohappyeyeballs
    "local_host": "local_addresses",  # anyio.connect_tcp
    "bind_address": "local_addresses",
    "timeout_s": "timeout",
    "connect_timeout": "timeout",  # httpx / urllib3 Timeout(connect=...)
    "sock_connect": "timeout",  # aiohttp.ClientTimeout
    "first_address_family_count": "interleave",  # RFC 8305's name
}


def _hint(name: str, known: Iterable[str]) -> str:
    ours = OTHER_LIBRARY_NAMES.get(name)
    if ours is not None:
        return f"another library's name; here it is {ours}="
    import difflib  # only for a misspelt option

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f"did you mean {close[0]}=?" if close else ""


def unknown_options_error(unknown: Iterable[str], known: Iterable[str] = OPTION_NAMES) -> TypeError:
    """The TypeError for unknown option names: each named, with a hint where one helps (a
    misspelling, or another library's name for one of ours), and the known options listed."""
    known = sorted(known)
    parts = []
    for name in sorted(unknown):
        hint = _hint(name, known)
        parts.append(f"{name!r} ({hint})" if hint else repr(name))
    return TypeError(f"unknown option(s) {', '.join(parts)}; the options are {', '.join(known)}")


def check_option_names(kwargs: Mapping[str, Any]) -> None:
    """An unknown option is a TypeError, as for any Python call, that names the known ones."""
    unknown = kwargs.keys() - OPTION_NAMES
    if unknown:
        raise unknown_options_error(unknown)


def options_from(kwargs: Mapping[str, Any]) -> Options:
    """`make_options(**kwargs)`, with a cache for the common all-scalar option sets."""
    if not kwargs:
        return _DEFAULT_OPTIONS
    key_items: list[tuple[str, type, object]] = []
    for name, value in kwargs.items():
        kind = type(value)
        if kind is float:
            value = value.hex()  # -0.0 is not 0.0 here; NaN gets a key but is refused anyway
        elif kind not in _SCALAR_TYPES and value is not DEFAULT and value is not DEFAULT_HISTORY:
            check_option_names(kwargs)
            return make_options(**kwargs)
        key_items.append((name, kind, value))
    key = tuple(sorted(key_items, key=_item_name)) if len(key_items) > 1 else tuple(key_items)
    cached = _OPTIONS_CACHE.get(key)
    if cached is not None:
        return cached
    check_option_names(kwargs)
    options = make_options(**kwargs)
    if len(_OPTIONS_CACHE) >= _OPTIONS_CACHE_SIZE:
        _OPTIONS_CACHE.clear()
    _OPTIONS_CACHE[key] = options
    return options


def _item_name(item: tuple[str, type, object]) -> str:
    return item[0]


def split_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``**kwargs`` into (race options, the rest)."""
    ours = {k: v for k, v in kwargs.items() if k in OPTION_NAMES}
    rest = {k: v for k, v in kwargs.items() if k not in OPTION_NAMES}
    return ours, rest


# -- what inspect.signature and help() show --------------------------------------------------

#: every option's default: those of `make_options` (checked against `RaceOptions` below)
OPTION_DEFAULTS: Mapping[str, object] = {
    name: parameter.default
    for name, parameter in inspect.signature(make_options).parameters.items()
}
if OPTION_DEFAULTS.keys() != OPTION_NAMES:  # pragma: no cover - a programming error
    raise AssertionError("make_options and RaceOptions must name the same options")


#: the aliases of `RaceOptions`, spelled out for help()
_SHOWN = {
    "LocalAddressesOption": "Literal['auto'] | None | Iterable[str | tuple | LocalAddress]",
    "EventCallback | None": "Callable[[RaceEvent], object] | None",
}


def _annotation(annotations: Mapping[str, object], name: str) -> object:
    annotation = annotations.get(name, inspect.Parameter.empty)
    text = getattr(annotation, "__forward_arg__", annotation)  # a string, as written
    return _SHOWN.get(text, text) if isinstance(text, str) else text


def option_parameters(
    options_type: type = RaceOptions, defaults: Mapping[str, object] | None = None
) -> list[inspect.Parameter]:
    """The keyword-only parameters of ``options_type``'s keys (a `RaceOptions`-like TypedDict),
    in its order, annotated as written there, with the defaults of `make_options` (or
    ``defaults`` where an entry point's own differ)."""
    keys = options_type.__optional_keys__ | options_type.__required_keys__  # type: ignore[attr-defined]
    names = [n for n in OPTION_DEFAULTS if n in keys]  # make_options' order: the table's
    names += sorted(keys - set(names))  # (a TypedDict beyond the race options)
    chosen = {**OPTION_DEFAULTS, **(defaults or {})}
    annotations = inspect.get_annotations(options_type)
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=chosen.get(name, inspect.Parameter.empty),
            annotation=_annotation(annotations, name),
        )
        for name in names
    ]


_F = TypeVar("_F", bound=Callable[..., Any])


def takes_options(
    options_type: type = RaceOptions,
    *,
    defaults: Mapping[str, object] | None = None,
    extra: Iterable[inspect.Parameter] = (),
) -> Callable[[_F], _F]:
    """Decorate a function whose ``**options`` are ``Unpack[options_type]``: its
    ``__signature__`` (what ``inspect.signature``, ``help()`` and IDEs show) lists each
    option as a keyword-only parameter with its default, in place of ``**options``.

    Parameters the function declares itself keep their place (``timeout`` of the blocking
    functions). ``extra`` adds more keyword-only parameters (another library's, which the
    function takes through the same ``**``). The function itself is returned unchanged
    otherwise: no wrapper, no cost per call.
    """

    def decorate(func: _F) -> _F:
        signature = inspect.signature(func)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = {p.name for p in own}
        added = [p for p in option_parameters(options_type, defaults) if p.name not in taken]
        added += [p for p in extra if p.name not in taken | {a.name for a in added}]
        before = [p for p in own if p.kind is not p.KEYWORD_ONLY]
        keyword = [p for p in own if p.kind is p.KEYWORD_ONLY]
        func.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*before, *keyword, *added]
        )
        return func

    return decorate
