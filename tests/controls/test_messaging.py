"""Messaging nodes (MQTT, NATS, AMQP) against the real brokers on 127.0.0.1.

Without a broker (or its client library) these tests skip with the reason; with
``SLOWDASH_TRIO_REQUIRE_SERVICES=1`` they fail instead. Every test uses its own topic, subject
or queue names and deletes the AMQP queues it made; the shared brokers are never reconfigured:
a dropped link is made by a small TCP proxy inside the test.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from slowdash_controls import (
    ControlSystem,
    DeviceConnectionError,
    DeviceTimeout,
    LinkState,
    NodeAccessError,
    RemoteProtocolError,
    StopScope,
    WrongThreadError,
    stop_scope,
)
from slowdash_controls._messaging import (
    AmqpNode,
    BrokerNode,
    Message,
    MessageNode,
    MessageStream,
    MqttNode,
    NatsNode,
    encode_payload,
)

ROOT = Path(__file__).resolve().parents[2]
REQUIRE = os.environ.get("SLOWDASH_TRIO_REQUIRE_SERVICES") == "1"
PORTS = {"mqtt": 1883, "nats": 4222, "amqp": 5672}
LIBRARIES = {"mqtt": "aiomqtt", "nats": "nats", "amqp": "aio_pika"}
KINDS = ["mqtt", "nats", "amqp"]


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason} (SLOWDASH_TRIO_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def check_service(kind: str) -> None:
    library = LIBRARIES[kind]
    try:
        importlib.import_module(library)
    except ImportError:
        unavailable(
            f"the {kind} client {library!r} is not installed "
            "(pip install 'slowdash-trio[messaging]')"
        )
    port = PORTS[kind]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            pass
    except OSError as exc:
        unavailable(f"no {kind} broker on 127.0.0.1:{port} ({exc})")


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Broker:
    """Makes nodes and unique endpoint names for one kind of broker; cleans up after."""

    kind: str
    nodes: list[BrokerNode[Any]] = field(default_factory=list)
    queues: set[str] = field(default_factory=set)

    def node(self, port: int | None = None, **options: Any) -> BrokerNode[Any]:
        port = PORTS[self.kind] if port is None else port
        ctrl = ControlSystem()
        node: BrokerNode[Any]
        if self.kind == "mqtt":
            node = ctrl.mqtt("127.0.0.1", port, **options)
        elif self.kind == "nats":
            node = ctrl.nats(f"nats://127.0.0.1:{port}", **options)
        else:
            node = ctrl.amqp(f"amqp://guest:guest@127.0.0.1:{port}/", **options)
        self.nodes.append(node)
        return node

    def mqtt_node(self, **options: Any) -> MqttNode:
        node = self.node(**options)
        assert isinstance(node, MqttNode)
        return node

    def nats_node(self, **options: Any) -> NatsNode:
        node = self.node(**options)
        assert isinstance(node, NatsNode)
        return node

    def amqp_node(self, **options: Any) -> AmqpNode:
        node = self.node(**options)
        assert isinstance(node, AmqpNode)
        return node

    def name(self) -> str:
        unique = uuid.uuid4().hex[:12]
        if self.kind == "mqtt":
            return f"slowdash-test/{unique}"
        if self.kind == "nats":
            return f"slowdash.test.{unique}"
        self.queues.add(f"slowdash-test-{unique}")
        return f"slowdash-test-{unique}"

    def endpoint(self, node: BrokerNode[Any], name: str) -> MessageNode:
        if isinstance(node, MqttNode):
            return node.topic(name)
        if isinstance(node, NatsNode):
            return node.subject(name)
        assert isinstance(node, AmqpNode)
        return node.queue(name)

    def pair(self) -> tuple[MessageNode, MessageNode]:
        """A receiving and a sending endpoint of one name, on two connections."""
        name = self.name()
        return self.endpoint(self.node(), name), self.endpoint(self.node(), name)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    # sync, so that a skip keeps its reason
    check_service(request.param)
    return str(request.param)


@pytest.fixture
async def broker(kind: str) -> AsyncIterator[Broker]:
    helper = Broker(kind)
    try:
        yield helper
    finally:
        with trio.move_on_after(20, shield=True):
            for node in helper.nodes:
                await node.aclose()
            if helper.queues:
                async with ControlSystem().amqp() as cleaner:
                    for name in helper.queues:
                        await cleaner.queue(name).aio_delete()


async def receive(messages: MessageStream, timeout: float = 10.0) -> Message:
    with trio.fail_after(timeout):
        return await messages.receive()


class Proxy:
    """A TCP proxy to a broker that the test can cut (and make refuse new connections)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self.refuse = False
        self._scopes: set[trio.CancelScope] = set()
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            if self.refuse:
                self.refused += 1
                self._notify()
                return
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            except OSError:
                return
            async with upstream:
                self.accepted += 1
                self._notify()
                with trio.CancelScope() as scope:
                    self._scopes.add(scope)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                            nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)
                    finally:
                        self._scopes.discard(scope)

    @staticmethod
    async def _pump(
        source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            async for data in source:
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def cut(self) -> None:
        """Drop every connection going through (both sides see the socket close)."""
        for scope in list(self._scopes):
            scope.cancel()

    async def wait_accepted(self, count: int) -> None:
        while self.accepted < count:
            await self._changed.wait()

    async def wait_refused(self, count: int) -> None:
        while self.refused < count:
            await self._changed.wait()


class SilentServer:
    """Accepts connections and never says a word; notes when the client hangs up."""

    def __init__(self) -> None:
        self.port = 0
        self.accepted = 0
        self.closed = 0
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            async with stream:
                async for _ in stream:
                    pass
        except trio.BrokenResourceError:
            pass
        finally:
            self.closed += 1
            self._changed.set()
            self._changed = trio.Event()

    async def wait_closed(self, count: int) -> None:
        while self.closed < count:
            await self._changed.wait()


# ---- payloads (no broker) --------------------------------------------------------------------
def test_payload_encoding() -> None:
    assert encode_payload("héllo") == "héllo".encode()
    assert encode_payload(b"\x00\xff") == b"\x00\xff"
    assert encode_payload(bytearray(b"ab")) == b"ab"
    assert encode_payload(3) == b"3"
    assert encode_payload(2.5) == b"2.5"
    assert encode_payload(math.nan) == b"nan"
    assert encode_payload(True) == b"true"
    assert json.loads(encode_payload({"a": [1, 2]})) == {"a": [1, 2]}
    assert encode_payload("x", "json") == b'"x"'
    for bad, codec in [(None, "text"), (object(), "text"), (math.nan, "json"), (1, "bytes")]:
        with pytest.raises(NodeAccessError):
            encode_payload(bad, codec)  # type: ignore[arg-type]


def test_message_decoding_errors_are_clear() -> None:
    message = Message("t/1", b"\xff\xfe", 0.0)
    with pytest.raises(RemoteProtocolError, match=r"'t/1' is not valid UTF-8.*\.raw\(\)"):
        message.text()
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        message.json()
    assert message.decode("bytes") == b"\xff\xfe"
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        Message("t/1", b"{nope", 0.0).json()


def test_node_options_are_checked() -> None:
    ctrl = ControlSystem()
    pytest.importorskip("aiomqtt")
    with pytest.raises(ValueError, match="timeout"):
        ctrl.mqtt(timeout=0)
    with pytest.raises(NodeAccessError, match="QoS"):
        ctrl.mqtt().topic("a", qos=3)


# ---- every broker ----------------------------------------------------------------------------
async def test_round_trip_between_two_nodes(broker: Broker) -> None:
    rx, tx = broker.pair()
    assert await rx.aio_get() is None  # subscribes
    assert await rx.aio_has_data() is False
    assert rx.broker.status.state is LinkState.UP
    with trio.fail_after(10):
        await tx.aio_set("hello")
        assert await rx.aio_wait(polling_interval=0.01) is True
    assert await rx.aio_get() == "hello"
    last = await rx.aio_last_message()
    assert last is not None
    assert last.payload == b"hello"
    assert last.topic == rx.name


async def test_get_is_the_last_message(broker: Broker) -> None:
    rx, tx = broker.pair()
    async with rx.aio_messages() as messages:
        for value in (1, 2.5, "three"):
            await tx.aio_set(value)
        got = [(await receive(messages)).text() for _ in range(3)]
    assert got == ["1", "2.5", "three"]
    assert await rx.aio_get() == "three"


async def test_json_text_and_raw_views(broker: Broker) -> None:
    rx, tx = broker.pair()
    async with rx.aio_messages() as messages:
        await tx.json().aio_set({"a": 1, "b": [1, 2]})
        await receive(messages)
        assert await rx.json().aio_get() == {"a": 1, "b": [1, 2]}
        assert json.loads(await rx.aio_get()) == {"a": 1, "b": [1, 2]}
        await tx.aio_set({"x": True})  # a dict through the text view goes as JSON too
        await receive(messages)
        assert await rx.json().aio_get() == {"x": True}
        await tx.aio_set(3.5)
        await receive(messages)
        assert float(await rx.aio_get()) == 3.5
        assert await rx.raw().aio_get() == b"3.5"
        assert await rx.json().aio_get() == 3.5


async def test_callbacks_sync_async_and_failing(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    rx, tx = broker.pair()
    got_async: list[str] = []
    got_sync: list[str] = []
    sync_threads: list[threading.Thread] = []
    all_arrived = trio.Event()

    async def on_async(value: str) -> None:
        got_async.append(value)
        if len(got_async) == 3:
            all_arrived.set()

    def on_sync(value: str) -> None:
        got_sync.append(value)
        sync_threads.append(threading.current_thread())

    def failing(value: str) -> None:
        raise RuntimeError(f"callback failed on {value}")

    with caplog.at_level(logging.ERROR, logger="slowdash_controls"):
        subscriptions = [
            await rx.aio_subscribe(on_async),
            await rx.aio_subscribe(on_sync),
            await rx.aio_subscribe(failing),
        ]
        for value in "abc":
            await tx.aio_set(value)
        with trio.fail_after(10):
            await all_arrived.wait()
            for subscription in subscriptions:
                await subscription.aclose()  # handles what was queued, then ends
    assert got_async == ["a", "b", "c"]
    assert got_sync == ["a", "b", "c"]
    assert threading.current_thread() not in sync_threads  # sync callbacks run off the loop
    assert [s.delivered for s in subscriptions] == [3, 3, 0]
    assert subscriptions[2].failed == 3
    assert "callback failed on a" in caplog.text
    assert "callback failed on c" in caplog.text  # delivery went on after a failure
    assert not any(s.active for s in subscriptions)


async def test_bad_payloads_raise_on_read_and_the_subscription_goes_on(broker: Broker) -> None:
    rx, tx = broker.pair()
    decoded: list[Any] = []
    subscription = await rx.json().aio_subscribe(decoded.append)
    async with rx.aio_messages() as messages:
        await tx.raw().aio_set(b"\xff\xfe not utf-8")
        await receive(messages)
        with pytest.raises(RemoteProtocolError, match="not valid UTF-8"):
            await rx.aio_get()
        with pytest.raises(RemoteProtocolError, match="not valid JSON"):
            await rx.json().aio_get()
        assert await rx.raw().aio_get() == b"\xff\xfe not utf-8"
        await tx.aio_set("{not json")
        await receive(messages)
        assert await rx.aio_get() == "{not json"
        with pytest.raises(RemoteProtocolError, match="not valid JSON"):
            await rx.json().aio_get()
        await tx.json().aio_set([1, 2])
        await receive(messages)
    assert await rx.json().aio_get() == [1, 2]
    with trio.fail_after(10):
        await subscription.aclose()
    assert decoded == [[1, 2]]
    assert subscription.failed == 2


async def test_wait_until_a_message_arrives(broker: Broker) -> None:
    rx, tx = broker.pair()
    assert await rx.aio_has_data() is False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tx.aio_set, "late")
        with trio.fail_after(10):
            assert await rx.aio_wait(polling_interval=0.02) is True
    assert await rx.aio_get() == "late"
    silent = broker.endpoint(rx.broker, broker.name())
    assert await silent.aio_wait(polling_interval=0.02, timeout=0.1) is None


async def test_values_that_cannot_be_published(broker: Broker) -> None:
    rx, tx = broker.pair()
    with pytest.raises(NodeAccessError, match="cannot publish NoneType"):
        await tx.aio_set(None)
    with pytest.raises(NodeAccessError, match="cannot publish object"):
        await tx.aio_set(object())
    with pytest.raises(NodeAccessError, match="as JSON"):
        await tx.json().aio_set(math.nan)
    with pytest.raises(NodeAccessError, match="bytes or str expected"):
        await tx.raw().aio_set(5)
    # nothing was sent and the link is fine
    async with rx.aio_messages() as messages:
        await tx.aio_set("fine")
        assert (await receive(messages)).text() == "fine"


async def test_sync_calls_on_the_trio_thread_are_refused(broker: Broker) -> None:
    rx, tx = broker.pair()
    with pytest.raises(WrongThreadError, match="aio_set"):
        tx.set("x")
    with pytest.raises(WrongThreadError, match="aio_get"):
        rx.get()
    with pytest.raises(WrongThreadError, match="aio_subscribe"):
        rx.subscribe(print)


async def test_sync_facade_from_a_worker_thread(broker: Broker) -> None:
    rx, tx = broker.pair()

    def script() -> Any:
        assert rx.has_data() is False
        tx.set("from a worker thread")
        assert rx.wait(polling_interval=0.02, timeout=10) is True
        return rx.get()

    with trio.fail_after(20):
        assert await trio.to_thread.run_sync(script) == "from a worker thread"


async def test_sync_facade_from_a_plain_thread(broker: Broker) -> None:
    rx, tx = broker.pair()  # used only from the plain thread (the background loop)
    results: dict[str, Any] = {}

    def script() -> None:
        try:
            arrived = threading.Event()
            seen: list[str] = []

            def on_message(value: str) -> None:
                seen.append(value)
                arrived.set()

            subscription = rx.subscribe(on_message)
            tx.set("from a plain thread")
            results["waited"] = rx.wait(polling_interval=0.02, timeout=10)
            results["value"] = rx.get()
            results["called"] = arrived.wait(10)
            results["seen"] = seen
            subscription.close()
            rx.broker.close()
            tx.broker.close()
            results["state"] = rx.broker.status.state
        except BaseException as exc:
            results["error"] = exc

    thread = threading.Thread(target=script)
    thread.start()
    with trio.fail_after(30):
        await trio.to_thread.run_sync(thread.join)
    assert "error" not in results, results.get("error")
    assert results == {
        "waited": True,
        "value": "from a plain thread",
        "called": True,
        "seen": ["from a plain thread"],
        "state": LinkState.CLOSED,
    }


async def test_broker_absent_gives_connection_error_quickly(broker: Broker) -> None:
    node = broker.node(closed_port(), connect_timeout=5.0, backoff_initial=5.0)
    endpoint = broker.endpoint(node, broker.name())
    with trio.fail_after(4):  # well before the connect timeout: refused, not timed out
        with pytest.raises(DeviceConnectionError, match="cannot connect") as info:
            await endpoint.aio_set("x")
    assert node.address in str(info.value)
    status = node.status
    assert status.state is LinkState.DOWN
    assert status.failures == 1
    assert status.last_error
    # within the back-off, later operations fail at once, saying when the next attempt is
    with trio.fail_after(1):
        with pytest.raises(DeviceConnectionError, match="next attempt in"):
            await endpoint.aio_get()


async def test_a_broker_that_never_answers_times_out_and_the_socket_is_closed(
    broker: Broker, nursery: trio.Nursery
) -> None:
    server = SilentServer()
    await nursery.start(server.run)
    node = broker.node(server.port, connect_timeout=0.3)
    endpoint = broker.endpoint(node, broker.name())
    with trio.fail_after(10):
        with pytest.raises(DeviceTimeout, match="connect timed out"):
            await endpoint.aio_set("x")
        await server.wait_closed(1)  # nothing was left half-open
    assert server.accepted == 1
    assert node.status.state is LinkState.DOWN


async def test_reconnect_and_resubscribe_after_the_link_is_cut(
    broker: Broker, nursery: trio.Nursery
) -> None:
    proxy = Proxy(PORTS[broker.kind])
    await nursery.start(proxy.run)
    name = broker.name()
    node = broker.node(proxy.port, connect_timeout=1.0, backoff_initial=0.05, backoff_max=0.2)
    rx = broker.endpoint(node, name)
    tx = broker.endpoint(broker.node(), name)
    async with rx.aio_messages() as messages:
        await tx.aio_set("before")
        assert (await receive(messages)).text() == "before"
        assert node.status.connects == 1

        # the broker goes away for a while: the link is down and says so
        proxy.refuse = True
        proxy.cut()
        with trio.fail_after(10):
            await proxy.wait_refused(1)  # the keeper noticed and is trying again
        with pytest.raises((DeviceConnectionError, DeviceTimeout)):
            await rx.aio_get()
        down = node.status
        assert down.state is not LinkState.UP
        assert down.last_error

        # it comes back: the keeper reconnects on its own and subscribes again
        proxy.refuse = False
        with trio.fail_after(20):
            await proxy.wait_accepted(2)
            # the keeper's attempt is under way: this waits for it, then checks in
            assert await rx.aio_has_data() is True
        assert node.status.state is LinkState.UP
        assert node.status.connects == 2
        await tx.aio_set("after")
        assert (await receive(messages)).text() == "after"
    assert await rx.aio_get() == "after"


async def test_close_ends_streams_and_subscriptions(broker: Broker) -> None:
    rx, tx = broker.pair()
    subscription = await rx.aio_subscribe(lambda value: None)
    stream = rx.aio_messages()
    async with stream:
        await rx.broker.aclose()
        with trio.fail_after(5):
            assert [message async for message in stream] == []
            await subscription.wait_closed()
    assert not subscription.active
    assert rx.broker.status.state is LinkState.CLOSED
    with pytest.raises(DeviceConnectionError, match="closed"):
        await rx.aio_get()
    with pytest.raises(DeviceConnectionError, match="closed"):
        await rx.aio_set("x")
    await tx.aio_set("the other node still works")


async def test_unsubscribe_ends_the_stream_and_forgets_the_last_value(broker: Broker) -> None:
    rx, tx = broker.pair()
    async with rx.aio_messages() as messages:
        await tx.aio_set("one")
        await receive(messages)
        await rx.aio_unsubscribe()
        with trio.fail_after(5), pytest.raises(trio.EndOfChannel):
            await messages.receive()
    assert await rx.aio_get() is None  # subscribed afresh


async def test_a_stop_request_ends_the_subscriptions_made_under_it(broker: Broker) -> None:
    rx, _ = broker.pair()
    scope = StopScope("task")
    with stop_scope(scope):
        subscription = await rx.aio_subscribe(lambda value: None)
    assert subscription.active
    scope.request_stop("test")
    with trio.fail_after(5):
        await subscription.wait_closed()
    assert not subscription.active


async def test_a_slow_callback_drops_the_oldest_messages(broker: Broker) -> None:
    rx, tx = broker.pair()
    release = threading.Event()
    first_started = trio.Event()
    got: list[str] = []

    def slow(value: str) -> None:
        got.append(value)
        if value == "1":
            trio.from_thread.run_sync(first_started.set)
            release.wait(10)

    subscription = await rx.aio_subscribe(slow, queue_size=2)
    async with rx.aio_messages() as messages:
        await tx.aio_set("1")
        with trio.fail_after(10):
            await first_started.wait()
        for value in "2345":
            await tx.aio_set(value)
        for _ in range(5):  # all five arrived while the callback was stuck on the first
            await receive(messages)
    release.set()
    with trio.fail_after(10):
        await subscription.aclose()
    assert got == ["1", "4", "5"]
    assert subscription.dropped == 2


def test_factories_make_the_nodes() -> None:
    ctrl = ControlSystem()
    for kind in KINDS:
        pytest.importorskip(LIBRARIES[kind])
    assert isinstance(ctrl.mqtt(), MqttNode)
    assert isinstance(ctrl.nats(), NatsNode)
    assert isinstance(ctrl.amqp(), AmqpNode)
    assert isinstance(ctrl.rabbitmq(), AmqpNode)
    assert ctrl.amqp("amqp://user:secret@127.0.0.1:5672/").address == "amqp://127.0.0.1:5672/"
    mqtt = ctrl.mqtt()
    assert mqtt.topic("a/b") is mqtt.topic("a/b")  # one node per endpoint
    assert repr(mqtt.topic("a/b").json()) == "<MqttNode(mqtt://127.0.0.1:1883).topic('a/b').json()>"


# ---- MQTT ------------------------------------------------------------------------------------
@pytest.fixture
def mqtt_service() -> None:
    check_service("mqtt")


@pytest.fixture
async def mqtt(mqtt_service: None) -> AsyncIterator[Broker]:
    helper = Broker("mqtt")
    try:
        yield helper
    finally:
        for node in helper.nodes:
            await node.aclose()


def test_a_plain_script_uses_the_sync_api_and_exits_cleanly(
    mqtt_service: None, tmp_path: Path
) -> None:
    script = tmp_path / "plain_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import threading
            from slowdash_controls import ControlSystem

            ctrl = ControlSystem()
            topic = ctrl.mqtt().topic("slowdash-test/{uuid.uuid4().hex[:12]}")
            arrived = threading.Event()
            topic.subscribe(lambda value: arrived.set())
            print("has data", topic.has_data(), flush=True)
            ctrl.mqtt().topic(topic.name).json().set({{"x": 1}})
            print("called", arrived.wait(10), flush=True)
            print("got", topic.json().get(), flush=True)
            # nothing closed: the exit hook disconnects the clients
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "controls")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["has data False", "called True", "got {'x': 1}"]
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert "never retrieved" not in proc.stderr


async def test_mqtt_retained_message_is_the_value_of_a_new_subscriber(mqtt: Broker) -> None:
    name = mqtt.name()
    publisher = mqtt.mqtt_node()
    retained = publisher.topic(name, qos=1, retain=True)
    await retained.aio_set("kept")
    try:
        late = mqtt.mqtt_node().topic(name)
        with trio.fail_after(10):
            assert await late.aio_wait(polling_interval=0.02) is True
        assert await late.aio_get() == "kept"
    finally:
        await retained.raw().aio_set(b"")  # clears the retained message


async def test_mqtt_wildcards_can_be_read_but_not_published_to(mqtt: Broker) -> None:
    base = mqtt.name()
    reader = mqtt.mqtt_node().topic(f"{base}/+/temperature")
    writer = mqtt.mqtt_node()
    async with reader.aio_messages() as messages:
        await writer.topic(f"{base}/room1/temperature").aio_set("21.5")
        message = await receive(messages)
    assert message.topic == f"{base}/room1/temperature"
    assert await reader.aio_get() == "21.5"
    with pytest.raises(NodeAccessError, match="wildcard"):
        await reader.aio_set("x")
    assert reader.broker.status.state is LinkState.UP  # a refused value breaks no link


# ---- NATS ------------------------------------------------------------------------------------
@pytest.fixture
def nats_service() -> None:
    check_service("nats")


@pytest.fixture
async def nats_broker(nats_service: None) -> AsyncIterator[Broker]:
    helper = Broker("nats")
    try:
        yield helper
    finally:
        for node in helper.nodes:
            await node.aclose()


async def test_nats_request_and_reply(nats_broker: Broker, nursery: trio.Nursery) -> None:
    name = nats_broker.name()
    server = nats_broker.nats_node()
    service = server.subject(name)
    client = nats_broker.nats_node().subject(name)

    async def answer(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with service.aio_messages() as requests:
            task_status.started()
            async for request in requests:
                assert request.reply
                await server.subject(request.reply).json().aio_set({"echo": request.json()})

    await nursery.start(answer)
    with trio.fail_after(10):
        assert await client.json().aio_request({"q": 1}) == {"echo": {"q": 1}}


async def test_nats_request_without_responders_or_answer(nats_broker: Broker) -> None:
    name = nats_broker.name()
    client = nats_broker.nats_node().subject(name)
    with trio.fail_after(10), pytest.raises(DeviceConnectionError, match="nobody is answering"):
        await client.aio_request("anyone?")
    mute = nats_broker.nats_node().subject(name)
    assert await mute.aio_has_data() is False  # subscribed, never answers
    with trio.fail_after(10), pytest.raises(DeviceTimeout, match="no answer to request"):
        await client.aio_request("anyone?", timeout=0.2)
    assert client.broker.status.state is LinkState.UP


# ---- AMQP ------------------------------------------------------------------------------------
@pytest.fixture
def amqp_service() -> None:
    check_service("amqp")


@pytest.fixture
async def amqp(amqp_service: None) -> AsyncIterator[Broker]:
    helper = Broker("amqp")
    try:
        yield helper
    finally:
        for node in helper.nodes:
            await node.aclose()
        if helper.queues:
            async with ControlSystem().amqp() as cleaner:
                for name in helper.queues:
                    await cleaner.queue(name).aio_delete()


async def test_amqp_fanout_exchange_reaches_every_subscriber(amqp: Broker) -> None:
    name = f"slowdash-test-ex-{uuid.uuid4().hex[:12]}"
    first = amqp.amqp_node().exchange(name, auto_delete=True)
    second = amqp.amqp_node().exchange(name, auto_delete=True)
    publisher = amqp.amqp_node().exchange(name, auto_delete=True)
    async with first.aio_messages() as one, second.aio_messages() as two:
        await publisher.json().aio_set({"n": 1})
        assert (await receive(one)).json() == {"n": 1}
        assert (await receive(two)).json() == {"n": 1}


async def test_amqp_topic_exchange_routes_by_key(amqp: Broker) -> None:
    name = f"slowdash-test-ex-{uuid.uuid4().hex[:12]}"
    node = amqp.amqp_node()
    temperatures = node.exchange(name, "sensors.*.temp", "topic", auto_delete=True)
    sender = amqp.amqp_node()
    async with temperatures.aio_messages() as messages:
        await sender.exchange(name, "sensors.a.humidity", "topic", auto_delete=True).aio_set("55")
        await sender.exchange(name, "sensors.a.temp", "topic", auto_delete=True).aio_set("21")
        message = await receive(messages)
    assert (message.topic, message.text()) == ("sensors.a.temp", "21")
    assert await temperatures.aio_get() == "21"


async def test_amqp_refused_declaration_is_an_access_error_and_the_node_recovers(
    amqp: Broker,
) -> None:
    name = amqp.name()
    node = amqp.amqp_node()
    await node.queue(name, durable=True).aio_set("durable")
    with pytest.raises(NodeAccessError, match="PRECONDITION_FAILED"):
        await node.queue(name, durable=False).aio_set("clash")
    # the node goes on: the same queue with matching options is usable again
    queue = node.queue(name, durable=True)
    with trio.fail_after(10):
        assert await queue.aio_wait(polling_interval=0.02) is True
    assert await queue.aio_get() == "durable"


def test_amqp_exchange_type_is_checked() -> None:
    pytest.importorskip("aio_pika")
    with pytest.raises(NodeAccessError, match="not one of"):
        ControlSystem().amqp().exchange("x", type="broadcast")
    with pytest.raises(NodeAccessError, match="needs a name"):
        ControlSystem().amqp().queue("")
