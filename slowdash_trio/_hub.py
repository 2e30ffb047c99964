"""The streaming hub: current values published by tasks and browsers, fanned out to every
attached WebSocket.

Publishing never blocks and never awaits. Each ``current_data`` subscriber has a bounded
buffer of frames (``{CH: packet, ...}``): a value goes into the newest frame unless that frame
already holds its channel, in which case it opens a new frame; when ``max_frames`` frames (or
``max_pending`` values) wait, the value replaces its channel's entry in the newest frame
instead ("coalesced", counted) and the subscriber is *lagging* until it has sent everything.
A subscriber lagging for ``lag_timeout`` seconds, or through ``max_lag_updates`` coalesced
values, is dropped. Other topics get a queue of ``max_queue`` messages and no coalescing: a
subscriber whose queue is full is dropped. Every packet is encoded once, at publication.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson
import trio

from slowdash_controls import set_deliver_hook

from ._dispatch import encode_json

if TYPE_CHECKING:
    from slowdash_controls import ControlNode

    from ._server import Server

logger = logging.getLogger("slowdash_trio.hub")

CURRENT_DATA = "current_data"


@dataclasses.dataclass
class HubLimits:
    """Bounds per subscriber and for the cache (see the module docstring)."""

    max_frames: int = 64
    max_pending: int = 8192
    max_lag_updates: int = 100_000
    lag_timeout: float = 10.0
    max_queue: int = 256
    max_channels: int = 10_000
    max_message: int = 1 << 20


class Subscriber:
    """One attached WebSocket: what waits to be sent to it, and its counters."""

    def __init__(self, hub: Hub, topic: str) -> None:
        self.hub = hub
        self.topic = topic
        self.closed = False
        self.close_reason = ""
        self.lagging_since: float | None = None
        self.offered = 0  # values (or messages) handed to this subscriber
        self.taken = 0  # values (or messages) taken by its sender
        self.frames = 0  # frames taken by its sender
        self.coalesced = 0  # values replaced by a newer one before they were sent
        self.lag_updates = 0  # values coalesced since it became lagging
        self.on_drop: Callable[[str], None] | None = None
        self._notices: deque[str] = deque()
        self._frames: deque[dict[str, str]] = deque()
        self._queue: deque[str] = deque()
        self._pending = 0
        self._wake = trio.Event()

    @property
    def lagging(self) -> bool:
        return self.lagging_since is not None

    @property
    def pending(self) -> int:
        """Values (or messages) waiting to be sent."""
        return self._pending + len(self._queue)

    def notify(self, text: str) -> None:
        """Queue a message for this subscriber only (an error answer), sent before data."""
        if len(self._notices) >= 16:
            self.hub.drop(self, "too many error messages waiting")
            return
        self._notices.append(text)
        self._wake.set()

    def offer(self, items: Iterable[tuple[str, str]]) -> None:
        """Buffer ``(channel, fragment)`` pairs of one publication (current_data)."""
        limits = self.hub.limits
        frames = self._frames
        for channel, fragment in items:
            self.offered += 1
            last = frames[-1] if frames else None
            if last is not None and channel not in last:
                last[channel] = fragment
                self._pending += 1
            elif last is None or (
                len(frames) < limits.max_frames and self._pending < limits.max_pending
            ):
                frames.append({channel: fragment})
                self._pending += 1
            else:
                last[channel] = fragment
                self.coalesced += 1
                self.lag_updates += 1
                self.hub.coalesced += 1
                if self.lagging_since is None:
                    self.lagging_since = trio.current_time()
                    logger.info("a %s subscriber is lagging", self.topic)
        self._wake.set()
        if self.lag_updates > limits.max_lag_updates:
            self.hub.drop(
                self, f"too slow: {self.lag_updates} updates coalesced without catching up"
            )

    def offer_message(self, text: str) -> None:
        """Queue one message (topics other than current_data)."""
        if len(self._queue) >= self.hub.limits.max_queue:
            self.hub.drop(self, f"too slow: {len(self._queue)} messages waiting")
            return
        self.offered += 1
        self._queue.append(text)
        self._wake.set()

    def take(self) -> str | None:
        """The next message to send, or None if nothing waits."""
        if self._notices:
            return self._notices.popleft()
        if self._frames:
            frame = self._frames.popleft()
            self._pending -= len(frame)
            self.taken += len(frame)
            self.frames += 1
            return "{" + ",".join(frame.values()) + "}"
        if self._queue:
            self.taken += 1
            self.frames += 1
            return self._queue.popleft()
        if self.lagging_since is not None:
            self.lagging_since = None
            self.lag_updates = 0
        return None

    async def next_message(self) -> str | None:
        """Wait for the next message; None once the subscriber is closed."""
        while not self.closed:
            message = self.take()
            if message is not None:
                return message
            self._wake = trio.Event()
            await self._wake.wait()
        return None

    def close(self, reason: str = "") -> None:
        self.closed = True
        self.close_reason = self.close_reason or reason
        self._frames.clear()
        self._queue.clear()
        self._pending = 0
        self._wake.set()


@dataclasses.dataclass
class _Cached:
    t: float | None  # absolute time of the last point
    packet: str  # the packet as JSON text
    fragment: str  # '"CH":{packet}'


class Hub:
    """Publish/subscribe for ``current_data`` and other topics; never blocks a publisher."""

    def __init__(self, server: Server | None = None, limits: HubLimits | None = None) -> None:
        self.server = server
        self.limits = limits or HubLimits()
        self._cache: dict[str, _Cached] = {}
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self.coalesced = 0
        self.dropped = 0
        self.refused = 0

    # ---- publishing -----------------------------------------------------------------------
    def publish_current(self, values: dict[str, Any], *, sender: str | None = None) -> None:
        """Publish ``{CH: {"t": T, "x": X, ...}}`` (sync, non-blocking, Trio thread): the
        cache keeps each channel's latest packet; every current_data subscriber gets them."""
        del sender  # the hub sends to every subscriber; the task manager uses the sender
        items = self._encode(values, cache=True)
        if items:
            for subscriber in list(self._subscribers.get(CURRENT_DATA, ())):
                subscriber.offer(items)

    def cache_current(self, values: dict[str, Any]) -> None:
        """Only update the cache (``/api/consume/current_data``)."""
        self._encode(values, cache=True)

    def publish(self, topic: str, text: str) -> None:
        """Send ``text`` to every subscriber of ``topic`` (not current_data), unchanged."""
        for subscriber in list(self._subscribers.get(topic, ())):
            subscriber.offer_message(text)

    def current(self) -> dict[str, Any]:
        """The latest packet per channel (the "mesh cache")."""
        return {name: orjson.loads(entry.packet) for name, entry in self._cache.items()}

    def cached(self, name: str) -> tuple[float | None, dict[str, Any]] | None:
        """``(absolute time, packet)`` of one channel, or None."""
        entry = self._cache.get(name)
        return None if entry is None else (entry.t, orjson.loads(entry.packet))

    def _encode(self, values: dict[str, Any], *, cache: bool) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        for name, packet in values.items():
            if not isinstance(name, str) or not isinstance(packet, dict):
                logger.debug("not a channel packet: %r: %r", name, packet)
                continue
            known = name in self._cache
            if not known and len(self._cache) >= self.limits.max_channels:
                self.refused += 1
                if self.refused == 1:
                    logger.warning(
                        "more than %d streamed channels: new ones are refused",
                        self.limits.max_channels,
                    )
                continue
            try:
                text = encode_json(packet).decode()
            except (TypeError, ValueError, RecursionError) as exc:
                logger.warning("channel %s: the value is not JSON: %s", name, exc)
                continue
            fragment = encode_json(name).decode() + ":" + text
            items.append((name, fragment))
            if cache and "t" in packet and "x" in packet:
                self._cache[name] = _Cached(_absolute_time(packet), text, fragment)
        return items

    # ---- subscribers ----------------------------------------------------------------------
    def subscribe(self, topic: str) -> Subscriber:
        """A new subscriber; a current_data one gets the current values first (replay)."""
        subscriber = Subscriber(self, topic)
        if topic == CURRENT_DATA and self._cache:
            subscriber.offer((name, entry.fragment) for name, entry in self._cache.items())
        self._subscribers.setdefault(topic, []).append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(subscriber.topic, [])
        if subscriber in subscribers:
            subscribers.remove(subscriber)
            if not subscribers:
                del self._subscribers[subscriber.topic]
        subscriber.close("detached")

    def subscribers(self, topic: str = CURRENT_DATA) -> list[Subscriber]:
        return list(self._subscribers.get(topic, ()))

    def drop(self, subscriber: Subscriber, reason: str) -> None:
        """Disconnect a subscriber (too slow); nobody else waits for it."""
        if subscriber.closed:
            return
        self.dropped += 1
        logger.warning("a %s subscriber is dropped: %s", subscriber.topic, reason)
        subscriber.close_reason = reason
        self.unsubscribe(subscriber)
        if subscriber.on_drop is not None:
            subscriber.on_drop(reason)

    def check_lagging(self) -> None:
        """Drop subscribers that have been lagging longer than ``lag_timeout``."""
        now = trio.current_time()
        for subscriber in self.subscribers(CURRENT_DATA):
            since = subscriber.lagging_since
            if since is not None and now - since > self.limits.lag_timeout:
                self.drop(
                    subscriber,
                    f"too slow: lagging for more than {self.limits.lag_timeout:g} s",
                )

    # ---- serving --------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled: installs the control library's deliver hook, drops lagging
        subscribers; at exit removes the hook and closes every subscriber."""
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.current_thread()
        previous = set_deliver_hook(self.deliver)
        interval = min(max(self.limits.lag_timeout / 4, 0.05), 1.0)
        try:
            task_status.started()
            while True:
                await trio.sleep(interval)
                self.check_lagging()
        finally:
            set_deliver_hook(previous)
            self._token = None
            for subscribers in list(self._subscribers.values()):
                for subscriber in list(subscribers):
                    self.unsubscribe(subscriber)

    async def deliver(self, node: ControlNode | None, value: Any, name: str | None) -> None:
        """The deliver hook: ``await node.deliver(name)`` and ``aio_publish`` land here."""
        await trio.lowlevel.checkpoint_if_cancelled()
        channel = name
        if channel is None and node is not None and self.server is not None:
            channel = self.server.tasks.export_name_of(node)
        if channel is None:
            logger.debug("deliver() of %r: no channel name and not exported: skipped", node)
            return
        try:
            packet = packet_of(value)
        except (TypeError, ValueError) as exc:
            logger.warning("deliver() to %s: %s; nothing sent", channel, exc)
            return
        self.publish_from_any_thread({channel: packet}, sender="taskmodule_" + channel)

    def publish_from_any_thread(self, values: dict[str, Any], *, sender: str | None) -> None:
        """`publish_current`, from the hub's thread or any other (then scheduled there)."""
        token = self._token
        if token is None or threading.current_thread() is self._thread:
            self.publish_current(values, sender=sender)
        else:
            try:
                token.run_sync_soon(lambda: self.publish_current(values, sender=sender))
            except trio.RunFinishedError:
                pass


def _absolute_time(packet: dict[str, Any]) -> float | None:
    t = packet.get("t")
    if isinstance(t, list):
        t = t[-1] if t else None
    start = packet.get("start", 0)
    if isinstance(t, int | float) and isinstance(start, int | float) and not isinstance(t, bool):
        value = float(t) + float(start)
        return value if math.isfinite(value) else None
    return None


_OBJECT_KEYS = ("tree", "table", "bins", "ybins", "y")


def value_of(value: Any) -> Any:
    """A delivered value as channel data: scalars as they are, data objects by their
    ``to_json()``, dicts naming their type (tree/table/bins/y) as they are, other dicts,
    dataclasses and plain objects as trees."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, dict):
        return value if any(key in value for key in _OBJECT_KEYS) else {"tree": value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"tree": dataclasses.asdict(value)}
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    if isinstance(value, list | tuple):
        return list(value)
    if hasattr(value, "__dict__"):
        return {"tree": {k: v for k, v in vars(value).items() if not k.startswith("_")}}
    raise TypeError(f"{type(value).__name__} cannot be streamed")


def packet_of(value: Any) -> dict[str, Any]:
    """``{"t": now, "x": VALUE}``, or a time series' whole ``{"start", "length", "t": [...]}``."""
    x = value_of(value)
    if isinstance(x, dict) and isinstance(x.get("t"), list) and "start" in x:
        return x
    return {"t": time.time(), "x": x}
