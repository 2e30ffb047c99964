"""Stop scopes: what ``ControlSystem.stop()`` and ``is_stop_requested()`` refer to.

The original library has one process-wide stop flag, so one task asking to stop stops every
task. Here a stop request is aimed at a *scope*:

- the process scope, in a plain script (``ControlSystem.stop_by_signal()`` routes SIGINT to it);
- a task scope, set by the server's task runtime with :func:`stop_scope` for the task's code and
  carried by ``contextvars`` into its worker threads and portal calls;
- a thread-node scope, one per running :class:`ControlThreadNode`, nested in the scope that
  started it, so ``node.stop()`` ends that node's thread only.

A scope is stopped when it or any scope it is nested in was asked to stop. Scopes are safe to use
from any thread; Trio code waits for a stop with :meth:`StopScope.wait`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Callable, Iterator

import trio


class StopScope:
    """A target for stop requests; nested scopes see their parents' requests."""

    def __init__(self, name: str, *, parent: StopScope | None = None, kind: str = "task") -> None:
        self.name = name
        self.kind = kind  # "process", "task" or "thread"
        self.parent = parent
        self._lock = threading.Lock()
        self._stopped = False
        self._reason: str | None = None
        self._callbacks: set[Callable[[], None]] = set()
        self._children: weakref.WeakSet[StopScope] = weakref.WeakSet()
        if parent is not None:
            with parent._lock:
                parent._children.add(self)

    def __repr__(self) -> str:
        state = "stopped" if self.is_stop_requested() else "running"
        return f"<StopScope {self.kind} {self.name!r} {state}>"

    @property
    def reason(self) -> str | None:
        """Why the scope (or the nearest stopped ancestor) was stopped, if it was."""
        scope: StopScope | None = self
        while scope is not None:
            if scope._stopped:
                return scope._reason
            scope = scope.parent
        return None

    def is_stop_requested(self) -> bool:
        scope: StopScope | None = self
        while scope is not None:
            if scope._stopped:
                return True
            scope = scope.parent
        return False

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask this scope and the scopes nested in it to stop; callable from any thread."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._reason = reason
            callbacks = list(self._callbacks)
            children = list(self._children)
        for callback in callbacks:
            callback()
        for child in children:
            child._notify_parent_stopped()

    def _notify_parent_stopped(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
            children = list(self._children)
        for callback in callbacks:
            callback()
        for child in children:
            child._notify_parent_stopped()

    def _add_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.add(callback)

    def _remove_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.discard(callback)

    async def wait(self) -> None:
        """Return once a stop was requested for this scope or one it is nested in."""
        if self.is_stop_requested():
            return
        token = trio.lowlevel.current_trio_token()
        event = trio.Event()

        def wake() -> None:
            try:
                token.run_sync_soon(event.set)
            except trio.RunFinishedError:
                pass

        self._add_callback(wake)
        try:
            if not self.is_stop_requested():
                await event.wait()
        finally:
            self._remove_callback(wake)

    def task_scope(self) -> StopScope:
        """This scope or the nearest enclosing one that is not a thread-node scope."""
        scope: StopScope = self
        while scope.kind == "thread" and scope.parent is not None:
            scope = scope.parent
        return scope


PROCESS_SCOPE = StopScope("process", kind="process")

_current_scope: contextvars.ContextVar[StopScope] = contextvars.ContextVar(
    "slowdash_controls_stop_scope", default=PROCESS_SCOPE
)
_owning_token: contextvars.ContextVar[trio.lowlevel.TrioToken | None] = contextvars.ContextVar(
    "slowdash_controls_trio_token", default=None
)


def current_stop_scope() -> StopScope:
    """The scope that ``ControlSystem.is_stop_requested()`` refers to here."""
    return _current_scope.get()


def owning_token() -> trio.lowlevel.TrioToken | None:
    """The Trio loop that owns the nodes used here (set by the server), or None in a script."""
    return _owning_token.get()


@contextlib.contextmanager
def stop_scope(
    scope: StopScope, *, token: trio.lowlevel.TrioToken | None = None
) -> Iterator[StopScope]:
    """Run the enclosed code (and the threads and portal calls it starts) in ``scope``.

    The server's task runtime enters this around a task's code, passing the Trio token of the
    server's loop so that sync node calls from threads the task starts itself are forwarded to
    that loop.
    """
    scope_reset = _current_scope.set(scope)
    token_reset = _owning_token.set(token) if token is not None else None
    try:
        yield scope
    finally:
        if token_reset is not None:
            _owning_token.reset(token_reset)
        _current_scope.reset(scope_reset)
