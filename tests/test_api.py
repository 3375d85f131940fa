"""The API as people expect it: visible options, asyncio's ``host, port``, familiar exceptions.

Every entry point shows every option with its default in ``inspect.signature`` (and so in
``help()``); an unknown option is a ``TypeError`` with a hint; ``open_connection`` and
``create_connection`` take ``host, port`` as well as a list; and ``except
ConnectionRefusedError`` catches a refused connect on every entry point (real sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import inspect
import pydoc
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import psutil
import pytest

import aioconnlist
import aioconnlist.blocking
import aioconnlist.loop
from aioconnlist import compat
from aioconnlist._core.options import OPTION_DEFAULTS, OPTION_NAMES
from aioconnlist.aiohttp import ConnectorOptions, ConnListConnector, TCPConnectorArguments

from .dnsserver import DelayedDNSServer, DnspythonResolver
from .support import Listener, fd_count, refused_address


@contextlib.contextmanager
def no_fd_leak() -> Iterator[None]:
    """No TCP socket of this process left open by the block (after what earlier tests left to
    the garbage collector is gone). TCP sockets only: the network watcher's thread opens and
    closes netlink sockets of its own at any moment, so a count of every fd would flake."""
    gc.collect()
    process = psutil.Process()
    before = sorted((c.laddr, c.raddr, c.status) for c in process.net_connections("tcp"))
    fds = fd_count()
    yield
    after = sorted((c.laddr, c.raddr, c.status) for c in process.net_connections("tcp"))
    assert after == before, f"TCP sockets left open: {set(after) - set(before)}"
    # and no descriptor at all (an unconnected socket is in no TCP table): the count is read
    # again a bounded number of times, as the watcher's netlink sockets come and go (it reads
    # the network again on every change notification: those it had open when ``fds`` was
    # counted may be closed by now, so a lower count is no leak)
    for _ in range(100):
        if fd_count() <= fds:
            break
        time.sleep(0.01)
    assert fd_count() <= fds, f"the descriptor count went from {fds} to {fd_count()}"


ENTRY_POINTS: dict[str, Callable[..., Any]] = {
    "connect_by_list": aioconnlist.connect_by_list,
    "connect_by_name": aioconnlist.connect_by_name,
    "open_connection": aioconnlist.open_connection,
    "create_connection": aioconnlist.create_connection,
    "blocking.connect_by_list": aioconnlist.blocking.connect_by_list,
    "blocking.create_connection": aioconnlist.blocking.create_connection,
    "blocking.install": aioconnlist.blocking.install,
    "compat.make_start_connection": compat.make_start_connection,
    "ConnListConnector": ConnListConnector,
    "loop.new_event_loop": aioconnlist.loop.new_event_loop,
    "loop.install": aioconnlist.loop.install,
    "loop.EventLoopPolicy": aioconnlist.loop.EventLoopPolicy,
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_the_signature_shows_every_option_with_its_default(name: str) -> None:
    parameters = inspect.signature(ENTRY_POINTS[name]).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values()), "no bare **options"
    for option in OPTION_NAMES:
        if option == "timeout" and name.startswith("blocking."):
            # their own timeout (socket.create_connection's meaning), or none (install)
            assert name == "blocking.install" or (
                parameters[option].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            )
            continue
        assert option in parameters, f"{name} does not show {option}"
        assert parameters[option].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[option].default == OPTION_DEFAULTS[option]
        assert parameters[option].annotation is not inspect.Parameter.empty
    text = pydoc.render_doc(ENTRY_POINTS[name], renderer=pydoc.plaintext)
    assert "attempt_delay: 'float' = 0.25" in text
    assert "history: 'PairHistory | None' = DEFAULT_HISTORY" in text


def test_the_defaults_shown_are_the_defaults_applied() -> None:
    from aioconnlist._core.options import DEFAULT_HISTORY, Options, make_options

    made = make_options()
    for option in OPTION_NAMES:
        shown = OPTION_DEFAULTS[option]
        applied = getattr(made, option)
        if option == "history":
            assert applied is DEFAULT_HISTORY and repr(shown) == "DEFAULT_HISTORY"
        else:
            assert applied == shown == getattr(Options(), option)


def test_the_connector_shows_aiohttps_parameters_and_types_them_all() -> None:
    parameters = inspect.signature(ConnListConnector).parameters
    stock = inspect.signature(aiohttp.TCPConnector).parameters
    assert parameters["resolution_delay"].default == 0.05
    for name, parameter in stock.items():
        assert name in parameters, name
        if name not in OPTION_NAMES:
            assert parameters[name].default == parameter.default
            # the TypedDict type checkers see names every argument of the installed aiohttp
            assert name in TCPConnectorArguments.__optional_keys__, name
    assert ConnectorOptions.__optional_keys__ >= OPTION_NAMES


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("timout", "did you mean timeout="),
        ("atempt_delay", "did you mean attempt_delay="),
        ("happy_eyeballs_delay", "here it is attempt_delay="),
        ("source_address", "here it is local_addresses="),
        ("local_addr", "here it is local_addresses="),
        ("timeout_s", "here it is timeout="),
    ],
)
async def test_an_unknown_option_is_a_type_error_with_a_hint(given: str, hint: str) -> None:
    address = [refused_address()]
    caller = socket.socket()
    if given in ("happy_eyeballs_delay", "local_addr"):  # aiohttp's own: the connector takes them
        calls: list[Callable[[], object]] = []
    else:
        calls = [lambda: ConnListConnector(**{given: 1})]
    calls += [
        lambda: compat.make_start_connection(**{given: 1}),
        lambda: aioconnlist.blocking.connect_by_list(caller, address, **{given: 1}),
    ]
    coroutines = [
        lambda: aioconnlist.connect_by_list(address, **{given: 1}),
        lambda: aioconnlist.connect_by_name("127.0.0.1", 80, **{given: 1}),
        lambda: aioconnlist.open_connection(address, **{given: 1}),
        lambda: aioconnlist.open_connection("127.0.0.1", 80, **{given: 1}),
        lambda: aioconnlist.create_connection(asyncio.Protocol, address, **{given: 1}),
    ]
    with no_fd_leak():
        for call in calls:
            with pytest.raises(
                TypeError, match=f"'{given}' \\([^)]*{hint}[^)]*\\).*the options are"
            ):
                result = call()
                if isinstance(result, socket.socket):
                    result.close()
        for make in coroutines:
            with pytest.raises(TypeError, match=f"'{given}' \\([^)]*{hint}[^)]*\\)"):
                await make()
    caller.close()


# --- asyncio's host, port -------------------------------------------------------------------


async def test_open_connection_takes_host_and_port(listener: Listener) -> None:
    reader, writer = await aioconnlist.open_connection("127.0.0.1", listener.port, history=None)
    try:
        assert writer.get_extra_info("peername")[:2] == ("127.0.0.1", listener.port)
        assert not reader.at_eof()
    finally:
        writer.close()
        await writer.wait_closed()
    for call in (
        aioconnlist.open_connection("127.0.0.1", port=listener.port, history=None),
        aioconnlist.open_connection(host="127.0.0.1", port=listener.port, history=None),
        aioconnlist.open_connection(addresses=[listener.address], history=None),
    ):
        reader, writer = await call
        assert writer.get_extra_info("peername")[:2] == ("127.0.0.1", listener.port)
        writer.close()
        await writer.wait_closed()


class Closing(asyncio.Protocol):
    """A protocol whose ``lost`` future is done once its transport closed the socket."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)


async def test_a_host_name_is_resolved_by_the_resolver_given(listener: Listener) -> None:
    async with DelayedDNSServer({"api.test": {"A": ["127.0.0.1"]}}) as server:
        resolver = DnspythonResolver(server.host, server.port)
        transport, protocol = await aioconnlist.create_connection(
            Closing, "api.test", listener.port, resolver=resolver, history=None
        )
        try:
            assert transport.get_extra_info("peername")[:2] == ("127.0.0.1", listener.port)
        finally:
            transport.close()
            await protocol.lost  # the socket is closed by then
    assert {family for _, _, family in resolver.calls} == {socket.AF_INET, socket.AF_INET6}
    assert {host for host, _, _ in resolver.calls} == {"api.test"}


async def test_with_ssl_the_host_is_the_server_hostname() -> None:
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        # no server_hostname given: asyncio's rule, the host is checked against the certificate
        reader, writer = await aioconnlist.open_connection(
            "127.0.0.1", port, ssl=client_context, history=None, timeout=5
        )
        assert await reader.read() == b"hello"
        writer.close()
        await writer.wait_closed()
        with pytest.raises(ssl.SSLCertVerificationError):
            await aioconnlist.open_connection(
                "127.0.0.1", port, ssl=client_context, server_hostname="other.test", history=None
            )
    finally:
        server.close()
        await server.wait_closed()


async def test_the_list_form_refuses_a_resolver_and_the_host_form_a_list() -> None:
    with pytest.raises(TypeError, match="resolver= applies to a host name"):
        await aioconnlist.open_connection(["127.0.0.1:80"], resolver=object())  # type: ignore[call-overload]
    with pytest.raises(aioconnlist.InvalidArgument, match="host name or IP, not list"):
        await aioconnlist.open_connection(["127.0.0.1:80"], 80)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="host= needs port="):
        await aioconnlist.open_connection(host="127.0.0.1")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="not both"):
        await aioconnlist.create_connection(  # type: ignore[call-overload]
            asyncio.Protocol, ["127.0.0.1:80"], host="127.0.0.1", port=80
        )
    with pytest.raises(TypeError, match="is required"):
        await aioconnlist.open_connection()  # type: ignore[call-overload]


# --- except ConnectionRefusedError, everywhere ---------------------------------------------


def _refused_by(error: BaseException) -> None:
    assert isinstance(error, ConnectionRefusedError), repr(error)
    assert isinstance(error, aioconnlist.ConnectError)


async def test_a_refused_connect_is_a_connection_refused_error_on_every_async_entry_point() -> None:
    host, port = refused_address()
    address = [(host, port)]
    with no_fd_leak():
        calls = [
            aioconnlist.connect_by_list(address, history=None),
            aioconnlist.connect_by_name(host, port, history=None),
            aioconnlist.open_connection(address, history=None),
            aioconnlist.open_connection(host, port, history=None),
            aioconnlist.create_connection(asyncio.Protocol, address, history=None),
            aioconnlist.create_connection(asyncio.Protocol, host, port, history=None),
            compat.start_connection([(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]),
            compat.make_start_connection(history=None)(
                [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]
            ),
        ]
        for call in calls:
            try:
                await call
            except ConnectionRefusedError as error:
                _refused_by(error)
            else:  # pragma: no cover - a failure
                pytest.fail(f"{call} connected to a closed port")


def test_a_refused_connect_is_a_connection_refused_error_in_the_blocking_facade() -> None:
    address = [refused_address()]
    with no_fd_leak():
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError) as info:
            aioconnlist.blocking.connect_by_list(sock, address, history=None)
        _refused_by(info.value)
        with pytest.raises(ConnectionRefusedError) as info:
            aioconnlist.blocking.create_connection(address, history=None)
        _refused_by(info.value)


async def test_a_refused_connect_through_the_aiohttp_connector_is_a_connection_refused_error() -> (
    None
):
    host, port = refused_address()
    connector = ConnListConnector(history=None)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://{host}:{port}/")
    _refused_by(info.value.os_error)
    assert info.value.errno == errno.ECONNREFUSED


# --- errors that say why, the version, missing extras ----------------------------------------


@pytest.mark.parametrize(
    ("addresses", "options", "why"),
    [
        (
            ["[fe80::1]:80"],
            {},
            r"fe80::1 is IPv6 link-local and has no zone \(write it \[fe80::1%eth0\]:80\)",
        ),
        (
            ["[2001:db8::1]:80"],
            {"local_addresses": ["127.0.0.1"]},
            "no IPv6 address among local_addresses",
        ),
        (
            ["192.0.2.1:80"],
            {"local_addresses": ["127.0.0.1"]},
            "it is global and the IPv4 local_addresses are loopback",
        ),
        (
            ["[2001:db8::1]:80"],
            {"local_addresses": ["192.0.2.9"]},
            r"not an address of this machine: 192\.0\.2\.9",
        ),
    ],
)
async def test_no_usable_pair_says_why(
    addresses: list[str], options: dict[str, Any], why: str
) -> None:
    with no_fd_leak():
        with pytest.raises(aioconnlist.InvalidArgument, match=f"no usable .*{why}"):
            await aioconnlist.connect_by_list(addresses, **options)
        with (
            socket.socket(socket.AF_INET6) as sock,
            pytest.raises(aioconnlist.InvalidArgument, match=why),
        ):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            aioconnlist.blocking.connect_by_list(sock, addresses, **options)


def test_lazy_names_are_in_dir() -> None:
    assert "__version__" in dir(aioconnlist)
    assert "EventLoopPolicy" in dir(aioconnlist.loop)


def test_the_package_says_its_version() -> None:
    from importlib.metadata import version

    assert "__version__" in dir(aioconnlist)
    assert aioconnlist.__version__ == version("aioconnlist")
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        aioconnlist.nonexistent  # type: ignore[attr-defined]  # noqa: B018


BLOCK_IMPORT = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {package!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
try:
    {statement}
except ImportError as error:
    print(error)
    print(error.name)
"""


@pytest.mark.parametrize(
    ("package", "statement", "extra"),
    [
        ("aiohttp", "import aioconnlist.aiohttp", "aiohttp"),
        ("aiodns", "import aioconnlist; aioconnlist.AiodnsResolver()", "aiodns"),
    ],
)
def test_a_missing_extra_names_the_pip_command(package: str, statement: str, extra: str) -> None:
    import subprocess
    import sys

    script = BLOCK_IMPORT.format(package=package, statement=statement)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    message, name = result.stdout.splitlines()
    assert f"needs {package}" in message
    assert f"pip install 'aioconnlist[{extra}]'" in message
    assert name == package


# --- docstrings that stand alone -------------------------------------------------------------


def _public_names() -> list[tuple[str, object]]:
    import aioconnlist.aiohttp

    found = []
    for module in (
        aioconnlist,
        aioconnlist.blocking,
        compat,
        aioconnlist.aiohttp,
        aioconnlist.loop,
    ):
        names = getattr(module, "__all__", None) or [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        ]
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found.append((f"{module.__name__}.{name}", obj))
                if inspect.isclass(obj):
                    found += [
                        (f"{module.__name__}.{name}.{k}", v)
                        for k, v in vars(obj).items()
                        if not k.startswith("_")
                        and (inspect.isfunction(v) or isinstance(v, property))
                    ]
    return found


def test_every_public_name_has_a_docstring_that_stands_alone() -> None:
    names = _public_names()
    assert len(names) > 40
    undocumented = [name for name, obj in names if not (getattr(obj, "__doc__", "") or "").strip()]
    assert not undocumented
    from pathlib import Path

    package = Path(aioconnlist.__file__).parent
    citing = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "SPEC §" in line or "SPEC section" in line
    ]
    assert not citing, "the SPEC does not ship with the package"


def test_takes_options_keeps_a_functions_own_parameters() -> None:
    from aioconnlist._core.options import ConnectOptions, takes_options

    sentinel = object()

    @takes_options(ConnectOptions)
    def create(
        address: object,
        timeout: object = sentinel,
        source_address: object = None,
        *,
        all_errors: bool = False,
        **options: object,
    ) -> None:
        """A socket.create_connection look-alike."""

    parameters = inspect.signature(create).parameters
    assert list(parameters)[:4] == ["address", "timeout", "source_address", "all_errors"]
    assert parameters["timeout"].default is sentinel  # its own, not the race option's
    assert set(parameters) == {"address", "timeout", "source_address", "all_errors"} | (
        ConnectOptions.__optional_keys__
    )
    assert create.__doc__ == "A socket.create_connection look-alike."
