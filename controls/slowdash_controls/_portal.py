"""The sync facade: run a node's async method from sync code.

Which Trio loop runs it depends on where the sync call comes from:

- a Trio worker thread (sync task code inside the server): back to the loop that started the
  thread, with ``trio.from_thread.run``, so cancelling the task reaches the call;
- a thread whose context names an owning loop (threads that task code starts itself, such as a
  ``ControlThreadNode``): that loop;
- anything else (a plain script): one background Trio thread, started on first use and shared by
  all nodes of the process;
- the Trio thread itself: nowhere. Blocking there would freeze every task, so the call raises
  :class:`WrongThreadError` naming the ``aio_`` method to await.

Operations that do no I/O (a ``ValueNode``'s value, a held setpoint) never come here: the node
runs their coroutine to completion inline with :func:`run_inline`, on any thread.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import outcome
import trio

from ._errors import WrongThreadError
from ._stop import PROCESS_SCOPE, current_stop_scope, owning_token, stop_scope

T = TypeVar("T")

_SHUTDOWN_GRACE = 5.0


class _Handoff:
    """One sync call waiting for the background loop: a lock released with the outcome."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.result: outcome.Outcome[Any] | None = None


class _BackgroundLoop:
    """One Trio loop in a daemon thread, for sync calls from plain scripts.

    A call is handed over with ``run_sync_soon`` into a nursery that lives with the loop and
    handed back through a lock: lighter than ``trio.from_thread.run`` (no queue, no system
    task per call), which matters on a path taken by every device query of a script.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._thread: threading.Thread | None = None
        self._stop: trio.Event | None = None

    def _start(self) -> tuple[trio.lowlevel.TrioToken, trio.Nursery]:
        with self._lock:
            if self._token is None:
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=trio.run,
                    args=(self._main, ready),
                    name="slowdash-controls-portal",
                    daemon=True,
                )
                self._thread.start()
                ready.wait()
                atexit.register(self.shutdown)
            assert self._token is not None
            assert self._nursery is not None
            return self._token, self._nursery

    def token(self) -> trio.lowlevel.TrioToken:
        token = self._token
        return token if token is not None else self._start()[0]

    async def _main(self, ready: threading.Event) -> None:
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def call(self, afn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await afn()`` on the background loop and wait for it."""
        token, nursery = self._token, self._nursery
        if token is None or nursery is None:
            token, nursery = self._start()
        handoff = _Handoff()
        try:
            token.run_sync_soon(nursery.start_soon, _run_handoff, handoff, afn)
        except trio.RunFinishedError:
            raise RuntimeError("the control library's background loop has shut down") from None
        handoff.done.acquire()
        assert handoff.result is not None
        return handoff.result.unwrap()  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        """Stop the loop (at interpreter exit); pending calls are cancelled."""
        with self._lock:
            token, thread, stop = self._token, self._thread, self._stop
            self._token = self._thread = self._stop = self._nursery = None
        if token is None or thread is None or stop is None:
            return
        try:
            token.run_sync_soon(stop.set)
        except trio.RunFinishedError:
            return
        thread.join(_SHUTDOWN_GRACE)


async def _run_handoff(handoff: _Handoff, afn: Callable[[], Awaitable[Any]]) -> None:
    try:
        handoff.result = await outcome.acapture(afn)
    finally:
        if handoff.result is None:  # cancelled at shutdown
            handoff.result = outcome.Error(RuntimeError("the background loop shut down"))
        handoff.done.release()


_background = _BackgroundLoop()
_MAIN_THREAD = threading.main_thread()


def _in_trio_worker_thread() -> bool:
    if threading.current_thread() is _MAIN_THREAD:
        return False  # a script's main thread: no need to ask Trio (and catch its error)
    try:
        trio.from_thread.check_cancelled()
    except RuntimeError:
        return False
    return True


def on_trio_thread() -> bool:
    """True on a thread that is running a Trio loop, where sync device I/O is refused."""
    return trio.lowlevel.in_trio_run()


def run_sync(
    afn: Callable[..., Awaitable[T]], *args: Any, what: Callable[[], str], aio_name: str
) -> T:
    """Run ``await afn(*args)`` from sync code on the right loop (see the module docstring).

    ``what()`` names the operation for the error raised on the Trio thread.
    """
    if trio.lowlevel.in_trio_run():
        raise WrongThreadError(
            f"{what()} does device I/O and would block the Trio loop; "
            f"in async code use `await node.{aio_name}(...)` instead"
        )
    scope = current_stop_scope()
    token = owning_token()
    if token is None and scope is PROCESS_SCOPE and not _in_trio_worker_thread():
        # a plain script: the background loop's tasks already run in the process scope
        return _background.call(functools.partial(afn, *args))

    async def in_loop() -> T:
        with stop_scope(scope, token=token):
            return await afn(*args)

    if _in_trio_worker_thread():
        return trio.from_thread.run(in_loop)
    if token is not None:
        return trio.from_thread.run(in_loop, trio_token=token)
    return _background.call(in_loop)


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (no I/O, no sleep) to completion, on any thread."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("internal error: an operation marked as doing no I/O tried to suspend")
