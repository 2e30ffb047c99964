"""MQTT: the broker node :class:`MqttNode` (``ctrl.mqtt()``) and its topics.

The client is aiomqtt, imported only when a connection is made. One reader task takes every
message the client receives and hands it to each subscribed topic whose filter matches it, so
overlapping filters (``+``/``#``) each get their copy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

from .._errors import ControlException, NodeAccessError, RemoteProtocolError
from ._broker import _FAR, BrokerNode, MessageNode, _Connection
from ._message import Message, _Channel, _payload_bytes

if TYPE_CHECKING:
    import aiomqtt


class MqttNode(BrokerNode["aiomqtt.Client"]):
    """An MQTT broker (``ctrl.mqtt(host, port)``); ``.topic(name)`` for topics."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        keepalive: int = 60,
        **options: Any,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.client_id = client_id or f"slowdash-{uuid.uuid4().hex[:16]}"
        self.keepalive = int(keepalive)
        super().__init__(f"mqtt://{host}:{self.port}", **options)

    def topic(self, name: str, qos: int = 0, retain: bool = False) -> MqttTopicNode:
        """The topic ``name`` (a filter with ``+``/``#`` can be read, not published to)."""
        if qos not in (0, 1, 2):
            raise NodeAccessError(f"{self._label()}: MQTT QoS is 0, 1 or 2, not {qos!r}")
        return self._endpoint(
            ("topic", name, qos, bool(retain)),
            lambda: MqttTopicNode(self, name, qos=qos, retain=bool(retain)),
        )

    def _link_errors(self) -> tuple[type[BaseException], ...]:
        import aiomqtt

        return (aiomqtt.MqttError,)

    def _map_error(self, exc: Exception, what: str) -> ControlException | None:
        if isinstance(exc, ValueError | TypeError):  # paho: a topic it cannot take
            return NodeAccessError(f"{what}: {exc}")
        return None

    async def _aio_connect(self, conn: _Connection[aiomqtt.Client]) -> None:
        import aiomqtt

        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.client_id,
            keepalive=self.keepalive,
            timeout=_FAR,
        )
        conn.client = client
        await client.__aenter__()
        conn.connected = True
        conn.tasks.append(asyncio.create_task(self._aio_read(conn)))

    async def _aio_read(self, conn: _Connection[aiomqtt.Client]) -> None:
        import aiomqtt

        try:
            async for incoming in conn.c.messages:
                self._dispatch(
                    Message(incoming.topic.value, _payload_bytes(incoming.payload), time.time())
                )
        except aiomqtt.MqttError as exc:
            conn.report_lost(exc)
        else:
            conn.report_lost("the message stream ended")

    def _dispatch(self, message: Message) -> None:
        import aiomqtt

        topic = aiomqtt.Topic(message.topic)
        for channel in self._channel_list():
            endpoint = channel.endpoint
            if isinstance(endpoint, MqttTopicNode) and topic.matches(endpoint.name):
                channel.push(message)

    async def _aio_disconnect(self, conn: _Connection[aiomqtt.Client]) -> None:
        if conn.connected:
            disconnected = getattr(conn.c, "_disconnected", None)
            # the link broke while nobody was reading: take the error, or asyncio logs
            # "Future exception was never retrieved" (it is in ``conn.lost`` already)
            if (
                isinstance(disconnected, asyncio.Future)
                and disconnected.done()
                and not disconnected.cancelled()
            ):
                disconnected.exception()
            await conn.c.__aexit__(None, None, None)
            return
        # The handshake never finished (no CONNACK in time). aiomqtt then leaves the socket
        # open, and its disconnect handler fails on the half-made connection; have paho send
        # DISCONNECT and close the socket without that handler.
        paho = getattr(conn.c, "_client", None)
        if paho is not None:
            paho.on_disconnect = None
            paho.disconnect()


class MqttTopicNode(MessageNode):
    """An MQTT topic: ``set`` publishes (with its QoS and retain flag), ``get`` is the last
    message (a retained one arrives on subscribing)."""

    _method = "topic"

    def __init__(self, broker: MqttNode, name: str, *, qos: int = 0, retain: bool = False) -> None:
        super().__init__(broker, ("topic", name), name)
        self.qos = qos
        self.retain = retain

    async def _aio_publish(self, conn: _Connection[aiomqtt.Client], payload: bytes) -> None:
        await conn.c.publish(self.name, payload, qos=self.qos, retain=self.retain, timeout=_FAR)

    async def _aio_subscribe(self, conn: _Connection[aiomqtt.Client], channel: _Channel) -> str:
        result = await conn.c.subscribe(self.name, qos=self.qos, timeout=_FAR)
        for code in result:
            failed = code >= 0x80 if isinstance(code, int) else code.is_failure
            if failed:
                raise RemoteProtocolError(f"the broker refused the subscription to {self.name!r}")
        return self.name

    async def _aio_unsubscribe(self, conn: _Connection[aiomqtt.Client], handle: Any) -> None:
        await conn.c.unsubscribe(self.name, timeout=_FAR)
