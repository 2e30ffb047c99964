"""The server's data sources: opened at start, asked together, down ones retried.

Each source has a state: ``connecting``, ``up`` or ``down`` (with the error and since when).
A down source is retried every ``retry_interval`` seconds in the background; while it is
down it is left out of answers, and the answer says so (``problems``). One source failing a
request never fails the others' answers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from ._base import DataSource, SourceUnavailable
from ._query import DataQuery, QueryError

logger = logging.getLogger("slowdash_trio.sources")
T = TypeVar("T")


@dataclass(eq=False)
class SourceState:
    source: DataSource
    state: str = "connecting"
    error: str | None = None
    since: float = field(default_factory=time.time)
    attempts: int = 0
    next_try: float = 0.0
    warned: bool = False

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.source.kind, "name": self.source.label}
        doc["state"] = self.state
        doc["since"] = self.since
        if self.error is not None:
            doc["error"] = self.error
        return doc


class DataSources:
    """All of a project's data sources."""

    def __init__(
        self,
        sources: list[DataSource],
        *,
        retry_interval: float = 5.0,
        request_timeout: float = 120.0,
    ) -> None:
        self.states = [SourceState(source) for source in sources]
        self.retry_interval = retry_interval
        self.request_timeout = request_timeout
        self._wake = trio.Event()

    def __bool__(self) -> bool:
        return bool(self.states)

    def status(self) -> list[dict[str, Any]]:
        return [state.to_json() for state in self.states]

    # ------------------------------------------------------------------------------------------
    # running

    async def run(
        self,
        *,
        startup_timeout: float = 10.0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open every source (waiting at most ``startup_timeout``), report started, then
        retry the down ones until cancelled; close them all at the end."""
        try:
            with trio.move_on_after(startup_timeout):
                async with trio.open_nursery() as nursery:
                    for state in self.states:
                        nursery.start_soon(self._open, state)
            for state in self.states:
                if state.state == "connecting":
                    self._down(state, f"not open after {startup_timeout:g} s")
            task_status.started()
            while True:
                now = time.monotonic()
                waits = [s.next_try - now for s in self.states if s.state == "down"]
                with trio.move_on_after(max(0.0, min(waits, default=math.inf))):
                    await self._wake.wait()
                self._wake = trio.Event()
                now = time.monotonic()
                async with trio.open_nursery() as nursery:
                    for state in self.states:
                        if state.state == "down" and state.next_try <= now:
                            nursery.start_soon(self._open, state)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                for state in self.states:
                    try:
                        await state.source.aclose()
                    except Exception:
                        logger.exception("%s: closing failed", state.source.label)

    async def _open(self, state: SourceState) -> None:
        state.attempts += 1
        try:
            await state.source.open()
        except SourceUnavailable as exc:
            self._down(state, str(exc))
            return
        except Exception as exc:
            logger.exception("%s: opening failed", state.source.label)
            self._down(state, f"{type(exc).__name__}: {exc}")
            return
        if state.state != "up":
            logger.info("%s: up", state.source.label)
        state.state, state.error, state.since, state.attempts = "up", None, time.time(), 0
        state.warned = False

    def _down(self, state: SourceState, message: str) -> None:
        if state.state == "connecting" and state.attempts <= 1:
            # at start a file may be about to be created (a module's first write): say so
            # quietly, and warn if the first retry fails too
            logger.info("%s: not available yet: %s (retrying)", state.source.label, message)
        elif not state.warned or state.error != message:
            logger.warning(
                "%s: down: %s (retried every %g s)",
                state.source.label,
                message,
                self.retry_interval,
            )
            state.warned = True
        if state.state != "down":
            state.since = time.time()
        state.state, state.error = "down", message
        # retried soon at first (a file about to be created), then every retry_interval
        delay = min(self.retry_interval, 0.5 * 2 ** max(0, state.attempts - 1))
        state.next_try = time.monotonic() + delay
        self._wake.set()

    # ------------------------------------------------------------------------------------------
    # requests

    async def channels(
        self, *, force_rescan: bool = False
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Every up source's channels (in source order), and problems met."""
        answers = await self._each(lambda s: s.channels(force_rescan=force_rescan))
        entries: list[dict[str, Any]] = []
        problems: list[str] = []
        for state, (answer, problem) in zip(self.states, answers, strict=True):
            if problem is not None:
                problems.append(f"{state.source.label}: {problem}")
            if answer:
                entries.extend(answer)
        return entries, problems

    async def data(self, query: DataQuery) -> tuple[dict[str, Any], list[str]]:
        """Every up source's answer, merged (later sources do not overwrite earlier ones)."""
        answers = await self._each(lambda s: s.data(query))
        reply: dict[str, Any] = {}
        problems: list[str] = []
        for state, (answer, problem) in zip(self.states, answers, strict=True):
            if problem is not None:
                problems.append(f"{state.source.label}: {problem}")
            problems.extend(
                f"{state.source.label}: {problem}" for problem in getattr(answer, "problems", ())
            )
            if answer:
                for name, value in answer.items():
                    reply.setdefault(name, value)
        return reply, problems

    async def _each(
        self, fn: Callable[[DataSource], Awaitable[T]]
    ) -> list[tuple[T | None, str | None]]:
        out: list[tuple[T | None, str | None]] = [(None, None)] * len(self.states)
        query_errors: list[QueryError] = []

        async def one(index: int, state: SourceState) -> None:
            if state.state != "up":
                out[index] = (None, f"down: {state.error}")
                return
            try:
                with trio.fail_after(self.request_timeout):
                    out[index] = (await fn(state.source), None)
            except QueryError as exc:
                query_errors.append(exc)
            except SourceUnavailable as exc:
                self._down(state, str(exc))
                out[index] = (None, f"down: {exc}")
            except trio.TooSlowError:
                out[index] = (None, f"no answer within {self.request_timeout:g} s")
            except Exception as exc:
                logger.exception("%s: request failed", state.source.label)
                out[index] = (None, f"{type(exc).__name__}: {exc}")

        async with trio.open_nursery() as nursery:
            for index, state in enumerate(self.states):
                nursery.start_soon(one, index, state)
        if query_errors:
            raise query_errors[0]
        return out
