"""History that outlives the process: a `PairHistory` kept in a file, and the network it is for.

Files, all mode 0600, next to each other:

- ``PATH``: JSON, ``{"format": "aioconnlist-history", "version": 1, "key_check": ...,
  "written": ..., "networks": {...}}`` as `PairHistory.export_state` makes it: per network
  (named by a keyed hash of its identity), per pair a keyed hash of (source, destination,
  port) with the smoothed RTT and variance, sample count, time of the last success, time and
  kind of the last failure and the failure count; per path (own source address in clear,
  family) the last success and keyed hashes of the destinations that black-holed through it;
  per family the last success. Times are wall-clock seconds. Nothing names a destination or a
  network in clear text: a copy of the file without its key tells no one where this machine
  connected to.
- ``PATH.key``: the random 32-byte key of those hashes (blake2b). Lose it and the history
  starts afresh; ``key_check`` in ``PATH`` tells a file from another key.
- ``PATH.lock``: the ``flock`` that serialises the read-merge-write of several processes.

Loaded when opened (after the network identity is known, so only the current network's
evidence is current); written at most every ``COALESCE`` seconds after a change that may
reorder a plan (and at exit): under the lock, the file is re-read and merged (other processes'
evidence joins ours), then written to a temporary file and renamed over ``PATH``. The export is
bounded (``max_pairs`` pairs over all networks, 8 networks), and a file over ``MAX_FILE_BYTES``
is not read. Any problem (missing, empty, truncated, garbage, a foreign format or version, a
file from another key, unreadable, a read-only directory) is logged once as a warning per
history and never raised: the history then works in memory and is rebuilt at the next write.

Imported when first needed (a history file opened or named by ``AIOCONNLIST_HISTORY``, the
package's ``DEFAULT_HISTORY``, or the drivers' thread that follows the network after the first
plan): registers `PairHistory.open`, makes `DEFAULT_HISTORY` file-backed when
``AIOCONNLIST_HISTORY`` names a file, and keeps `DEFAULT_HISTORY` and every opened history on
the current network's partition, with the kernel's TCP metrics as positive evidence.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .._core import history as _history
from .._core.addresses import IPAddress
from .._core.history import DEFAULT_HISTORY, PairHistory
from . import netlink, network

if TYPE_CHECKING:
    from types import ModuleType

try:  # the C module itself: hashlib would load OpenSSL's bindings too
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - an interpreter without it
    from hashlib import blake2b

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock between processes
    fcntl = None  # type: ignore[assignment]

_log = logging.getLogger("aioconnlist.history")

#: seconds between two writes of one history (changes in between are written together)
COALESCE = 1.0
#: a history file larger than this is not read (the export is far smaller)
MAX_FILE_BYTES = 8 << 20
KEY_BYTES = 32
ENV = "AIOCONNLIST_HISTORY"

_histories: weakref.WeakSet[PairHistory] = weakref.WeakSet()  # kept on the current network


def _json() -> ModuleType:
    """json, imported when a file is first read or written (not by the import of the drivers)."""
    import json

    return json


def _clock_offset() -> float:
    """Wall-clock seconds minus the history's clock (time.monotonic(), the event loop's)."""
    return time.time() - time.monotonic()


def _key_check(key: bytes) -> str:
    return blake2b(b"aioconnlist history key", key=key, digest_size=8).hexdigest()


class HistoryFile:
    """The file behind one history (see the module docstring)."""

    def __init__(self, history: PairHistory, path: str, *, coalesce: float | None = COALESCE):
        self.history = history
        self.path = path
        self.key_path = path + ".key"
        self.lock_path = path + ".lock"
        self.coalesce = coalesce  # None: written only by `flush` (and at exit)
        self.warned = False
        self.writes = 0
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._mutex = threading.Lock()

    def warn(self, message: str, *args: object) -> None:
        if not self.warned:
            self.warned = True
            _log.warning(
                "history file %s: " + message + " (history kept in memory)", self.path, *args
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        """Hold the lock file (yields False when it cannot be had: read-only directory...)."""
        if fcntl is None:
            yield False
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _key(self, may_write: bool) -> bytes:
        try:
            with open(self.key_path, "rb") as f:
                key = f.read(KEY_BYTES + 1)
            if len(key) == KEY_BYTES:
                return key
            self.warn("key file %s is damaged: a new key", self.key_path)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.warn("cannot read key file (%s)", e.strerror)
            return os.urandom(KEY_BYTES)
        key = os.urandom(KEY_BYTES)
        if may_write:
            try:
                self._write_atomically(self.key_path, key)
            except OSError as e:
                self.warn("cannot write key file (%s)", e.strerror)
        return key

    def _read(self, quiet_missing: bool) -> dict[str, object] | None:
        """The file's state, or None (missing or bad: warned once, unless ``quiet_missing``)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            if not quiet_missing:
                self.warn("does not exist yet")
            return None
        except OSError as e:
            self.warn("cannot be read (%s)", e.strerror or e)
            return None
        if len(data) > MAX_FILE_BYTES:
            self.warn("is larger than %d bytes: ignored", MAX_FILE_BYTES)
            return None
        try:
            state = _json().loads(data)
        except (ValueError, UnicodeDecodeError):
            self.warn("is empty, truncated or not a history: ignored")
            return None
        if not isinstance(state, dict):
            self.warn("is not a history: ignored")
            return None
        if state.get("format") == _history.STATE_FORMAT and state.get("key_check") != _key_check(
            self.history.hash_key
        ):
            self.warn("was written with another key: ignored")
            return None
        return state

    def _merge(self, state: dict[str, object] | None) -> None:
        if state is None:
            return
        try:
            self.history.merge_state(state, time.monotonic(), _clock_offset())
        except ValueError as e:
            self.warn("ignored: %s", e)

    def load(self, quiet_missing: bool = False) -> None:
        """Key, network, then the file's evidence (never raises for a bad file)."""
        with self._locked() as locked:
            self.history.use_hash_key(self._key(may_write=locked))
            identity = network.current() or network.identify()
            self.history.set_network(identity.key)
            self._merge(self._read(quiet_missing))

    def changed(self) -> None:
        """A change worth writing: schedule a coalesced write (none when one is pending)."""
        with self._mutex:
            self._dirty = True
            if self.coalesce is None or self._timer is not None:
                return
            self._timer = threading.Timer(self.coalesce, self._from_timer)
            self._timer.daemon = True
            self._timer.start()

    def _from_timer(self) -> None:
        with self._mutex:
            self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write now if anything changed since the last write."""
        with self._mutex:
            if not self._dirty:
                return
            self._dirty = False
        self.save()

    def save(self) -> None:
        """Re-read, merge, write atomically (never raises for a bad file or directory)."""
        try:
            with self._locked():
                state = self._read(quiet_missing=True)
                if state is not None and state.get("format") == _history.STATE_FORMAT:
                    self._merge(state)
                export = self.history.export_state(time.monotonic(), _clock_offset())
                export["key_check"] = _key_check(self.history.hash_key)
                export["written"] = round(time.time(), 3)
                data = _json().dumps(export, separators=(",", ":")).encode()
                self._write_atomically(self.path, data)
                self.writes += 1
        except OSError as e:
            self.warn("cannot be written (%s)", e.strerror or e)

    def _write_atomically(self, path: str, data: bytes) -> None:
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def close(self) -> None:
        with self._mutex:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join()
        self.flush()


_files: list[HistoryFile] = []


def attach(
    history: PairHistory,
    path: str | os.PathLike[str],
    *,
    coalesce: float | None = COALESCE,
    quiet_missing: bool = False,
) -> HistoryFile:
    """Make ``history`` file-backed on ``path`` (loaded now; written after changes and at exit)."""
    store = HistoryFile(history, os.fspath(path), coalesce=coalesce)
    try:
        store.load(quiet_missing=quiet_missing)
    except Exception as e:  # never a failed connect or import because of the file
        store.warn("cannot be loaded (%s)", e)
    history.on_change = store.changed
    _files.append(store)
    keep_on_network(history)
    return store


def file_of(history: PairHistory) -> HistoryFile | None:
    """The file behind ``history``, if any."""
    for store in _files:
        if store.history is history:
            return store
    return None


def _open(history: PairHistory, path: str) -> None:
    attach(history, path)


def _after_fork_in_child() -> None:
    # a timer pending in the parent does not exist in the child: let the child schedule its own
    for store in _files:
        store._timer = None
        store._mutex = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_all() -> None:
    for store in list(_files):
        with contextlib.suppress(Exception):
            store.close()


# --- the current network and the kernel's evidence -----------------------------------------


def kernel_evidence(now: float) -> list[tuple[IPAddress, IPAddress, float, float, float]]:
    """(source, destination, srtt, rttvar, when) from Linux's TCP metrics cache, global
    destinations only (empty where there is no such cache)."""
    if not hasattr(socket, "AF_NETLINK"):
        return []
    try:
        entries = netlink.tcp_metrics()
    except OSError:
        return []
    result: list[tuple[IPAddress, IPAddress, float, float, float]] = []
    for dest, source, srtt, rttvar, age in entries:
        if source is None or dest.is_loopback or dest.is_link_local or dest.is_unspecified:
            continue
        result.append((source, dest, srtt, rttvar, now - age))
    return result


def keep_on_network(history: PairHistory) -> None:
    """Switch ``history`` to the current network's partition now and on every change."""
    _histories.add(history)
    follow_network()
    identity = network.current()
    if identity is not None:
        _apply(history, identity)


def _apply(history: PairHistory, identity: network.NetworkIdentity) -> None:
    history.set_network(identity.key)
    history.set_kernel_evidence(kernel_evidence(time.monotonic()))


def _on_network(identity: network.NetworkIdentity) -> None:
    for history in list(_histories):
        _apply(history, identity)


_following = threading.Lock()
_followed = False
_installed = False


def follow_network(*, wait: bool = True) -> None:
    """Start switching the histories to the current network's partition (the network watcher).
    ``wait``: the first identity and the kernel's RTTs are applied before this returns
    (computed in this thread when the watcher was not started yet); else the watcher thread
    applies them when it has them (the first plan: no netlink dump on its event loop).
    Idempotent."""
    global _followed
    with _following:
        first = not _followed
        if first:
            _followed = True
            network.watch(_on_network, wait=wait)
    if wait and not first:
        network.wait_ready(None)


def install() -> None:
    """Register `PairHistory.open`, honour ``AIOCONNLIST_HISTORY``. The network is followed
    from the first plan (`follow_network`) or the first file-backed history, not from here:
    an import starts no thread and opens no socket."""
    global _installed
    with _following:
        if _installed:
            return
        _installed = True
    _history._OPENER = _open
    _histories.add(DEFAULT_HISTORY)
    path = os.environ.get(ENV)
    if path:
        attach(DEFAULT_HISTORY, path)


def default_state_path() -> str:
    """``$XDG_STATE_HOME/aioconnlist/history.json`` (``~/.local/state`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "aioconnlist", "history.json")


def ensure_private_dir(path: str) -> bool:
    """Create ``path``'s directory (0700) if needed; False when that is not possible."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except OSError as e:
        if e.errno != errno.EEXIST:
            return False
    return True
