"""Starting, restarting and stopping the user modules of a server, all in one nursery.

A module with ``restart: on-failure`` that crashes is replaced, after its back-off, by a fresh
instance (the file loaded afresh) in the same place of the module list, sharing its status;
see `UserModule.back_off`.
"""

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
            for index, module in enumerate(self.modules):
                nursery.start_soon(
                    functools.partial(self._supervise, index, run_routines=run_routines),
                    name=f"module {module.name}",
                )
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
        """Stop every module; a module waiting to restart stops waiting at once."""
        self._stop.set()
        for module in self.modules:
            module.request_stop()

    async def _supervise(self, index: int, *, run_routines: bool) -> None:
        """Run the module at ``index``, and its fresh instances while it crashes and its
        policy allows (a stop during the back-off ends the wait at once)."""
        module = self.modules[index]
        await module.run(run_routines=run_routines)
        # request_stop() reaches the module in the list at once, so a back-off that
        # returns True was not interrupted by a stop
        while await module.back_off():
            module = module.renewed()
            self.modules[index] = module
            await module.run(run_routines=run_routines)

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
