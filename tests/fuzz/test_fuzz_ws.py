"""Hypothesis against ``/ws/attach/current_data`` and another topic, on a real server on
127.0.0.1: arbitrary text, bytes and JSON documents. Every message is either answered with
an ``{"error": ...}`` frame to its sender only (and changes nothing), or accepted and passed
on; the connections and the server survive, and another subscriber keeps receiving valid
frames."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_websocket
from fuzz.fuzzing import fuzz_settings, off_trio, on_trio
from hypothesis import event, example, given
from hypothesis import strategies as st
from support import build_project, serving
from test_websocket import wait_attached
from trio_websocket import ConnectionClosed, WebSocketConnection

SENTINEL = "fuzz_sentinel"  # the channel (or message prefix) that marks the end of an example

NUMBERS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=15,
)
CHANNELS = st.one_of(
    st.sampled_from(["a", "b.c", "x:y", "a b", "", "ü", "n" * 300]), st.text(max_size=12)
)
PACKETS = st.one_of(
    st.fixed_dictionaries(
        {"t": st.one_of(NUMBERS, st.lists(NUMBERS, max_size=3)), "x": JSON},
        optional={"extra": JSON},
    ),
    st.fixed_dictionaries({}, optional={"t": JSON, "x": JSON, "y": JSON}),
    JSON,
)
CURRENT_DOCS = st.dictionaries(CHANNELS, PACKETS, max_size=4)
VALID_DOCS = st.dictionaries(
    st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True),
    st.fixed_dictionaries({"t": NUMBERS, "x": JSON}),
    min_size=1,
    max_size=4,
)
MESSAGES = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    JSON.map(json.dumps),
    CURRENT_DOCS.map(json.dumps),
    VALID_DOCS.map(json.dumps),
    VALID_DOCS.map(lambda doc: json.dumps(doc).encode()),
    st.sampled_from(['{"a": {"t": NaN, "x": 1}}', '{"a": {"t": 1e999, "x": 1}}', "[" * 5000]),
)


def ws_url(client: httpx.AsyncClient, topic: str) -> str:
    return str(client.base_url).replace("http://", "ws://") + "/ws/attach/" + topic


async def frames_until(ws: WebSocketConnection, marker: Any) -> list[Any]:
    """The frames read up to the one that holds ``marker`` (parsed, for current_data: a
    frame holding the sentinel channel with that value; else the message itself)."""
    seen: list[Any] = []
    while True:
        message = await ws.get_message()
        assert isinstance(message, str), message
        if isinstance(marker, str):
            if message == marker:
                return seen
            seen.append(message)
            continue
        frame = json.loads(message)
        assert isinstance(frame, dict), frame
        packet = frame.pop(SENTINEL, None)
        if frame:
            seen.append(frame)
        if packet == marker:
            return seen


async def test_current_data_messages(tmp_path: Path) -> None:
    async with (
        serving(build_project(tmp_path)) as (server, client),
        trio_websocket.open_websocket_url(ws_url(client, "current_data")) as ws,
        trio_websocket.open_websocket_url(ws_url(client, "current_data")) as watcher,
    ):
        await wait_attached(server, 2)
        counter = iter(range(1, 1_000_000))

        async def one(message: str | bytes) -> tuple[list[Any], list[Any]]:
            n = next(counter)
            await ws.send_message(message)
            await ws.send_message(json.dumps({SENTINEL: {"t": n, "x": n}}))
            sent = {"t": n, "x": n}
            return await frames_until(ws, sent), await frames_until(watcher, sent)

        @fuzz_settings(max_examples=150)
        @given(message=MESSAGES)
        @example(message='{"a": {"t": 1, "x": 1}, "b c": {"t": 1, "x": 2}}')
        @example(message=b"\xff\xfe")
        @example(message='{"a": {"t": [1, 2], "x": [1]}}')
        def current(message: str | bytes) -> None:
            before = server.hub.current()
            mine, theirs = on_trio(one, message)
            errors = [frame for frame in mine if set(frame) == {"error"}]
            assert all(isinstance(frame["error"], str) for frame in errors), mine
            assert len(errors) <= 1, mine
            event("refused" if errors else "accepted" if theirs else "nothing to pass on")
            # the error, if any, went to the sender only; everything else to both
            assert all("error" not in frame for frame in theirs), theirs
            assert [frame for frame in mine if frame not in errors] == theirs, (mine, theirs)
            if errors:  # refused: nothing cached, nothing passed on
                assert theirs == []
                after = server.hub.current()
                after.pop(SENTINEL)
                before.pop(SENTINEL, None)
                assert after == before

        await off_trio(current)
        # the server and both connections still work
        await ws.send_message('{"last": {"t": 1, "x": 2}}')
        for peer in (ws, watcher):
            with trio.fail_after(20):
                assert json.loads(await peer.get_message()) == {"last": {"t": 1, "x": 2}}
        assert (await client.get("/api/ping")).json() == ["pong"]


async def test_other_topic_messages(tmp_path: Path) -> None:
    async with (
        serving(build_project(tmp_path)) as (server, client),
        trio_websocket.open_websocket_url(ws_url(client, "chat")) as ws,
        trio_websocket.open_websocket_url(ws_url(client, "chat")) as watcher,
        trio_websocket.open_websocket_url(ws_url(client, "current_data")) as bystander,
    ):
        await wait_attached(server, 2, "chat")
        counter = iter(range(1, 1_000_000))

        async def one(message: str | bytes) -> tuple[list[Any], list[Any]]:
            marker = f"{SENTINEL} {next(counter)}"
            await ws.send_message(message)
            await ws.send_message(marker)
            return await frames_until(ws, marker), await frames_until(watcher, marker)

        @fuzz_settings(max_examples=120)
        @given(message=MESSAGES)
        @example(message=b"\xed\xa0\x80")  # an encoded surrogate: not UTF-8
        def chat(message: str | bytes) -> None:
            mine, theirs = on_trio(one, message)
            if isinstance(message, bytes):
                try:
                    text = message.decode("utf-8")
                except UnicodeDecodeError:
                    assert theirs == [], theirs
                    assert len(mine) == 1 and "utf-8" in json.loads(mine[0])["error"], mine
                    return
            else:
                text = message
            expected = [text] if text else []  # empty messages are ignored
            assert mine == expected and theirs == expected, (mine, theirs)

        await off_trio(chat)
        # nothing of it reached current_data; the bystander still gets what is emitted there
        await client.post("/api/emit/current_data", content=b'{"z": {"t": 1, "x": 2}}')
        with trio.fail_after(20):
            assert json.loads(await bystander.get_message()) == {"z": {"t": 1, "x": 2}}
        assert (await client.get("/api/ping")).json() == ["pong"]


async def test_topic_names(tmp_path: Path) -> None:
    """A bad topic is closed with a policy-violation reason; a good one is attached."""
    async with serving(build_project(tmp_path)) as (server, client):
        host, port = client.base_url.host, client.base_url.port
        assert port is not None

        async def attach(topic: str) -> tuple[bool, int | None, str | None]:
            # our own TCP stream, closed here whatever the WebSocket's state (trio-websocket
            # leaves it open after the server closes the WebSocket)
            stream = await trio.open_tcp_stream(host, port)
            resource = "/ws/attach/" + urllib.parse.quote(topic, safe="")
            try:
                async with trio.open_nursery() as nursery:
                    ws = await trio_websocket.wrap_client_stream(nursery, stream, host, resource)
                    try:
                        await ws.send_message("ping")
                        await ws.get_message()
                    except ConnectionClosed as exc:
                        return False, exc.reason.code, exc.reason.reason
                    finally:
                        nursery.cancel_scope.cancel()
                    return True, None, None
            finally:
                await trio.aclose_forcefully(stream)

        @fuzz_settings(max_examples=40)
        @given(topic=st.one_of(st.text(min_size=1, max_size=40), st.just("a" * 101)))
        @example(topic="..")
        @example(topic="current_data/../x")
        def topics(topic: str) -> None:
            ok, code, reason = on_trio(attach, topic)
            if not ok:
                assert code == 1008 and reason is not None and "bad topic" in reason, reason

        await off_trio(topics)
        assert (await client.get("/api/ping")).json() == ["pong"]
        with trio.fail_after(20):
            while server.hub.subscribers():  # noqa: ASYNC110 (a deadline)
                await trio.sleep(0.01)
