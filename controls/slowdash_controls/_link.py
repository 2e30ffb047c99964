"""Links: a reconnecting connection to one device, with an observable state.

Every transport node (TCP, serial, Redis, brokers) keeps its connection in a :class:`Link`:

- the connection opens lazily on first use, within ``connect_timeout``;
- an operation that finds the link broken marks it down; the next operation reconnects at once,
  and while reconnecting keeps failing, attempts are spaced by a capped exponential back-off
  (``backoff_initial`` doubling up to ``backoff_max``); an operation that comes during the
  back-off fails at once with :class:`DeviceConnectionError` saying when the next attempt is,
  rather than hanging;
- ``link.status`` tells the state (``idle``, ``connecting``, ``up``, ``down``, ``closed``), the
  last error, and counts of connects and failures, for the dashboard and for scripts;
- the connection belongs to the Trio loop that opened it; used from another loop, it is
  abandoned and reopened there.

Errors are translated here, once: ``OSError`` and Trio's broken/closed stream errors become
``DeviceConnectionError``, an expired deadline ``DeviceTimeout``.
"""

from __future__ import annotations

import enum
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from ._errors import ControlException, DeviceConnectionError, DeviceTimeout

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


@dataclass(frozen=True)
class LinkStatus:
    """A snapshot of a link's state, for display."""

    address: str
    state: LinkState
    since: float  # wall-clock time of the last state change
    last_error: str | None
    connects: int
    failures: int
    retry_in: float | None  # seconds until the next attempt is allowed, while down

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "state": str(self.state),
            "since": self.since,
            "last_error": self.last_error,
            "connects": self.connects,
            "failures": self.failures,
            "retry_in": self.retry_in,
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

    # ---- state ------------------------------------------------------------------------
    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def status(self) -> LinkStatus:
        retry_in = None
        if self._state is LinkState.DOWN and math.isfinite(self._next_attempt):
            try:
                retry_in = max(0.0, self._next_attempt - trio.current_time())
            except RuntimeError:  # not on a Trio thread
                retry_in = None
        return LinkStatus(
            self.address,
            self._state,
            self._since,
            self._last_error,
            self._connects,
            self._failures,
            retry_in,
        )

    def _set_state(self, state: LinkState) -> None:
        if state is not self._state:
            self._state = state
            self._since = time.time()

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
        if self._state is not LinkState.CLOSED:
            self._set_state(LinkState.DOWN)
        self._next_attempt = -math.inf
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
