"""SlowTask: the task manager. (Scaffold: the task work fills this in.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from .webapi import WebApi

if TYPE_CHECKING:
    from ._server import Server


class TaskManager:
    """Every task of a project: ``task:`` entries and ``config/slowtask-NAME.py`` files."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._stop = trio.Event()

    def webapi(self) -> WebApi:
        """The task routes (``/control/task...``, form calls on ``/control``, exports in
        ``/channels`` and ``/data``)."""
        return WebApi()

    def export_name_of(self, node: Any) -> str | None:
        """The channel name an exported node is known by, or None."""
        return None

    async def set_export(self, name: str, value: Any, sender: str | None = None) -> bool:
        """Write a value from the browser (``sd-live``) to the exported node ``name``;
        False if no task exports it (or ``sender`` is that task's own stream)."""
        return False

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the auto-load tasks, report started, run until `request_stop`, stop them all."""
        task_status.started()
        await self._stop.wait()
