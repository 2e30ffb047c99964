"""WebSockets at /ws/attach/{topic}, end to end with real clients on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
from support import EXAMPLES, MakeProject, serving, until
from trio_websocket import CloseReason, ConnectionClosed, WebSocketConnection

from slowdash_trio._hub import HubLimits
from slowdash_trio._project import load_project
from slowdash_trio._server import Server


def ws_url(client: httpx.AsyncClient, topic: str = "current_data") -> str:
    return str(client.base_url).replace("http://", "ws://") + "/ws/attach/" + topic


async def receive_json(ws: WebSocketConnection) -> Any:
    with trio.fail_after(20):
        return json.loads(await ws.get_message())


async def wait_attached(server: Server, count: int, topic: str = "current_data") -> None:
    await until(lambda: len(server.hub.subscribers(topic)) >= count)


async def close_reason(ws: WebSocketConnection) -> CloseReason:
    """Read until the server closes the connection; why it did."""
    with trio.fail_after(20):
        while True:
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason


@asynccontextmanager
async def raw_client(url: str, *, stalled: bool = False) -> AsyncIterator[WebSocketConnection]:
    """A client whose TCP connection is closed on leaving, whatever the WebSocket's state (as
    a browser tab that is closed; trio-websocket leaves it open after a server's close).

    ``stalled``: it never reads: a small receive buffer and a one-message queue, so the
    server's writes back up quickly."""
    host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if stalled:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            host,
            "/" + url.split("/", 3)[3],
            message_queue_size=1,
            receive_buffer_size=1024,
        )
        try:
            yield ws
        finally:
            nursery.cancel_scope.cancel()
            stream.socket.close()


DELIVERER = """
import trio
from slowdash_controls import ControlSystem
node = ControlSystem().value(0)
go = None
count = 0

def _setup(app, params):
    global go, count
    go, count = params["go"], params["count"]

async def _run():
    await go.wait()
    for i in range(count):
        node.set(i)
        await node.deliver("stream.n")
        await ControlSystem.aio_publish({"i": i}, "stream.tree")
        if i % 10 == 0:
            await trio.sleep(0)
"""


async def test_deliver_reaches_twenty_clients_in_order(make_project: MakeProject) -> None:
    go = trio.Event()
    count = 60
    project = make_project({"deliverer": DELIVERER}, parameters={"go": go, "count": count})
    async with serving(project) as (server, client):
        results: dict[int, list[tuple[int, int]]] = {}
        async with trio.open_nursery() as nursery:

            async def listen(index: int) -> None:
                got: list[tuple[int, int]] = []
                async with trio_websocket.open_websocket_url(ws_url(client)) as ws:
                    await wait_attached(server, 20)
                    go.set()
                    while len(got) < count:
                        frame = await receive_json(ws)
                        assert set(frame) == {"stream.n", "stream.tree"}, frame
                        assert frame["stream.tree"]["x"] == {"tree": {"i": frame["stream.n"]["x"]}}
                        got.append((frame["stream.n"]["x"], frame["stream.tree"]["x"]["tree"]["i"]))
                results[index] = got

            for index in range(20):
                nursery.start_soon(listen, index)
        expected = [(i, i) for i in range(count)]
        assert all(results[i] == expected for i in range(20)), "every value, in order"
        assert server.hub.coalesced == 0, "clients that keep up see no coalescing"


async def test_a_stalled_client_delays_nobody_and_is_dropped(make_project: MakeProject) -> None:
    async with serving(make_project()) as (server, client):
        server.hub.limits = HubLimits(max_frames=4, max_lag_updates=20, lag_timeout=3600)
        payload = "y" * 20_000
        async with (
            raw_client(ws_url(client), stalled=True) as stalled,
            trio.open_nursery() as nursery,
        ):
            readers = [
                await trio_websocket.connect_websocket_url(nursery, ws_url(client))
                for _ in range(3)
            ]
            await wait_attached(server, 4)
            lagged = False
            published = 0
            while server.hub.dropped == 0:
                assert published < 5_000, "the stalled client was never dropped"
                server.hub.publish_current({"big": {"t": published, "x": payload}})
                for ws in readers:  # lockstep: every reader gets each value before the next
                    frame = await receive_json(ws)
                    assert frame["big"]["t"] == published
                published += 1
                lagged = lagged or any(s.lagging for s in server.hub.subscribers())
            assert lagged, "the stalled client was marked lagging before it was dropped"
            assert server.hub.coalesced == 21, "dropped at the 21st coalesced update"
            assert len(server.hub.subscribers()) == 3, "the readers are still attached"
            # the stalled client's connection is cut: reading it ends with ConnectionClosed
            # its connection ends: with "try again later" (1013) if it reads again before the
            # close grace ends, else cut (1006)
            assert (await close_reason(stalled)).code in (1013, 1006)
            # the others go on
            server.hub.publish_current({"after": {"t": 1, "x": 1}})
            for ws in readers:
                assert await receive_json(ws) == {"after": {"t": 1, "x": 1}}
            for ws in readers:
                await ws.aclose()


async def test_bad_messages_get_an_error_and_change_nothing(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, Any, str | None]] = []

    async def set_export(name: str, value: Any, sender: str | None = None) -> bool:
        written.append((name, value, sender))
        return True

    async with serving(make_project()) as (server, client):
        monkeypatch.setattr(server.tasks, "set_export", set_export)
        async with (
            trio_websocket.open_websocket_url(ws_url(client)) as ws,
            trio_websocket.open_websocket_url(ws_url(client)) as other,
        ):
            bad = [
                ("not json", "not valid JSON"),
                ("[1, 2]", "not list"),
                ('{"a": 3}', "a packet is an object"),
                ('{"a b": {"t": 1, "x": 1}}', "bad channel name"),
                ('{"a": {"t": "x", "x": 1}}', "t must be a number"),
                ('{"a": {"t": 1, "x": "' + "z" * (1 << 20) + '"}}', "larger than"),
                (b"\xff binary", "not valid JSON"),
            ]
            for message, error in bad:
                await ws.send_message(message)
                reply = await receive_json(ws)
                assert set(reply) == {"error"} and error in reply["error"], (message, reply)
            assert server.hub.current() == {} and written == []
            await ws.send_message("")  # empty: ignored, as the original does
            # a good frame after all that: cached, sent to everyone (the sender too), written
            await ws.send_message('{"slider": {"t": 5, "x": 0.25}}')
            assert await receive_json(ws) == {"slider": {"t": 5, "x": 0.25}}
            assert await receive_json(other) == {"slider": {"t": 5, "x": 0.25}}
            assert written == [("slider", 0.25, None)]
            # larger than the server ever reads: hypercorn closes the connection (1009); it
            # notices the end of it only when the client drops the TCP connection
            async with raw_client(ws_url(client)) as huge:
                await wait_attached(server, 3)
                await huge.send_message("x" * (5 << 20))
                assert await receive_json(huge) == {"slider": {"t": 5, "x": 0.25}}  # replay
                assert (await close_reason(huge)).code == 1009
            await until(lambda: len(server.hub.subscribers()) == 2)
            await client.post("/api/emit/current_data", content=b'{"z": {"t": 1, "x": 2}}')
            assert await receive_json(other) == {"z": {"t": 1, "x": 2}}


async def test_a_bad_topic_is_closed_with_a_reason(make_project: MakeProject) -> None:
    async with serving(make_project()) as (_, client):
        async with raw_client(ws_url(client, "bad%20topic!")) as ws:
            reason = await close_reason(ws)
        assert reason.code == 1008 and "bad topic" in (reason.reason or "")
        assert (await client.get("/api/ping")).json() == ["pong"]


async def test_other_topics_are_forwarded_verbatim(make_project: MakeProject) -> None:
    async with (
        serving(make_project()) as (server, client),
        trio_websocket.open_websocket_url(ws_url(client, "chat")) as a,
        trio_websocket.open_websocket_url(ws_url(client, "chat")) as b,
    ):
        await wait_attached(server, 2, "chat")
        await a.send_message("hello, not JSON")
        for ws in (a, b):
            with trio.fail_after(20):
                assert await ws.get_message() == "hello, not JSON"
        await client.post("/api/emit/chat", content="from http")
        for ws in (a, b):
            with trio.fail_after(20):
                assert await ws.get_message() == "from http"
        assert server.hub.current() == {}


async def test_reconnecting_client_gets_the_current_values_at_once(
    make_project: MakeProject,
) -> None:
    async with serving(make_project()) as (server, client):
        emitted = {"a": {"t": 1.0, "x": 1}, "b": {"t": 2.0, "x": {"tree": {"k": "v"}}}}
        reply = await client.post("/api/emit/current_data", content=json.dumps(emitted))
        assert reply.status_code == 201
        for _ in range(2):  # attach, go away, attach again
            async with trio_websocket.open_websocket_url(ws_url(client)) as ws:
                assert await receive_json(ws) == emitted
                server.hub.publish_current({"a": {"t": 3.0, "x": 3}})
                assert await receive_json(ws) == {"a": {"t": 3.0, "x": 3}}
            emitted["a"] = {"t": 3.0, "x": 3}
        await until(lambda: not server.hub.subscribers())


async def test_shutdown_closes_attached_clients(make_project: MakeProject) -> None:
    async with (
        serving(make_project()) as (server, client),
        raw_client(ws_url(client)) as ws,
        raw_client(ws_url(client), stalled=True) as stalled,
    ):
        await wait_attached(server, 2)
        for i in range(200):  # fill the stalled client's buffers
            server.hub.publish_current({"big": {"t": i, "x": "y" * 20_000}})
        with trio.fail_after(20):
            while True:
                frame = await receive_json(ws)
                if frame["big"]["t"] == 199:
                    break
        server.request_shutdown()
        assert (await close_reason(ws)).code == 1001
        del stalled


async def test_streaming_example_streams_the_trace_and_takes_the_slider() -> None:
    project = load_project(EXAMPLES / "streaming")
    async with (
        serving(project) as (server, client),
        trio_websocket.open_websocket_url(ws_url(client)) as ws,
    ):
        frame: dict[str, Any] = {}
        while "scope.trace" not in frame:
            frame = await receive_json(ws)
        trace = frame["scope.trace"]["x"]
        assert len(trace["x"]) == len(trace["y"]) == 200
        # the slider, as the browser sends it (a range input's value is text)
        await ws.send_message(json.dumps({"scope.fx": {"t": time.time(), "x": "2.5"}}))
        with trio.fail_after(20):
            while True:
                fx = (await receive_json(ws)).get("scope.fx")
                if fx is not None and fx["x"] == 2.5 and isinstance(fx["x"], float):
                    break  # delivered by the task: its set() converted the text
        data = (await client.get("/api/data/scope.fx,scope.trace")).json()
        assert data["scope.fx"]["x"] == 2.5 or data["scope.fx"]["x"][-1] == 2.5
        listed = {e["name"]: e.get("type") for e in (await client.get("/api/channels")).json()}
        assert listed["scope.trace"] == "graph" and "scope.fx" in listed
        assert server.hub.coalesced == 0
