"""The task routes: task list and control, form calls, and exported channels.

- ``GET /control/task?since=REV``: the task list, at once if the revision is above ``since``,
  else when something changes (at most `TaskManager.poll_wait` seconds later).
- ``POST /control/task/{name}`` ``{"action": "start"|"stop"}``: start (a running task is
  stopped and its file loaded afresh) or stop; ``reload``/``restart`` mean start.
- ``POST /update/tasklist``: add new ``config/slowtask-*.py`` files.
- ``POST /control``: a task function from a form button (`._taskfunc`), else each running
  task's ``_process_command``.
- ``GET /config``, ``/channels``, ``/data/{channels}``: task states, exported channels and
  their current values.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

from ._api import _command_result
from ._dispatch import error_response
from ._errors import ModuleStuck
from ._exports import Export, channel_type, is_series, shape
from ._taskfunc import CallError, find_command, parse_command
from .webapi import BadRequest, Request, WebApi

if TYPE_CHECKING:
    from ._task import Task
    from ._tasks import TaskManager


def task_api(manager: TaskManager) -> WebApi:
    api = WebApi()

    @api.get("/control/task")
    async def task_list(since: int = 0) -> Any:
        if manager.revision <= since:
            await manager.wait_change(since, manager.poll_wait)
        return {"revision": manager.revision, "tasks": manager.status()}

    @api.post("/control/task/{taskname}")
    async def task_control(request: Request, taskname: str) -> Any:
        doc = request.json()  # the UI sends no Content-Type: read the body whatever it says
        if not isinstance(doc, dict):
            raise BadRequest("the task command must be a JSON object")
        task = manager.get(taskname)
        if task is None:
            return error_response(404, f"unknown task: {taskname}")
        action = doc.get("action")
        if action in ("start", "reload", "restart"):
            if not manager.is_running:
                return error_response(503, "the task manager is not running")
            await manager.start(task)
        elif action == "stop":
            await task.stop()
        else:
            return error_response(400, f"unknown command: {action}")
        return {"status": "ok", "state": task.state}

    @api.post("/update/tasklist")
    async def update_tasklist() -> Any:
        found = await trio.to_thread.run_sync(manager.find_files)
        return {"status": "ok", "added": manager.add_found(found)}

    @api.get("/config")
    async def config() -> Any:
        if not manager.tasks:
            return None
        return {"task_module": {task.name: task.status() for task in manager.tasks.values()}}

    @api.post("/control")
    async def control(request: Request) -> Any:
        doc = request.json()
        if not isinstance(doc, dict):
            return None  # the core route answers the error
        return await _control(manager, doc)

    @api.get("/channels")
    async def channels() -> Any:
        entries: list[dict[str, Any]] = []
        exports = manager.exports()
        values = await _read_all(exports)
        for export, value in zip(exports, values, strict=True):
            entry: dict[str, Any] = {"name": export.name, "current": True}
            if value is not None:
                entry["type"] = channel_type(value)
            entries.append(entry)
        for task in _serving(manager):
            assert task.module is not None
            entries.extend(await task.module.get_channels())
        return entries or None

    @api.get("/data/{channels}")
    async def data(channels: str, length: float = 3600.0, to: float = 0.0) -> Any:
        now = time.time()
        end = to if to > 0 else now + to
        start = end - length
        if not (to == 0 or start <= now <= end + 1):
            return None  # exports have current values only
        names = [name for name in channels.split(",") if name]
        reply: dict[str, Any] = {}
        wanted = [e for e in (manager.find_export(name) for name in names) if e is not None]
        for export, value in zip(wanted, await _read_all(wanted), strict=True):
            if is_series(value):
                reply[export.name] = value
            elif value is not None:
                reply[export.name] = {
                    "start": start,
                    "length": length,
                    "t": now - start,
                    "x": value,
                }
        for task in _serving(manager):
            assert task.module is not None
            for name in names:
                if name in reply:
                    continue
                value = await task.module.get_data(name)
                if value is not None:
                    reply[name] = _current(start, length, now, value)
        return reply or None

    return api


def _current(start: float, length: float, now: float, value: Any) -> dict[str, Any]:
    return {"start": start, "length": length, "t": now - start, "x": value}


def _serving(manager: TaskManager) -> list[Task]:
    return [task for task in manager.tasks.values() if task.is_serving]


async def _read_all(exports: list[Export]) -> list[Any]:
    """The shaped current value of each export (None where reading failed), concurrently."""
    values: list[Any] = [None] * len(exports)

    async def one(index: int, export: Export) -> None:
        try:
            values[index] = shape(await export.read())
        except (Exception, SystemExit) as exc:
            module = _module_of(export)
            if module is not None:
                module.record_error(f"export {export.name}", f"{type(exc).__name__}: {exc}", exc)

    async with trio.open_nursery() as nursery:
        for index, export in enumerate(exports):
            nursery.start_soon(one, index, export)
    return values


def _module_of(export: Export) -> Any:
    """The task module that owns ``export`` (None for exports made outside tasks)."""
    return getattr(export.access, "module", None)


async def _control(manager: TaskManager, doc: dict[str, Any]) -> Any:
    key = find_command(doc)
    if key is not None:
        try:
            command = parse_command(key)
        except CallError as exc:
            return error_response(exc.status, exc.message)
        fields = {name: value for name, value in doc.items() if name != key}
        for task in manager.tasks.values():
            function = task.function_name(command.name)
            if function is None:
                continue
            try:
                return await task.call(command, function, fields)
            except CallError as exc:
                return error_response(exc.status, exc.message)
    for task in _serving(manager):
        assert task.module is not None
        try:
            result = await task.module.process_command(doc)
        except ModuleStuck:
            continue
        if result is not None:
            return _command_result(task.name, result)
    if key is not None and not any(
        m.callback("_process_command") for m in manager.server.serving_modules()
    ):
        return error_response(
            404, f"{key}: unknown task function: no task's namespace matches {command.name!r}"
        )
    return None
