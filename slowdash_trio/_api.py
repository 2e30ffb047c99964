"""The built-in web API: ping, config, channels, data and control.

Answers follow the reference's shapes. Times in data replies are relative to ``start``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import trio

from ._dispatch import error_response
from ._errors import ModuleStuck
from ._usermodule import UserModule
from ._version import __version__
from .webapi import BadRequest, Request, Response, WebApi

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.api")

REDUCERS = frozenset(
    {
        *("first", "last", "mean", "median", "sum", "min", "max", "count"),
        *("std", "sd", "stdev", "rms", "sigma", "sem", "err"),
    }
)


def core_api(server: Server) -> WebApi:
    api = WebApi()

    @api.get("/ping")
    async def ping() -> Any:
        return ["pong"]

    @api.get("/config")
    async def config() -> Any:
        project = server.project
        doc: dict[str, Any] = {
            "slowdash": {"version": f"slowdash-trio {__version__}"},
            "project": {
                "name": project.name,
                "title": project.title,
                "is_secure": project.is_secure,
                "is_cgi": False,
                "is_command": server.command_mode,
                "is_async": True,
            },
        }
        if project.config.style is not None:
            doc["style"] = project.config.style
        if server.modules:
            doc["user_module"] = {m.name: m.status.to_json() for m in server.modules}
        if project.config.task:
            doc["task_module"] = {t.name: {"auto_load": t.auto_load} for t in project.config.task}
        return doc

    @api.get("/channels")
    async def channels() -> Any:
        answers = await _each_module(server.serving_modules(), UserModule.get_channels)
        return [entry for answer in answers for entry in answer]

    async def unknown_channels(request: Request, merged: Response | None) -> Response | None:
        requested = _channel_list(request.parts[1])
        content = merged.content if merged is not None else None
        if merged is not None and (merged.status >= 400 or not isinstance(content, dict)):
            return merged
        absent = [name for name in requested if not content or name not in content]
        if not absent:
            return merged
        known = await server.known_channels()
        unknown = [name for name in absent if name not in known]
        if not unknown:
            return merged if merged is not None else Response({})
        if len(unknown) == len(requested):
            return error_response(
                404, f"unknown channel{'s'[: len(unknown) > 1]}: {', '.join(unknown)}"
            )
        reply = merged if merged is not None else Response({})
        reply.headers["X-Slowdash-Unknown-Channels"] = ",".join(
            urllib.parse.quote(name, safe="") for name in unknown
        )
        return reply

    @api.get("/data/{channels}", finalize=unknown_channels)
    async def data(
        channels: str,
        length: float = 3600.0,
        to: float = 0.0,
        resample: float = -1.0,
        reducer: str = "last",
        filler: str = "fillna",
        envelope: int = 0,
        prior_data: int = 0,
    ) -> Any:
        names = _channel_list(channels)
        if length <= 0:
            raise BadRequest(f"query parameter 'length': must be positive, not {length:g}")
        if reducer not in REDUCERS:
            raise BadRequest(
                f"query parameter 'reducer': unknown reducer {reducer!r} "
                f"(one of {', '.join(sorted(REDUCERS))})"
            )
        if envelope not in (0, 1, 2) or prior_data not in (0, 1, 2):
            raise BadRequest("query parameters 'envelope' and 'prior_data' take 0, 1 or 2")
        del resample, filler  # used by data sources; module values are current values
        now = time.time()
        end = to if to > 0 else now + to
        if not (to == 0 or end - length <= now <= end + 1):
            return None  # user modules have current values only
        start = end - length
        plan = server.route_channels(names)
        values = await _each_module(
            list(plan),
            lambda module: _module_values(module, plan[module]),
        )
        reply: dict[str, Any] = {}
        for answer in values:
            for name, value in answer:
                reply[name] = {"start": start, "length": length, "t": now - start, "x": value}
        return reply

    async def unhandled_command(request: Request, merged: Response | None) -> Response | None:
        if merged is not None:
            return merged
        stuck = [m.name for m in server.modules if m.status.stuck]
        note = f" (stuck, not asked: {', '.join(stuck)})" if stuck else ""
        return error_response(400, f"no module handled the command{note}")

    @api.post("/control", finalize=unhandled_command)
    async def control(request: Request) -> Any:
        doc = request.json()
        if not isinstance(doc, dict):
            raise BadRequest("the control document must be a JSON object")
        logger.info("control: %s", doc)
        for module in server.serving_modules():
            try:
                result = await module.process_command(doc)
            except ModuleStuck as exc:
                logger.warning("%s", exc)
                continue
            if result is not None:
                return _command_result(module.name, result)
        return None

    return api


def _channel_list(text: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    if not names:
        raise BadRequest("no channel given")
    return names


async def _each_module(modules: list[UserModule], fn: Any) -> list[Any]:
    """``fn(module)`` for every module concurrently; answers in module order."""
    answers: list[Any] = [None] * len(modules)

    async def one(index: int, module: UserModule) -> None:
        answers[index] = await fn(module)

    async with trio.open_nursery() as nursery:
        for index, module in enumerate(modules):
            nursery.start_soon(one, index, module)
    return answers


async def _module_values(
    module: UserModule, wanted: list[tuple[str, str]]
) -> list[tuple[str, Any]]:
    out = []
    for reply_name, channel in wanted:
        value = await module.get_data(channel)
        if value is not None:
            out.append((reply_name, value))
    return out


def _command_result(module: str, result: Any) -> Response:
    if result is True:
        return Response({"status": "ok"})
    if result is False:
        return error_response(400, f"module {module}: the command failed")
    if isinstance(result, int):
        ok = 200 <= result < 400
        return Response({"status": "ok" if ok else "error"}, result)
    if isinstance(result, dict):
        failed = str(result.get("status", "")).lower() == "error"
        return Response(result, 400 if failed else 200)
    return Response({"status": "ok", "result": result})
