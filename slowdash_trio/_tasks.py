"""SlowTask: the task manager.

Tasks come from ``task:`` entries and from every ``config/slowtask-NAME.py`` (NAME is the text
after the first ``-``, hyphens kept). Each runs as a user module of its own (`._task`), started
and stopped from the API; exported values are channels; form buttons call task functions.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from slowdash_controls import current_stop_scope, set_export_hook
from slowdash_controls._link import set_link_hook

from ._exports import Export, make_export
from ._sources import QueryError
from ._sources._schema import check_channel_name
from ._task import Instance, Task, current_instance
from .webapi import WebApi

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.task")

POLL_WAIT = 30.0  # longest wait of a GET /api/control/task long poll, seconds


class _LooseAccess:
    """How exports made outside any task (a user module calling ``export``) are read."""

    def __init__(self, manager: TaskManager) -> None:
        self.manager = manager

    def enter(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    async def in_thread(self, fn: Any, *args: Any) -> Any:
        timeout = self.manager.server.module_settings.call_timeout
        with trio.fail_after(timeout):
            return await trio.to_thread.run_sync(
                fn, *args, limiter=self.manager.limiter, abandon_on_cancel=True
            )


class TaskManager:
    """Every task of a project: ``task:`` entries and ``config/slowtask-NAME.py`` files."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.tasks: dict[str, Task] = {}
        self.limiter = trio.CapacityLimiter(server.project.config.system.user_threads)
        self.revision = 1
        self.poll_wait = POLL_WAIT
        self._changed = trio.Event()
        self._closing = False
        self._stop = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._lock = threading.Lock()
        self._loose: dict[str, Export] = {}
        self._loose_access = _LooseAccess(self)
        self._unnamed = 0
        self._add_configured()
        self.scan()

    # ---- the task list ------------------------------------------------------------------
    def _add_configured(self) -> None:
        project = self.server.project
        for index, entry in enumerate(project.config.task):
            where = project.where("task", index)
            if entry.name in self.tasks or not _good_name(entry.name):
                logger.error("%s: task name %r is not usable; entry skipped", where, entry.name)
                continue
            file = (
                project.resolve(entry.file)
                if entry.file
                else project.config_dir / f"slowtask-{entry.name}.py"
            )
            self.tasks[entry.name] = Task(
                self,
                entry.name,
                file,
                parameters=entry.parameters,
                auto_load=entry.auto_load,
                prefix=entry.namespace.prefix,
                suffix=entry.namespace.suffix,
                where=where,
                restart=entry.restart,
            )

    def scan(self) -> list[str]:
        """Add every ``config/slowtask-NAME.py`` not yet known (listed, not loaded); returns
        the names added. Tasks whose file was deleted stay listed."""
        return self.add_found(self.find_files())

    def find_files(self) -> list[tuple[str, Path]]:
        """``(name, path)`` of the ``config/slowtask-NAME.py`` files not yet known (reads the
        directory: from a worker thread when the server runs)."""
        directory = self.server.project.config_dir
        if not directory.is_dir():
            return []
        known = {_resolved(task.file) for task in list(self.tasks.values())}
        found = []
        for path in sorted(directory.glob("slowtask-*.py")):
            name = path.stem.partition("-")[2]
            if _good_name(name) and _resolved(path) not in known:
                found.append((name, path))
        return found

    def add_found(self, found: list[tuple[str, Path]]) -> list[str]:
        """List the tasks of `find_files` (on the Trio thread, or before the server runs)."""
        added = []
        for name, path in found:
            if name not in self.tasks:
                self.tasks[name] = Task(self, name, path)
                added.append(name)
        if added:
            self.changed()
        return added

    def get(self, name: str) -> Task | None:
        return self.tasks.get(name)

    # ---- revisions (for the long poll) --------------------------------------------------
    def changed(self) -> None:
        """Something a task list shows changed: wake the long polls (any thread)."""
        if not trio.lowlevel.in_trio_run():
            token = self._token
            if token is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(self.changed)
            return
        self.revision += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self, since: int, timeout: float) -> None:
        """Return once the revision is above ``since``, after ``timeout`` seconds, or when the
        server begins to shut down (a waiting browser gets its answer instead of holding the
        web server's graceful stop)."""
        with trio.move_on_after(timeout):
            while self.revision <= since and not self._stop.is_set() and not self._closing:
                await self._changed.wait()

    def release_waiters(self) -> None:
        """The server is shutting down: answer every waiting long poll now."""
        self._closing = True
        self._changed.set()

    def status(self) -> list[dict[str, Any]]:
        return [task.status() for task in self.tasks.values()]

    # ---- running ------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._nursery is not None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the auto-load tasks, report started, run until `request_stop`, stop them all."""
        self._token = trio.lowlevel.current_trio_token()
        previous = set_export_hook(self._export_hook)
        previous_link_hook = set_link_hook(self._link_changed)
        wait = self.server.project.config.system.module_startup_timeout
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                async with trio.open_nursery() as starting:
                    for task in self.tasks.values():
                        if task.auto_load:
                            starting.start_soon(functools.partial(task.start, nursery, wait=wait))
                task_status.started()
                await self._stop.wait()
                self._nursery = None
                async with trio.open_nursery() as stopping:
                    for task in self.tasks.values():
                        stopping.start_soon(task.stop)
        finally:
            self._nursery = None
            set_export_hook(previous)
            set_link_hook(previous_link_hook)

    def _link_changed(self, link: object) -> None:
        """A device link of a module or task changed state: the task list shows links."""
        self.changed()

    def request_stop(self) -> None:
        self._stop.set()
        self._changed.set()

    async def start(self, task: Task) -> None:
        """(Re)start ``task``: a fresh load of its file."""
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("the task manager is not running")
        await task.start(nursery, wait=self.server.project.config.system.module_startup_timeout)

    # ---- exports ------------------------------------------------------------------------
    def check_name(self, name: str) -> None:
        try:
            check_channel_name(name)
        except QueryError as exc:
            raise ValueError(str(exc)) from None

    def _export_hook(self, obj: Any, name: str | None) -> str:
        """``ControlSystem.export(obj, name)``: a channel of the task whose code calls it."""
        if name is None:
            self._unnamed += 1
            name = f"unnamed{self._unnamed:02d}"
        instance = self._calling_instance()
        if instance is not None:
            return instance.add_export(name, obj)
        self.check_name(name)
        export = make_export(name, obj, self._loose_access, None)
        with self._lock:
            self._loose[name] = export
        return name

    def _calling_instance(self) -> Instance | None:
        instance = current_instance.get()
        if instance is not None:
            return instance
        scope = current_stop_scope().task_scope()
        for task in self.tasks.values():
            if task.instance is not None and task.instance.module.stop_scope is scope:
                return task.instance
        return None

    def _instances(self) -> Iterator[Instance]:
        for task in self.tasks.values():
            instance = task.instance
            if instance is not None and not instance.finished.is_set():
                yield instance

    def serving_modules(self) -> list[Any]:
        """The user modules of the running tasks (their own web APIs are mounted too)."""
        return [i.module for i in self._instances() if i.module.is_serving]

    def exports(self) -> list[Export]:
        """Every export of the running tasks (and those made outside tasks), by name."""
        found: dict[str, Export] = {}
        for instance in self._instances():
            with instance.lock:
                for name, export in instance.exports.items():
                    found.setdefault(name, export)
        with self._lock:
            for name, export in self._loose.items():
                found.setdefault(name, export)
        return list(found.values())

    def find_export(self, name: str) -> Export | None:
        for instance in self._instances():
            export = instance.exports.get(name)
            if export is not None:
                return export
        return self._loose.get(name)

    def export_name_of(self, node: Any) -> str | None:
        """The channel name an exported node is known by, or None."""
        for instance in self._instances():
            name = instance.export_name_of(node)
            if name is not None:
                return name
        with self._lock:
            for name, export in self._loose.items():
                if export.obj is node:
                    return name
        return None

    async def set_export(self, name: str, value: Any, sender: str | None = None) -> bool:
        """Write a value from the browser (``sd-live``) to the exported node ``name``;
        False if no task exports it (or ``sender`` is that task's own stream)."""
        if sender is not None and sender == f"taskmodule_{name}":
            return False
        export = self.find_export(name)
        if export is None or export.readonly:
            return False
        try:
            await export.write(value)
        except (Exception, SystemExit) as exc:
            logger.warning(
                "channel %s: value %r not set: %s: %s", name, value, type(exc).__name__, exc
            )
            return False
        return True

    # ---- the web API --------------------------------------------------------------------
    def webapi(self) -> WebApi:
        """The task routes (``/control/task...``, form calls on ``/control``, exports in
        ``/channels`` and ``/data``)."""
        from ._task_api import task_api

        return task_api(self)


def _good_name(name: str) -> bool:
    return bool(name) and not any(c in name for c in ",/ ") and name.isprintable()


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path
