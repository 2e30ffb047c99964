"""The broker side of the messaging nodes: the base classes every broker builds on.

:class:`BrokerNode` keeps one connection to the broker in a :class:`Link` (lazy connect, capped
back-off, observable ``status``), runs the client on the shared asyncio loop, keeps a watch on
the connection from the Trio loop that opened it and, when it drops while there are
subscriptions, reconnects and subscribes again. :class:`MessageNode` is an endpoint on it (a
topic, subject, queue or exchange): ``set`` publishes, ``get`` is the last message, and
``subscribe()`` / ``aio_messages()`` follow every message. A broker implements the asyncio side
(connect, disconnect, publish, subscribe) in a subclass of each.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import logging
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Hashable
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import trio

from .._aiobridge import Inbox, call_soon_in_trio, get_bridge
from .._errors import (
    ControlException,
    DeviceConnectionError,
    DeviceTimeout,
    RemoteProtocolError,
)
from .._link import LINK_ERRORS, Link, LinkState, LinkStatus, describe_error
from .._node import ControlNode
from .._stop import current_stop_scope
from ._message import Codec, Message, MessageStream, Subscription, _Channel, encode_payload

logger = logging.getLogger("slowdash_controls")

C = TypeVar("C")
T = TypeVar("T")
N = TypeVar("N", bound="MessageNode")

#: a deadline handed to the libraries where ours (the node's timeout) is the one that counts
_FAR = 24 * 3600
_CLOSE_TIMEOUT = 2.0


def _positive(name: str, value: float) -> float:
    number = float(value)
    if not number > 0 or math.isinf(number):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return number


def _without_password(url: str) -> str:
    """The URL for messages and status: credentials left out."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ---- connection state ----------------------------------------------------------------------
class _Connection(Generic[C]):
    """One connection to the broker: the asyncio client and what was set up on it."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.token = token  # the Trio loop that opened it (where its keeper runs)
        self.client: C | None = None
        self.lost: BaseException | str | None = None
        self.lost_event = trio.Event()
        self.closing = False
        self.connected = False  # the handshake completed
        self.disposed = False
        self.active: dict[Hashable, Any] = {}  # subscriptions in place: key -> library handle
        self.tasks: list[asyncio.Task[Any]] = []
        self.sub_lock: asyncio.Lock | None = None

    @property
    def c(self) -> C:
        if self.client is None:
            raise trio.BrokenResourceError("not connected")
        return self.client

    def report_lost(self, error: BaseException | str) -> None:
        """The connection broke under us (asyncio thread); wakes the keeper."""
        if self.closing or self.lost is not None:
            return
        self.lost = error
        call_soon_in_trio(self.token, self.lost_event.set)

    def wake(self) -> None:
        call_soon_in_trio(self.token, self.lost_event.set)


# ---- broker nodes ----------------------------------------------------------------------------
_live_brokers: weakref.WeakSet[BrokerNode[Any]] = weakref.WeakSet()


async def _dispose_all_at_exit() -> None:
    for broker in list(_live_brokers):
        conn = broker._conn
        if conn is not None and not conn.disposed:
            conn.disposed = True
            await broker._aio_dispose(conn)


get_bridge().at_shutdown(_dispose_all_at_exit)


class BrokerNode(ControlNode, Generic[C]):
    """Base of the broker nodes: the link, the subscriptions and their upkeep."""

    _scheme: ClassVar[str] = "broker"

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        queue_size: int = 1000,
    ) -> None:
        self.address = address
        #: deadline of every operation (publish, subscribe, request), in seconds
        self.timeout = _positive("timeout", timeout)
        #: default bound of the message queue of a subscription or ``aio_messages()``
        self.queue_size = int(queue_size)
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size!r}")
        self._bridge = get_bridge()
        self.link: Link[_Connection[C]] = Link(
            address,
            self._open,
            self._dispose,
            connect_timeout=_positive("connect_timeout", connect_timeout),
            backoff_initial=_positive("backoff_initial", backoff_initial),
            backoff_max=_positive("backoff_max", backoff_max),
        )
        self._lock = threading.Lock()
        self._channels: dict[Hashable, _Channel] = {}
        self._conn: _Connection[C] | None = None
        self._closed = False
        self._nodes: dict[Hashable, MessageNode] = {}
        _live_brokers.add(self)

    # ---- what a broker implements (asyncio side) -------------------------------------------
    async def _aio_connect(self, conn: _Connection[C]) -> None:
        """Create the client, store it in ``conn.client`` first, then connect it."""
        raise NotImplementedError

    async def _aio_disconnect(self, conn: _Connection[C]) -> None:
        raise NotImplementedError

    def _link_errors(self) -> tuple[type[BaseException], ...]:
        """The library's exceptions that mean the connection is gone."""
        return ()

    def _connect_errors(self) -> tuple[type[BaseException], ...]:
        """The library's exceptions that mean a connection attempt failed."""
        return self._link_errors()

    def _map_error(self, exc: Exception, what: str) -> ControlException | None:
        """A library exception that is not a broken link, as one of ours (or None)."""
        return None

    # ---- state ------------------------------------------------------------------------------
    @property
    def status(self) -> LinkStatus:
        """The link's state (``idle``, ``connecting``, ``up``, ``down``, ``closed``) and history."""
        return self.link.status

    def _label(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def _channel_list(self) -> list[_Channel]:
        with self._lock:
            return list(self._channels.values())

    def _endpoint(self, key: Hashable, make: Callable[[], N]) -> N:
        with self._lock:
            node = self._nodes.get(key)
            if node is None:
                node = self._nodes[key] = make()
            return cast("N", node)

    # ---- the connection (Trio side) ---------------------------------------------------------
    async def _open(self) -> _Connection[C]:
        """The link's opener: a new connection, with every subscription in place."""
        if self._closed:
            raise DeviceConnectionError("the node was closed", address=self.address)
        old, self._conn = self._conn, None
        if old is not None:  # opened by another Trio loop: let it go for good
            await self._dispose(old)
        conn: _Connection[C] = _Connection(trio.lowlevel.current_trio_token())
        try:
            await self._bridge.run(self._aio_open, conn)
        except ControlException:
            raise
        except self._connect_errors() as exc:
            raise DeviceConnectionError(
                f"cannot connect: {describe_error(exc)}", address=self.address
            ) from exc
        self._conn = conn
        trio.lowlevel.spawn_system_task(self._keep, conn, name=f"{self._label()} keeper")
        return conn

    async def _dispose(self, conn: _Connection[C]) -> None:
        """Close one connection (any Trio loop; idempotent)."""
        if self._conn is conn:
            self._conn = None
        if conn.disposed:
            return
        conn.disposed = True
        conn.closing = True
        conn.wake()  # its keeper, if waiting, ends
        try:
            await self._bridge.run(self._aio_dispose, conn)
        except trio.ClosedResourceError:
            pass  # the asyncio loop is gone, and the connection with it

    async def _drop(self, conn: _Connection[C], error: BaseException | str) -> None:
        """The connection broke: mark the link down (if it is still the link's) and close it."""
        if self._conn is conn:
            await self.link.mark_broken(error)
        await self._dispose(conn)

    async def _connection(self) -> _Connection[C]:
        conn = await self.link.connect()
        if conn.lost is not None:
            await self._drop(conn, conn.lost)
            conn = await self.link.connect()
        return conn

    async def _keep(self, conn: _Connection[C]) -> None:
        """Watch one connection; when it drops, reconnect while there are subscriptions."""
        # a system task of the loop that opened the connection: it must not raise
        try:
            await conn.lost_event.wait()
            if conn.closing or self._closed:
                return
            error = conn.lost if conn.lost is not None else "connection lost"
            logger.warning("%s: connection lost (%s)", self._label(), describe_error(error))
            await self._drop(conn, error)
            while not self._closed and self._conn is None and self._channel_list():
                try:
                    await self.link.connect()
                except ControlException as exc:
                    logger.debug("%s: reconnect failed: %s", self._label(), exc)
                    status = self.link.status
                    delay = status.retry_in if status.retry_in is not None else 0.0
                except Exception:
                    logger.exception("%s: reconnect failed unexpectedly", self._label())
                    delay = self.link.backoff_max
                else:
                    logger.info("%s: reconnected", self._label())
                    return
                if self.link.state is LinkState.CLOSED:
                    return
                await trio.sleep(max(delay, 0.05))
        except Exception:
            logger.exception("%s: the link keeper failed", self._label())

    async def _call(
        self,
        what: str,
        afn: Callable[..., Awaitable[T]],
        *args: Any,
        timeout: float | None = None,
    ) -> T:
        """``await afn(conn, *args)`` on the asyncio loop, under the deadline, errors mapped."""
        limit = self.timeout if timeout is None else timeout
        try:
            with trio.fail_after(limit):
                conn = await self._connection()
                try:
                    return await self._bridge.run(afn, conn, *args)
                except ControlException:
                    raise
                except Exception as exc:
                    mapped = await self._translate(conn, exc, what)
                    if mapped is None:
                        raise
                    raise mapped from exc
        except trio.TooSlowError as exc:
            raise DeviceTimeout(
                f"no answer to {what}", address=self.address, timeout=limit
            ) from exc

    async def _translate(
        self, conn: _Connection[C], exc: Exception, what: str
    ) -> ControlException | None:
        mapped = self._map_error(exc, what)
        if mapped is not None:
            return mapped
        if isinstance(exc, (*LINK_ERRORS, *self._link_errors())):
            await self._drop(conn, exc)
            return DeviceConnectionError(f"{what}: {describe_error(exc)}", address=self.address)
        return None

    # ---- the connection (asyncio side) ------------------------------------------------------
    async def _aio_open(self, conn: _Connection[C]) -> None:
        conn.sub_lock = asyncio.Lock()
        try:
            await self._aio_connect(conn)
            while await self._aio_resubscribe(conn):
                pass
        except BaseException:
            await self._aio_dispose(conn)
            raise

    async def _aio_resubscribe(self, conn: _Connection[C]) -> bool:
        """Subscribe the channels again; True to go round once more after a refusal."""
        for channel in self._channel_list():
            try:
                await self._aio_ensure_subscribed(conn, channel)
            except Exception as exc:
                if isinstance(exc, (TimeoutError, *LINK_ERRORS, *self._link_errors())):
                    raise
                # the broker refuses this one now: drop it rather than the whole link
                logger.error(
                    "%s: subscribing %s again failed, dropped: %s",
                    self._label(),
                    channel.endpoint._label(),
                    describe_error(exc),
                )
                self._forget(channel)
                await self._aio_after_refusal(conn)
                return True
        return False

    async def _aio_after_refusal(self, conn: _Connection[C]) -> None:
        """Repair the connection after the broker refused an operation (AMQP: a new channel)."""

    async def _aio_dispose(self, conn: _Connection[C]) -> None:
        conn.closing = True
        tasks = [task for task in conn.tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
        if conn.client is None:
            return
        quiet: tuple[type[BaseException], ...] = (TimeoutError, *LINK_ERRORS, *self._link_errors())
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self._aio_disconnect(conn)
        except quiet as exc:
            logger.debug("%s: disconnecting: %s", self._label(), describe_error(exc))

    async def _aio_ensure_subscribed(self, conn: _Connection[C], channel: _Channel) -> None:
        assert conn.sub_lock is not None
        async with conn.sub_lock:
            if channel.key not in conn.active:
                conn.active[channel.key] = await channel.endpoint._aio_subscribe(conn, channel)

    async def _aio_remove_subscription(self, conn: _Connection[C], channel: _Channel) -> None:
        assert conn.sub_lock is not None
        async with conn.sub_lock:
            handle = conn.active.pop(channel.key, None)
            if handle is not None:
                await channel.endpoint._aio_unsubscribe(conn, handle)

    # ---- subscriptions (Trio side) ----------------------------------------------------------
    async def _subscribe(self, endpoint: MessageNode) -> _Channel:
        """The channel of ``endpoint``, subscribing at the broker if it is not yet."""
        key = endpoint._key
        with self._lock:
            channel = self._channels.get(key)
            created = channel is None
            if channel is None:
                channel = self._channels[key] = _Channel(key, endpoint)
        conn = self._conn
        if (
            conn is not None
            and conn.lost is None
            and key in conn.active
            and conn.token is trio.lowlevel.current_trio_token()
            and self.link.state is LinkState.UP
        ):
            await trio.lowlevel.checkpoint()
            return channel
        subscribed = False
        try:
            await self._call(
                f"subscribe to {endpoint._label()}", self._aio_ensure_subscribed, channel
            )
            subscribed = True
        finally:
            if created and not subscribed:
                self._forget(channel)
        return channel

    def _forget(self, channel: _Channel) -> None:
        with self._lock:
            if self._channels.get(channel.key) is channel:
                del self._channels[channel.key]
        channel.close_listeners()

    async def _unsubscribe(self, endpoint: MessageNode) -> None:
        with self._lock:
            channel = self._channels.get(endpoint._key)
        if channel is None:
            await trio.lowlevel.checkpoint()
            return
        self._forget(channel)
        conn = self._conn
        if conn is None or conn.lost is not None or channel.key not in conn.active:
            await trio.lowlevel.checkpoint()
            return
        await self._call(
            f"unsubscribe from {endpoint._label()}", self._aio_remove_subscription, channel
        )

    # ---- closing ----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Disconnect for good: subscriptions end, later operations fail."""
        self._closed = True
        conn = self._conn
        await self.link.aclose()
        if conn is not None:
            await self._dispose(conn)
        with self._lock:
            channels = list(self._channels.values())
            self._channels.clear()
        for channel in channels:
            channel.close_listeners()

    def close(self) -> None:
        """Sync ``aclose()``."""
        self._sync(self.aclose, local=False, aio_name="aclose")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---- endpoint nodes --------------------------------------------------------------------------
class MessageNode(ControlNode):
    """A topic, subject, queue or exchange: ``set`` publishes, ``get`` is the last message."""

    _method: ClassVar[str] = "endpoint"

    def __init__(self, broker: BrokerNode[Any], key: Hashable, name: str) -> None:
        self.broker = broker
        self.name = name
        self._key = key
        self._codec: Codec = "text"

    def _label(self) -> str:
        views = {"text": "", "json": ".json()", "bytes": ".raw()"}
        return f"{self.broker._label()}.{self._method}({self.name!r}){views[self._codec]}"

    # ---- views ------------------------------------------------------------------------------
    def _view(self, codec: Codec) -> Self:
        view = copy.copy(self)
        view._codec = codec
        return view

    def json(self) -> Self:
        """This endpoint, with payloads decoded (and ``set`` values encoded) as JSON."""
        return self._view("json")

    def raw(self) -> Self:
        """This endpoint, with raw ``bytes`` payloads."""
        return self._view("bytes")

    def text(self) -> Self:
        """This endpoint, with payloads as UTF-8 text (the default)."""
        return self._view("text")

    # ---- publish ----------------------------------------------------------------------------
    async def aio_set(self, value: Any) -> Any:
        """Publish ``value`` (see :func:`encode_payload`)."""
        if isinstance(value, ControlNode):
            value = await value.aio_get()
        payload = encode_payload(value, self._codec, label=self._label())
        await self.broker._call(f"publish to {self._label()}", self._aio_publish, payload)
        return None

    # ---- last message -----------------------------------------------------------------------
    async def aio_get(self) -> Any:
        """The last message received here, decoded; None until one arrives (subscribes)."""
        channel = await self.broker._subscribe(self)
        message = channel.last
        if message is None:
            return None
        try:
            return message.decode(self._codec)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{self._label()}: {exc}") from exc

    async def aio_has_data(self) -> bool:
        """True once a message has arrived here (subscribes on first use)."""
        channel = await self.broker._subscribe(self)
        return channel.last is not None

    async def aio_last_message(self) -> Message | None:
        """The last :class:`Message` received here, undecoded (subscribes on first use)."""
        channel = await self.broker._subscribe(self)
        return channel.last

    def last_message(self) -> Message | None:
        """Sync ``aio_last_message()``."""
        message: Message | None = self._sync(
            self.aio_last_message, local=False, aio_name="aio_last_message"
        )
        return message

    # ---- callbacks and streams --------------------------------------------------------------
    async def aio_subscribe(
        self, callback: Callable[[Any], Any], *, queue_size: int | None = None
    ) -> Subscription:
        """Call ``callback(value)`` for every message from now on (see :class:`Subscription`).

        The callback runs in the Trio loop this is called from, until the subscription is
        closed, the node is unsubscribed or closed, or a stop is requested for the caller.
        """
        if not callable(callback):
            raise TypeError(f"{self._label()}: the callback must be callable, got {callback!r}")
        size = self.broker.queue_size if queue_size is None else int(queue_size)
        inbox: Inbox[Message] = Inbox(trio.lowlevel.current_trio_token(), size)
        channel = await self.broker._subscribe(self)
        subscription = Subscription(self, channel, callback, inbox)
        channel.add_listener(inbox)
        trio.lowlevel.spawn_system_task(
            subscription._run,
            current_stop_scope(),
            name=f"{self._label()} subscription",
            context=contextvars.copy_context(),
        )
        return subscription

    def subscribe(
        self, callback: Callable[[Any], Any], *, queue_size: int | None = None
    ) -> Subscription:
        """Sync ``aio_subscribe()``: ``callback(value)`` for every message from now on."""
        subscription: Subscription = self._sync(
            functools.partial(self.aio_subscribe, queue_size=queue_size),
            callback,
            local=False,
            aio_name="aio_subscribe",
        )
        return subscription

    def aio_messages(self, *, queue_size: int | None = None) -> MessageStream:
        """Every :class:`Message` from now on: ``async with node.aio_messages() as messages:``
        then ``async for message in messages`` (see :class:`MessageStream`)."""
        size = self.broker.queue_size if queue_size is None else int(queue_size)
        return MessageStream(self, size)

    async def aio_unsubscribe(self) -> None:
        """Stop receiving here: callbacks and ``aio_messages()`` of this endpoint end."""
        await self.broker._unsubscribe(self)

    def unsubscribe(self) -> None:
        """Sync ``aio_unsubscribe()``."""
        self._sync(self.aio_unsubscribe, local=False, aio_name="aio_unsubscribe")

    # ---- what an endpoint implements (asyncio side) -----------------------------------------
    async def _aio_publish(self, conn: _Connection[Any], payload: bytes) -> None:
        raise NotImplementedError

    async def _aio_subscribe(self, conn: _Connection[Any], channel: _Channel) -> Any:
        raise NotImplementedError

    async def _aio_unsubscribe(self, conn: _Connection[Any], handle: Any) -> None:
        raise NotImplementedError
