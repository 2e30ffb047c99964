"""Links: a reconnecting connection to one device, with an observable state.

Every transport node (TCP, serial, Redis, brokers) keeps its connection in a :class:`Link`:

- the connection opens lazily on first use, within ``connect_timeout``;
- an operation that finds the link broken marks it down; the next operation reconnects at once,
  and while reconnecting keeps failing, attempts are spaced by a capped exponential back-off
  (``backoff_initial`` doubling up to ``backoff_max``); an operation that comes during the
  back-off fails at once with :class:`DeviceConnectionError` saying when the next attempt is,
  rather than hanging;
- ``link.status`` tells the state (``idle``, ``connecting``, ``up``, ``down``, ``closed``; a
  link that is down stays ``down`` while it tries again, ``since`` it went down), the
  last error, and counts of connects and failures, for the dashboard and for scripts; an
  exchange (a transaction with a ``command``) that passes its deadline shows the link as
  ``stalled`` (connected, but the device does not answer) until an exchange completes;
  ``link.state`` stays the connection state;
- the connection belongs to the Trio loop that opened it; used from another loop, it is
  abandoned and reopened there.

Who owns a link: the stop scope (:mod:`._stop`) of the code that made it or (re)connected it,
that is the server's module or task whose code that was. :func:`links_of` lists a scope's
links (the server shows them with the module's or task's state); a hook installed with
:func:`set_link_hook` hears every change of an owned link's state as `status` shows it (not
the retries of a link that is down). Links made in a plain script (the process scope) are not
tracked.

Errors are translated here, once: ``OSError`` and Trio's broken/closed stream errors become
``DeviceConnectionError``, an expired deadline ``DeviceTimeout``.
"""

from __future__ import annotations

import enum
import itertools
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from ._errors import ControlException, DeviceConnectionError, DeviceTimeout
from ._stop import PROCESS_SCOPE, StopScope, current_stop_scope

R = TypeVar("R")

#: exceptions that mean "the link is gone", mapped to DeviceConnectionError
LINK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


class LinkState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"
    CLOSED = "closed"
    STALLED = "stalled"  # in `Link.status` only: up, but an exchange passed its deadline


@dataclass(frozen=True)
class LinkStatus:
    """A snapshot of a link's state, for display."""

    address: str
    state: LinkState
    since: float  # wall-clock time of the last change of the state shown
    last_error: str | None
    connects: int
    failures: int
    retry_in: float | None  # seconds until the next attempt is allowed, while down
    timeouts: int = 0  # exchanges that passed their deadline

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "state": str(self.state),
            "since": self.since,
            "last_error": self.last_error,
            "connects": self.connects,
            "failures": self.failures,
            "retry_in": self.retry_in,
            "timeouts": self.timeouts,
        }


class Link(Generic[R]):
    """A lazily opened, reconnecting connection (``R``: a stream or a client object)."""

    def __init__(
        self,
        address: str,
        opener: Callable[[], Awaitable[R]],
        closer: Callable[[R], Awaitable[None]] | None = None,
        *,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        self.address = address
        self._opener = opener
        self._closer = closer
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._resource: R | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._locks: tuple[trio.lowlevel.TrioToken, trio.Lock, trio.Lock] | None = None
        self._state = LinkState.IDLE
        self._since = time.time()
        self._last_error: str | None = None
        self._connects = 0
        self._failures = 0
        self._next_attempt = -math.inf  # trio clock of the loop that saw the failure
        self._stall: str | None = None  # the last exchange that passed its deadline, if none since
        self._stalled_since: float | None = None
        self._timeouts = 0
        self._shown: tuple[LinkState, str | None] = (LinkState.IDLE, None)  # what status shows
        self._serial = next(_serials)
        self._owned = False
        _adopt(self)

    # ---- state ------------------------------------------------------------------------
    @property
    def state(self) -> LinkState:
        """The connection state (never ``stalled``: see `status`)."""
        return self._state

    @property
    def status(self) -> LinkStatus:
        retry_in = None
        if self._state is LinkState.DOWN and math.isfinite(self._next_attempt):
            try:
                retry_in = max(0.0, self._next_attempt - trio.current_time())
            except RuntimeError:  # not on a Trio thread
                retry_in = None
        state, error = self._shown
        stalled_since = self._stalled_since if state is LinkState.STALLED else None
        return LinkStatus(
            self.address,
            state,
            stalled_since or self._since,
            error,
            self._connects,
            self._failures,
            retry_in,
            self._timeouts,
        )

    def _show(self) -> tuple[LinkState, str | None]:
        """The state and error `status` shows: a link that is down stays ``down`` while it
        tries again, and a stalled one ``stalled`` (since it stalled) while it reconnects to
        drop a late reply."""
        state = self._state
        if state is LinkState.CONNECTING:
            if self._stall is not None and not self._failures:
                return LinkState.STALLED, self._stall
            if self._last_error is not None:  # tried before, and failed
                return LinkState.DOWN, self._last_error
        elif state is LinkState.UP and self._stall is not None:
            return LinkState.STALLED, self._stall
        return state, self._last_error

    def _set_state(self, state: LinkState) -> None:
        self._state = state
        self._refresh()

    def _refresh(self) -> None:
        """After a change: note the time of a new shown state; tell the hook what shows."""
        shown = self._show()
        if shown == self._shown:
            return
        if shown[0] is not self._shown[0]:
            self._since = time.time()
        self._shown = shown
        hook = _hook
        if hook is not None and self._owned:
            hook(self)

    def _timed_out(self, command: str, timeout: float | None) -> None:
        """An exchange passed its deadline: the device is stalled (until one completes)."""
        self._timeouts += 1
        if self._state is not LinkState.UP:
            return  # the connect did not complete: the link is down, not stalled
        within = f" within {timeout:g} s" if timeout is not None else ""
        self._stall = f"{command}: no answer{within}"
        if self._stalled_since is None:
            self._stalled_since = time.time()
        self._refresh()

    def _answered(self) -> None:
        """An exchange completed: the device answers again."""
        if self._stall is not None:
            self._stall = self._stalled_since = None
            self._refresh()

    def _loop_locks(self) -> tuple[trio.Lock, trio.Lock]:
        """The connect and transaction locks of the current loop (a link serves one loop)."""
        token = trio.lowlevel.current_trio_token()
        if self._locks is None or self._locks[0] is not token:
            self._locks = (token, trio.Lock(), trio.Lock())
        return self._locks[1], self._locks[2]

    # ---- use --------------------------------------------------------------------------
    async def connect(self) -> R:
        """The open connection, opening it if needed (see the module docstring)."""
        if self._state is LinkState.CLOSED:
            raise DeviceConnectionError("the link was closed", address=self.address)
        token = trio.lowlevel.current_trio_token()
        if self._resource is not None and self._token is token:
            return self._resource
        if not self._owned:
            _adopt(self)  # made outside (a shared node): it belongs to the code that uses it
        connect_lock, _ = self._loop_locks()
        async with connect_lock:
            if self._resource is not None and self._token is token:
                return self._resource
            if self._resource is not None:  # opened by another loop: abandon it there
                self._resource = None
            wait = self._next_attempt - trio.current_time()
            if wait > 0:
                raise DeviceConnectionError(
                    f"link down ({self._last_error}); next attempt in {wait:.1f} s",
                    address=self.address,
                )
            self._set_state(LinkState.CONNECTING)
            try:
                with trio.fail_after(self.connect_timeout):
                    resource = await self._opener()
            except trio.TooSlowError as exc:
                self._connect_failed(f"connect timed out after {self.connect_timeout:g} s")
                raise DeviceTimeout(
                    "connect timed out", address=self.address, timeout=self.connect_timeout
                ) from exc
            except ControlException as exc:
                self._connect_failed(str(exc).removeprefix(f"{self.address}: "))
                raise
            except LINK_ERRORS as exc:
                self._connect_failed(describe_error(exc))
                raise DeviceConnectionError(
                    f"cannot connect: {describe_error(exc)}", address=self.address
                ) from exc
            except BaseException as exc:  # an opener's own error, or a caller's deadline
                if self._state is LinkState.CONNECTING:
                    self._connect_failed(
                        describe_error(exc) if isinstance(exc, Exception) else "connect interrupted"
                    )
                raise
            self._resource = resource
            self._token = token
            self._connects += 1
            self._failures = 0
            self._last_error = None
            self._next_attempt = -math.inf
            self._set_state(LinkState.UP)
            return resource

    def _connect_failed(self, message: str) -> None:
        self._failures += 1
        self._last_error = message
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (self._failures - 1))
        self._next_attempt = trio.current_time() + delay
        self._set_state(LinkState.DOWN)

    async def mark_broken(self, error: BaseException | str) -> None:
        """Drop the connection after an error; the next operation reconnects."""
        resource, self._resource = self._resource, None
        self._last_error = error if isinstance(error, str) else describe_error(error)
        self._next_attempt = -math.inf
        self._set_state(LinkState.CLOSED if self._state is LinkState.CLOSED else LinkState.DOWN)
        if resource is not None:
            await self._close(resource)

    def transaction(self, timeout: float | None, *, command: str | None = None) -> Transaction[R]:
        """Exclusive use of the connection for one exchange, under a deadline.

        ``async with link.transaction(timeout) as connection: ...``. A broken link inside
        becomes :class:`DeviceConnectionError` (and the link is marked down); an expired
        ``timeout`` becomes :class:`DeviceTimeout`. What the caller does about a late reply
        (flush, reconnect) is its own business.
        """
        return Transaction(self, timeout, command)

    async def aclose(self) -> None:
        """Close the connection for good; later operations fail."""
        resource, self._resource = self._resource, None
        self._set_state(LinkState.CLOSED)
        if resource is not None:
            await self._close(resource)

    async def _close(self, resource: R) -> None:
        if self._token is not None and self._token is not _current_token_or_none():
            return  # it belongs to another loop; let it go
        with trio.move_on_after(1.0, shield=True):
            try:
                if self._closer is not None:
                    await self._closer(resource)
                elif isinstance(resource, trio.abc.AsyncResource):
                    await resource.aclose()
            except LINK_ERRORS:
                pass


def _current_token_or_none() -> trio.lowlevel.TrioToken | None:
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def describe_error(exc: BaseException | str) -> str:
    """An exception as one line: its type and message (or its cause's, if it has none)."""
    if isinstance(exc, str):
        return exc
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        text = str(cause)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Transaction(Generic[R]):
    """``Link.transaction()``: lock, connect, deadline and error mapping for one exchange.

    Written as a class rather than with ``asynccontextmanager``, and taking the lock without a
    scheduler pass when it is free: this is on the path of every device query.
    """

    __slots__ = ("_command", "_link", "_lock", "_scope", "_timeout")

    def __init__(self, link: Link[R], timeout: float | None, command: str | None) -> None:
        self._link = link
        self._timeout = timeout
        self._command = command
        self._scope: trio.CancelScope | None = None
        self._lock: trio.Lock | None = None

    async def __aenter__(self) -> R:
        link = self._link
        if self._timeout is not None:
            scope = self._scope = trio.CancelScope(deadline=trio.current_time() + self._timeout)
            scope.__enter__()
        try:
            _, lock = link._loop_locks()
            try:
                lock.acquire_nowait()
            except trio.WouldBlock:
                await lock.acquire()
            self._lock = lock
            try:
                return await link.connect()
            except BaseException:
                self._release()
                raise
        except BaseException as exc:
            self._exit_scope(exc)
            raise  # not reached when the deadline expired: _exit_scope raised DeviceTimeout

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        try:
            if isinstance(exc, LINK_ERRORS):
                await self._link.mark_broken(exc)
                raise DeviceConnectionError(
                    f"link broken: {describe_error(exc)}", address=self._link.address
                ) from exc
        except BaseException as error:
            self._release()
            self._exit_scope(error)
            raise
        self._release()
        self._exit_scope(exc)
        if exc is None and self._command is not None:
            self._link._answered()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _exit_scope(self, exc: BaseException | None) -> None:
        """Leave the deadline scope; its expiry becomes DeviceTimeout (never swallowed)."""
        scope, self._scope = self._scope, None
        if scope is None:
            return
        scope.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        if scope.cancelled_caught:
            if self._command is not None:
                self._link._timed_out(self._command, self._timeout)
            raise DeviceTimeout(
                "no answer",
                address=self._link.address,
                timeout=self._timeout,
                command=self._command,
            ) from exc


def release_when_collected(owner: object, stop: trio.Event) -> weakref.finalize[[], object]:
    """Set ``stop`` (in its own loop) once ``owner`` is garbage: a node dropped without
    ``aclose()``, say by a reloaded user module, must not keep its connection for ever."""
    token = trio.lowlevel.current_trio_token()

    def release() -> None:
        try:
            token.run_sync_soon(stop.set)
        except trio.RunFinishedError:
            pass  # the loop has ended, and its system tasks with it

    finalizer = weakref.finalize(owner, release)
    finalizer.atexit = False
    return finalizer


# ------------------------------------------------------------------------------------------------
# who owns which link

_serials = itertools.count()
_owned: weakref.WeakKeyDictionary[StopScope, weakref.WeakSet[Link[Any]]] = (
    weakref.WeakKeyDictionary()
)
_owned_lock = threading.Lock()

#: ``hook(link)``: an owned link's state changed (called on the link's Trio thread)
LinkHook = Callable[[Link[Any]], None]

_hook: LinkHook | None = None


def _adopt(link: Link[Any]) -> None:
    """Register ``link`` with the scope of the code running now (not the process scope)."""
    scope = current_stop_scope().task_scope()
    if scope is PROCESS_SCOPE:
        return
    with _owned_lock:
        links = _owned.get(scope)
        if links is None:
            links = _owned[scope] = weakref.WeakSet()
        links.add(link)
    link._owned = True


def links_of(scope: StopScope) -> list[Link[Any]]:
    """The links made or connected by code running in ``scope`` (thread-node scopes count
    as the scope they are nested in), oldest first; links already garbage are gone."""
    with _owned_lock:
        links = list(_owned.get(scope, ()))
    return sorted(links, key=lambda link: link._serial)


def set_link_hook(hook: LinkHook | None) -> LinkHook | None:
    """Install ``hook`` for state changes of owned links; returns the previous one."""
    global _hook
    previous, _hook = _hook, hook
    return previous
