"""The dedicated thread of a user module.

The seed promises that a module's top-level code and its thread-side sync callbacks
(``_setup``, ``_initialize``, ``_run``, ``_loop``, ``_finalize``) run on one thread of its own.
`ModuleThread` is that thread: jobs submitted from Trio run on it one at a time, in order, each
in a copy of the submitter's context (so context variables reach user code).

A job cannot be cancelled (it is user code in a thread). Cancelling the task that waits for it
abandons the wait: the job runs on, and later jobs queue behind it. Callers that want a grace
period (stop) wait for it before they cancel.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import outcome
import trio

T = TypeVar("T")


class _Job(Generic[T]):
    __slots__ = ("args", "context", "done", "fn", "label", "result", "token")

    def __init__(self, label: str, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self.label = label
        self.fn = fn
        self.args = args
        self.context = contextvars.copy_context()
        self.token = trio.lowlevel.current_trio_token()
        self.done = trio.Event()
        self.result: outcome.Outcome[T] | None = None


class ModuleThread:
    """One OS thread running one module's thread-side callbacks, in submission order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._busy_with: str | None = None
        self._awaited: str | None = None
        self._idle = trio.Event()
        self._idle.set()

    @property
    def busy_with(self) -> str | None:
        """The label of the job running on the thread now, if any."""
        return self._busy_with

    @property
    def awaited(self) -> str | None:
        """The label of the job a Trio task is waiting for, if any: set until that task has
        its result in hand (so, unlike `busy_with`, never clear while a result is in transit)."""
        return self._awaited

    async def run(self, label: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on this module's thread and return its result (or raise)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name=f"slowdash-module-{self.name}", daemon=True
            )
            self._thread.start()
        job = _Job(label, fn, args)
        self._jobs.put(job)
        self._awaited, self._idle = label, trio.Event()
        try:
            await job.done.wait()
        finally:
            self._awaited = None
            self._idle.set()
        assert job.result is not None
        return job.result.unwrap()

    async def wait_not_awaited(self) -> None:
        """Wait until no Trio task waits for a job (the last one's result was picked up, or
        its waiter was cancelled)."""
        await self._idle.wait()

    def close(self) -> None:
        """Let the thread end once its queued jobs are done."""
        if self._thread is not None:
            self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._busy_with = job.label
            try:
                job.result = job.context.run(outcome.capture, job.fn, *job.args)
            finally:
                self._busy_with = None
            try:
                job.token.run_sync_soon(job.done.set)
            except trio.RunFinishedError:
                return  # the server is gone; nobody waits for this job
