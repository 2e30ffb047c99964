"""The server: one project, its user modules, its web API; serving and query mode.

Start order: modules load and initialize (in parallel, bounded wait), then the web port
opens. Stop order: the web server stops taking requests, then the modules stop (``_halt``,
grace period, ``_finalize``).
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import Iterable
from typing import Any

import trio

from ._api import core_api
from ._app import App
from ._audit import AuditLog, requester, summarize
from ._auth import Authenticator
from ._configfiles import config_files_api
from ._dispatch import HandlerFailed, Mount, dispatch
from ._errors import ProjectError
from ._hub import Hub, HubLimits
from ._origin import SAFE_METHODS
from ._project import Project
from ._sources import SourceConfigError, build_source
from ._sources._manager import DataSources
from ._streaming_api import streaming_api
from ._supervisor import ModuleSupervisor
from ._tasks import TaskManager
from ._userhtml import userhtml_api
from ._usermodule import ModuleSettings, UserModule
from .webapi import Request, Response, Route

logger = logging.getLogger("slowdash_trio")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18881

# requests that only publish values: their write-backs to task nodes are audited instead
_PUBLISHING = ("/emit/", "/consume/")


class Server:
    """Everything one running project needs; `serve` runs it, `query` answers one request."""

    def __init__(self, project: Project, *, command_mode: bool = False) -> None:
        system = project.config.system
        self.project = project
        self.command_mode = command_mode
        self.app = App(self)
        self.module_settings = ModuleSettings(
            app=self.app,
            user_limiter=trio.CapacityLimiter(system.user_threads),
            call_timeout=system.module_call_timeout,
            watchdog_threshold=system.watchdog_threshold,
            stop_grace=system.module_stop_grace,
            finalize_timeout=system.module_finalize_timeout,
        )
        self.sources = _build_sources(project)
        self.modules = _build_modules(project, self.module_settings, command_mode)
        self.supervisor = ModuleSupervisor(
            self.modules, startup_timeout=system.module_startup_timeout
        )
        self.hub = Hub(self, HubLimits(max_message=system.max_websocket_message))
        self.auth = Authenticator.from_config(project.config.authentication)
        self.audit = AuditLog(system.audit, project.directory)
        self.tasks = TaskManager(self)
        self._builtin = [
            Mount(core_api(self), "server", _call_builtin),
            Mount(config_files_api(self), "server", _call_builtin),
            Mount(userhtml_api(self), "server", _call_builtin),
            Mount(self.tasks.webapi(), "tasks", _call_builtin),
            Mount(streaming_api(self), "streaming", _call_builtin),
        ]
        self._shutdown = trio.Event()
        self._web_running = False

    # ------------------------------------------------------------------------------------------
    # requests

    def serving_modules(self) -> list[UserModule]:
        return [module for module in self.modules if module.is_serving]

    def mounts(self) -> Iterable[Mount]:
        for module in [*self.modules, *self.tasks.serving_modules()]:
            if module.webapis and module.is_serving:
                yield from (
                    Mount(api, module.name, _module_invoker(module)) for api in module.webapis
                )
        yield from self._builtin

    async def handle(self, request: Request) -> Response:
        """Answer one API request (from HTTP, query mode or a module's ``app.request``);
        one that can change something is recorded in the audit log."""
        response = await dispatch(request, self.mounts())
        if request.method not in SAFE_METHODS and not request.path.startswith(_PUBLISHING):
            self.audit_request(request, response.status, _outcome(response))
        return response

    def audit_request(self, request: Request, status: int, outcome: str) -> None:
        if request.path.startswith("/config/file/"):
            detail = f"({len(request.body)} bytes)" if request.body else ""
        else:
            detail = summarize(request.body, request.headers.get("content-type"))
        self.audit.record(
            user=requester(request),
            client=request.client,
            action=f"{request.method} /api{request.path}",
            detail=detail,
            status=status,
            outcome=outcome,
        )

    def route_channels(self, names: list[str]) -> dict[UserModule, list[tuple[str, str]]]:
        """Which module is asked for which requested name: ``NAME.SUFFIX`` reaches only the
        module with ``data_suffix: SUFFIX`` (asked for NAME); other names reach every module.

        Returns, per module, ``(name in the reply, channel the module is asked for)`` pairs.
        """
        modules = self.serving_modules()
        plan: dict[UserModule, list[tuple[str, str]]] = {module: [] for module in modules}
        for name in names:
            bare, dot, suffix = name.rpartition(".")
            targets = [module for module in modules if dot and module.data_suffix == suffix]
            if targets:
                for module in targets:
                    plan[module].append((name, bare))
            else:
                for module in modules:
                    plan[module].append((name, name))
        return {module: wanted for module, wanted in plan.items() if wanted}

    async def known_channels(self) -> set[str]:
        """Every channel name the server answers to, suffixed names included."""
        names: set[str] = set()
        listed = await self.handle(Request("GET", "/channels", internal=True))
        if isinstance(listed.content, list):
            names.update(e["name"] for e in listed.content if isinstance(e, dict) and "name" in e)
        for module in self.serving_modules():
            if module.data_suffix:
                for entry in await module.get_channels():
                    names.add(f"{entry['name']}.{module.data_suffix}")
        return names

    # ------------------------------------------------------------------------------------------
    # running

    async def serve(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        tls: tuple[str, str] | None = None,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until `request_shutdown`; reports the bound URLs once the port is open
        (HTTPS with ``tls=(certfile, keyfile)``)."""
        async with trio.open_nursery() as outer:
            await outer.start(self.audit.run)
            await outer.start(self._sources_run)
            await outer.start(self.hub.run)
            async with trio.open_nursery() as nursery:
                await nursery.start(self.supervisor.run)
                await nursery.start(self.tasks.run)
                if self._shutdown.is_set():
                    task_status.started([])
                    self.tasks.request_stop()
                    outer.cancel_scope.cancel()
                    return
                self._web_running = True
                urls = await nursery.start(functools.partial(self._web, host, port, tls))
                logger.info("%s is served at %s", self.project.title, ", ".join(urls))
                task_status.started(urls)
            outer.cancel_scope.cancel()  # modules are done: close the data sources
        logger.info("stopped")

    async def _sources_run(self, *, task_status: trio.TaskStatus[None]) -> None:
        await self.sources.run(
            startup_timeout=self.project.config.system.module_startup_timeout,
            task_status=task_status,
        )

    async def _web(
        self,
        host: str,
        port: int,
        tls: tuple[str, str] | None,
        *,
        task_status: trio.TaskStatus[list[str]],
    ) -> None:
        from ._web import serve_web  # quart and hypercorn load only when serving

        try:
            await serve_web(self, host, port, self._shutdown.wait, tls=tls, task_status=task_status)
        finally:
            self._web_running = False
            self.supervisor.request_stop()
            self.tasks.request_stop()

    def request_shutdown(self) -> None:
        """Stop serving: the web server first, then the modules."""
        self._shutdown.set()
        self.tasks.release_waiters()
        if not self._web_running:
            self.supervisor.request_stop()
            self.tasks.request_stop()

    async def query(self, path: str) -> Response:
        """Query mode: load and initialize modules (no ``_run``/``_loop``), answer one GET of
        ``/api/PATH``, finalize the modules."""
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        request = Request("GET", parts.path.removeprefix("/api"), query, internal=True)
        async with trio.open_nursery() as outer:
            await outer.start(self._sources_run)
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(functools.partial(self.supervisor.run, run_routines=False))
                    try:
                        return await self.handle(request)
                    finally:
                        self.supervisor.request_stop()
            finally:
                outer.cancel_scope.cancel()


def _build_sources(project: Project) -> DataSources:
    sources = []
    for index, entry in enumerate(project.config.data_source):
        try:
            sources.append(build_source(entry.model_dump(), project_dir=project.directory))
        except SourceConfigError as exc:
            raise ProjectError(str(exc), file=project.where("data_source", index)) from None
    return DataSources(sources)


def _build_modules(
    project: Project, settings: ModuleSettings, command_mode: bool
) -> list[UserModule]:
    modules: list[UserModule] = []
    used: set[str] = set()
    for index, entry in enumerate(project.config.module):
        if command_mode and not entry.enabled_for_commandline:
            continue
        base = entry.name or project.resolve(entry.file).stem
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}__{n}"
        used.add(name)
        modules.append(
            UserModule(
                name,
                project.resolve(entry.file),
                entry.parameters,
                settings,
                data_suffix=entry.data_suffix,
                call_timeout=entry.call_timeout,
                where=project.where("module", index),
                restart=entry.restart,
            )
        )
    return modules


def _outcome(response: Response) -> str:
    content = response.content
    if isinstance(content, dict) and content.get("status") == "error":
        return str(content.get("message", "error"))
    return "ok" if response.status < 400 else "error"


async def _call_builtin(route: Route, kwargs: dict[str, Any]) -> Any:
    return await route.handler(**kwargs)


def _module_invoker(module: UserModule) -> Any:
    async def invoke(route: Route, kwargs: dict[str, Any]) -> Any:
        label = f"web API {'|'.join(route.methods)} {route.path}"
        try:
            return await module.call(label, route.handler, **kwargs)
        except (Exception, SystemExit) as exc:
            module.record_error(label, f"{type(exc).__name__}: {exc}", exc)
            raise HandlerFailed(
                f"module {module.name}: {label}: {type(exc).__name__}: {exc}"
            ) from exc

    return invoke
