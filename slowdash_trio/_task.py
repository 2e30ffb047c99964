"""One SlowTask: a user module started, stopped and reloaded from the UI, with functions
callable from forms and exported channels.

Each start loads the file afresh into a new `TaskModule` (a `UserModule` with
``ControlSystem`` in its globals and ``_export()`` processed after ``_initialize``) and a new
`FunctionRunner`; together they make one `Instance`, run in the task manager's nursery inside
the task's stop scope. Stopping ends that instance only.

With ``restart: on-failure`` a crashed instance (see `._usermodule`) ends (its functions stop,
``_finalize`` runs), and after the back-off a fresh `Instance` takes its place, sharing its
status (errors and restart counts); a start from the UI begins afresh, a stop ends the wait.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from slowdash_controls import ControlSystem, stop_scope

from ._config import RestartConfig
from ._exports import Export, make_export
from ._taskfunc import CallError, Command, FunctionRunner, bind
from ._usercode import is_async_callable
from ._usermodule import ModuleSettings, ModuleState, ModuleStatus, UserModule, json_problem

if TYPE_CHECKING:
    from ._tasks import TaskManager

logger = logging.getLogger("slowdash_trio.task")

# the task instance whose code runs here (flows into its worker threads with the context)
current_instance: contextvars.ContextVar[Instance | None] = contextvars.ContextVar(
    "slowdash_task_instance", default=None
)

_STATES = {
    ModuleState.LOADING: "loading",
    ModuleState.INITIALIZING: "loading",
    ModuleState.RUNNING: "running",
    ModuleState.STOPPING: "stopping",
    ModuleState.STOPPED: "stopped",
    ModuleState.ERROR: "error",
    ModuleState.RESTARTING: "restarting",
}
_ROUTINES = {
    ModuleState.LOADING: "load",
    ModuleState.INITIALIZING: "_initialize()",
    ModuleState.RUNNING: "_run()/_loop()",
    ModuleState.STOPPING: "_halt()",
    ModuleState.STOPPED: "_finalize()",
}


class TaskModule(UserModule):
    """The user module of one task instance."""

    def __init__(
        self, instance: Instance, settings: ModuleSettings, status: ModuleStatus | None = None
    ) -> None:
        task = instance.task
        super().__init__(
            f"slowtask-{task.name}",
            task.file,
            task.parameters,
            settings,
            where=task.where,
            restart=task.restart,
            status=status,
        )
        self.instance = instance

    def preset_globals(self) -> dict[str, Any]:
        return {"ControlSystem": ControlSystem}

    async def _after_initialize(self) -> None:
        fn = self.callback("_export")
        if fn is None:
            return
        try:
            if is_async_callable(fn):
                pairs = await self._guard(fn(), "_export")
            else:
                pairs = await self._thread.run("_export", fn)
        except (Exception, SystemExit) as exc:
            self.record_error("_export", f"{type(exc).__name__}: {exc}", exc)
            return
        task = self.instance.task
        if not isinstance(pairs, list | tuple):
            self.record_error("_export", f"returned {type(pairs).__name__}, expected a list")
            return
        for pair in pairs:
            if not (isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                self.record_error("_export", f"bad entry {pair!r:.80}: expected (name, node)")
                continue
            name = f"{task.prefix}{pair[0]}{task.suffix}"
            try:
                self.instance.add_export(name, pair[1])
            except (TypeError, ValueError) as exc:
                self.record_error("_export", str(exc))

    def _ended_by_crash(self) -> None:
        super()._ended_by_crash()
        self.instance.runner.stop()

    async def _finalize(self) -> None:
        # functions end first (async ones cancelled, sync ones after their grace)
        with trio.move_on_after(self.settings.stop_grace + 1, shield=True):
            await self.instance.runner.wait_stopped()
        await super()._finalize()

    def _set_state(self, state: ModuleState) -> None:
        if state != self.status.state:
            super()._set_state(state)
            self.instance.routine = _ROUTINES.get(state, self.instance.routine)
            self.instance.routine_time = time.time()
            self.instance.task.manager.changed()

    def record_error(self, callback: str, message: str, exc: BaseException | None = None) -> None:
        super().record_error(callback, message, exc)
        self.instance.task.manager.changed()


class Instance:
    """One load of a task's file: module, function runner and exports."""

    def __init__(self, task: Task, status: ModuleStatus | None = None) -> None:
        manager = task.manager
        settings = manager.server.module_settings
        self.task = task
        self.module = TaskModule(self, settings, status)
        self.token: trio.lowlevel.TrioToken | None = None
        self.runner = FunctionRunner(
            f"task {task.name}",
            enter=self.enter,
            limiter=manager.limiter,
            grace=settings.stop_grace,
            watchdog_threshold=settings.watchdog_threshold,
            on_error=self._function_failed,
            on_change=manager.changed,
            on_slow=self.module._on_slow,
        )
        self.exports: dict[str, Export] = {}
        self.by_id: dict[int, str] = {}
        self.lock = threading.Lock()
        self.finished = trio.Event()
        self.routine: str | None = None
        self.routine_time: float | None = None

    @contextlib.contextmanager
    def enter(self) -> Iterator[Instance]:
        """The task's context: its stop scope, its loop, and this instance as the exporter."""
        with stop_scope(self.module.stop_scope, token=self.token):
            reset = current_instance.set(self)
            try:
                yield self
            finally:
                current_instance.reset(reset)

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a worker thread in the task's context, bounded by the call timeout."""
        with self.enter(), trio.fail_after(self.module.call_timeout):
            return await trio.to_thread.run_sync(
                fn, *args, limiter=self.task.manager.limiter, abandon_on_cancel=True
            )

    async def life(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        try:
            with self.enter():
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.runner.host)
                    try:
                        await self.module.run()
                    finally:
                        self.runner.stop()
        finally:
            with self.lock:
                self.exports.clear()
                self.by_id.clear()
            self.finished.set()
            self.task.manager.changed()

    def add_export(self, name: str, obj: Any) -> str:
        self.task.manager.check_name(name)
        export = make_export(name, obj, self, self.task.name)
        with self.lock:
            old = self.exports.pop(name, None)
            if old is not None:
                self.by_id.pop(id(old.obj), None)
            self.exports[name] = export
            self.by_id[id(obj)] = name
        return name

    def export_name_of(self, obj: Any) -> str | None:
        name = self.by_id.get(id(obj))
        if name is None:
            return None
        export = self.exports.get(name)
        return name if export is not None and export.obj is obj else None

    def _function_failed(self, label: str, exc: BaseException) -> None:
        self.module.record_error(label, f"{type(exc).__name__}: {exc}", exc)


class Task:
    """A task of the project, whether loaded or only listed."""

    def __init__(
        self,
        manager: TaskManager,
        name: str,
        file: Path,
        *,
        parameters: dict[str, Any] | None = None,
        auto_load: bool = False,
        prefix: str | None = None,
        suffix: str = "",
        where: str = "",
        restart: RestartConfig | None = None,
    ) -> None:
        self.manager = manager
        self.name = name
        self.file = file
        self.parameters = dict(parameters or {})
        self.auto_load = auto_load
        self.prefix = f"{name}." if prefix is None else prefix
        self.suffix = suffix
        self.where = where or str(file)
        self.restart = restart
        self.instance: Instance | None = None
        self._lock = trio.Lock()
        self._supervised: trio.Event | None = None  # set when the instances' runs are over

    # ---- state --------------------------------------------------------------------------
    @property
    def module(self) -> TaskModule | None:
        return self.instance.module if self.instance is not None else None

    @property
    def state(self) -> str:
        if self.instance is None:
            return "listed"
        return _STATES[self.instance.module.status.state]

    @property
    def is_serving(self) -> bool:
        return self.instance is not None and self.instance.module.is_serving

    def status(self) -> dict[str, Any]:
        """The task as ``/api/control/task`` and ``/api/config`` show it."""
        instance = self.instance
        module = instance.module if instance is not None else None
        state = self.state
        error = module.status.error if module is not None else None
        restarter = module.status.restart if module is not None else None
        runner = instance.runner if instance is not None else None
        return {
            "name": self.name,
            "state": state,
            "auto_load": self.auto_load,
            "is_loaded": module is not None and module.module is not None,
            "is_routine_running": state in ("loading", "running", "stopping", "restarting"),
            "is_command_running": bool(runner and runner.running),
            "is_waiting_input": False,
            "is_stopped": state == "stopped",
            "is_serving": self.is_serving,  # also in state error after a crash without restart
            "last_routine_time": instance.routine_time if instance else None,
            "last_routine": instance.routine if instance else None,
            "last_command_time": runner.last_command_time if runner else None,
            "last_command": runner.last_command if runner else None,
            "last_log": "",
            "has_error": error is not None,
            "error": error.to_json() if error is not None else None,
            "busy": runner.busy_with if runner else None,
            "exports": sorted(instance.exports) if instance else [],
            "restart": restarter.to_json() if restarter is not None else None,
            "links": module.status.links() if module is not None else [],
        }

    # ---- start and stop -----------------------------------------------------------------
    async def start(self, nursery: trio.Nursery, *, wait: float) -> None:
        """Stop the running instance if any, load the file afresh, and wait (``wait`` s at
        most) until it is ready or has failed."""
        async with self._lock:
            await self._stop_instance()
            instance = Instance(self)
            self.instance = instance
            self._supervised = done = trio.Event()
            self.manager.changed()
            nursery.start_soon(self._supervise, instance, done, name=f"task {self.name}")
            with trio.move_on_after(wait):
                await instance.module.ready.wait()

    async def stop(self) -> None:
        """Stop the running instance (``_halt``, functions end, ``_finalize``)."""
        async with self._lock:
            await self._stop_instance()

    async def _stop_instance(self) -> None:
        instance, done = self.instance, self._supervised
        if instance is None or done is None or done.is_set():
            return
        instance.runner.stop()
        instance.module.request_stop()  # also ends a back-off at once
        await done.wait()

    async def _supervise(self, instance: Instance, done: trio.Event) -> None:
        """Run ``instance``, then fresh ones while it crashes and the policy allows."""
        try:
            await instance.life()
            while await instance.module.back_off():
                instance = Instance(self, instance.module.status)
                self.instance = instance
                self.manager.changed()
                await instance.life()
        finally:
            done.set()
            self.manager.changed()

    # ---- functions ----------------------------------------------------------------------
    def function_name(self, name: str) -> str | None:
        """The function part of ``PREFIX FUNC SUFFIX``, or None if not in this namespace."""
        if not name.startswith(self.prefix) or not name.endswith(self.suffix):
            return None
        end = len(name) - len(self.suffix)
        if end <= len(self.prefix):
            return None
        return name[len(self.prefix) : end]

    async def call(self, command: Command, function: str, fields: dict[str, Any]) -> Any:
        """Call ``function`` for ``command``; the JSON answer, or `CallError`."""
        key = command.key
        if function.startswith("_"):
            raise CallError(f"{key}: names starting with '_' cannot be called", 403)
        if not function.isidentifier():
            raise CallError(f"{key}: {function!r} is not a function name", 400)
        instance = self.instance
        if instance is None or not instance.module.is_serving:
            raise CallError(f"{key}: task {self.name} is not running (state {self.state})", 409)
        fn = getattr(instance.module.module, function, None)
        if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
            raise CallError(f"{key}: undefined function: {self.name}.{function}()", 404)
        try:
            args, kwargs = bind(fn, {**fields, **command.args})
        except CallError as exc:
            raise CallError(f"{key}: {exc.message}", exc.status) from None
        shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        label = f"{self.name}.{function}({', '.join(shown)})"
        try:
            result = await instance.runner.call(
                label, fn, args, kwargs, parallel=command.parallel, wait=command.wait
            )
        except CallError as exc:
            raise CallError(f"{key}: task {self.name}: {exc.message}", exc.status) from None
        if result is None:
            return {"status": "ok"}
        try:
            value = result.unwrap()
        except CallError:
            raise
        except (Exception, SystemExit) as exc:
            raise CallError(f"{label}: {type(exc).__name__}: {exc}", 500) from None
        if json_problem(value) is not None:
            value = repr(value)
        return {"status": "ok", "result": value}

    def __repr__(self) -> str:
        return f"<Task {self.name} {self.state}>"
