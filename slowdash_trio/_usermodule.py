"""A user module on Trio: the seed's callback contract, one module per task.

Lifecycle (`UserModule.run`), in the seed's order::

    load (top-level code) → _setup(app[, params]) → _initialize(params)      ← "ready"
    → _run() → _loop() repeatedly (or idle)                                   ← until stop
    → _halt() → routines stop → _finalize()

Where user code runs:

- sync top-level code, ``_setup``, ``_initialize``, ``_run``, ``_loop``, ``_finalize``: on the
  module's own thread (`ModuleThread`), as the seed promises;
- sync ``_halt``, ``_get_channels``, ``_get_data``, ``_process_command`` and web-API handlers:
  in worker threads drawn from the user-callback limiter (``system.user_threads``), so user
  code can never take the threads the server's own I/O needs;
- every ``async def`` callback: on the server's Trio loop, under the `guarded` watchdog.

A *crash* is an exception (``SystemExit`` included) escaping the top-level code (or a missing
file), ``_setup``, ``_initialize``, ``_run`` or ``_loop``, unless a stop was already requested.
Without a restart policy a crash is recorded and leaves the module in state error, where it
stays until it is stopped (or, for a task, started afresh); a module that loaded goes on
serving requests as the original does (after a ``_setup``, ``_initialize`` or ``_run`` error
the routines that follow still run; a ``_loop`` that raised is not called again). With
``restart: on-failure`` a crash ends the attempt (its stop scope is stopped, ``_finalize``
runs) and the supervisor (`back_off`, then `renewed`) loads the file afresh after a back-off,
until the policy's limit leaves it in state error.

Request-side calls have a deadline (`UserModule.call`). Sync ones go through one gate per
module: one call in a worker thread at a time, in arrival order; a sync call past its deadline
marks the module *stuck*, and it is not called again until that call returns. Async ones are
cancelled at the deadline. A failing callback is recorded in `ModuleStatus` and
logged; it never reaches other modules or the server.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
import time
import traceback
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from slowdash_controls import StopScope, stop_scope
from slowdash_controls._link import links_of

from ._config import RestartConfig
from ._errors import ModuleStuck
from ._modthread import ModuleThread
from ._restart import Restarter
from ._usercode import SlowStep, guarded, import_user_file, is_async_callable, leading_args
from .webapi import WebApi

logger = logging.getLogger("slowdash_trio.module")


class ModuleState(enum.StrEnum):
    LOADING = "loading"
    INITIALIZING = "initializing"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"
    RESTARTING = "restarting"  # crashed; waiting for the back-off before loading it afresh


@dataclass(frozen=True)
class ModuleSettings:
    """What every module of one server shares."""

    app: Any  # the App passed to _setup
    user_limiter: trio.CapacityLimiter
    call_timeout: float = 10.0
    watchdog_threshold: float = 0.05
    stop_grace: float = 5.0
    finalize_timeout: float = 10.0


@dataclass(frozen=True)
class ErrorRecord:
    callback: str
    message: str
    traceback: str
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "callback": self.callback,
            "message": self.message,
            "traceback": self.traceback,
            "time": self.time,
        }


class ModuleStatus:
    """What is known about a module's health; shown in ``/api/config`` under ``user_module``."""

    def __init__(self) -> None:
        self.state = ModuleState.LOADING
        self.error: ErrorRecord | None = None
        self.error_count = 0
        self.stuck: str | None = None
        self.stuck_since: float | None = None
        self.slow_steps = 0
        self.last_slow: dict[str, Any] | None = None
        self.restart: Restarter | None = None  # with a restart policy; kept across restarts
        self.link_scope: StopScope | None = None  # the stop scope of the current attempt

    def links(self) -> list[dict[str, Any]]:
        """The device links the module's current attempt made or uses (none once stopped)."""
        if self.link_scope is None or self.state == ModuleState.STOPPED:
            return []
        return [link.status.to_json() for link in links_of(self.link_scope)]

    def to_json(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "error": self.error.to_json() if self.error else None,
            "error_count": self.error_count,
            "stuck": {"callback": self.stuck, "since": self.stuck_since} if self.stuck else None,
            "slow_steps": self.slow_steps,
            "last_slow": self.last_slow,
            "restart": self.restart.to_json() if self.restart is not None else None,
            "links": self.links(),
        }


class _Call:
    """One request-side call into a sync callback, as seen from both sides of the thread."""

    __slots__ = ("done", "label", "lock", "phase", "started")

    def __init__(self, label: str) -> None:
        self.label = label
        self.lock = threading.Lock()
        self.phase = "pending"  # pending → running → finished, or pending → withdrawn
        self.done = trio.Event()
        self.started = time.time()


class UserModule:
    """One user module: its file, its lifecycle task and its request-side gate."""

    def __init__(
        self,
        name: str,
        file: Path,
        parameters: Mapping[str, Any],
        settings: ModuleSettings,
        *,
        data_suffix: str | None = None,
        call_timeout: float | None = None,
        where: str = "",
        restart: RestartConfig | None = None,
        status: ModuleStatus | None = None,
    ) -> None:
        self.name = name
        self.file = file
        self.parameters = dict(parameters)
        self.data_suffix = data_suffix
        self.settings = settings
        self.call_timeout = call_timeout or settings.call_timeout
        self.where = where  # "SlowdashProject.yaml:7", for messages about the entry
        self.restart = restart if restart is not None and restart.enabled else None
        self.status = status if status is not None else ModuleStatus()  # shared by restarts
        if self.restart is not None and self.status.restart is None:
            self.status.restart = Restarter(self.restart)
        self.crash: ErrorRecord | None = None  # the crash that ended this attempt, if one did
        self._end_on_crash = False  # set in run(): with a policy, when routines run
        self.module: types.ModuleType | None = None
        self.webapis: list[WebApi] = []
        self.ready = trio.Event()  # set once initialized, or once loading failed
        self._thread = ModuleThread(name)
        self._stop = trio.Event()
        self._stopping = False  # set at stop: no further step starts on the module thread
        self._gate = trio.Lock()  # one request-side call at a time, first come first served
        self._thread_call: _Call | None = None  # the sync call in a worker thread, if any
        self._token: trio.lowlevel.TrioToken | None = None
        # what ControlSystem.stop()/is_stop_requested() mean in this module's code
        self.stop_scope = StopScope(f"module {name}")
        self.status.link_scope = self.stop_scope

    # ------------------------------------------------------------------------------------------
    # properties

    @property
    def degraded(self) -> bool:
        """Crashed without a restart policy: state error, requests still served."""
        return self.crash is not None and not self._end_on_crash

    @property
    def is_serving(self) -> bool:
        """Whether requests reach this module (initialized and not stopping; in state error
        after a crash without a restart policy, as long as its code loaded)."""
        state = self.status.state
        if state == ModuleState.ERROR and self.degraded:
            return self.module is not None
        return state == ModuleState.RUNNING

    def callback(self, name: str) -> Callable[..., Any] | None:
        fn = getattr(self.module, name, None) if self.module is not None else None
        return fn if callable(fn) else None

    # ------------------------------------------------------------------------------------------
    # lifecycle

    async def run(self, *, run_routines: bool = True) -> None:
        """The module's whole life; returns after ``_finalize`` once `request_stop` was called.

        With ``run_routines=False`` (query mode) ``_run``/``_loop`` are not started. Stop
        reaches the module in any phase, start-up included. If the task is cancelled from
        outside (forced shutdown), ``_finalize`` still runs, bounded. With a restart policy
        (and routines), a crash ends it too (`crash` tells which); see `back_off`.
        """
        self._token = trio.lowlevel.current_trio_token()
        self._end_on_crash = self.restart is not None and run_routines
        with stop_scope(self.stop_scope, token=self._token):
            await self._life(run_routines)

    async def _life(self, run_routines: bool) -> None:
        try:
            started = await self._stoppable(self._start)
            if self._end_on_crash and self.crash is not None:
                return
            if started and self.module is not None and not self._stopping and not self.degraded:
                self._set_state(ModuleState.RUNNING)
            self.ready.set()
            if self.module is not None and not self._stop.is_set():
                await self._stoppable(
                    functools.partial(self._routines, run_routines), on_stop=self._halt
                )
            else:
                await self._stop.wait()
        finally:
            self.ready.set()
            crashed = self._end_on_crash and self.crash is not None
            if crashed:  # no request reaches it while it is finalized
                self._set_state(ModuleState.ERROR)
                self._ended_by_crash()
            if self.module is not None:
                await self._finalize()
            # after a crash, the supervisor's back_off decides: restarting, or error for good
            if not crashed and (self.module is not None or self.status.state != ModuleState.ERROR):
                self._set_state(ModuleState.STOPPED)
            self._thread.close()

    def request_stop(self) -> None:
        """Ask the module to stop: ``_halt``, routines end, ``_finalize`` (or, while waiting
        to restart, no restart)."""
        self.stop_scope.request_stop(f"module {self.name} stopped")
        self._stop.set()

    def _crashed(self) -> bool:
        """A lifecycle callback just failed (its error recorded): note the crash, unless a
        stop was requested; True if it ends this attempt (a restart policy applies)."""
        if self._stop.is_set():
            return False
        self.crash = self.status.error
        if not self._end_on_crash:
            self._set_state(ModuleState.ERROR)
        return self._end_on_crash

    def _ended_by_crash(self) -> None:
        """This attempt ends by a crash: what the module started is asked to stop."""
        self.stop_scope.request_stop(f"module {self.name} crashed")

    async def back_off(self) -> bool:
        """After `run` returned: if the attempt crashed and the policy allows another, wait
        the back-off (state restarting) and return True: the caller runs a fresh instance
        (`renewed`). Otherwise False: no crash, a stop (state stopped), or the policy's limit
        reached (state error)."""
        restarter = self.status.restart
        if restarter is None or not self._end_on_crash or self.crash is None:
            return False
        if self._stop.is_set():
            self._set_state(ModuleState.STOPPED)
            return False
        delay = restarter.schedule()
        if delay is None:
            policy = restarter.policy
            logger.error(
                "module %s: crashed again after %d restart(s) within %g s; not restarted",
                self.name,
                policy.max_restarts,
                policy.window,
            )
            self._set_state(ModuleState.ERROR)
            return False
        logger.warning(
            "module %s: crashed in %s; restart in %g s", self.name, self.crash.callback, delay
        )
        self._set_state(ModuleState.RESTARTING)
        if await restarter.wait(delay, self._stop):
            return True
        self._set_state(ModuleState.STOPPED)
        return False

    def renewed(self) -> UserModule:
        """A fresh instance of this module (same entry, same status) for a restart."""
        return UserModule(
            self.name,
            self.file,
            self.parameters,
            self.settings,
            data_suffix=self.data_suffix,
            call_timeout=self.call_timeout,
            where=self.where,
            restart=self.restart,
            status=self.status,
        )

    def mark_startup_timeout(self, seconds: float) -> None:
        """Start-up waited ``seconds`` for this module; the server goes on without it."""
        step = self._thread.busy_with or str(self.status.state)
        self.record_error(
            "startup",
            f"not ready after {seconds:g} s (still in {step}); the server started without it",
        )
        self._set_state(ModuleState.ERROR)

    async def _start(self) -> None:
        """Load (top-level code), ``_setup``, ``_initialize``."""
        self._set_state(ModuleState.LOADING)
        if not self.file.is_file():
            self.record_error("load", f"no such file: {self.file} ({self.where})")
            self._set_state(ModuleState.ERROR)
            self._crashed()
            return
        try:
            module = await self._thread.run(
                "load", import_user_file, self.name, self.file, self.preset_globals()
            )
        except (Exception, SystemExit) as exc:
            self.record_error("load", _describe(exc), exc)
            self._set_state(ModuleState.ERROR)
            self._crashed()
            return
        self.module = module
        self.webapis = [v for v in vars(module).values() if isinstance(v, WebApi)]
        self._set_state(ModuleState.INITIALIZING)
        for name, args in (
            ("_setup", (self.settings.app, self.parameters)),
            ("_initialize", (self.parameters,)),
        ):
            if self._stopping:
                return
            if not await self._lifecycle_call(name, *args) and self._crashed():
                return
        if not self._stopping:
            await self._after_initialize()

    def preset_globals(self) -> dict[str, Any]:
        """Names placed in the module's namespace before its code runs (none for a module;
        a task gets ``ControlSystem``)."""
        return {}

    async def _after_initialize(self) -> None:
        """A step after ``_initialize``, before the module counts as running (tasks process
        ``_export()`` here)."""

    async def _lifecycle_call(self, name: str, *candidates: Any) -> bool:
        """Call a thread-side callback if defined; True if it returned without raising."""
        fn = self.callback(name)
        if fn is None:
            return True
        args = leading_args(fn, *candidates)
        try:
            if is_async_callable(fn):
                await self._guard(fn(*args), name)
            else:
                await self._thread.run(name, fn, *args)
        except (Exception, SystemExit) as exc:
            self.record_error(name, _describe(exc), exc)
            return False
        return True

    async def _stoppable(
        self,
        body: Callable[[], Awaitable[None]],
        *,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Run ``body`` until it returns (True) or stop ends it (False).

        On stop, ``on_stop`` runs first; then async code is cancelled at once, while a sync
        callback running on the module thread, which cannot be interrupted, first gets the
        grace period to return; past it, its thread is abandoned.
        """
        scope = trio.CancelScope()

        async def stop_watcher() -> None:
            await self._stop.wait()
            self._stopping = True  # no further step starts on the module thread
            if on_stop is not None:
                await on_stop()
            busy = self._thread.awaited
            if busy is not None:
                with trio.move_on_after(self.settings.stop_grace):
                    await self._thread.wait_not_awaited()
                if self._thread.awaited is not None:
                    self.record_error(
                        "stop",
                        f"{busy} did not return within {self.settings.stop_grace:g} s of stop; "
                        "its thread is abandoned",
                    )
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_watcher)
            with scope:
                await body()
            nursery.cancel_scope.cancel()
        return not scope.cancelled_caught

    async def _routines(self, run_routines: bool) -> None:
        """``_run``, then ``_loop`` repeatedly; then serve requests until stopped."""
        if run_routines:
            skip_run = self.callback("_run") is None or self._stopping
            if not skip_run and not await self._lifecycle_call("_run") and self._crashed():
                return
            if self.callback("_loop") is not None:
                while not self._stopping:
                    if not await self._lifecycle_call("_loop"):
                        if self._crashed():
                            return
                        logger.error("module %s: _loop raised; not called again", self.name)
                        break
                    await trio.lowlevel.checkpoint()  # an async _loop that never awaits
        await trio.sleep_forever()

    async def _halt(self) -> None:
        """At stop (no further ``_loop`` call starts): ``_halt()`` asks ``_run`` to return."""
        self._set_state(ModuleState.STOPPING)
        fn = self.callback("_halt")
        if fn is None:
            return
        try:
            with trio.move_on_after(self.settings.stop_grace) as scope:
                if is_async_callable(fn):
                    await self._guard(fn(), "_halt")
                else:
                    await trio.to_thread.run_sync(
                        fn, limiter=self.settings.user_limiter, abandon_on_cancel=True
                    )
            if scope.cancelled_caught:
                self.record_error("_halt", f"did not return within {self.settings.stop_grace:g} s")
        except (Exception, SystemExit) as exc:
            self.record_error("_halt", _describe(exc), exc)

    async def _finalize(self) -> None:
        with trio.move_on_after(self.settings.finalize_timeout, shield=True) as scope:
            await self._lifecycle_call("_finalize")
        if scope.cancelled_caught:
            self.record_error(
                "_finalize",
                f"did not finish within {self.settings.finalize_timeout:g} s"
                + (f" (thread busy in {self._thread.busy_with})" if self._thread.busy_with else ""),
            )

    # ------------------------------------------------------------------------------------------
    # request side

    async def call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a request-side callback under the module's deadline.

        A sync callback runs in a worker thread, one call at a time per module in arrival
        order; if it passes the deadline (waiting included) it is abandoned, the module is
        marked stuck and not called again until that call returns. An async callback runs on
        the Trio loop and is cancelled at the deadline; async calls need no gate, as they
        interleave only where they await. Raises `ModuleStuck` when the module is stuck or
        the call passes its deadline, and whatever the callback raised otherwise.
        """
        with stop_scope(self.stop_scope, token=self._token):
            return await self._call(label, fn, *args, **kwargs)

    async def _call(self, label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if is_async_callable(fn):
            with trio.move_on_after(self.call_timeout):
                return await self._guard(fn(*args, **kwargs), label)
            message = f"did not return within {self.call_timeout:g} s; cancelled"
            self.record_error(label, message)
            raise ModuleStuck(f"module {self.name}: {label} {message}")
        self._check_not_stuck()
        call: _Call | None = None
        with trio.move_on_after(self.call_timeout):
            async with self._gate:  # a trio.Lock is fair: callers are served in arrival order
                if self._thread_call is not None:  # an abandoned call may still be running
                    await self._thread_call.done.wait()
                self._check_not_stuck()
                call = self._thread_call = _Call(label)
                try:
                    return await trio.to_thread.run_sync(
                        self._run_call,
                        call,
                        fn,
                        args,
                        kwargs,
                        limiter=self.settings.user_limiter,
                        abandon_on_cancel=True,
                    )
                finally:
                    with call.lock:
                        if call.phase == "pending":  # never started: nothing runs in a thread
                            call.phase = "withdrawn"
                            self._call_returned(call)
        # the deadline passed
        if call is not None and call.phase == "running":
            self.status.stuck = label
            self.status.stuck_since = call.started
            self.record_error(
                label, f"did not return within {self.call_timeout:g} s; module is stuck"
            )
        raise ModuleStuck(
            f"module {self.name}: {label} did not return within {self.call_timeout:g} s"
        )

    def _check_not_stuck(self) -> None:
        if self.status.stuck is not None:
            raise ModuleStuck(
                f"module {self.name}: not called: {self.status.stuck} has not returned "
                f"since {time.ctime(self.status.stuck_since)}"
            )

    async def wait_idle(self) -> None:
        """Wait until no sync request-side call of this module is in flight or queued."""
        async with self._gate:
            if self._thread_call is not None:
                await self._thread_call.done.wait()

    def _run_call(
        self, call: _Call, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        with call.lock:
            if call.phase != "pending":
                return None
            call.phase = "running"
        try:
            return fn(*args, **kwargs)
        finally:
            with call.lock:
                call.phase = "finished"
            assert self._token is not None
            try:
                self._token.run_sync_soon(self._call_returned, call)
            except trio.RunFinishedError:
                pass

    def _call_returned(self, call: _Call) -> None:
        if self._thread_call is call:
            self._thread_call = None
        if self.status.stuck == call.label:
            logger.warning(
                "module %s: %s returned after %.1f s; the module is called again",
                self.name,
                call.label,
                time.time() - call.started,
            )
            self.status.stuck = self.status.stuck_since = None
        call.done.set()

    async def get_channels(self) -> list[dict[str, Any]]:
        """``_get_channels()`` with ``current: true`` added; [] if absent or failing."""
        fn = self.callback("_get_channels")
        if fn is None:
            return []
        result = await self._safe_call("_get_channels", fn)
        if result is None:
            return []
        if not isinstance(result, list | tuple):
            self.record_error("_get_channels", f"returned {type(result).__name__}, expected a list")
            return []
        channels = []
        for entry in result:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                self.record_error(
                    "_get_channels", f"bad entry {entry!r}: expected {{'name': str, 'type': ...}}"
                )
                continue
            channels.append({**entry, "current": entry.get("current", True)})
        return channels

    async def get_data(self, channel: str) -> Any:
        """``_get_data(channel)``: a JSON value, or None (unknown channel, failure)."""
        fn = self.callback("_get_data")
        if fn is None:
            return None
        value = await self._safe_call("_get_data", fn, channel)
        if value is not None:
            problem = json_problem(value)
            if problem is not None:
                self.record_error("_get_data", f"channel {channel!r}: not JSON data: {problem}")
                return None
        return value

    async def process_command(self, doc: dict[str, Any]) -> Any:
        """``_process_command(doc)``: None (not handled), True/False, an int or a dict.

        A callback that raises counts as handled, with an error (as in the original).
        """
        fn = self.callback("_process_command")
        if fn is None:
            return None
        try:
            return await self.call("_process_command", fn, doc)
        except ModuleStuck:
            raise
        except (Exception, SystemExit) as exc:
            self.record_error("_process_command", _describe(exc), exc)
            return {"status": "error", "message": f"module {self.name}: {_describe(exc)}"}

    async def _safe_call(self, label: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await self.call(label, fn, *args)
        except ModuleStuck as exc:
            logger.debug("%s", exc)
            return None
        except (Exception, SystemExit) as exc:
            self.record_error(label, _describe(exc), exc)
            return None

    # ------------------------------------------------------------------------------------------
    # recording

    async def _guard(self, coro: Any, callback: str) -> Any:
        return await guarded(coro, callback, self.settings.watchdog_threshold, self._on_slow)

    def _on_slow(self, step: SlowStep) -> None:
        self.status.slow_steps += 1
        self.status.last_slow = {
            "callback": step.callback,
            "milliseconds": round(step.seconds * 1000, 1),
            "time": time.time(),
        }
        logger.warning(
            "module %s: async %s held the event loop for %.0f ms (threshold %.0f ms); "
            "nothing else ran meanwhile: await something, or move blocking work to "
            "trio.to_thread.run_sync",
            self.name,
            step.callback,
            step.seconds * 1000,
            self.settings.watchdog_threshold * 1000,
        )

    def record_error(self, callback: str, message: str, exc: BaseException | None = None) -> None:
        text = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.status.error = ErrorRecord(callback, message, text, time.time())
        self.status.error_count += 1
        logger.error(
            "module %s: %s: %s%s", self.name, callback, message, "\n" + text if text else ""
        )

    def _set_state(self, state: ModuleState) -> None:
        if self.status.state != state:
            logger.debug("module %s: %s -> %s", self.name, self.status.state, state)
            if self.status.state == ModuleState.ERROR and state == ModuleState.RUNNING:
                logger.warning("module %s: ready after all; now running", self.name)
            self.status.state = state

    def __repr__(self) -> str:
        return f"<UserModule {self.name} {self.status.state}>"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not plain JSON data (None if it is)."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None  # NaN and infinities are sent as null
    if depth > 64:
        return "nested too deeply"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"key {key!r} is not a string"
            problem = json_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{type(value).__name__} value {value!r:.60}"
