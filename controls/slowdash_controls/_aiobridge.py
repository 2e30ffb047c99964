"""A bridge from Trio to asyncio-only client libraries (MQTT, NATS, AMQP).

The maintained Python clients for message brokers are asyncio-only, and asyncio code cannot
run inside a Trio loop. The bridge runs them where they can run:

- one asyncio event loop in one daemon thread, started on first use and shared by every
  messaging node of the process (:func:`get_bridge`), stopped at interpreter exit;
- ``await bridge.run(afn, *args)`` runs ``afn(*args)`` as an asyncio task there and waits for it
  without blocking a worker thread: the task's done-callback wakes the waiting Trio task through
  its loop's ``TrioToken.run_sync_soon``. Results and exceptions cross over as they are;
- cancelling the Trio side cancels the asyncio task and waits (shielded, within
  ``cancel_grace``) until the task has really finished, so nothing it does outlives the
  cancelled caller; a task that ignores cancellation is reported and abandoned, never waited
  for without bound;
- data pushed by asyncio callbacks reaches Trio through an :class:`Inbox`: a bounded queue that
  never blocks the producer (the oldest item is dropped and counted when it is full), woken
  through ``run_sync_soon``.

Tasks start in an empty ``contextvars`` context, so nothing of the Trio side (stop scopes,
sniffio state) leaks into the asyncio loop.

Not chosen: trio-asyncio, which would need an asyncio loop opened inside every Trio run that
uses a broker (the server's, the portal's background loop, each test's) and runs the libraries
on a re-implementation of the asyncio loop that they are not tested against; and Trio- or
anyio-native clients, of which there is none for NATS and only unmaintained ones for MQTT and
AMQP. One real asyncio loop in one thread keeps the libraries on the loop they are written for,
at the cost of a thread hop per call (tens of microseconds).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import outcome
import trio

logger = logging.getLogger("slowdash_controls")

T = TypeVar("T")


def call_soon_in_trio(token: trio.lowlevel.TrioToken, fn: Callable[[], object]) -> bool:
    """Schedule ``fn()`` on the Trio loop of ``token``; False when that loop has finished.

    ``fn`` runs as part of Trio's own machinery: it must be quick and must never raise.
    """
    try:
        token.run_sync_soon(fn)
    except trio.RunFinishedError:
        return False
    return True


class _Call(Generic[T]):
    """One ``bridge.run()``: the asyncio task and how it ended."""

    __slots__ = ("cancel_requested", "done", "result", "task", "token")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.token = token
        self.done = trio.Event()
        self.task: asyncio.Task[T] | None = None
        self.result: outcome.Outcome[T] | None = None
        self.cancel_requested = False

    def finish(self, result: outcome.Outcome[T]) -> None:
        """Record the outcome (first one wins) and wake the Trio side; any thread."""
        if self.result is None:
            self.result = result
        call_soon_in_trio(self.token, self.done.set)


class AsyncioBridge:
    """One asyncio loop in a background thread, for Trio code to run asyncio coroutines on."""

    def __init__(
        self,
        name: str = "slowdash-asyncio",
        *,
        cancel_grace: float = 5.0,
        shutdown_grace: float = 3.0,
    ) -> None:
        self.name = name
        #: how long a cancelled call waits for its asyncio task to finish before abandoning it
        self.cancel_grace = cancel_grace
        #: how long shutdown waits for hooks and tasks before stopping the loop anyway
        self.shutdown_grace = shutdown_grace
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pending: set[_Call[Any]] = set()
        self._shutdown_hooks: list[Callable[[], Awaitable[object]]] = []
        self._abandoned = 0

    # ---- the loop -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the loop thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def closed(self) -> bool:
        return self._closed

    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop, started on first use (this does not block)."""
        with self._lock:
            if self._closed:
                raise trio.ClosedResourceError(f"the asyncio bridge {self.name!r} was shut down")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._thread_main, args=(loop,), name=self.name, daemon=True
                )
                self._loop, self._thread = loop, thread
                thread.start()
                if self is _default_bridge:
                    atexit.register(self.shutdown)
            return self._loop

    def _thread_main(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            with self._lock:
                self._closed = True
                pending = list(self._pending)
            for call in pending:
                call.finish(
                    outcome.Error(
                        trio.ClosedResourceError(f"the asyncio loop {self.name!r} stopped")
                    )
                )
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def statistics(self) -> dict[str, object]:
        """Calls in flight and calls abandoned after cancellation, for diagnostics."""
        with self._lock:
            return {
                "running": self.running,
                "closed": self._closed,
                "calls_in_flight": len(self._pending),
                "calls_abandoned": self._abandoned,
            }

    # ---- calls from Trio ------------------------------------------------------------------
    async def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await afn(*args)`` on the asyncio loop and return its result (or raise).

        Cancelling the caller cancels the asyncio task and waits for it to finish (see the
        module docstring). Raises :class:`trio.ClosedResourceError` once the bridge is shut down.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        loop = self.loop()
        call: _Call[T] = _Call(trio.lowlevel.current_trio_token())

        async def runner() -> T:
            return await afn(*args)

        def start() -> None:  # on the asyncio thread
            if call.cancel_requested:
                call.finish(outcome.Error(trio.ClosedResourceError("cancelled before it started")))
                return
            task = loop.create_task(runner())
            call.task = task
            task.add_done_callback(lambda t: self._task_done(call, t))

        def cancel() -> None:  # on the asyncio thread, always after start()
            call.cancel_requested = True
            if call.task is not None:
                call.task.cancel()

        with self._lock:
            if self._closed:
                raise trio.ClosedResourceError(f"the asyncio bridge {self.name!r} was shut down")
            self._pending.add(call)
        try:
            try:
                loop.call_soon_threadsafe(start, context=contextvars.Context())
            except RuntimeError as exc:  # the loop was closed under us
                raise trio.ClosedResourceError(
                    f"the asyncio bridge {self.name!r} was shut down"
                ) from exc
            try:
                await call.done.wait()
            finally:
                if not call.done.is_set():
                    await self._cancel_and_wait(loop, call, cancel, afn)
        finally:
            with self._lock:
                self._pending.discard(call)
        assert call.result is not None
        return call.result.unwrap()

    async def _cancel_and_wait(
        self,
        loop: asyncio.AbstractEventLoop,
        call: _Call[Any],
        cancel: Callable[[], None],
        afn: Callable[..., object],
    ) -> None:
        try:
            loop.call_soon_threadsafe(cancel, context=contextvars.Context())
        except RuntimeError:
            return  # the loop is gone, and the task with it
        with trio.move_on_after(self.cancel_grace, shield=True):
            await call.done.wait()
        if not call.done.is_set():
            with self._lock:
                self._abandoned += 1
            logger.warning(
                "asyncio task %s did not finish within %g s of being cancelled; abandoned",
                getattr(afn, "__qualname__", afn),
                self.cancel_grace,
            )

    def _task_done(self, call: _Call[T], task: asyncio.Task[T]) -> None:
        # on the asyncio thread; runs after the task's state is final
        if task.cancelled():
            if call.cancel_requested:
                error: BaseException = trio.ClosedResourceError("cancelled")
            elif self._closed:
                error = trio.ClosedResourceError(f"the asyncio bridge {self.name!r} was shut down")
            else:
                error = trio.BrokenResourceError(
                    "the asyncio task was cancelled by the library running it"
                )
            call.finish(outcome.Error(error))
            return
        exc = task.exception()
        call.finish(outcome.Error(exc) if exc is not None else outcome.Value(task.result()))

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run the sync ``fn(*args)`` on the asyncio loop soon (from any thread); no result."""
        try:
            self.loop().call_soon_threadsafe(fn, *args, context=contextvars.Context())
        except RuntimeError as exc:
            raise trio.ClosedResourceError(
                f"the asyncio bridge {self.name!r} was shut down"
            ) from exc

    # ---- shutdown -------------------------------------------------------------------------
    def at_shutdown(self, afn: Callable[[], Awaitable[object]]) -> None:
        """Run ``await afn()`` on the loop when it shuts down, before its tasks are cancelled."""
        with self._lock:
            self._shutdown_hooks.append(afn)

    def shutdown(self) -> None:
        """Stop the loop: run the shutdown hooks, cancel what still runs, end the thread.

        Blocks for up to about twice ``shutdown_grace``; meant for interpreter exit (it is
        registered with ``atexit`` for the shared bridge) and for tests. Calls waiting on the
        bridge fail with :class:`trio.ClosedResourceError`; later calls too.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("AsyncioBridge.shutdown() called from the bridge's own thread")
        if trio.lowlevel.in_trio_run():
            raise RuntimeError(
                "AsyncioBridge.shutdown() blocks; in Trio code use "
                "`await trio.to_thread.run_sync(bridge.shutdown)`"
            )
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
            hooks = list(self._shutdown_hooks)
        if loop is None or thread is None or not thread.is_alive():
            return
        grace = self.shutdown_grace

        async def wind_down() -> None:
            for hook in hooks:
                try:
                    await asyncio.wait_for(hook(), grace)
                except Exception:
                    logger.exception("asyncio bridge: a shutdown hook failed")
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=grace)

        try:
            future = asyncio.run_coroutine_threadsafe(wind_down(), loop)
        except RuntimeError:
            return
        try:
            future.result(timeout=2 * grace + 1.0)
        except Exception:
            logger.exception("asyncio bridge: winding down failed")
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return
        thread.join(grace)
        if thread.is_alive():
            logger.warning("asyncio bridge %r: the loop thread did not stop", self.name)


_default_bridge = AsyncioBridge()


def get_bridge() -> AsyncioBridge:
    """The process-wide bridge shared by all messaging nodes."""
    return _default_bridge


class Inbox(Generic[T]):
    """A bounded queue from any thread (an asyncio callback) to one Trio loop.

    ``put()`` never blocks and never raises: when the queue is full the oldest item is
    dropped and counted in ``dropped``. ``await get()`` (or ``async for``) receives in order on
    the Trio loop of ``token`` and raises :class:`trio.EndOfChannel` once the inbox is closed
    and drained.
    """

    def __init__(self, token: trio.lowlevel.TrioToken, maxlen: int = 1000) -> None:
        if maxlen < 1:
            raise ValueError("an inbox holds at least one item")
        self.token = token
        self.maxlen = maxlen
        self.dropped = 0
        self.received = 0
        self._lock = threading.Lock()
        self._items: collections.deque[T] = collections.deque()
        self._closed = False
        self._wake_pending = False
        self._event = trio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Append ``item`` (dropping the oldest if full); any thread, never blocks."""
        with self._lock:
            if self._closed:
                return
            if len(self._items) >= self.maxlen:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.received += 1
            if self._wake_pending:
                return
            self._wake_pending = True
        if not call_soon_in_trio(self.token, self._wake):
            self.close()

    def close(self) -> None:
        """No more items; the receiver gets what is queued, then EndOfChannel. Any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        call_soon_in_trio(self.token, self._wake)

    def _wake(self) -> None:  # on the Trio thread
        with self._lock:
            self._wake_pending = False
        self._event.set()

    async def get(self) -> T:
        """The next item, waiting for one; EndOfChannel once closed and empty."""
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    break
                if self._closed:
                    raise trio.EndOfChannel
                # no await between this check and the wait: _wake runs on this thread, so it
                # either ran already (and the item was seen) or will set this new event
                event = self._event = trio.Event()
            await event.wait()
        await trio.lowlevel.checkpoint()
        return item

    def __aiter__(self) -> Inbox[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
