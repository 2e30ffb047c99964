"""Messages, payloads and the subscription side of the messaging nodes.

A :class:`Message` is one message as it arrived; :func:`encode_payload` turns what ``set()`` is
given into the bytes published. A ``_Channel`` is one subscription at the broker: it keeps the
last message and hands each new one, from any thread, to the :class:`Inbox` of every listener.
The listeners are a :class:`Subscription` (a callback run in the Trio loop that subscribed) and
a :class:`MessageStream` (``async for`` over the raw messages).
"""

from __future__ import annotations

import inspect
import json
import logging
import numbers
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import trio

from .._aiobridge import Inbox
from .._errors import NodeAccessError, RemoteProtocolError
from .._stop import StopScope

if TYPE_CHECKING:
    from ._broker import MessageNode

logger = logging.getLogger("slowdash_controls")

Codec = Literal["text", "json", "bytes"]


# ---- messages and payloads -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Message:
    """One message as it arrived: where from, the raw payload, when."""

    #: the MQTT topic, NATS subject or AMQP routing key it arrived on
    topic: str
    payload: bytes
    #: wall-clock arrival time (``time.time()``)
    time: float
    #: where to send a reply (NATS reply subject, AMQP ``reply_to``), if the sender said
    reply: str | None = None

    def text(self) -> str:
        """The payload as UTF-8 text; RemoteProtocolError if it is not."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(
                f"the message on {self.topic!r} is not valid UTF-8 ({exc}); "
                "read it with .raw() for the raw payload"
            ) from exc

    def json(self) -> Any:
        """The payload decoded as JSON; RemoteProtocolError if it is not JSON."""
        try:
            return json.loads(self.payload)
        except (UnicodeDecodeError, ValueError) as exc:
            preview = self.payload[:60]
            raise RemoteProtocolError(
                f"the message on {self.topic!r} is not valid JSON ({exc}): {preview!r}"
            ) from exc

    def decode(self, codec: Codec) -> Any:
        """The payload as ``codec`` says: ``"text"``, ``"json"`` or ``"bytes"``."""
        if codec == "bytes":
            return self.payload
        if codec == "json":
            return self.json()
        return self.text()


def encode_payload(value: Any, codec: Codec = "text", *, label: str = "message") -> bytes:
    """The bytes that ``set(value)`` publishes (NodeAccessError for what cannot be sent).

    ``json`` encodes any JSON value; otherwise bytes go as they are, str as UTF-8, a number as
    its decimal text, a bool as ``true``/``false``, and a dict, list or tuple as JSON.
    """
    if codec == "json":
        return _json_payload(value, label)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if codec == "bytes":
        raise NodeAccessError(f"{label}: bytes or str expected, got {type(value).__name__}")
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, numbers.Real):
        return str(value).encode("ascii")
    if isinstance(value, dict | list | tuple):
        return _json_payload(value, label)
    raise NodeAccessError(
        f"{label}: cannot publish {type(value).__name__} {value!r}; "
        "give str, bytes, a number, or a dict/list (sent as JSON)"
    )


def _json_payload(value: Any, label: str) -> bytes:
    try:
        return json.dumps(value, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise NodeAccessError(f"{label}: cannot publish {value!r} as JSON: {exc}") from exc


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8")


# ---- subscription state (shared by the Trio side and the asyncio side) ----------------------
class _Channel:
    """One subscription at the broker: its last message and its listeners. Thread-safe."""

    def __init__(self, key: Hashable, endpoint: MessageNode) -> None:
        self.key = key
        self.endpoint = endpoint
        self.last: Message | None = None
        self.count = 0
        self._lock = threading.Lock()
        self._listeners: list[Inbox[Message]] = []

    def push(self, message: Message) -> None:
        """Record a message and hand it to the listeners; any thread, never blocks."""
        with self._lock:
            self.last = message
            self.count += 1
            listeners = list(self._listeners)
        for inbox in listeners:
            inbox.put(message)

    def add_listener(self, inbox: Inbox[Message]) -> None:
        with self._lock:
            self._listeners.append(inbox)

    def remove_listener(self, inbox: Inbox[Message]) -> None:
        with self._lock:
            if inbox in self._listeners:
                self._listeners.remove(inbox)

    def close_listeners(self) -> None:
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for inbox in listeners:
            inbox.close()


# ---- callbacks -------------------------------------------------------------------------------
def _is_async_callable(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class Subscription:
    """A callback attached to a message node by ``subscribe()``.

    The callback gets the decoded value of every message, in order, in the Trio loop that
    subscribed: a sync callback in a worker thread, an async one as a task. Messages that arrive
    faster than the callback handles them queue up to ``queue_size``; beyond that the oldest
    are dropped and counted in ``dropped``. ``close()`` (any thread) detaches it; so do
    ``unsubscribe()`` and closing the broker node, and a stop request for the task (or script)
    that subscribed.
    """

    def __init__(
        self,
        node: MessageNode,
        channel: _Channel,
        callback: Callable[[Any], Any],
        inbox: Inbox[Message],
    ) -> None:
        self.node = node
        self.callback = callback
        #: messages handed to the callback without an error
        self.delivered = 0
        #: messages whose callback raised, or that could not be decoded
        self.failed = 0
        self._channel = channel
        self._inbox = inbox
        self._is_async = _is_async_callable(callback)
        self._finished = trio.Event()

    @property
    def dropped(self) -> int:
        """Messages dropped because the callback fell behind by more than ``queue_size``."""
        return self._inbox.dropped

    @property
    def active(self) -> bool:
        return not self._inbox.closed

    def close(self) -> None:
        """Stop calling the callback (any thread; queued messages are still handed over)."""
        self._channel.remove_listener(self._inbox)
        self._inbox.close()

    async def aclose(self) -> None:
        """Detach and wait until the callback has handled what was queued."""
        self.close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Return once the subscription has ended and its callback handled what was queued
        (in the loop that subscribed; elsewhere this only checks in)."""
        if trio.lowlevel.current_trio_token() is self._inbox.token:
            await self._finished.wait()
        else:
            await trio.lowlevel.checkpoint()

    async def _run(self, scope: StopScope) -> None:
        # a system task of the subscribing loop: it must not raise
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._close_on_stop, scope)
                async for message in self._inbox:
                    await self._deliver(message)
                nursery.cancel_scope.cancel()
        except Exception:
            logger.exception("%s: the subscription's dispatcher failed", self.node._label())
        finally:
            self.close()
            self._finished.set()

    async def _close_on_stop(self, scope: StopScope) -> None:
        await scope.wait()
        self.close()

    async def _deliver(self, message: Message) -> None:
        label = self.node._label()
        try:
            value = message.decode(self.node._codec)
        except RemoteProtocolError as exc:
            self.failed += 1
            logger.warning("%s: message not passed to %r: %s", label, self.callback, exc)
            return
        try:
            if self._is_async:
                await self.callback(value)
            else:
                result = await trio.to_thread.run_sync(self.callback, value)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            self.failed += 1
            logger.exception("%s: the subscription callback %r failed", label, self.callback)
        else:
            self.delivered += 1


class MessageStream:
    """The messages of one endpoint, in order, as raw :class:`Message` objects.

    ``async with node.aio_messages() as messages:`` subscribes on entering, so nothing
    published after that is missed, and detaches on leaving; ``async for`` over it (or
    ``await messages.receive()``) takes the messages. Plain ``async for message in
    node.aio_messages()`` works too, subscribing on the first iteration. The stream ends when the
    endpoint is unsubscribed or the broker node closed. Messages beyond ``queue_size`` not yet
    taken are dropped, oldest first, and counted in ``dropped``.
    """

    def __init__(self, node: MessageNode, queue_size: int) -> None:
        self.node = node
        self.queue_size = queue_size
        self._inbox: Inbox[Message] | None = None
        self._channel: _Channel | None = None

    @property
    def dropped(self) -> int:
        return 0 if self._inbox is None else self._inbox.dropped

    async def _open(self) -> Inbox[Message]:
        if self._inbox is None:
            inbox: Inbox[Message] = Inbox(trio.lowlevel.current_trio_token(), self.queue_size)
            channel = await self.node.broker._subscribe(self.node)
            channel.add_listener(inbox)
            self._inbox, self._channel = inbox, channel
        return self._inbox

    async def receive(self) -> Message:
        """The next message; :class:`trio.EndOfChannel` once the stream has ended."""
        inbox = await self._open()
        return await inbox.get()

    async def aclose(self) -> None:
        """Detach from the endpoint (what is queued is dropped)."""
        if self._channel is not None and self._inbox is not None:
            self._channel.remove_listener(self._inbox)
            self._inbox.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
