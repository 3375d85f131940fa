"""Which network the host is on, and a watcher that says when that (or any address) changes.

The identity of a network, per address family, is its default route (gateway and interface)
and the global prefixes assigned on that interface (on every interface when there is no
default route). It is computed without sending a packet: on Linux from rtnetlink dumps
(`netlink`), elsewhere from psutil's interface addresses and the interface of the kernel's
source towards a documentation address (a UDP connect, which sends nothing; the gateway is
not known there).

The watcher is one daemon thread, started by the first `watch` call. On Linux it sleeps in
``recv`` on a netlink socket subscribed to address and route changes (unprivileged) and, after
a burst of changes has been quiet for ``DEBOUNCE`` seconds, recomputes the identity and calls
every callback; elsewhere it polls every ``POLL_INTERVAL`` seconds and calls back when the
identity changed. Nothing of it is on the connect path: callbacks only drop caches and switch
history partitions.
"""

from __future__ import annotations

import _thread
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable

from .._core.addresses import IPAddress
from .._core.records import FrozenRecord
from . import netlink

_log = logging.getLogger("aioconnlist.network")

#: seconds without a further change notification before the identity is recomputed
DEBOUNCE = 0.1
#: longest wait for a burst of notifications to end
DEBOUNCE_MAX = 1.0
#: seconds between polls where the platform sends no notifications
POLL_INTERVAL = 5.0
#: seconds a watcher started in the background waits before its first identity: the first
#: connect, which started it, is not slowed by its netlink dumps (nor by its share of the GIL)
BACKGROUND_DELAY = 0.02

THREAD_NAME = "aioconnlist-network"

_PROBES: dict[int, str] = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}


class FamilyNetwork(FrozenRecord):
    """One family's view: default gateway and interface, and the global prefixes."""

    __slots__ = ("gateway", "interface", "prefixes")
    _fields = ("gateway", "interface", "prefixes")

    gateway: str | None
    interface: str | None
    prefixes: tuple[str, ...]

    def __init__(
        self,
        gateway: str | None,
        interface: str | None,
        prefixes: tuple[str, ...],
    ) -> None:
        object.__setattr__(self, "gateway", gateway)
        object.__setattr__(self, "interface", interface)
        object.__setattr__(self, "prefixes", prefixes)

    def __str__(self) -> str:
        return f"gw={self.gateway or '-'} dev={self.interface or '-'} pfx={','.join(self.prefixes)}"


class NetworkIdentity(FrozenRecord):
    """The network the host is on, per family."""

    __slots__ = ("ipv4", "ipv6")
    _fields = ("ipv4", "ipv6")

    ipv4: FamilyNetwork
    ipv6: FamilyNetwork

    def __init__(self, ipv4: FamilyNetwork, ipv6: FamilyNetwork) -> None:
        object.__setattr__(self, "ipv4", ipv4)
        object.__setattr__(self, "ipv6", ipv6)

    @property
    def key(self) -> str:
        """The identity as one string (history partitions are named by it)."""
        return f"v4 {self.ipv4}; v6 {self.ipv6}"


_NONE = FamilyNetwork(None, None, ())


# --- pure ----------------------------------------------------------------------------------


def identity_from(
    routes: Iterable[netlink.Route],
    addresses: Iterable[netlink.Address],
    interface_name: Callable[[int], str],
) -> NetworkIdentity:
    """The identity from the default routes and interface addresses the kernel reported."""
    addresses = list(addresses)
    families: dict[int, FamilyNetwork] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        candidates = [r for r in routes if r.family == family]
        route = min(candidates, key=lambda r: r.priority) if candidates else None
        prefixes = sorted(
            {
                str(ipaddress.ip_network(f"{a.ip}/{a.prefix_len}", strict=False))
                for a in addresses
                if a.family == family
                and a.scope == netlink.RT_SCOPE_UNIVERSE
                and (route is None or a.ifindex == route.ifindex)
            }
        )
        if route is None:
            families[family] = FamilyNetwork(None, None, tuple(prefixes))
            continue
        try:
            name = interface_name(route.ifindex)
        except OSError:
            name = str(route.ifindex)
        gateway = None if route.gateway is None else str(route.gateway)
        families[family] = FamilyNetwork(gateway, name, tuple(prefixes))
    return NetworkIdentity(families[socket.AF_INET], families[socket.AF_INET6])


def identity_from_interfaces(
    interface_addresses: dict[str, list[tuple[int, str, str | None]]],
    route_interface: dict[int, str | None],
) -> NetworkIdentity:
    """The portable identity: ``interface_addresses`` (name -> (family, address, netmask)) and
    for each family the interface owning the kernel's source towards the outside (or None)."""
    families: dict[int, FamilyNetwork] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        interface = route_interface.get(family)
        prefixes = set()
        for name, addrs in interface_addresses.items():
            if interface is not None and name != interface:
                continue
            for fam, text, netmask in addrs:
                if fam != family or netmask is None:
                    continue
                try:
                    ip = ipaddress.ip_address(text.partition("%")[0])
                    mask = ipaddress.ip_address(netmask.partition("/")[0])
                    prefix_len = bin(int(mask)).count("1")  # IPv6 masks come as addresses too
                    net = ipaddress.ip_network(f"{ip}/{prefix_len}", strict=False)
                except ValueError:
                    continue
                if ip.is_global or (ip.is_private and not (ip.is_loopback or ip.is_link_local)):
                    prefixes.add(str(net))
        families[family] = FamilyNetwork(None, interface, tuple(sorted(prefixes)))
    return NetworkIdentity(families[socket.AF_INET], families[socket.AF_INET6])


# --- I/O -----------------------------------------------------------------------------------


def _source_towards(family: int) -> IPAddress | None:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((_PROBES[family], 9))  # a UDP connect sends no packet
            host: str = s.getsockname()[0]
    except OSError:
        return None
    return ipaddress.ip_address(host.partition("%")[0])


def _identify_portable() -> NetworkIdentity:
    import psutil  # only where there is no netlink: not an import-time cost

    table: dict[str, list[tuple[int, str, str | None]]] = {
        name: [(int(a.family), a.address, a.netmask) for a in addrs]
        for name, addrs in psutil.net_if_addrs().items()
    }
    route_interface: dict[int, str | None] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        source = _source_towards(family)
        route_interface[family] = None
        if source is None:
            continue
        for name, addrs in table.items():
            if any(a[1].partition("%")[0] == str(source) for a in addrs if a[0] == family):
                route_interface[family] = name
                break
    return identity_from_interfaces(table, route_interface)


def identify() -> NetworkIdentity:
    """The network the host is on now (netlink on Linux, psutil elsewhere; no packet sent)."""
    if hasattr(socket, "AF_NETLINK"):
        try:
            return identity_from(
                netlink.default_routes(), netlink.addresses(), socket.if_indextoname
            )
        except OSError as e:
            _log.debug("netlink unavailable (%s): portable network identity", e)
    return _identify_portable()


Callback = Callable[[NetworkIdentity], None]


class _Watcher:
    def __init__(self) -> None:
        self.callbacks: list[Callback] = []
        self.identity: NetworkIdentity | None = None
        self.changes = 0  # identities computed after a notification (tests)
        self.ready = threading.Event()
        self.updated = threading.Condition()
        self.started = False
        self.ident: int | None = None  # the thread's, once it runs
        self.sock: socket.socket | None = None
        self.notifying = False  # the thread reads netlink notifications (not polling)
        self.lock = threading.Lock()
        self.wake = threading.Event()  # set: a waiter wants the first identity now
        self.registered = threading.Event()  # the thread is known to threading (tests)

    def start(self, wait: bool = True) -> None:
        """Start the thread. ``wait``: the first identity is computed (and the callbacks called)
        in the caller's thread first; else the thread subscribes to the changes, then computes
        it, ``BACKGROUND_DELAY`` seconds after its start (off the caller's first connect)."""
        if wait:
            self._first()
            target = self._run
        else:
            target = self._run_from_start
        self.started = True
        # a bare thread: threading.Thread.start() would wait for it to run (a GIL hand-over,
        # milliseconds beside a busy Python thread, on the caller's first connect)
        _thread.start_new_thread(self._main, (target, 0.0 if wait else BACKGROUND_DELAY))

    def _main(self, target: Callable[[], None], delay: float) -> None:
        self.ident = threading.get_ident()
        if delay:
            self.wake.wait(delay)  # the caller's first connect is over by then, mostly
        threading.current_thread().name = THREAD_NAME  # registered with threading (a daemon)
        self.registered.set()
        target()

    def _first(self) -> None:
        try:
            self._notify(identify())
        except Exception:
            _log.exception("network identity failed")
            self.ready.set()  # no identity: a waiter does not wait for one
        self._subscribe()

    def _subscribe(self) -> None:
        if hasattr(socket, "AF_NETLINK"):
            try:
                self.sock = netlink.change_socket()
                self.notifying = True
            except OSError as e:
                _log.debug("no netlink notifications (%s): polling", e)

    def _run_from_start(self) -> None:
        self._subscribe()  # subscribed before the identity is read: no change falls between
        try:
            self._notify(identify())
        except Exception:
            _log.exception("network identity failed")
            self.ready.set()
        self._run()

    def _notify(self, identity: NetworkIdentity) -> None:
        self.identity = identity
        for callback in list(self.callbacks):
            try:
                callback(identity)
            except Exception:  # a callback's bug must not end the watcher
                _log.exception("network change callback failed")
        with self.updated:
            self.changes += 1
            self.updated.notify_all()
        self.ready.set()

    def _run(self) -> None:
        sock = self.sock
        if sock is None:
            self._poll()
            return
        try:
            while True:
                sock.settimeout(None)
                sock.recv(65536)
                sock.settimeout(DEBOUNCE)
                waited = 0.0
                while waited < DEBOUNCE_MAX:
                    try:
                        sock.recv(65536)
                    except TimeoutError:
                        break
                    waited += DEBOUNCE / 4  # a busy burst still ends within DEBOUNCE_MAX-ish
                self._notify(identify())
        except OSError:  # closed (after fork) or netlink gone: fall back to polling
            if self.sock is sock:
                self.notifying = False
                self._notify(identify())  # whatever was missed; caches go short again
                self._poll()

    def _poll(self) -> None:
        stop = threading.Event()
        while not stop.wait(POLL_INTERVAL):
            identity = identify()
            if identity != self.identity:
                self._notify(identity)


_watcher = _Watcher()


def watch(callback: Callback, *, wait: bool = True) -> None:
    """Call ``callback(identity)`` when the network (or an address or route) may have changed,
    from the watcher thread (started by the first call). It is also called with the current
    identity: at once when it is known; else, when ``wait``, the first call computes it in the
    caller's thread, and otherwise the watcher thread calls back when it has it."""
    with _watcher.lock:
        _watcher.callbacks.append(callback)
        if not _watcher.started:
            _watcher.start(wait)  # computes the first identity (or has it computed) and calls
            return
    identity = _watcher.identity
    if identity is not None:
        callback(identity)
    elif wait:
        wait_ready(None)


def wait_ready(timeout: float | None) -> bool:
    """Block until the watcher has its first identity (False when ``timeout`` passed first, or
    nothing started the watcher); a watcher started in the background is asked not to wait."""
    if _watcher.started:
        _watcher.wake.set()
        _watcher.ready.wait(timeout)
        _watcher.registered.wait(timeout)  # and known to threading (a count of threads holds)
    return _watcher.identity is not None


def unwatch(callback: Callback) -> None:
    """Stop calling ``callback``."""
    with _watcher.lock:
        if callback in _watcher.callbacks:
            _watcher.callbacks.remove(callback)


def ready() -> bool:
    """Whether the watcher has had its first go at the network (identity read, or failed)."""
    return _watcher.ready.is_set()


def in_watcher_thread() -> bool:
    """Whether the caller is the watcher thread (its callbacks may do I/O: no loop waits)."""
    return _watcher.ident == threading.get_ident()


def notifying() -> bool:
    """Whether the watcher follows the kernel's change notifications now (every address, link
    or route change then calls the callbacks); False before `watch` and where it polls."""
    return _watcher.notifying


def current() -> NetworkIdentity | None:
    """The identity the watcher knows (None before its first answer)."""
    return _watcher.identity


def wait_for_change(after: int, timeout: float) -> int:
    """Block until the watcher has computed an identity more than ``after`` times (or the
    timeout passed); returns that count. For tests and tools that need to see a change."""
    with _watcher.updated:
        _watcher.updated.wait_for(lambda: _watcher.changes > after, timeout)
        return _watcher.changes


def change_count() -> int:
    """How many times the watcher has computed an identity."""
    return _watcher.changes


def _after_fork_in_child() -> None:
    # the thread is gone in the child; the inherited socket is shared with the parent
    old = _watcher.sock
    running = _watcher.started
    _watcher.sock = None
    _watcher.notifying = False
    _watcher.started = False
    _watcher.ident = None
    _watcher.lock = threading.Lock()
    _watcher.updated = threading.Condition()
    _watcher.ready = threading.Event()
    _watcher.wake = threading.Event()
    _watcher.registered = threading.Event()
    if _watcher.identity is not None:
        _watcher.ready.set()
    if old is not None:
        old.close()
    if running:
        _watcher.start(wait=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
