"""Limits set under ``system:``: WebSocket connections and message sizes (the request body,
the points of a reply and the callback deadlines have their tests beside their features)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio_websocket
from support import build_project, serving, until
from test_websocket import close_reason, raw_client, receive_json, wait_attached, ws_url

from slowdash_trio._config import ProjectConfig


async def test_websocket_connections_are_counted(tmp_path: Path) -> None:
    project = build_project(tmp_path, system={"max_websockets": 2})
    async with serving(project) as (server, client):
        url = ws_url(client)
        async with (
            trio_websocket.open_websocket_url(url) as first,
            trio_websocket.open_websocket_url(url) as second,
        ):
            await wait_attached(server, 2)
            async with raw_client(url) as third:  # one too many: told why, and closed
                reason = await close_reason(third)
                assert reason.code == 1013 and reason.reason == "too many WebSockets (2)"
            assert len(server.hub.subscribers("current_data")) == 2
            await first.send_message('{"a": {"t": 1, "x": 1}}')
            assert await receive_json(second) == {"a": {"t": 1, "x": 1}}
        await until(lambda: server.hub.subscribers("current_data") == [])
        async with trio_websocket.open_websocket_url(url) as again:  # room again
            assert await receive_json(again) == {"a": {"t": 1, "x": 1}}  # the cache, replayed
            await again.send_message('{"b": {"t": 1, "x": 2}}')
            assert await receive_json(again) == {"b": {"t": 1, "x": 2}}


async def test_websocket_message_size(tmp_path: Path) -> None:
    project = build_project(tmp_path, system={"max_websocket_message": 2048})
    async with serving(project) as (server, client):
        url = ws_url(client)
        async with trio_websocket.open_websocket_url(url) as ws:
            big = json.dumps({"a": {"t": 1, "x": "z" * 3000}})
            await ws.send_message(big)
            assert await receive_json(ws) == {"error": "message larger than 2048 bytes"}
            await ws.send_message('{"a": {"t": 2, "x": 5}}')  # the connection goes on
            assert await receive_json(ws) == {"a": {"t": 2, "x": 5}}
            # the same limit for HTTP emits
            reply = await client.post("/api/emit/current_data", content=big.encode())
            assert reply.status_code == 400 and "larger than 2048" in reply.json()["message"]
        # far beyond the limit (4x) the server does not read it: closed with 1009
        async with raw_client(url) as huge:
            await wait_attached(server, 1)
            await huge.send_message("x" * 10_000)
            assert (await close_reason(huge)).code == 1009


@pytest.mark.parametrize(
    ("system", "fragment"),
    [
        ({"max_websockets": 0}, "max_websockets"),
        ({"max_websocket_message": 10}, "max_websocket_message"),
        ({"max_points": 0}, "max_points"),
        ({"max_request_body": -1}, "max_request_body"),
        ({"module_call_timeout": 0}, "module_call_timeout"),
        ({"audit": {"store": 5, "bogus": 1, "table": "audit"}}, None),
    ],
)
def test_limits_are_checked(system: dict[str, object], fragment: str | None) -> None:
    if fragment is None:  # numbers become strings; unknown keys are warnings (at load)
        config = ProjectConfig.model_validate({"system": system})
        assert config.system.audit.store == "5"
        return
    with pytest.raises(ValueError, match=fragment):
        ProjectConfig.model_validate({"system": system})
