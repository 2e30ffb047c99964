"""``/api/emit/{topic}``, ``/api/consume/current_data`` and the current values merged into
``/api/channels`` and ``/api/data``; also what a WebSocket client's frame goes through."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

import orjson

from ._audit import requester
from ._hub import CURRENT_DATA
from ._sources import QueryError
from ._sources._schema import check_channel_name
from .webapi import BadRequest, Request, Response, WebApi

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.streaming")

_TOPIC = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


def check_topic(topic: str) -> str:
    """``topic`` if it is a usable topic name; else `ValueError`."""
    if not _TOPIC.fullmatch(topic):
        raise ValueError(
            f"bad topic {topic[:60]!r}: topics are ASCII letters, digits and '. _ - :'"
        )
    return topic


def parse_current(body: bytes | str, max_size: int) -> dict[str, dict[str, Any]]:
    """``{CH: {"t": T, "x": X, ...}, ...}`` from JSON text; `ValueError` naming the problem."""
    if len(body) > max_size:
        raise ValueError(f"message larger than {max_size} bytes")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(
            'current data is a JSON object {"CHANNEL": {"t": TIME, "x": VALUE}, ...}, '
            f"not {type(doc).__name__}"
        )
    for name, packet in doc.items():
        try:
            check_channel_name(name)
        except QueryError as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(packet, dict) or "t" not in packet or "x" not in packet:
            raise ValueError(f'channel {name}: a packet is an object {{"t": TIME, "x": VALUE}}')
        t = packet["t"]
        times = t if isinstance(t, list) else [t]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in times):
            raise ValueError(f"channel {name}: t must be a number (or a list of numbers)")
    return doc


async def accept_current(
    server: Server,
    values: dict[str, dict[str, Any]],
    sender: str | None,
    *,
    fan_out: bool = True,
    user: str | None = None,
    client: str | None = None,
) -> list[str]:
    """Cache (and fan out) current data, then write each non-null ``x`` back to the exported
    node of that name (recorded in the audit log as coming from ``user`` at ``client``);
    returns the channels that were set."""
    if fan_out:
        server.hub.publish_current(values, sender=sender)
    else:
        server.hub.cache_current(values)
    written = []
    for name, packet in values.items():
        if packet.get("x") is None:
            continue
        try:
            if not await server.tasks.set_export(name, packet["x"], sender):
                continue
            written.append(name)
            status, outcome = 200, "ok"
        except Exception as exc:
            logger.exception("writing %s to its exported node failed", name)
            status, outcome = 500, f"{type(exc).__name__}: {exc}"
        server.audit.record(
            user=user,
            client=client,
            action=f"write-back {name}",
            detail=orjson.dumps(packet["x"]).decode()[:200],
            status=status,
            outcome=outcome,
        )
    return written


def streaming_api(server: Server) -> WebApi:
    api = WebApi()
    hub = server.hub

    @api.post("/emit/{topic}")
    async def emit(request: Request, topic: str, body: bytes, sender: str = "") -> Any:
        try:
            check_topic(topic)
            if topic == CURRENT_DATA:
                values = parse_current(body, hub.limits.max_message)
            elif len(body) > hub.limits.max_message:
                raise ValueError(f"message larger than {hub.limits.max_message} bytes")
            else:
                text = body.decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"emit {topic[:60]}: {exc}") from None
        if topic == CURRENT_DATA:
            await accept_current(
                server, values, sender or None, user=requester(request), client=request.client
            )
        else:
            hub.publish(topic, text)
        return Response(True, 201)

    @api.post("/consume/current_data")
    async def consume(request: Request, body: bytes, sender: str = "") -> Any:
        try:
            values = parse_current(body, hub.limits.max_message)
        except ValueError as exc:
            raise BadRequest(f"consume current_data: {exc}") from None
        written = await accept_current(
            server,
            values,
            sender or None,
            fan_out=False,
            user=requester(request),
            client=request.client,
        )
        return {"status": "ok", "set": written}

    async def add_channels(request: Request, merged: Response | None) -> Response | None:
        del request
        if merged is not None and (merged.status >= 400 or not isinstance(merged.content, list)):
            return merged
        listed = merged.content if merged is not None else []
        names = {entry.get("name") for entry in listed if isinstance(entry, dict)}
        extra = [
            {"name": name, "type": _channel_type(packet.get("x")), "current": True}
            for name, packet in hub.current().items()
            if name not in names
        ]
        if not extra:
            return merged
        if merged is None:
            return Response(extra)
        merged.content = listed + extra
        return merged

    @api.get("/channels", finalize=add_channels)
    async def channels() -> Any:
        return None

    async def add_data(request: Request, merged: Response | None) -> Response | None:
        if merged is not None and (merged.status >= 400 or not isinstance(merged.content, dict)):
            return merged
        names = [name for name in request.parts[1].split(",") if name]
        try:
            length = float(request.query.get("length") or 3600)
            to = float(request.query.get("to") or 0)
        except ValueError:
            return merged
        if to <= 0:
            to = time.time() + 3
        content = merged.content if merged is not None else {}
        changed = False
        for name in names:
            found = hub.cached(name)
            if found is None:
                continue
            t_abs, packet = found
            if t_abs is None or not to - length <= t_abs <= to:
                continue
            if name not in content:
                content[name] = packet
                changed = True
            elif append_point(content[name], t_abs, packet):
                changed = True
        if not changed:
            return merged
        if merged is None:
            return Response(content)
        merged.content = content
        return merged

    @api.get("/data/{channels}", finalize=add_data)
    async def data(channels: str) -> Any:
        del channels
        return None

    return api


def append_point(entry: Any, t_abs: float, packet: dict[str, Any]) -> bool:
    """Append a current point (``packet["x"]`` at ``t_abs``) to a reply entry if it is newer
    than the entry's last point (by more than 1 ms)."""
    if not isinstance(entry, dict) or "t" not in entry or "x" not in entry:
        return False
    start = entry.get("start", 0)
    t, x = entry["t"], entry["x"]
    if not isinstance(start, int | float):
        return False
    last = t[-1] if isinstance(t, list) and t else t
    if not isinstance(last, int | float) or t_abs <= float(start) + last + 0.001:
        return False
    new_t = t_abs - float(start)
    new_x = packet["x"]
    if isinstance(new_x, list) and isinstance(packet.get("t"), list):
        new_x = new_x[-1] if new_x else None
    if isinstance(t, list) and isinstance(x, list):
        entry["t"] = [*t, new_t]
        entry["x"] = [*x, new_x]
    elif isinstance(x, dict) or isinstance(new_x, dict):
        entry["t"], entry["x"] = new_t, new_x  # an object: the newer one replaces it
    else:
        entry["t"] = [t, new_t]
        entry["x"] = [x, new_x]
    return True


def _channel_type(x: Any) -> str:
    if isinstance(x, bool):
        return "numeric"
    if isinstance(x, int | float):
        return "numeric"
    if isinstance(x, dict):
        for key, kind in (("y", "graph"), ("bins", "histogram"), ("table", "table")):
            if key in x:
                return kind
        return "tree" if "tree" in x else "unknown"
    if isinstance(x, str):
        try:
            float(x)
        except ValueError:
            return "unknown"
        return "numeric"
    return "unknown"
