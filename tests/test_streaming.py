"""The streaming hub (in memory), the emit/consume API, the current values merged into
/api/channels and /api/data, and ControlSystem.stream/aio_stream."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import pytest
import trio
import trio.testing
from support import MakeProject, serving

import slowdash_controls
from slowdash_controls import ControlNode, ControlSystem, ValueNode
from slowdash_controls._errors import WrongThreadError
from slowdash_trio._hub import Hub, HubLimits, Subscriber, packet_of


def frames_of(subscriber: Subscriber) -> list[dict[str, Any]]:
    """Everything waiting for a subscriber, as decoded frames."""
    out = []
    while (text := subscriber.take()) is not None:
        out.append(json.loads(text))
    return out


def xs(frames: list[dict[str, Any]], channel: str) -> list[Any]:
    return [frame[channel]["x"] for frame in frames if channel in frame]


# ---------------------------------------------------------------------------------------------
# the hub, in memory


async def test_values_of_one_publication_share_a_frame() -> None:
    hub = Hub()
    sub = hub.subscribe("current_data")
    hub.publish_current({"a": {"t": 1, "x": 1}, "b": {"t": 1, "x": 2}})
    hub.publish_current({"c": {"t": 1, "x": 3}})
    assert frames_of(sub) == [{"a": {"t": 1, "x": 1}, "b": {"t": 1, "x": 2}, "c": {"t": 1, "x": 3}}]


async def test_every_update_is_kept_in_order_until_the_buffer_is_full() -> None:
    hub = Hub(limits=HubLimits(max_frames=3))
    sub = hub.subscribe("current_data")
    other = hub.subscribe("current_data")
    for i in range(3):
        hub.publish_current({"a": {"t": i, "x": i}})
    assert not sub.lagging and hub.coalesced == 0
    for i in range(3, 10):
        hub.publish_current({"a": {"t": i, "x": i}, "b": {"t": i, "x": -i}})
    # a0, a1, then the newest frame takes every later value: 7 a's and 6 b's replaced
    assert sub.lagging and sub.coalesced == 13 and hub.coalesced == 26
    assert sub.offered == sub.taken + sub.coalesced + sub.pending
    frames = frames_of(sub)
    assert xs(frames, "a") == [0, 1, 9] and xs(frames, "b") == [-9]
    assert sub.offered == sub.taken + sub.coalesced and sub.pending == 0
    assert not sub.lagging, "a subscriber that has sent everything has caught up"
    assert xs(frames_of(other), "a") == [0, 1, 9], "subscribers are independent"


async def test_a_burst_of_one_channel_is_delivered_whole_while_it_fits() -> None:
    hub = Hub(limits=HubLimits(max_frames=64))
    sub = hub.subscribe("current_data")
    for i in range(50):
        hub.publish_current({"a": {"t": i, "x": i}})
    assert xs(frames_of(sub), "a") == list(range(50))
    assert sub.coalesced == 0


async def test_pending_values_stay_bounded_however_long_nobody_reads() -> None:
    limits = HubLimits(max_frames=8, max_pending=100, max_lag_updates=10**9)
    hub = Hub(limits=limits)
    sub = hub.subscribe("current_data")
    for i in range(20_000):  # publish never waits: this loop has no checkpoint at all
        hub.publish_current({f"ch{i % 300}": {"t": i, "x": i}})
    assert sub.pending <= limits.max_pending + 300
    assert sub.offered == 20_000 == sub.taken + sub.coalesced + sub.pending
    frames = frames_of(sub)
    assert len(frames) <= limits.max_frames
    latest = {name: packet["x"] for frame in frames for name, packet in frame.items()}
    expected = {f"ch{c}": (19_800 + c if c < 200 else 19_500 + c) for c in range(300)}
    assert latest == expected, "the newest value of each channel"


async def test_a_new_subscriber_first_gets_the_current_values() -> None:
    hub = Hub()
    hub.publish_current({"a": {"t": 1, "x": 1}, "b": {"t": 2, "x": "two"}})
    hub.publish_current({"a": {"t": 3, "x": 5}, "c": {"t": 4}})  # no x: not cached
    sub = hub.subscribe("current_data")
    assert frames_of(sub) == [{"a": {"t": 3, "x": 5}, "b": {"t": 2, "x": "two"}}]
    assert hub.current() == {"a": {"t": 3, "x": 5}, "b": {"t": 2, "x": "two"}}
    assert hub.subscribe("other").take() is None, "no replay on other topics"


async def test_the_cache_keeps_an_absolute_time_and_a_copy() -> None:
    hub = Hub()
    value = {"tree": {"k": 1}}
    hub.publish_current({"obj": {"t": 2.5, "x": value, "start": 100}})
    value["tree"]["k"] = 2
    hub.publish_current({"series": {"start": 10, "t": [1, 2], "x": [5, 6]}})
    assert hub.cached("obj") == (102.5, {"t": 2.5, "x": {"tree": {"k": 1}}, "start": 100})
    assert hub.cached("series") == (12.0, {"start": 10, "t": [1, 2], "x": [5, 6]})
    assert hub.cached("absent") is None


async def test_the_cache_refuses_channels_beyond_its_bound() -> None:
    hub = Hub(limits=HubLimits(max_channels=3))
    sub = hub.subscribe("current_data")
    hub.publish_current({f"c{i}": {"t": i, "x": i} for i in range(5)})
    hub.publish_current({"c0": {"t": 9, "x": 9}})  # a known channel is still accepted
    assert sorted(hub.current()) == ["c0", "c1", "c2"] and hub.refused == 2
    assert [sorted(frame) for frame in frames_of(sub)] == [["c0", "c1", "c2"], ["c0"]]


async def test_a_value_that_is_not_json_is_skipped_alone() -> None:
    hub = Hub()
    sub = hub.subscribe("current_data")
    hub.publish_current({"bad": {"t": 1, "x": {1, 2}}, "good": {"t": 1, "x": 1}})
    assert frames_of(sub) == [{"good": {"t": 1, "x": 1}}]
    assert "bad" not in hub.current()


async def test_a_subscriber_coalescing_past_its_bound_is_dropped_alone() -> None:
    hub = Hub(limits=HubLimits(max_frames=2, max_lag_updates=5))
    slow, reader = hub.subscribe("current_data"), hub.subscribe("current_data")
    reasons: list[str] = []
    slow.on_drop = reasons.append
    received = []
    for i in range(20):
        hub.publish_current({"a": {"t": i, "x": i}})
        received += xs(frames_of(reader), "a")
    assert received == list(range(20)), "the reader got every value while the other stalled"
    assert slow.closed and hub.dropped == 1 and len(reasons) == 1
    assert "coalesced" in reasons[0] and slow.close_reason == reasons[0]
    assert hub.subscribers() == [reader]
    assert slow.coalesced == 6, "dropped at the sixth coalesced value (bound: 5)"
    assert await slow.next_message() is None


async def test_a_subscriber_lagging_too_long_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = Hub(limits=HubLimits(max_frames=2, lag_timeout=2.0, max_lag_updates=10**9))
    published = 0
    received: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        slow, reader = hub.subscribe("current_data"), hub.subscribe("current_data")

        async def read() -> None:
            while (text := await reader.next_message()) is not None:
                received.append(json.loads(text)["a"]["x"])

        nursery.start_soon(read)
        while not slow.closed:
            hub.publish_current({"a": {"t": published, "x": published}})
            published += 1
            await trio.sleep(0.1)
            if published == 2:
                assert not slow.lagging
            assert published < 1000, "never dropped"
        dropped_at = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert received == list(range(published)), "the reader saw every value, in order"
    assert hub.dropped == 1 and "lagging for more than 2 s" in slow.close_reason
    # lagging from the third value on (t = 0.2 s); the watchdog looks every 0.5 s
    assert 2.2 < dropped_at <= 2.2 + 0.5 + 0.1
    assert hub.subscribers() == [], "run() closes the remaining subscribers when it ends"
    assert reader.closed


async def test_other_topics_queue_every_message_and_drop_a_full_queue() -> None:
    hub = Hub(limits=HubLimits(max_queue=3))
    slow, reader = hub.subscribe("chat"), hub.subscribe("chat")
    reader_got = []
    for i in range(5):
        hub.publish("chat", f"m{i}")
        reader_got.append(reader.take())
    hub.publish("elsewhere", "nobody listens")
    assert reader_got == ["m0", "m1", "m2", "m3", "m4"]
    assert slow.closed and "3 messages waiting" in slow.close_reason
    assert hub.subscribers("chat") == [reader] and hub.coalesced == 0


async def test_error_notices_go_first_and_are_bounded() -> None:
    hub = Hub()
    sub = hub.subscribe("current_data")
    hub.publish_current({"a": {"t": 1, "x": 1}})
    sub.notify('{"error": "bad"}')
    assert sub.take() == '{"error": "bad"}'
    for _ in range(17):
        sub.notify('{"error": "again"}')
    assert sub.closed and hub.dropped == 1


def test_packets_of_delivered_values() -> None:
    @dataclasses.dataclass
    class Status:
        v: float
        on: bool

    class Element:
        def to_json(self) -> dict[str, Any]:
            return {"bins": {"min": 0, "max": 1}, "counts": [1]}

    class Series:
        def to_json(self) -> dict[str, Any]:
            return {"start": 5, "length": 10, "t": [1, 2], "x": [3, 4]}

    class Plain:
        def __init__(self) -> None:
            self.a, self._hidden = 1, 2

    before = time.time()
    assert packet_of(1.5)["x"] == 1.5 and before <= packet_of(1.5)["t"] <= time.time()
    assert packet_of("text")["x"] == "text" and packet_of(None)["x"] is None
    assert packet_of({"table": {"columns": []}})["x"] == {"table": {"columns": []}}
    assert packet_of({"a": 1})["x"] == {"tree": {"a": 1}}
    assert packet_of(Status(1.0, True))["x"] == {"tree": {"v": 1.0, "on": True}}
    assert packet_of(Element())["x"] == {"bins": {"min": 0, "max": 1}, "counts": [1]}
    assert packet_of(Series()) == {"start": 5, "length": 10, "t": [1, 2], "x": [3, 4]}
    assert packet_of(Plain())["x"] == {"tree": {"a": 1}}
    with pytest.raises(TypeError, match="cannot be streamed"):
        packet_of(object())


# ---------------------------------------------------------------------------------------------
# the deliver hook and ControlSystem.stream / aio_stream


class Unreadable(ControlNode):
    reads = 0

    async def aio_get(self) -> Any:
        Unreadable.reads += 1
        raise RuntimeError("this node must not be read")


def test_stream_in_a_plain_script_does_nothing() -> None:
    assert slowdash_controls.get_deliver_hook() is None
    ControlSystem.stream("anything", Unreadable())
    trio.run(ControlSystem.aio_stream, "anything", 1.0)
    assert Unreadable.reads == 0


async def test_run_installs_the_deliver_hook_and_removes_it() -> None:
    hub = Hub()
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run)
        assert slowdash_controls.get_deliver_hook() == hub.deliver
        sub = hub.subscribe("current_data")
        node = ValueNode(3)
        assert await node.deliver("n") == 3
        await node.deliver()  # no name, no server to ask: skipped
        await ControlSystem.aio_publish({"k": 1}, "d")
        await ControlSystem.aio_stream("s", node)
        await ControlSystem.aio_stream("bad", object())  # logged, nothing sent
        with pytest.raises(WrongThreadError, match="aio_stream"):
            ControlSystem.stream("x", 1)
        # from a worker thread: through the portal, onto the hub's loop
        await trio.to_thread.run_sync(ControlSystem.stream, "thread", 7)
        # from a thread Trio does not know: scheduled on the hub's loop
        thread = threading.Thread(
            target=hub.publish_from_any_thread,
            args=({"foreign": {"t": 0, "x": 8}},),
            kwargs={"sender": None},
        )
        thread.start()
        await trio.to_thread.run_sync(thread.join)
        await trio.testing.wait_all_tasks_blocked()
        frame = {name: p["x"] for f in frames_of(sub) for name, p in f.items()}
        assert frame == {"n": 3, "d": {"tree": {"k": 1}}, "s": 3, "thread": 7, "foreign": 8}
        nursery.cancel_scope.cancel()
    assert slowdash_controls.get_deliver_hook() is None


class FakeTasks:
    """Stands in for the task manager: records write-backs, names one exported node."""

    def __init__(self, node: Any = None) -> None:
        self.node = node
        self.calls: list[tuple[str, Any, str | None]] = []

    def export_name_of(self, node: Any) -> str | None:
        return "task.node" if node is self.node and node is not None else None

    async def set_export(self, name: str, value: Any, sender: str | None = None) -> bool:
        self.calls.append((name, value, sender))
        return name == "task.node" and sender != "taskmodule_task.node"

    def install(self, server: Any, monkeypatch: pytest.MonkeyPatch) -> FakeTasks:
        monkeypatch.setattr(server.tasks, "export_name_of", self.export_name_of)
        monkeypatch.setattr(server.tasks, "set_export", self.set_export)
        return self


async def test_deliver_names_an_exported_node_by_its_export(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = ValueNode(1.5)
    async with serving(make_project()) as (server, _):
        FakeTasks(node).install(server, monkeypatch)
        sub = server.hub.subscribe("current_data")
        await node.deliver()
        assert frames_of(sub)[0]["task.node"]["x"] == 1.5


# ---------------------------------------------------------------------------------------------
# the web API


async def test_emit_caches_fans_out_and_writes_back(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(make_project()) as (server, client):
        tasks = FakeTasks().install(server, monkeypatch)
        sub = server.hub.subscribe("current_data")
        doc = {"task.node": {"t": 10.0, "x": 2}, "other": {"t": 11.0, "x": None}}
        reply = await client.post("/api/emit/current_data?sender=me", content=json.dumps(doc))
        assert reply.status_code == 201 and reply.json() is True
        assert frames_of(sub) == [doc]
        assert server.hub.current() == doc
        assert tasks.calls == [("task.node", 2, "me")], "null x is not written back"
        reply = await client.post("/api/emit/current_data", content=json.dumps(doc))
        assert tasks.calls[-1] == ("task.node", 2, None)


async def test_app_request_publish_is_an_emit(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(make_project()) as (server, _client):
        tasks = FakeTasks().install(server, monkeypatch)
        sub = server.hub.subscribe("current_data")
        doc = {"task.node": {"t": 12.0, "x": 3}}
        assert await server.app.request_publish("current_data", doc, sender="me") is True
        assert await server.app.request_emit("current_data", doc) is True  # the original's name
        assert frames_of(sub) == [doc, doc]
        assert tasks.calls == [("task.node", 3, "me"), ("task.node", 3, None)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"{nope", "not valid JSON"),
        (b"[1, 2]", "not list"),
        (b'{"a": 1}', "a packet is an object"),
        (b'{"a": {"x": 1}}', "a packet is an object"),
        (b'{"a": {"t": "now", "x": 1}}', "t must be a number"),
        (b'{"a b": {"t": 1, "x": 1}}', "bad channel name"),
        (b'{"a": {"t": 1, "x": "' + b"y" * (1 << 20) + b'"}}', "larger than"),
    ],
)
async def test_emit_refuses_bad_current_data(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch, body: bytes, message: str
) -> None:
    async with serving(make_project()) as (server, client):
        tasks = FakeTasks().install(server, monkeypatch)
        sub = server.hub.subscribe("current_data")
        reply = await client.post("/api/emit/current_data", content=body)
        assert reply.status_code == 400
        assert reply.json()["status"] == "error" and message in reply.json()["message"]
        assert sub.take() is None and server.hub.current() == {} and tasks.calls == []
        ok = await client.post("/api/emit/current_data", content=b'{"a": {"t": 1, "x": 1}}')
        assert ok.status_code == 201, "the next good emit still works"


async def test_emit_to_another_topic_is_forwarded_unchanged(make_project: MakeProject) -> None:
    async with serving(make_project()) as (server, client):
        sub = server.hub.subscribe("chat")
        data = sub.hub.subscribe("current_data")
        assert (await client.post("/api/emit/chat", content=b"hello [1")).status_code == 201
        assert sub.take() == "hello [1" and data.take() is None
        assert server.hub.current() == {}
        bad = await client.post("/api/emit/chat", content=b"\xff\xfe")
        assert bad.status_code == 400 and "utf-8" in bad.json()["message"]
        bad = await client.post("/api/emit/bad%20topic", content=b"x")
        assert bad.status_code == 400 and "bad topic" in bad.json()["message"]


async def test_consume_caches_and_writes_back_without_fan_out(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(make_project()) as (server, client):
        tasks = FakeTasks().install(server, monkeypatch)
        sub = server.hub.subscribe("current_data")
        doc = {"task.node": {"t": 1.0, "x": 5}, "x.y": {"t": 2.0, "x": 6}}
        reply = await client.post("/api/consume/current_data", content=json.dumps(doc))
        assert reply.status_code == 200
        assert reply.json() == {"status": "ok", "set": ["task.node"]}
        assert server.hub.current() == doc and sub.take() is None
        assert tasks.calls == [("task.node", 5, None), ("x.y", 6, None)]
        bad = await client.post("/api/consume/current_data", content=b"[]")
        assert bad.status_code == 400


MODULE_CHANNELS = """
import time
def _get_channels():
    return [{"name": "mod.v", "type": "numeric"}]
def _get_data(channel):
    return 1.0 if channel == "mod.v" else None
"""


async def test_channels_list_cached_channels_once(make_project: MakeProject) -> None:
    async with serving(make_project({"mod": MODULE_CHANNELS})) as (server, client):
        server.hub.publish_current(
            {
                "mod.v": {"t": 1, "x": 2.0},
                "num": {"t": 1, "x": "3.5"},
                "graph": {"t": 1, "x": {"x": [1], "y": [2]}},
                "hist": {"t": 1, "x": {"bins": {}, "counts": []}},
                "table": {"t": 1, "x": {"table": {}}},
                "tree": {"t": 1, "x": {"tree": {}}},
                "what": {"t": 1, "x": "text"},
            }
        )
        listed = (await client.get("/api/channels")).json()
        assert listed == [
            {"name": "mod.v", "type": "numeric", "current": True},
            {"name": "num", "type": "numeric", "current": True},
            {"name": "graph", "type": "graph", "current": True},
            {"name": "hist", "type": "histogram", "current": True},
            {"name": "table", "type": "table", "current": True},
            {"name": "tree", "type": "tree", "current": True},
            {"name": "what", "type": "unknown", "current": True},
        ]


async def test_data_inserts_and_appends_cached_values(make_project: MakeProject) -> None:
    async with serving(make_project({"mod": MODULE_CHANNELS})) as (server, client):
        now = time.time()
        server.hub.publish_current(
            {
                "mod.v": {"t": now + 2, "x": 7.0},  # newer than the module's answer
                "only": {"t": now, "x": {"tree": {"a": 1}}},
                "old": {"t": now - 7200, "x": 1},  # outside the default hour
            }
        )
        reply = await client.get("/api/data/mod.v,only,old")
        assert reply.status_code == 200
        data = reply.json()
        assert data["only"] == {"t": now, "x": {"tree": {"a": 1}}}, "inserted verbatim"
        start = data["mod.v"]["start"]
        assert data["mod.v"]["x"] == [1.0, 7.0]
        assert data["mod.v"]["t"][1] == pytest.approx(now + 2 - start)
        assert "old" not in data
        old = (await client.get(f"/api/data/old?to={now - 7000}&length=600")).json()
        assert old == {"old": {"t": now - 7200, "x": 1}}
        # a series gets one more point; an older cached point is not appended
        server.hub.publish_current({"only": {"t": now + 1, "x": 5}})
        wide = (await client.get("/api/data/only,mod.v?length=10")).json()
        assert wide["only"] == {"t": now + 1, "x": 5}
        assert (await client.get("/api/data/nothing")).status_code == 404
        assert (await client.get("/api/data/only?length=abc")).status_code == 400


SYNC_STREAMER = """
from slowdash_controls import ControlSystem
done = None
def _setup(app, params):
    global done
    done = params["done"]
def _run():
    ControlSystem.stream("sync.value", 41)
    ControlSystem.stream("sync.node", ControlSystem().value(42))
    done.set()
"""


async def test_stream_from_a_modules_thread_reaches_subscribers(
    make_project: MakeProject,
) -> None:
    done = threading.Event()
    project = make_project({"streamer": SYNC_STREAMER}, parameters={"done": done})
    async with serving(project) as (server, _):
        assert await trio.to_thread.run_sync(done.wait, 20)
        current = server.hub.current()
        assert current["sync.value"]["x"] == 41 and current["sync.node"]["x"] == 42
