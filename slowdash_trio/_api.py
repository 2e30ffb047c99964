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
from ._openapi import openapi
from ._sources import QueryError, parse_query
from ._sources._schema import check_channel_name
from ._streaming_api import append_point
from ._usermodule import UserModule
from ._version import __version__
from .webapi import BadRequest, Request, Response, WebApi

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.api")


def core_api(server: Server) -> WebApi:
    api = WebApi()

    @api.get("/ping")
    async def ping() -> Any:
        return ["pong"]

    @api.get("/openapi.json")
    async def openapi_json() -> Any:
        return openapi(
            server.mounts(),
            title=server.project.title,
            version=__version__,
            basic_auth=server.auth is not None,
        )

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
        if server.sources:
            doc["data_source"] = server.sources.status()
        return doc

    @api.get("/channels")
    async def channels(force_rescan: str = "") -> Any:
        modules: list[Any] = []
        problems: list[str] = []

        async def from_modules() -> None:
            answers = await _each_module(server.serving_modules(), UserModule.get_channels)
            modules.extend(entry for answer in answers for entry in answer)

        async def from_sources() -> None:
            entries, found = await server.sources.channels(force_rescan=bool(force_rescan))
            sources.extend(entries)
            problems.extend(found)

        sources: list[Any] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(from_modules)
            if server.sources:
                nursery.start_soon(from_sources)
        return _with_problems(_distinct(modules + sources), problems)

    async def unknown_channels(request: Request, merged: Response | None) -> Response | None:
        requested = _channel_list(request.parts[1])
        content = merged.content if merged is not None else None
        if merged is not None and (merged.status >= 400 or not isinstance(content, dict)):
            return merged
        absent = [name for name in requested if not content or name not in content]
        if not absent:
            return merged
        bad = [name for name in absent if not _valid_channel(name)]
        known = await server.known_channels()
        unknown = [name for name in absent if name not in known]
        if bad and len(unknown) == len(requested):
            return error_response(
                400,
                f"bad channel name {bad[0][:60]!r}: channel names are ASCII letters, digits "
                "and '. _ - :'",
            )
        if not unknown:
            return merged if merged is not None else Response({})
        # with a data source down, a channel it would know is not "unknown": 200 with both
        # headers, so the dashboard shows the source's problem rather than a 404
        down = merged is not None and PROBLEMS_HEADER in merged.headers
        if len(unknown) == len(requested) and not down:
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
        align: int = 0,
    ) -> Any:
        names = _channel_list(channels)
        now = time.time()
        try:
            query = parse_query(
                names,
                length=length,
                to=to,
                resample=resample,
                reducer=reducer,
                filler=filler,
                envelope=envelope,
                prior_data=prior_data,
                align=align,
                now=now,
                max_points=server.project.config.system.max_points,
            )
        except QueryError as exc:
            raise BadRequest(str(exc)) from None
        reply: dict[str, Any] = {}
        problems: list[str] = []

        async def from_modules() -> None:
            # user modules have current values only: asked when the window holds "now"
            if not (to == 0 or query.begin <= now <= query.to + 1):
                return
            plan = server.route_channels(names)
            values = await _each_module(
                list(plan), lambda module: _module_values(module, plan[module])
            )
            start = query.begin
            for answer in values:
                for name, value in answer:
                    reply[name] = {"start": start, "length": length, "t": now - start, "x": value}

        source_reply: dict[str, Any] = {}

        refused: list[QueryError] = []

        async def from_sources() -> None:
            valid = [name for name in names if _valid_channel(name)]
            if valid:
                try:
                    found, trouble = await server.sources.data(query.with_channels(valid))
                except QueryError as exc:  # the request asks too much (too many points...)
                    refused.append(exc)
                    return
                source_reply.update(found)
                problems.extend(trouble)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(from_modules)
            if server.sources:
                nursery.start_soon(from_sources)
        if refused:
            raise BadRequest(str(refused[0]))
        for name, value in source_reply.items():
            current = reply.get(name)
            reply[name] = value
            # a channel recorded and also current in a module (a task's exported variable
            # that the task records): the recorded series, and the current value at its end
            if current is not None:
                append_point(value, now, current)
        return _with_problems(reply, problems)

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


def _valid_channel(name: str) -> bool:
    try:
        check_channel_name(name)
    except QueryError:
        return False
    return True


def _distinct(entries: list[Any]) -> list[Any]:
    """Channel entries without repeats: a channel that several modules or sources list with
    the same type is listed once, by the first (modules before data sources)."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            key = (entry["name"], str(entry.get("type") or "timeseries"))
            if key in seen:
                continue
            seen.add(key)
        kept.append(entry)
    return kept


def _with_problems(content: Any, problems: list[str]) -> Any:
    """The content, with a header naming the data sources that could not answer."""
    if not problems:
        return content
    response = Response(content)
    response.headers[PROBLEMS_HEADER] = urllib.parse.quote("; ".join(problems))
    return response


PROBLEMS_HEADER = "X-Slowdash-Source-Problems"


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
