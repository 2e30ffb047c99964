"""AMQP 0-9-1 (RabbitMQ): the broker node :class:`AmqpNode` (``ctrl.amqp()``) and its endpoints.

The client is aio-pika, imported only when a connection is made. A connection has one channel,
on which queues (:class:`AmqpQueueNode`) and exchanges (:class:`AmqpExchangeNode`) are declared
on first use; when the broker refuses an operation it closes that channel, and the node starts
afresh on a new one, declaring again what it uses.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ControlException, NodeAccessError, RemoteProtocolError
from .._link import describe_error
from ._broker import BrokerNode, MessageNode, _Connection, _without_password
from ._message import Message, _Channel

if TYPE_CHECKING:
    import aio_pika.abc


class _AmqpClient:
    """An AMQP connection with its one channel and what was declared on it."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self.connection = connection
        self.channel: aio_pika.abc.AbstractChannel | None = None
        # declared on this channel, by name and options
        self.queues: dict[Hashable, aio_pika.abc.AbstractQueue] = {}
        self.exchanges: dict[Hashable, aio_pika.abc.AbstractExchange] = {}

    @property
    def ch(self) -> aio_pika.abc.AbstractChannel:
        if self.channel is None or self.channel.is_closed:
            raise trio.BrokenResourceError("the AMQP channel is closed")
        return self.channel


_EXCHANGE_TYPES = ("fanout", "topic", "direct", "headers")


class AmqpNode(BrokerNode[_AmqpClient]):
    """An AMQP 0-9-1 broker such as RabbitMQ (``ctrl.amqp(url)``, alias ``ctrl.rabbitmq``);
    ``.queue(name)`` and ``.exchange(name, routing_key, type)``."""

    def __init__(self, url: str = "amqp://guest:guest@127.0.0.1:5672/", **options: Any) -> None:
        self.url = url
        super().__init__(_without_password(url), **options)

    def queue(
        self,
        name: str,
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
    ) -> AmqpQueueNode:
        """The queue ``name``, declared on first use: ``set`` sends to it through the default
        exchange, ``get`` is the last message consumed from it (consumers share a queue's
        messages: each goes to one of them)."""
        if not name:
            raise NodeAccessError(f"{self._label()}: a queue needs a name")
        options = (durable, exclusive, auto_delete, passive)
        return self._endpoint(
            ("queue", name, options),
            lambda: AmqpQueueNode(
                self,
                name,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                passive=passive,
            ),
        )

    def exchange(
        self,
        name: str,
        routing_key: str = "",
        type: str = "fanout",
        *,
        durable: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
    ) -> AmqpExchangeNode:
        """The exchange ``name``, declared on first use: ``set`` publishes with
        ``routing_key``; ``get`` is the last message routed to a private queue bound with
        ``routing_key`` (a pattern with ``*``/``#`` on a topic exchange)."""
        kind = type.lower()
        if kind not in _EXCHANGE_TYPES:
            known = ", ".join(_EXCHANGE_TYPES)
            raise NodeAccessError(f"{self._label()}: exchange type {type!r} is not one of {known}")
        options = (durable, auto_delete, passive)
        return self._endpoint(
            ("exchange", name, routing_key, kind, options),
            lambda: AmqpExchangeNode(
                self,
                name,
                routing_key,
                kind,
                durable=durable,
                auto_delete=auto_delete,
                passive=passive,
            ),
        )

    def _link_errors(self) -> tuple[type[BaseException], ...]:
        import aiormq.exceptions

        return (
            aiormq.exceptions.AMQPConnectionError,
            aiormq.exceptions.ChannelInvalidStateError,
        )

    def _connect_errors(self) -> tuple[type[BaseException], ...]:
        import aiormq.exceptions

        return (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError)

    async def _translate(
        self, conn: _Connection[_AmqpClient], exc: Exception, what: str
    ) -> ControlException | None:
        import aiormq.exceptions

        if isinstance(exc, aiormq.exceptions.AMQPChannelError):
            # the broker closed our channel over this operation; start afresh
            await self._drop(conn, exc)
            return NodeAccessError(f"{what}: the broker refused: {describe_error(exc)}")
        if isinstance(exc, aiormq.exceptions.DeliveryError):
            return RemoteProtocolError(f"{what}: the broker did not accept the message")
        return await super()._translate(conn, exc, what)

    async def _aio_connect(self, conn: _Connection[_AmqpClient]) -> None:
        import aio_pika
        import yarl

        connection = aio_pika.Connection(yarl.URL(self.url))
        client = _AmqpClient(connection)
        conn.client = client
        await connection.connect(timeout=self.link.connect_timeout)

        def on_close(sender: object, exc: BaseException | None) -> None:
            conn.report_lost(exc if exc is not None else "connection closed")

        connection.close_callbacks.add(on_close)
        client.channel = await connection.channel()

    async def _aio_after_refusal(self, conn: _Connection[_AmqpClient]) -> None:
        client = conn.c
        client.queues.clear()
        client.exchanges.clear()
        conn.active.clear()  # consumers die with the channel; the caller goes on afresh
        if client.channel is not None and not client.channel.is_closed:
            await client.channel.close()
        client.channel = await client.connection.channel()

    async def _aio_disconnect(self, conn: _Connection[_AmqpClient]) -> None:
        await conn.c.connection.close()

    async def _aio_consume(
        self,
        queue: aio_pika.abc.AbstractQueue,
        channel: _Channel,
        default_topic: str,
    ) -> tuple[aio_pika.abc.AbstractQueue, str]:
        async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            channel.push(
                Message(
                    incoming.routing_key or default_topic,
                    incoming.body,
                    time.time(),
                    reply=incoming.reply_to,
                )
            )

        tag = await queue.consume(on_message, no_ack=True)
        return queue, tag

    @staticmethod
    async def _aio_publish_to(
        exchange: aio_pika.abc.AbstractExchange, routing_key: str, payload: bytes
    ) -> None:
        import aio_pika
        import pamqp.commands

        confirmation = await exchange.publish(
            aio_pika.Message(payload), routing_key=routing_key, mandatory=False
        )
        if confirmation is not None and not isinstance(confirmation, pamqp.commands.Basic.Ack):
            raise RemoteProtocolError(f"the broker answered {type(confirmation).__name__}")


class AmqpQueueNode(MessageNode):
    """An AMQP queue: ``set`` sends to it, ``get`` is the last message consumed from it."""

    _method = "queue"
    broker: AmqpNode

    def __init__(
        self,
        broker: AmqpNode,
        name: str,
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
    ) -> None:
        super().__init__(broker, ("queue", name), name)
        self.durable = durable
        self.exclusive = exclusive
        self.auto_delete = auto_delete
        self.passive = passive

    async def _aio_declare(self, conn: _Connection[_AmqpClient]) -> aio_pika.abc.AbstractQueue:
        client = conn.c
        declared = (self.name, self.durable, self.exclusive, self.auto_delete, self.passive)
        queue = client.queues.get(declared)
        if queue is None:
            queue = await client.ch.declare_queue(
                self.name,
                durable=self.durable,
                exclusive=self.exclusive,
                auto_delete=self.auto_delete,
                passive=self.passive,
            )
            client.queues[declared] = queue
        return queue

    async def _aio_publish(self, conn: _Connection[_AmqpClient], payload: bytes) -> None:
        await self._aio_declare(conn)
        await AmqpNode._aio_publish_to(conn.c.ch.default_exchange, self.name, payload)

    async def _aio_subscribe(
        self, conn: _Connection[_AmqpClient], channel: _Channel
    ) -> tuple[aio_pika.abc.AbstractQueue, str]:
        queue = await self._aio_declare(conn)
        return await self.broker._aio_consume(queue, channel, self.name)

    async def _aio_unsubscribe(self, conn: _Connection[_AmqpClient], handle: Any) -> None:
        queue, tag = handle
        await queue.cancel(tag)

    async def aio_delete(self) -> None:
        """Delete the queue at the broker (and stop consuming from it)."""
        await self.aio_unsubscribe()
        await self.broker._call(f"delete {self._label()}", self._aio_delete)

    def delete(self) -> None:
        """Sync ``aio_delete()``."""
        self._sync(self.aio_delete, local=False, aio_name="aio_delete")

    async def _aio_delete(self, conn: _Connection[_AmqpClient]) -> None:
        client = conn.c
        for declared in [key for key in client.queues if key[0] == self.name]:  # type: ignore[index]
            del client.queues[declared]
        await client.ch.queue_delete(self.name)


class AmqpExchangeNode(MessageNode):
    """An AMQP exchange: ``set`` publishes with the routing key, ``get`` is the last message
    routed to a private queue bound with that key."""

    _method = "exchange"
    broker: AmqpNode

    def __init__(
        self,
        broker: AmqpNode,
        name: str,
        routing_key: str = "",
        kind: str = "fanout",
        *,
        durable: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
    ) -> None:
        super().__init__(broker, ("exchange", name, routing_key, kind), name)
        self.routing_key = routing_key
        self.kind = kind
        self.durable = durable
        self.auto_delete = auto_delete
        self.passive = passive

    def _label(self) -> str:
        base = super()._label()
        if self.routing_key:
            return base.replace(f"({self.name!r})", f"({self.name!r}, {self.routing_key!r})", 1)
        return base

    async def _aio_declare(self, conn: _Connection[_AmqpClient]) -> aio_pika.abc.AbstractExchange:
        client = conn.c
        if not self.name:
            return client.ch.default_exchange
        declared = (self.name, self.kind, self.durable, self.auto_delete, self.passive)
        exchange = client.exchanges.get(declared)
        if exchange is None:
            exchange = await client.ch.declare_exchange(
                self.name,
                self.kind,
                durable=self.durable,
                auto_delete=self.auto_delete,
                passive=self.passive,
            )
            client.exchanges[declared] = exchange
        return exchange

    async def _aio_publish(self, conn: _Connection[_AmqpClient], payload: bytes) -> None:
        exchange = await self._aio_declare(conn)
        await AmqpNode._aio_publish_to(exchange, self.routing_key, payload)

    async def _aio_subscribe(
        self, conn: _Connection[_AmqpClient], channel: _Channel
    ) -> tuple[aio_pika.abc.AbstractQueue, str]:
        if not self.name:
            raise NodeAccessError(
                f"{self._label()}: the default exchange cannot be subscribed to; use queue(name)"
            )
        exchange = await self._aio_declare(conn)
        queue = await conn.c.ch.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=self.routing_key)
        return await self.broker._aio_consume(queue, channel, self.routing_key)

    async def _aio_unsubscribe(self, conn: _Connection[_AmqpClient], handle: Any) -> None:
        queue, tag = handle
        await queue.cancel(tag)  # the private queue is deleted with its last consumer
