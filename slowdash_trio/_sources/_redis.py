"""The Redis data source: reads what ``slowdash_stores.DataStore_Redis`` writes.

The key layout is ``slowdash_stores.RedisLayout`` (docs/stores.md). Channels come from the
registry sets ``__sd_channels_KIND`` (no ``SCAN``), and a requested name is read only if the
set of its kind lists it: no other key of the database is ever read.

- ``zts``/``zobjts`` (sorted sets, score = UNIX time): raw windows are ``ZRANGEBYSCORE begin
  (to`` read in pages; a resampled window is read once (at most ``MAX_RAW_POINTS`` points per
  channel) and bucketed here by ``resample_points``: Redis has no bucketing without modules.
- ``ts``/``objts`` (RedisTimeSeries, if the server has the module): ``TS.RANGE`` of the key
  ``CH``; objects from the ring ``__sd_objtsindex_CH`` (slots) + ``__sd_objts_CH_SLOT``.
- ``value``/``object`` (``update()``) and ``hash`` (``write_hash()``, a tree): the latest
  value, as one point at ``to``.

redis-py's sync client runs in worker threads, at most ``connections`` at a time, with one
bounded pool per database. A cancelled request abandons its thread, which stops before its
next page and gives its connection back to the pool.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from slowdash_stores import RedisLayout
from slowdash_stores._postgresql import redact

from ._base import DataSource, SourceConfigError, SourceUnavailable
from ._query import (
    MAX_RAW_POINTS,
    TOO_MANY_POINTS,
    DataQuery,
    Grid,
    QueryError,
    auto_interval,
    grid_reply,
    make_grid,
    prepend_prior,
    raw_reply,
    resample_points,
    wants_prior,
)
from ._schema import check_channel_name
from ._values import decode_value, value_type

logger = logging.getLogger("slowdash_trio.sources.redis")
T = TypeVar("T")
Points = tuple[list[float], list[Any]]

GROUPS: Final = {
    "time_series": ("zts", "ts"),
    "object_time_series": ("zobjts", "objts"),
    "key_value": ("value", "hash"),
    "object": ("object",),
}
"""The entries of a Redis ``data_source`` and the kinds of ``RedisLayout`` each one reads."""
NUMERIC: Final = ("zts", "ts")
ZSETS: Final = ("zts", "zobjts")
SERIES: Final = ("zts", "ts", "zobjts", "objts")
MODULE_KINDS: Final = ("ts", "objts")
PAGE: Final = 20_000
"""Points read per command (a cancelled request stops between pages)."""
_SUFFIX: Final = re.compile(r"[A-Za-z0-9._:\-]*")
_NUMBER: Final = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


class _Stopped(Exception):
    """The request was abandoned (cancelled): nobody waits for this thread's answer."""


@dataclass(frozen=True, slots=True)
class RedisEntry:
    """One entry: a database, a suffix and the kinds read there."""

    group: str
    db: int
    suffix: str
    kinds: tuple[str, ...]


# ----------------------------------------------------------------------------------------------
# configuration


def parse_url(url: object) -> tuple[dict[str, Any], str, int]:
    """redis-py's connection keywords (but ``db``), the address for messages (no password)
    and the database number of a ``redis://`` URL."""
    if not isinstance(url, str):
        raise SourceConfigError("a Redis source needs 'url: redis://HOST:PORT/DB'")
    parts = urlsplit(url)
    shown = redact(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise SourceConfigError(f"url {shown!r}: a Redis source takes redis://HOST:PORT/DB")
    try:
        port = parts.port or 6379
    except ValueError:
        raise SourceConfigError(f"url {shown!r}: bad port") from None
    path = parts.path.strip("/")
    if parts.query or parts.fragment or (path and not (path.isascii() and path.isdigit())):
        raise SourceConfigError(f"url {shown!r}: write redis://[USER:PASS@]HOST:PORT/DB")
    host = parts.hostname or "localhost"
    params: dict[str, Any] = {
        "host": host,
        "port": port,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }
    if scheme == "rediss":
        params["connection_class"] = redis.SSLConnection
    db = int(path or 0)
    return params, f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/{db}", db


def redis_entries(params: Mapping[str, Any], default_db: int) -> list[RedisEntry]:
    """The ``time_series``, ``object_time_series``, ``key_value`` and ``object`` entries (a
    mapping or a list of them, with ``db:`` and ``suffix:``); none given: all of them on the
    URL's database."""
    if not any(group in params for group in GROUPS):
        return [RedisEntry(group, default_db, "", kinds) for group, kinds in GROUPS.items()]
    entries = []
    for group, kinds in GROUPS.items():
        value = params.get(group, [])
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            where = f"{group}[{index}]" if isinstance(value, list) else group
            item = {} if item is None or item is True else item
            if not isinstance(item, Mapping) or set(item) - {"db", "suffix"}:
                raise SourceConfigError(f"{where}: a mapping with only 'db:' and 'suffix:'")
            db = item.get("db", default_db)
            if not isinstance(db, int) or isinstance(db, bool) or db < 0:
                raise SourceConfigError(f"{where}.db: a database number >= 0, not {db!r}")
            suffix = item.get("suffix") or ""
            if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
                raise SourceConfigError(f"{where}.suffix: letters, digits and '. _ - :' only")
            entries.append(RedisEntry(group, db, suffix, kinds))
    if not entries:
        raise SourceConfigError("no entry to read: the entries given are empty lists")
    return entries


def _number_param(params: Mapping[str, Any], name: str, default: float, top: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= top:
        raise SourceConfigError(f"{name}: a number above 0 and at most {top:g}, not {value!r}")
    return value


# ----------------------------------------------------------------------------------------------
# values and keys


def scalar(text: str) -> Any:
    """A latest value or a hash field as the API returns it: numbers as numbers (NaN and
    infinities as null), JSON text decoded, other text as it is."""
    stripped = text.strip()
    if _NUMBER.fullmatch(stripped):
        if stripped.lstrip("+-").isdigit():
            return int(stripped)
        return _finite(stripped)
    if stripped.lower() in ("nan", "inf", "-inf", "+inf"):
        return None
    return decode_value(text)


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _score(t: float) -> str:
    return repr(float(t))


def ms_range(lo: float, hi: float) -> tuple[int, int] | None:
    """RedisTimeSeries milliseconds ``[first, last]`` of the samples with ``lo <= t < hi``
    (a sample is at ``int(1000*t)`` ms); None if there can be none."""
    first = max(0, math.ceil(lo * 1000))
    last = math.ceil(hi * 1000) - 1
    return (first, last) if last >= first else None


def latest_per_slot(samples: Iterable[tuple[float, str]]) -> list[tuple[float, int]]:
    """The ring samples whose text is still in their slot, the latest of each slot (a later
    write to a slot overwrote the text of an earlier one), in time order."""
    latest: dict[int, float] = {}
    for t, slot_text in samples:
        slot = int(float(slot_text))
        latest[slot] = max(t, latest.get(slot, t))
    return sorted((t, slot) for slot, t in latest.items())


def _key(kind: str, bare: str) -> str:
    if kind == "zts":
        return RedisLayout.zts_key(bare)
    if kind == "zobjts":
        return RedisLayout.zobjts_key(bare)
    if kind == "objts":
        return RedisLayout.objts_index_key(bare)
    return bare  # ts (a RedisTS key), value, object, hash


def _pairs(kind: str, key: str, reply: Any) -> list[tuple[float, str]] | None:
    """``(time, text)`` of a ZRANGEBYSCORE ... WITHSCORES or TS.RANGE reply; None if Redis
    refused it (a key of another type: logged and skipped)."""
    if isinstance(reply, Exception):
        if "does not exist" in str(reply):  # a RedisTS key gone: no points
            return []
        logger.warning("Redis key %r skipped: %s", key, reply)
        return None
    if kind not in ZSETS:
        return [(int(ms) / 1000, str(value)) for ms, value in reply]
    flat = list(reply)  # member, score, member, score, ...
    if flat and isinstance(flat[0], (list, tuple)):
        flat = [item for pair in flat for item in pair]
    return [
        (float(s), str(m).partition(":")[2]) for m, s in zip(flat[::2], flat[1::2], strict=True)
    ]


# ----------------------------------------------------------------------------------------------
# the commands of one request (in a worker thread)


class _Reader:
    """Reads on one database; stops between round trips once ``stop`` is set."""

    def __init__(self, client: redis.Redis, stop: threading.Event) -> None:
        self.client = client
        self.stop = stop

    def execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Commands in one round trip; replies in order, refusals as exception objects."""
        if self.stop.is_set():
            raise _Stopped
        if not commands:
            return []
        pipe = self.client.pipeline(transaction=False)
        queue: Callable[..., Any] = pipe.execute_command
        for command in commands:
            queue(*command)
        return list(pipe.execute(raise_on_error=False))

    def windows(
        self, kind: str, bares: list[str], lo: float, hi: float, budget: list[int], message: str
    ) -> dict[str, Points]:
        """``{bare: (times, values)}`` of the points with ``lo <= t < hi``, read in pages of
        every channel at once; `QueryError` (``message``) once more than ``budget[0]`` come.

        An object series of the ring is read whole (its index keeps only the ring's length):
        a later sample of a slot tells that the text of an earlier one was overwritten."""
        keys = {_key(kind, bare): bare for bare in bares}
        out: dict[str, list[tuple[float, str]]] = {key: [] for key in keys}
        # the cursor of a key: (lowest score, members to skip at that score) of a sorted set,
        # (first millisecond, 0) of a RedisTS key
        first: tuple[Any, int]
        end: Any
        if kind in ZSETS:
            first, end = (_score(lo), 0), f"({_score(hi)}"
        else:
            span = (0, "+") if kind == "objts" else ms_range(lo, hi)
            if span is None:
                return {bare: ([], []) for bare in bares}
            first, end = (span[0], 0), span[1]
        pending = dict.fromkeys(keys, first)
        while pending:
            size = min(PAGE, budget[0] + 1)
            asked, pending = pending, {}
            commands: list[tuple[Any, ...]] = [
                ("ZRANGEBYSCORE", key, low, end, "WITHSCORES", "LIMIT", skip, size)
                if kind in ZSETS
                else ("TS.RANGE", key, low, end, "COUNT", size)
                for key, (low, skip) in asked.items()
            ]
            replies = self.execute(commands)
            for (key, (low, skip)), reply in zip(asked.items(), replies, strict=True):
                page = _pairs(kind, key, reply)
                if page is None:
                    del out[key]
                    continue
                budget[0] -= len(page)
                if budget[0] < 0:
                    raise QueryError(message)
                out[key] += page
                if len(page) == size and kind in ZSETS:
                    last = _score(page[-1][0])
                    same = sum(1 for t, _ in page if _score(t) == last)
                    pending[key] = (last, same + skip if last == low else same)
                elif len(page) == size:
                    pending[key] = (round(page[-1][0] * 1000) + 1, 0)
        if kind == "objts":
            return {keys[key]: self._ring(keys[key], pairs, lo, hi) for key, pairs in out.items()}
        decode = _finite if kind in NUMERIC else decode_value
        return {
            keys[key]: ([t for t, _ in pairs], [decode(text) for _, text in pairs])
            for key, pairs in out.items()
        }

    def priors(
        self, kind: str, bares: list[str], before: float | None
    ) -> dict[str, tuple[float, Any]]:
        """The last point before ``before`` (None: the latest) of each channel that has one."""
        if kind == "objts":
            budget, message = [MAX_RAW_POINTS], "the index of a Redis ring is too long"
            end = math.inf if before is None else before
            ring = self.windows(kind, bares, -math.inf, end, budget, message)
            return {bare: (t[-1], x[-1]) for bare, (t, x) in ring.items() if t}
        if kind in ZSETS:
            top = "+inf" if before is None else f"({_score(before)}"
            limit = ("WITHSCORES", "LIMIT", 0, 1)
            commands: list[tuple[Any, ...]]
            commands = [("ZREVRANGEBYSCORE", _key(kind, b), top, "-inf", *limit) for b in bares]
        else:
            if before is not None and before <= 0:
                return {}
            last = "+" if before is None else math.ceil(before * 1000) - 1
            commands = [("TS.REVRANGE", _key(kind, b), "-", last, "COUNT", 1) for b in bares]
        out: dict[str, tuple[float, Any]] = {}
        decode = _finite if kind in NUMERIC else decode_value
        for bare, reply in zip(bares, self.execute(commands), strict=True):
            for t, text in _pairs(kind, bare, reply) or []:
                out[bare] = (t, decode(text))
        return out

    def _ring(self, bare: str, pairs: list[tuple[float, str]], lo: float, hi: float) -> Points:
        """The objects of the ring samples with ``lo <= t < hi`` whose text is still there."""
        samples = [(t, slot) for t, slot in latest_per_slot(pairs) if lo <= t < hi]
        times: list[float] = []
        values: list[Any] = []
        for start in range(0, len(samples), PAGE):
            chunk = samples[start : start + PAGE]
            [texts] = self.execute([("MGET", *(RedisLayout.objts_key(bare, s) for _, s in chunk))])
            if isinstance(texts, Exception):
                logger.warning("Redis ring of %r skipped: %s", bare, texts)
                return [], []
            for (t, _), text in zip(chunk, texts, strict=True):
                if text is not None:
                    times.append(t)
                    values.append(decode_value(text))
        return times, values

    def currents(self, kind: str, bares: list[str]) -> dict[str, Any]:
        """The latest value of each ``value``/``object``/``hash`` channel that has one."""
        replies = self.execute([("HGETALL" if kind == "hash" else "GET", b) for b in bares])
        out: dict[str, Any] = {}
        for bare, reply in zip(bares, replies, strict=True):
            if isinstance(reply, Exception):
                logger.warning("Redis key %r skipped: %s", bare, reply)
            elif kind == "hash":
                items = (
                    reply.items()
                    if isinstance(reply, dict)
                    else zip(reply[::2], reply[1::2], strict=True)
                )
                out[bare] = {"tree": {str(k): scalar(v) for k, v in items}}
            elif reply is not None:
                out[bare] = scalar(reply)
        return out

    def types(self, kind: str, bares: list[str]) -> dict[str, str | None]:
        """The type of each channel, from its latest value (the data model's inference)."""
        if kind in NUMERIC or kind == "hash":
            return dict.fromkeys(bares, "tree" if kind == "hash" else None)
        if kind in ("value", "object"):
            return {bare: value_type(v) for bare, v in self.currents(kind, bares).items()}
        latest = self.priors(kind, bares, None)  # zobjts, objts
        return {bare: value_type(value) for bare, (_, value) in latest.items()}


def has_timeseries(client: redis.Redis) -> bool:
    """Whether the server has the RedisTimeSeries module (MODULE LIST, else a probe)."""
    execute: Callable[..., Any] = client.execute_command
    try:
        modules = execute("MODULE", "LIST")
    except redis.ResponseError:  # MODULE not allowed to this user: ask TS.INFO itself
        try:
            execute("TS.INFO", RedisLayout.PREFIX + "probe")
        except redis.ResponseError as exc:  # "TSDB: the key does not exist": it is there
            return "tsdb" in str(exc).lower()
        return True
    for module in modules or []:
        if not isinstance(module, dict):  # a flat [key, value, ...] list
            module = dict(zip(module[::2], module[1::2], strict=False))
        if str(module.get("name", "")).lower() == "timeseries":
            return True
    return False


# ----------------------------------------------------------------------------------------------
# the source


class RedisSource(DataSource):
    kind = "Redis"

    def __init__(self, params: Mapping[str, Any], *, project_dir: Path) -> None:
        super().__init__(params, project_dir=project_dir)
        connect, self.address, default_db = parse_url(params.get("url"))
        self.entries = redis_entries(params, default_db)
        connections = params.get("connections", 4)
        if type(connections) is not int or not 1 <= connections <= 64:
            raise SourceConfigError(f"connections: a number from 1 to 64, not {connections!r}")
        connect_timeout = _number_param(params, "connect_timeout", 5.0, 600)
        socket_timeout = _number_param(params, "socket_timeout", 30.0, 3600)
        self._limiter = trio.CapacityLimiter(connections)
        # one bounded pool per database: a thread holds at most one connection of a pool and
        # at most `connections` threads run, so none waits for a connection
        make_pool: Callable[..., redis.ConnectionPool] = redis.BlockingConnectionPool
        self._clients: dict[int, redis.Redis] = {}
        for db in sorted({entry.db for entry in self.entries}):
            pool = make_pool(
                **connect,
                db=db,
                max_connections=connections,
                timeout=connect_timeout,
                socket_connect_timeout=connect_timeout,
                socket_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 1),  # once: a pooled link a restart has broken
                decode_responses=True,
                client_name="slowdash_trio",
            )
            self._clients[db] = redis.Redis(connection_pool=pool)
        self.has_timeseries: bool | None = None
        """Whether the server has RedisTimeSeries (found at open); None before."""

    @property
    def label(self) -> str:
        return f"Redis {self.address}"

    async def open(self) -> None:
        self.has_timeseries = await self._run(self._open)

    def _open(self, stop: threading.Event) -> bool:
        try:
            for client in self._clients.values():
                client.ping()
            return has_timeseries(next(iter(self._clients.values())))
        except redis.ResponseError as exc:  # a bad database number, NOAUTH, ...
            raise SourceUnavailable(f"{self.address}: Redis refused: {redact(str(exc))}") from None

    async def aclose(self) -> None:
        for client in self._clients.values():
            client.connection_pool.disconnect()
        self.has_timeseries = None

    async def _run(self, fn: Callable[[threading.Event], T]) -> T:
        """``fn(stop)`` in a worker thread; a cancelled caller abandons it and sets ``stop``."""
        stop = threading.Event()

        def work() -> T:
            try:
                return fn(stop)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                message = f"{self.address}: cannot reach Redis: {redact(str(exc))}"
                raise SourceUnavailable(message) from None

        try:
            return await trio.to_thread.run_sync(
                work, abandon_on_cancel=True, limiter=self._limiter
            )
        finally:
            stop.set()

    def _kinds(self, entry: RedisEntry) -> list[str]:
        return [k for k in entry.kinds if self.has_timeseries or k not in MODULE_KINDS]

    async def channels(self, *, force_rescan: bool = False) -> list[dict[str, Any]]:
        """The channels the registries list (read each time: they are small sets)."""
        if self.has_timeseries is None:
            await self.open()
        return await self._run(self._channels)

    def _channels(self, stop: threading.Event) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            reader = _Reader(self._clients[entry.db], stop)
            kinds = self._kinds(entry)
            sets = reader.execute([("SMEMBERS", RedisLayout.channels_key(k)) for k in kinds])
            for kind, names in zip(kinds, sets, strict=True):
                if isinstance(names, Exception):
                    raise RuntimeError(f"{self.address}: Redis refused SMEMBERS: {names}")
                bares = [n for n in sorted(names) if _requestable(n, entry.suffix, out)]
                for bare, kind_type in reader.types(kind, bares).items():
                    item: dict[str, Any] = {"name": bare + entry.suffix}
                    if kind_type is not None:
                        item["type"] = kind_type
                    if kind not in SERIES:
                        item["current"] = True
                    out.setdefault(item["name"], item)
        return list(out.values())

    async def data(self, query: DataQuery) -> dict[str, Any]:
        for name in query.channels:
            check_channel_name(name)
        wanted: list[tuple[str, RedisEntry, str]] = []
        for name in query.channels:
            for entry in self.entries:
                bare = name[: len(name) - len(entry.suffix)]
                if name.endswith(entry.suffix) and _requestable(bare, entry.suffix, {}):
                    wanted.append((name, entry, bare))
        if not wanted:
            return {}
        if self.has_timeseries is None:
            await self.open()
        return await self._run(lambda stop: self._answer(stop, query, wanted))

    def _resolve(
        self, stop: threading.Event, wanted: list[tuple[str, RedisEntry, str]]
    ) -> dict[str, tuple[int, str, str]]:
        """``{name: (db, kind, bare)}`` of the requested names a registry lists."""
        asked: dict[tuple[int, str], list[str]] = {}
        for _, entry, bare in wanted:
            for kind in self._kinds(entry):
                asked.setdefault((entry.db, kind), []).append(bare)
        listed: dict[tuple[int, str], set[str]] = {}
        for db in {db for db, _ in asked}:
            keys = [key for key in asked if key[0] == db]
            commands = [("SMISMEMBER", RedisLayout.channels_key(k), *asked[db, k]) for _, k in keys]
            replies = _Reader(self._clients[db], stop).execute(commands)
            for key, reply in zip(keys, replies, strict=True):
                if isinstance(reply, Exception):
                    raise RuntimeError(f"{self.address}: Redis refused SMISMEMBER: {reply}")
                listed[key] = {b for b, yes in zip(asked[key], reply, strict=True) if int(yes)}
        found: dict[str, tuple[int, str, str]] = {}
        for name, entry, bare in wanted:
            for kind in self._kinds(entry):
                if name not in found and bare in listed[entry.db, kind]:
                    found[name] = (entry.db, kind, bare)
        return found

    def _answer(
        self, stop: threading.Event, query: DataQuery, wanted: list[tuple[str, RedisEntry, str]]
    ) -> dict[str, Any]:
        groups: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for name, (db, kind, bare) in self._resolve(stop, wanted).items():
            groups.setdefault((db, kind), []).append((name, bare))
        reply: dict[str, Any] = {}
        budget = [query.max_points]  # raw points of the whole answer
        for (db, kind), items in groups.items():
            reader = _Reader(self._clients[db], stop)
            bares = [bare for _, bare in items]
            if kind not in SERIES:
                values = reader.currents(kind, bares)
                for name, bare in items:
                    if bare in values:
                        x = values[bare]
                        reply[name] = {
                            "start": query.begin,
                            "length": query.length,
                            "t": query.length,
                            "x": x,
                        }
            elif query.resample is None:
                answers = _raw(reader, query, kind, bares, budget)
                reply.update((name, answers[bare]) for name, bare in items if bare in answers)
            else:
                for name, bare in items:
                    if (answer := _resampled(reader, query, kind, bare)) is not None:
                        reply[name] = answer
        return {name: reply[name] for name in query.channels if name in reply}


def _requestable(bare: str, suffix: str, seen: Mapping[str, object]) -> bool:
    """Whether ``bare`` may be read (a valid name, none of the layout's own keys), and its
    channel name is not already taken."""
    if not bare or bare.startswith(RedisLayout.PREFIX) or bare + suffix in seen:
        return False
    try:
        check_channel_name(bare + suffix)
    except QueryError:
        return False
    return True


def _raw(
    reader: _Reader, query: DataQuery, kind: str, bares: list[str], budget: list[int]
) -> dict[str, dict[str, Any]]:
    message = TOO_MANY_POINTS
    out: dict[str, dict[str, Any]] = {}
    for bare, points in reader.windows(kind, bares, query.begin, query.to, budget, message).items():
        if points[0]:
            out[bare] = raw_reply(query, *points)
    need = [bare for bare in bares if wants_prior(query, out.get(bare))]
    for bare, prior in reader.priors(kind, need, query.begin).items():
        prepend_prior(out.setdefault(bare, raw_reply(query, [], [])), prior)
    return out


def _resampled(reader: _Reader, query: DataQuery, kind: str, bare: str) -> dict[str, Any] | None:
    """One channel's buckets, from one read of its points (at most MAX_RAW_POINTS)."""
    if kind not in NUMERIC and query.reducer not in ("first", "last"):
        return None  # objects have no mean, sum, ...
    message = (
        f"more than {MAX_RAW_POINTS} points of {bare!r} in the window to resample; ask for a "
        "shorter length"
    )
    budget = [MAX_RAW_POINTS]
    width = query.resample
    times: list[float] = []
    values: list[Any] = []
    if not width:  # automatic: the spacing of the data in the window
        window = reader.windows(kind, [bare], query.begin, query.to, budget, message)
        times, values = window.get(bare, ([], []))
        width = auto_interval(times, query.length)
    grid = make_grid(query.length, query.to, width)
    # the buckets' span (the part in front of the window, if the window was read already)
    end = query.begin if query.resample == 0 else grid.end
    if end > grid.start:
        front = reader.windows(kind, [bare], grid.start, end, budget, message)
        front_times, front_values = front.get(bare, ([], []))
        times, values = front_times + times, front_values + values
    query = replace(query, resample=width)
    reply: dict[str, Any] | None = None
    if times and kind in NUMERIC:
        reply = resample_points(query, times, values)
    elif times:
        reply = _resample_objects(query, grid, times, values)
    if query.envelope == 0 and wants_prior(query, reply):
        prior = reader.priors(kind, [bare], grid.start).get(bare)
        if prior is not None:
            reply = reply or grid_reply(query, grid, [[] for _ in range(grid.count)])
            prepend_prior(reply, prior)
    return reply


def _resample_objects(
    query: DataQuery, grid: Grid, times: list[float], values: list[Any]
) -> dict[str, Any] | None:
    """The first or the last object of each bucket (reducer first / last)."""
    x: list[Any] = [None] * grid.count
    for t, value in zip(times, values, strict=True):
        k = grid.index(t)
        if 0 <= k < grid.count and value is not None and (query.reducer == "last" or x[k] is None):
            x[k] = value
    if all(v is None for v in x):
        return None
    return {"start": grid.start, "length": grid.count * grid.interval, "t": grid.centres(), "x": x}
