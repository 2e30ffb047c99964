"""Starting and stopping the user modules of a server, all in one nursery."""

from __future__ import annotations

import functools
import logging

import trio

from ._usermodule import UserModule

logger = logging.getLogger("slowdash_trio.module")


class ModuleSupervisor:
    """Runs every module as a task of its own; start-up waits for them, but only so long."""

    def __init__(self, modules: list[UserModule], *, startup_timeout: float) -> None:
        self.modules = modules
        self.startup_timeout = startup_timeout
        self._stop = trio.Event()

    async def run(
        self,
        *,
        run_routines: bool = True,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Load and initialize all modules in parallel; report started when each is ready or
        the start-up wait has passed; on `request_stop`, stop them all and return."""
        async with trio.open_nursery() as nursery:
            for module in self.modules:
                nursery.start_soon(functools.partial(module.run, run_routines=run_routines))
            with trio.move_on_after(self.startup_timeout):
                await self._wait_ready()
            for module in self.modules:
                if not module.ready.is_set():
                    module.mark_startup_timeout(self.startup_timeout)
            task_status.started()
            await self._stop.wait()
            for module in self.modules:
                module.request_stop()

    def request_stop(self) -> None:
        self._stop.set()

    async def _wait_ready(self) -> None:
        async with trio.open_nursery() as nursery:

            async def all_ready() -> None:
                for module in self.modules:
                    await module.ready.wait()
                nursery.cancel_scope.cancel()

            async def stop_requested() -> None:
                await self._stop.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(all_ready)
            nursery.start_soon(stop_requested)
