"""NATS: the server node :class:`NatsNode` (``ctrl.nats()``) and its subjects.

The client is nats-py, imported only when a connection is made, with its own reconnection
switched off so that the link's status is the truth. Besides ``set`` and ``get``, a subject
answers ``request()``: publish and wait for the first reply.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from .._errors import (
    ControlException,
    DeviceConnectionError,
    DeviceTimeout,
    NodeAccessError,
    RemoteProtocolError,
)
from .._link import describe_error
from .._node import ControlNode
from ._broker import (
    _FAR,
    BrokerNode,
    MessageNode,
    _Connection,
    _positive,
    _without_password,
)
from ._message import Message, _Channel, encode_payload

if TYPE_CHECKING:
    import nats.aio.client
    import nats.aio.msg
    import nats.aio.subscription

logger = logging.getLogger("slowdash_controls")


class NatsNode(BrokerNode["nats.aio.client.Client"]):
    """A NATS server (``ctrl.nats(url)``); ``.subject(name)`` for subjects."""

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        name: str | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        self.client_name = name or "slowdash"
        self.user = user
        self.password = password
        self.token = token
        super().__init__(_without_password(url), **options)

    def subject(self, name: str, *, queue: str = "") -> NatsSubjectNode:
        """The subject ``name`` (wildcards ``*``/``>`` can be read); ``queue`` names a queue
        group, in which each message goes to one member only."""
        return self._endpoint(
            ("subject", name, queue), lambda: NatsSubjectNode(self, name, queue=queue)
        )

    def _link_errors(self) -> tuple[type[BaseException], ...]:
        import nats.errors

        return (
            nats.errors.ConnectionClosedError,
            nats.errors.NoServersError,
            nats.errors.StaleConnectionError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.ConnectionDrainingError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.FlushTimeoutError,
        )

    def _connect_errors(self) -> tuple[type[BaseException], ...]:
        import nats.errors

        return (nats.errors.Error,)

    def _map_error(self, exc: Exception, what: str) -> ControlException | None:
        import nats.errors

        if isinstance(exc, nats.errors.NoRespondersError):
            return DeviceConnectionError(f"{what}: nobody is answering", address=self.address)
        if isinstance(exc, nats.errors.FlushTimeoutError):
            return None  # a link error
        if isinstance(exc, nats.errors.TimeoutError):
            return DeviceTimeout(f"no answer to {what}", address=self.address)
        if isinstance(
            exc,
            nats.errors.BadSubjectError | nats.errors.MaxPayloadError | nats.errors.BadHeaderError,
        ):
            return NodeAccessError(f"{what}: {describe_error(exc)}")
        return None

    async def _aio_connect(self, conn: _Connection[nats.aio.client.Client]) -> None:
        import nats.aio.client
        import nats.errors

        client = nats.aio.client.Client()
        conn.client = client
        errors: list[Exception] = []
        label = self._label()

        async def on_error(exc: Exception) -> None:
            errors[:] = [*errors[-4:], exc]
            # a lost connection is reported by the keeper; messages lost are worth a warning
            lost_messages = isinstance(exc, nats.errors.SlowConsumerError)
            logger.log(logging.WARNING if lost_messages else logging.DEBUG, "%s: %s", label, exc)

        async def on_closed() -> None:
            conn.report_lost(client.last_error or "connection closed")

        try:
            await client.connect(
                servers=[self.url],
                name=self.client_name,
                user=self.user,
                password=self.password,
                token=self.token,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=max(1, math.ceil(self.link.connect_timeout)),
                error_cb=on_error,
                closed_cb=on_closed,
            )
        except nats.errors.NoServersError as exc:
            detail = describe_error(errors[-1]) if errors else "no server answered"
            raise DeviceConnectionError(f"cannot connect: {detail}", address=self.address) from exc

    async def _aio_disconnect(self, conn: _Connection[nats.aio.client.Client]) -> None:
        if not conn.c.is_closed:
            await conn.c.close()


class NatsSubjectNode(MessageNode):
    """A NATS subject: ``set`` publishes, ``get`` is the last message, ``request`` asks."""

    _method = "subject"

    def __init__(self, broker: NatsNode, name: str, *, queue: str = "") -> None:
        super().__init__(broker, ("subject", name, queue), name)
        self.queue = queue

    async def _aio_publish(self, conn: _Connection[nats.aio.client.Client], payload: bytes) -> None:
        await conn.c.publish(self.name, payload)
        await conn.c.flush(timeout=_FAR)  # the server has it (or the link is broken)

    async def _aio_subscribe(
        self, conn: _Connection[nats.aio.client.Client], channel: _Channel
    ) -> nats.aio.subscription.Subscription:
        async def on_message(msg: nats.aio.msg.Msg) -> None:
            channel.push(Message(msg.subject, msg.data, time.time(), reply=msg.reply or None))

        client = conn.c
        subscription = await client.subscribe(self.name, queue=self.queue, cb=on_message)
        await client.flush(timeout=_FAR)  # the server knows of it before we return
        return subscription

    async def _aio_unsubscribe(
        self, conn: _Connection[nats.aio.client.Client], handle: Any
    ) -> None:
        await handle.unsubscribe()

    async def aio_request(self, value: Any, timeout: float | None = None) -> Any:
        """Publish ``value`` as a request and return the first reply, decoded like ``get``."""
        if isinstance(value, ControlNode):
            value = await value.aio_get()
        payload = encode_payload(value, self._codec, label=self._label())
        limit = self.broker.timeout if timeout is None else _positive("timeout", timeout)
        reply: Message = await self.broker._call(
            f"request on {self._label()}", self._aio_request, payload, timeout=limit
        )
        try:
            return reply.decode(self._codec)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{self._label()}: reply: {exc}") from exc

    def request(self, value: Any, timeout: float | None = None) -> Any:
        """Sync ``aio_request()``."""
        return self._sync(self.aio_request, value, timeout, local=False, aio_name="aio_request")

    async def _aio_request(
        self, conn: _Connection[nats.aio.client.Client], payload: bytes
    ) -> Message:
        msg = await conn.c.request(self.name, payload, timeout=_FAR)
        return Message(msg.subject, msg.data, time.time(), reply=msg.reply or None)
