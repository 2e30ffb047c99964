"""Redis nodes (``ctrl.redis(url)``): strings, hashes, RedisJSON documents, RedisTimeSeries.

::

    r = ctrl.redis("redis://127.0.0.1:6379")
    r.get()                                  # INFO, as a dict
    r.string("run").set(42); r.string("run").do_incr()
    r.hash("hv").set({"ch0": 1000}); r.hash("hv").field("ch0").get()
    r.json("status").node("hv").node("ch0").set(1000)        # RedisJSON module
    r.ts("V0").current().set(1.25); r.ts("V0").last().lapse() # RedisTimeSeries module

The client is `coredis <https://coredis.readthedocs.io>`_, which runs on Trio natively (through
anyio). A coredis client has to be used inside ``async with client:``, which owns a task group
for its connections; that block is held open by a small Trio *system task* per node and loop,
started when the node first connects and ended by ``aclose()``, by a broken link, when the
node is dropped (garbage-collected), or when the loop ends. The client lives in the node's
:class:`Link`: it is made lazily (the first operation connects and PINGs), a broken connection
is reopened with capped back-off, and ``node.link.status`` shows the state. Nodes made from
one :class:`RedisNode` share its link.

Every operation has a deadline (``timeout``, seconds), mapped to :class:`DeviceTimeout`; after a
timeout the connection is dropped and reopened, so a late reply cannot be taken for the answer
to a later command. A server that cannot be reached, or a connection that breaks, is a
:class:`DeviceConnectionError`. An error reply is a :class:`RedisCommandError`; when the server
does not know a module's command (``JSON.*``, ``TS.*``), the message names the module to load.
Commands are never retried, so an ``INCR`` is never applied twice.
"""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import coredis
import coredis.exceptions
import trio
from coredis.retry import NoRetryPolicy
from coredis.tokens import PureToken

from ._errors import (
    DeviceConnectionError,
    DeviceTimeout,
    NodeAccessError,
    RedisCommandError,
)
from ._link import Link, LinkState, release_when_collected
from ._node import ControlNode, ControlValueNode

__all__ = [
    "RedisCommandError",
    "RedisHashFieldNode",
    "RedisHashNode",
    "RedisJsonNode",
    "RedisNode",
    "RedisStringNode",
    "RedisTimeSeriesCurrentNode",
    "RedisTimeSeriesLastNode",
    "RedisTimeSeriesNode",
]

T = TypeVar("T")
Client = coredis.Redis[str]

#: command prefix -> the module that provides it, for "unknown command" errors
MODULES = {
    "JSON.": "RedisJSON (redis-stack, or redis-server --loadmodule rejson.so)",
    "TS.": "RedisTimeSeries (redis-stack, or redis-server --loadmodule redistimeseries.so)",
}

SCHEMES = ("redis", "rediss", "unix")

# _CANCELLED: coredis (6.9) reports a cancellation that arrives while a connection is being
# set up as a ConnectionError, swallowing the Cancelled. When our deadline (or a stop) is what
# happened, a checkpoint re-raises the pending cancellation, so that it becomes a DeviceTimeout
# (or a stop) as it should, and not a "cannot connect".


class _Session:
    """One coredis client, held open by a system task until ``stop`` is set."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ready = trio.Event()
        self.stop = trio.Event()
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.finalizer: weakref.finalize[[], object] | None = None

    async def hold(self) -> None:
        try:
            async with self.client:
                self.ready.set()
                await self.stop.wait()
        except* Exception as group:
            self.error = group.exceptions[0] if len(group.exceptions) == 1 else group
        finally:
            self.ready.set()
            self.done.set()

    @property
    def alive(self) -> bool:
        return not self.done.is_set()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a Redis key must be a non-empty str, got {key!r}")
    return key


def _scalar(node: ControlNode, value: Any) -> str | bytes | int | float:
    """A value Redis can store as a string (bools as 0/1, as Redis counts them)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str | bytes | int | float):
        return value
    raise NodeAccessError(
        f"{node._label()}: cannot store a {type(value).__name__} as a Redis string "
        "(use hash() for a dict, json() for any JSON document)"
    )


class RedisNode(ControlNode):
    """A Redis server: ``get()`` returns ``INFO`` as a dict; branches for its data types."""

    def __init__(self, url: str = "redis://127.0.0.1:6379", *, timeout: float = 5.0) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in SCHEMES:
            raise ValueError(f"redis(): expected a redis://, rediss:// or unix:// URL, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"redis(): timeout must be positive, got {timeout!r}")
        self.url = url
        self.timeout = float(timeout)
        split = urlsplit(url)
        self.address = (
            split.path if split.scheme == "unix" else f"{split.hostname}:{split.port or 6379}"
        )
        self.link: Link[_Session] = Link(
            self.address, self._open, self._close, connect_timeout=self.timeout
        )

    # ---- the connection ---------------------------------------------------------------------
    async def _open(self) -> _Session:
        try:
            client: Client = coredis.Redis.from_url(
                self.url,
                decode_responses=True,
                retry_policy=NoRetryPolicy(),
                connect_timeout=2 * self.timeout,  # ours (the link's) expires first
            )
        except (ValueError, TypeError) as exc:
            raise DeviceConnectionError(
                f"bad URL {self.url!r}: {exc}", address=self.address
            ) from exc
        session = _Session(client)
        trio.lowlevel.spawn_system_task(session.hold, name=f"slowdash-controls redis {self.url}")
        session.finalizer = release_when_collected(self, session.stop)
        opened = False
        try:
            await session.ready.wait()
            if session.error is not None:
                raise DeviceConnectionError(
                    f"cannot start the client: {_describe(session.error)}", address=self.address
                )
            await client.ping()
            opened = True
        except coredis.exceptions.AuthenticationError as exc:
            raise DeviceConnectionError(
                f"authentication failed: {exc}", address=self.address
            ) from exc
        except (coredis.exceptions.ConnectionError, OSError) as exc:
            await trio.lowlevel.checkpoint_if_cancelled()  # see _CANCELLED above
            raise DeviceConnectionError(
                f"cannot connect: {_describe(exc)}", address=self.address
            ) from exc
        except coredis.exceptions.RedisError as exc:
            raise DeviceConnectionError(
                f"the server refused the connection: {exc}", address=self.address
            ) from exc
        finally:
            if not opened:
                session.stop.set()
        return session

    @staticmethod
    async def _close(session: _Session) -> None:
        if session.finalizer is not None:
            session.finalizer.detach()
        session.stop.set()
        await session.done.wait()

    async def aclose(self) -> None:
        """Close the connection for good; later operations fail."""
        await self.link.aclose()

    async def call(self, command: str, operation: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``operation(client)`` under the node's deadline, with errors translated.

        ``command`` names the Redis command, for messages (``"HGETALL"``, ``"JSON.GET"``).
        """
        try:
            async with self.link.transaction(self.timeout, command=command) as session:
                if not session.alive:
                    error = session.error or "the client stopped"
                    await self.link.mark_broken(error)
                    raise DeviceConnectionError(f"link broken: {error}", address=self.address)
                return await self._translated(command, operation, session.client)
        except DeviceTimeout:
            if self.link.state is LinkState.UP:  # a stalled connection: start afresh
                await self.link.mark_broken(f"{command} timed out after {self.timeout:g} s")
            raise

    async def _translated(
        self, command: str, operation: Callable[[Client], Awaitable[T]], client: Client
    ) -> T:
        try:
            return await operation(client)
        except coredis.exceptions.UnknownCommandError as exc:
            module = next((m for p, m in MODULES.items() if command.startswith(p)), None)
            if module is not None:
                raise RedisCommandError(
                    command,
                    f"the server does not know this command; it needs the module {module}",
                    address=self.address,
                ) from exc
            raise RedisCommandError(command, str(exc), address=self.address) from exc
        except coredis.exceptions.AuthenticationError as exc:
            raise DeviceConnectionError(
                f"authentication failed: {exc}", address=self.address
            ) from exc
        except coredis.exceptions.ConnectionError as exc:
            await trio.lowlevel.checkpoint_if_cancelled()  # see _CANCELLED above
            await self.link.mark_broken(exc)
            raise DeviceConnectionError(
                f"link broken: {_describe(exc)}", address=self.address
            ) from exc
        except TimeoutError as exc:  # coredis's own (pool) timeouts
            raise DeviceTimeout(
                "no answer", address=self.address, timeout=self.timeout, command=command
            ) from exc
        except coredis.exceptions.RedisError as exc:
            raise RedisCommandError(command, str(exc), address=self.address) from exc

    # ---- the node -----------------------------------------------------------------------------
    async def aio_get(self) -> dict[str, Any]:
        return await self.call("INFO", lambda c: c.info())

    def string(self, key: str) -> RedisStringNode:
        """The string value at ``key``."""
        return RedisStringNode(self, key)

    def hash(self, key: str) -> RedisHashNode:
        """The hash at ``key``; ``.field(name)`` for one of its fields."""
        return RedisHashNode(self, key)

    def json(self, key: str, base: str = "$") -> RedisJsonNode:
        """The RedisJSON document at ``key`` (JSONPath ``base``); ``.node(path)`` for a part."""
        return RedisJsonNode(self, key, base)

    def ts(self, key: str, length: float = 3600, to: float = 0) -> RedisTimeSeriesNode:
        """The RedisTimeSeries series at ``key``; ``get()`` reads the window of ``length``
        seconds ending at ``to`` (UNIX seconds; ``to <= 0`` means ``now + to``)."""
        return RedisTimeSeriesNode(self, key, length, to)

    def _label(self) -> str:
        return f"redis({self.url})"


class RedisStringNode(ControlValueNode):
    """``redis.string(key)``: ``get()`` -> str (None if absent); ``set(v)`` stores ``v``."""

    def __init__(self, redis: RedisNode, key: str) -> None:
        self.redis = redis
        self.key = _check_key(key)

    async def aio_get(self) -> str | None:
        return await self.redis.call("GET", lambda c: c.get(self.key))

    async def aio_set(self, value: Any) -> None:
        stored = _scalar(self, value)
        await self.redis.call("SET", lambda c: c.set(self.key, stored))

    async def aio_do_incr(self, n: float = 1) -> int | float:
        """Add ``n`` (INCRBY, or INCRBYFLOAT for a float) and return the new value."""
        if isinstance(n, bool) or not isinstance(n, int | float):
            raise NodeAccessError(f"{self._label()}: do_incr() needs a number, got {n!r}")
        if isinstance(n, int):
            step = n
            return await self.redis.call("INCRBY", lambda c: c.incrby(self.key, step))
        fstep = float(n)
        return await self.redis.call("INCRBYFLOAT", lambda c: c.incrbyfloat(self.key, fstep))

    def do_incr(self, n: float = 1) -> int | float:
        """Add ``n`` and return the new value (sync; see ``aio_do_incr``)."""
        result: int | float = self._sync(self.aio_do_incr, n, local=False, aio_name="aio_do_incr")
        return result

    def _label(self) -> str:
        return f"{self.redis._label()}.string({self.key!r})"


class RedisHashNode(ControlNode):
    """``redis.hash(key)``: ``get()`` -> dict (HGETALL); ``set(dict)`` writes those fields
    (HSET; fields not in the dict are kept)."""

    def __init__(self, redis: RedisNode, key: str) -> None:
        self.redis = redis
        self.key = _check_key(key)

    async def aio_get(self) -> dict[str, str]:
        return await self.redis.call("HGETALL", lambda c: c.hgetall(self.key))

    async def aio_set(self, value: Any) -> int:
        if not isinstance(value, Mapping):
            raise NodeAccessError(f"{self._label()}: set() needs a dict, got {value!r}")
        fields: dict[str, str | bytes | int | float] = {}
        for name, item in value.items():
            if not isinstance(name, str) or not name:
                raise NodeAccessError(f"{self._label()}: field names must be str, got {name!r}")
            fields[name] = _scalar(self, item)
        if not fields:
            return 0
        return await self.redis.call("HSET", lambda c: c.hset(self.key, fields))

    def field(self, name: str) -> RedisHashFieldNode:
        """One field of the hash."""
        return RedisHashFieldNode(self, name)

    filed = field  # the seed's spelling

    def _label(self) -> str:
        return f"{self.redis._label()}.hash({self.key!r})"


class RedisHashFieldNode(ControlValueNode):
    """``hash(key).field(name)``: ``get()`` -> str (None if absent); ``set(v)``."""

    def __init__(self, hash_node: RedisHashNode, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a hash field name must be a non-empty str, got {name!r}")
        self.hash = hash_node
        self.name = name

    async def aio_get(self) -> str | None:
        key, name = self.hash.key, self.name
        return await self.hash.redis.call("HGET", lambda c: c.hget(key, name))

    async def aio_set(self, value: Any) -> None:
        key, fields = self.hash.key, {self.name: _scalar(self, value)}
        await self.hash.redis.call("HSET", lambda c: c.hset(key, fields))

    def _label(self) -> str:
        return f"{self.hash._label()}.field({self.name!r})"


class RedisJsonNode(ControlNode):
    """``redis.json(key, base='$')``: a RedisJSON document, or the part of it at ``base``.

    ``get()`` returns the value (JSONPath results that are one-element lists are unwrapped; a
    path that matches nothing, or a missing key, gives None); ``set(v)`` writes ``v`` there.
    ``node(path)`` is the part at ``base.path`` (``base[0]`` for a path starting with ``[``).
    """

    def __init__(self, redis: RedisNode, key: str, path: str = "$") -> None:
        if not isinstance(path, str) or not path:
            raise ValueError(f"a JSON path must be a non-empty str, got {path!r}")
        self.redis = redis
        self.key = _check_key(key)
        self.path = path

    async def aio_get(self) -> Any:
        result = await self.redis.call("JSON.GET", lambda c: c.json.get(self.key, self.path))
        if self.path.startswith("$") and isinstance(result, list):
            if not result:
                return None
            if len(result) == 1:
                return result[0]
        return result

    async def aio_set(self, value: Any) -> None:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise NodeAccessError(f"{self._label()}: cannot encode as JSON: {exc}") from exc
        await self.redis.call("JSON.SET", lambda c: c.json.set(self.key, self.path, value))

    def node(self, path: str) -> RedisJsonNode:
        """The part of this document at ``path`` (relative to this node's path)."""
        if not isinstance(path, str) or not path:
            raise ValueError(f"a JSON path must be a non-empty str, got {path!r}")
        joined = self.path + path if path.startswith("[") else f"{self.path}.{path}"
        return RedisJsonNode(self.redis, self.key, joined)

    def _label(self) -> str:
        return f"{self.redis._label()}.json({self.key!r}, {self.path!r})"


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


def _missing_series(exc: RedisCommandError) -> bool:
    return "does not exist" in str(exc)


class RedisTimeSeriesNode(ControlNode):
    """``redis.ts(key, length=3600, to=0)``: a RedisTimeSeries series.

    ``get()`` returns the points of the window as ``[(t_ms, value), ...]`` (``[]`` for a
    series that does not exist); ``set(points)`` adds ``(t_ms, value)`` points (a point at an
    existing time replaces it).
    """

    def __init__(self, redis: RedisNode, key: str, length: float = 3600, to: float = 0) -> None:
        if not length > 0:
            raise ValueError(f"ts(): length must be positive, got {length!r}")
        self.redis = redis
        self.key = _check_key(key)
        self.length = float(length)
        self.to = float(to)

    def window(self) -> tuple[int, int]:
        """The window ``(from_ms, to_ms)`` that ``get()`` reads now."""
        end = self.to if self.to > 0 else time.time() + self.to
        return _milliseconds(end - self.length), _milliseconds(end)

    async def aio_get(self) -> list[tuple[int, float]]:
        start, end = self.window()
        try:
            points = await self.redis.call(
                "TS.RANGE", lambda c: c.timeseries.range(self.key, start, end)
            )
        except RedisCommandError as exc:
            if _missing_series(exc):
                return []
            raise
        return [(int(p[0]), float(p[1])) for p in points]

    async def aio_set(self, value: Any) -> None:
        points = self._points(value)
        for t, x in points:
            await self.add(t, x)

    def _points(self, value: Any) -> list[tuple[int, float]]:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise NodeAccessError(
                f"{self._label()}: set() needs a list of (t_ms, value) points, got {value!r}"
            )
        points = []
        for point in value:
            try:
                t, x = point
                points.append((int(t), float(x)))
            except (TypeError, ValueError) as exc:
                raise NodeAccessError(
                    f"{self._label()}: a point is (t_ms, value), got {point!r}"
                ) from exc
        return points

    async def add(self, t_ms: int, value: float) -> int:
        """Add one point (replacing a point at the same time); returns its time."""
        if not math.isfinite(value):
            raise NodeAccessError(f"{self._label()}: {value!r} is not a finite number")
        return await self.redis.call(
            "TS.ADD",
            lambda c: c.timeseries.add(self.key, t_ms, value, duplicate_policy=PureToken.LAST),
        )

    async def aio_last(self) -> tuple[int, float] | None:
        """The last point ``(t_ms, value)``, or None for an empty or missing series."""
        try:
            point = await self.redis.call("TS.GET", lambda c: c.timeseries.get(self.key))
        except RedisCommandError as exc:
            if _missing_series(exc):
                return None
            raise
        if len(point) < 2:
            return None
        return int(point[0]), float(point[1])

    def current(self) -> RedisTimeSeriesCurrentNode:
        """``set(v)`` adds ``v`` at the present time; ``get()`` reads the last value."""
        return RedisTimeSeriesCurrentNode(self)

    def last(self) -> RedisTimeSeriesLastNode:
        """``get()`` -> the last point ``(t_ms, value)``; ``.value()``, ``.time()``,
        ``.lapse()``."""
        return RedisTimeSeriesLastNode(self)

    def _label(self) -> str:
        return f"{self.redis._label()}.ts({self.key!r})"


class RedisTimeSeriesCurrentNode(ControlValueNode):
    """``ts(key).current()``: ``set(v)`` adds ``(now, v)``; ``get()`` -> the last value."""

    def __init__(self, series: RedisTimeSeriesNode) -> None:
        self.series = series

    async def aio_get(self) -> float | None:
        point = await self.series.aio_last()
        return None if point is None else point[1]

    async def aio_set(self, value: Any) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise NodeAccessError(f"{self._label()}: a number is needed, got {value!r}") from exc
        await self.series.add(_milliseconds(time.time()), number)

    def _label(self) -> str:
        return f"{self.series._label()}.current()"


class RedisTimeSeriesLastNode(ControlNode):
    """``ts(key).last()``: ``get()`` -> ``(t_ms, value)`` of the last point, or None."""

    def __init__(self, series: RedisTimeSeriesNode, part: str | None = None) -> None:
        self.series = series
        self.part = part

    async def aio_get(self) -> Any:
        point = await self.series.aio_last()
        if self.part is None or point is None:
            return point
        t_ms, value = point
        if self.part == "value":
            return value
        if self.part == "time":
            return t_ms / 1000
        return time.time() - t_ms / 1000  # lapse

    def value(self) -> RedisTimeSeriesLastNode:
        """The value of the last point."""
        return RedisTimeSeriesLastNode(self.series, "value")

    def time(self) -> RedisTimeSeriesLastNode:
        """The time of the last point, UNIX seconds."""
        return RedisTimeSeriesLastNode(self.series, "time")

    def lapse(self) -> RedisTimeSeriesLastNode:
        """Seconds since the last point."""
        return RedisTimeSeriesLastNode(self.series, "lapse")

    def _label(self) -> str:
        suffix = f".{self.part}()" if self.part else ""
        return f"{self.series._label()}.last(){suffix}"
