"""``DataStore_Redis``: time series, objects and latest values in Redis (redis-py, sync).

Two layouts; the store picks one when it first connects (``layout="auto"``):

- ``"timeseries"`` (the server has the RedisTimeSeries module): SlowPy's layout. A number goes
  to the RedisTS key ``CH`` at ``int(1000*t)`` ms; an object or a string to the ring
  ``__sd_objtsindex_CH`` (RedisTS of ring slots) + ``__sd_objts_CH_SLOT`` (its text).
- ``"zset"`` (no module needed): a number goes to the sorted set ``__sd_zts_CH``, an object or
  a string to ``__sd_zobjts_CH``; score = UNIX seconds, member = ``"TIME:VALUE"``.

``update()`` is ``SET CH TEXT`` (latest value only) in both. Sets ``__sd_channels_KIND`` list
the channels of each kind, so a reader needs no ``SCAN``. ``RedisLayout`` holds the key names
and the member codec; docs/stores.md has the full table.

The writes of one call go in one ``MULTI``/``EXEC`` transaction, built and checked before
anything is sent. Every command is idempotent, so a call whose link broke is simply sent again
(for up to ``retry_timeout`` seconds). redis-py is imported on first use.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from ._errors import (
    InvalidDataError,
    InvalidURLError,
    StoreClosedError,
    StoreConnectionError,
    StoreError,
    StoreWriteError,
)
from ._postgresql import redact
from ._redis_layout import LAYOUTS, Command, Item, Planner, RedisLayout, check_channel
from ._sql import check_seconds
from ._store import (
    DataStore,
    Row,
    channel_name,
    check_trio_cancelled,
    ensure_not_trio_thread,
    make_rows,
    value_text,
)

if TYPE_CHECKING:
    import redis

T = TypeVar("T")

_FIRST_DELAY: Final = 0.05
_MAX_DELAY: Final = 2.0
_SLEEP_SLICE: Final = 0.05


def _redis_py() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ImportError(
            "DataStore_Redis needs redis-py: pip install 'slowdash-trio[redis]'"
        ) from exc
    return redis


# ----------------------------------------------------------------------------------------------
# the connection


def _parse_url(url: object) -> tuple[dict[str, Any], str]:
    """redis-py's connection keywords for a ``redis://`` URL, and the URL without secrets."""
    if not isinstance(url, str):
        raise InvalidURLError(f"a Redis URL is a string, not {type(url).__name__}")
    parts = urlsplit(url)
    shown = redact(url)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise InvalidURLError(f"not a Redis URL: {shown!r} (use redis://HOST:PORT/DB)", url=None)
    try:
        port = parts.port or 6379
    except ValueError:
        raise InvalidURLError(f"bad port in Redis URL {shown!r}", url=None) from None
    if parts.query or parts.fragment:
        raise InvalidURLError(
            f"Redis URL {shown!r} has a query or fragment; use redis://USER:PASS@HOST:PORT/DB",
            url=None,
        )
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise InvalidURLError(
            f"the path of Redis URL {shown!r} is the database number (e.g. /1), not {path!r}",
            url=None,
        )
    host = parts.hostname or "localhost"
    params: dict[str, Any] = {
        "host": host,
        "port": port,
        "db": int(path or 0),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "ssl": parts.scheme.lower() == "rediss",
    }
    shown_host = f"[{host}]" if ":" in host else host
    return params, f"{parts.scheme.lower()}://{shown_host}:{port}/{params['db']}"


class _RedisWriter:
    """The client of one store, its lock, the layout in use and the retry loop."""

    def __init__(
        self,
        params: dict[str, Any],
        address: str,
        layout: str,
        *,
        connect_timeout: float,
        retry_timeout: float,
    ) -> None:
        self.params = params
        self.address = address
        self.wanted = layout
        self.layout: str | None = None
        self.connect_timeout = connect_timeout
        self.retry_timeout = retry_timeout
        self.lock = threading.Lock()
        self.client: redis.Redis | None = None
        self.closed = False

    def transaction(self, build: Callable[[str], list[Command]]) -> None:
        """Send the commands ``build(layout)`` returns as one MULTI/EXEC transaction."""

        def run(client: redis.Redis) -> None:
            commands = build(self.layout or "zset")
            if not commands:
                return
            pipe = client.pipeline(transaction=True)
            queue: Callable[..., Any] = pipe.execute_command  # untyped in redis-py
            for command in commands:
                queue(*command)
            try:
                results = pipe.execute(raise_on_error=False)
            except _redis_py().ResponseError as exc:  # refused when queued: EXEC aborted
                raise StoreWriteError(
                    f"Redis refused the transaction ({exc}); nothing of this call was written"
                ) from None
            except BaseException:
                # a link left mid-reply (KeyboardInterrupt, ...) is never used again; Redis
                # drops a MULTI whose EXEC it did not get
                self._drop()
                raise
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:
                raise StoreWriteError(
                    f"Redis refused {len(failed)} of the {len(results)} commands of this call "
                    f"({failed[0]}); the others were applied: Redis does not roll back a "
                    "transaction (is one of its keys of another type, written by someone else?)"
                )

        self.call(run)

    def call(self, fn: Callable[[redis.Redis], T]) -> T:
        """``fn(client)``, retried through a broken link for up to ``retry_timeout``."""
        rp = _redis_py()
        with self.lock:
            if self.closed:
                raise StoreClosedError(f"the store of {self.address} is closed")
            deadline = time.monotonic() + self.retry_timeout
            delay = _FIRST_DELAY
            while True:
                try:
                    return fn(self._client())
                except StoreError:  # ours (StoreConnectionError is an OSError too)
                    raise
                except (rp.exceptions.AuthenticationError, rp.exceptions.AuthorizationError) as exc:
                    self._drop()
                    raise StoreConnectionError(
                        f"authentication failed: {exc}", address=self.address
                    ) from None
                except (rp.ConnectionError, rp.TimeoutError, OSError) as exc:
                    self._drop()
                    if time.monotonic() + delay > deadline:
                        raise StoreConnectionError(
                            f"cannot reach Redis: {exc}; nothing of this call was written",
                            address=self.address,
                        ) from None
                    self._sleep(delay)
                    delay = min(delay * 2, _MAX_DELAY)
                except rp.RedisError as exc:
                    raise StoreWriteError(f"Redis refused the command: {exc}") from None

    def _client(self) -> redis.Redis:
        if self.client is not None:
            return self.client
        rp = _redis_py()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client: redis.Redis = rp.Redis(
            **self.params,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.connect_timeout,
            retry=Retry(NoBackoff(), 0),  # ours is the loop in call()
            decode_responses=True,
            client_name="slowdash_stores",
        )
        try:
            client.ping()
            if self.layout is None:
                self.layout = self._detect(client)
        except rp.ResponseError as exc:  # a bad DB number, NOAUTH, ...: waiting will not cure
            client.close()
            message = str(exc)
            if any(word in message for word in ("NOAUTH", "authenticated", "Authentication")):
                message = f"the server wants a password (redis://:PASSWORD@HOST/DB): {message}"
            raise StoreConnectionError(message, address=self.address) from None
        except BaseException:
            client.close()
            raise
        self.client = client
        return client

    def _detect(self, client: redis.Redis) -> str:
        rp = _redis_py()
        execute: Callable[..., Any] = client.execute_command  # untyped in redis-py
        try:
            modules = execute("MODULE", "LIST")
            names = [str(m.get("name", "")) if isinstance(m, dict) else str(m) for m in modules]
            found = any(name.lower() == "timeseries" for name in names)
        except rp.ResponseError:  # MODULE LIST not allowed: ask the command itself
            try:
                execute("TS.INFO", RedisLayout.PREFIX + "probe")
                found = True
            except rp.ResponseError as exc:  # "TSDB: the key does not exist": it is there
                found = "tsdb" in str(exc).lower()
        if self.wanted == "auto":
            return "timeseries" if found else "zset"
        if self.wanted == "timeseries" and not found:
            raise StoreWriteError(
                f"layout='timeseries' but {self.address} has no RedisTimeSeries module "
                "(use layout='auto' or 'zset')"
            )
        return self.wanted

    def _sleep(self, delay: float) -> None:
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            check_trio_cancelled()
            time.sleep(min(left, _SLEEP_SLICE))
        check_trio_cancelled()

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self._drop()


# ----------------------------------------------------------------------------------------------
# the store


class DataStore_Redis(DataStore):
    """Channels as Redis keys: ``DataStore_Redis('redis://localhost:6379/1')``.

    - ``db_url``: ``redis://[USER:PASS@]HOST[:PORT][/DB]`` (``rediss://`` for TLS); the path is
      the database number (0 if none).
    - ``retention_length``: seconds of numeric samples kept (None: all), counted back from the
      newest sample of each write.
    - ``objts_retention_length``, ``objts_timebin``: objects and strings are kept for that many
      seconds, at most one per time bin (the last written).
    - ``layout``: ``"auto"`` (RedisTimeSeries if the server has it, else ``"zset"``),
      ``"zset"`` or ``"timeseries"``.
    - ``connect_timeout``: seconds for connecting and for each reply; ``retry_timeout``: how
      long a call retries through a broken link before it raises ``StoreConnectionError``.

    Connects on the first write. Needs redis-py (``pip install 'slowdash-trio[redis]'``).
    """

    def __init__(
        self,
        db_url: str = "redis://localhost/1",
        retention_length: float | None = None,
        objts_retention_length: float = 3600,
        objts_timebin: float = 1,
        *,
        layout: str = "auto",
        connect_timeout: float = 5.0,
        retry_timeout: float = 10.0,
    ) -> None:
        params, address = _parse_url(db_url)
        if retention_length is not None:
            _positive("retention_length", retention_length)
        _positive("objts_retention_length", objts_retention_length)
        _positive("objts_timebin", objts_timebin)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        check_seconds("connect_timeout", connect_timeout)
        check_seconds("retry_timeout", retry_timeout)
        super().__init__()
        self.db_url = db_url
        self.address = address
        self.retention_length = retention_length
        self.objts_retention_length = objts_retention_length
        self.objts_timebin = objts_timebin
        self.connect_timeout = float(connect_timeout)
        self.retry_timeout = float(retry_timeout)
        self._wanted_layout = layout
        self._planner = Planner(retention_length, objts_retention_length, objts_timebin)
        self._writer = _RedisWriter(
            params,
            address,
            layout,
            connect_timeout=max(self.connect_timeout, 0.1),
            retry_timeout=self.retry_timeout,
        )
        self._finalizer = weakref.finalize(self, self._writer.close)

    @property
    def layout(self) -> str | None:
        """The layout in use, ``"zset"`` or ``"timeseries"``; None before the first connection."""
        return self._writer.layout

    def plan(
        self,
        values: object,
        tag: object = None,
        timestamp: object = None,
        *,
        update: bool = False,
        layout: str | None = None,
    ) -> list[Command]:
        """The Redis commands a write would send (in ``layout``, default the one in use or
        ``"zset"``), checked as a write is; sends nothing."""
        chosen = layout or self.layout or "zset"
        if chosen not in LAYOUTS[1:]:
            raise ValueError(f"layout must be 'zset' or 'timeseries', not {chosen!r}")
        items = [Item(row) for row in make_rows(values, tag, timestamp)]
        return self._planner.plan(items, update, chosen)

    def _write_rows(self, rows: list[Row], update: bool) -> None:
        items = [Item(row) for row in rows]  # values checked and encoded before connecting
        # the commands are built (and checked for the layout) before anything is sent
        self._writer.transaction(lambda layout: self._planner.plan(items, update, layout))

    # -- extras, as in SlowPy --------------------------------------------------------------------

    def write_hash(self, name: str, fields: Mapping[Any, object]) -> None:
        """Make the hash ``name`` exactly ``fields`` (values as text; None skipped), in one
        transaction; the dashboard shows it as a tree."""
        ensure_not_trio_thread("write_hash")
        key = check_channel(channel_name(name, None))
        if not isinstance(fields, Mapping):
            raise InvalidDataError(f"write_hash() takes a dict of fields, not {fields!r}")
        flat: list[str] = []
        for field, value in fields.items():
            if not isinstance(field, (str, int)) or isinstance(field, bool):
                raise InvalidDataError(f"a hash field name is a string, not {field!r}")
            if value is not None:
                flat += [str(field), value_text(value)]

        def build(layout: str) -> list[Command]:
            commands: list[Command] = [("DEL", key)]
            if flat:
                commands.append(("HSET", key, *flat))
            commands.append(("SADD", RedisLayout.channels_key("hash"), key))
            kinds = ("value", "object", "ts") if layout == "timeseries" else ("value", "object")
            commands += [("SREM", RedisLayout.channels_key(kind), key) for kind in kinds]
            return commands

        self._closed_check()
        self._writer.transaction(build)

    def list_channels(self) -> dict[str, list[str]]:
        """The registered channels of each kind (``RedisLayout.KINDS``), sorted."""
        ensure_not_trio_thread("list_channels")
        self._closed_check()

        def read(client: redis.Redis) -> dict[str, list[str]]:
            pipe = client.pipeline(transaction=False)
            for kind in RedisLayout.KINDS:
                pipe.smembers(RedisLayout.channels_key(kind))
            found = pipe.execute()
            return {
                kind: sorted(names) for kind, names in zip(RedisLayout.KINDS, found, strict=True)
            }

        return self._writer.call(read)

    def list_timeseries(self) -> list[str]:
        """The channels with a time series (numbers, objects or strings), sorted."""
        channels = self.list_channels()
        kinds = ("ts", "objts") if self.layout == "timeseries" else ("zts", "zobjts")
        return sorted({name for kind in kinds for name in channels[kind]})

    def list_json(self) -> list[str]:
        """The channels whose latest value (from ``update()``) is JSON, sorted."""
        return self.list_channels()["object"]

    def flush_db(self) -> None:
        """Delete EVERY key of this store's database (``FLUSHDB``), not only this store's.

        Other programs' keys in the same database number go too; other databases of the
        server are not touched.
        """
        ensure_not_trio_thread("flush_db")
        self._closed_check()
        self._writer.call(lambda client: client.flushdb())

    def another(self, db: int | None = None) -> DataStore_Redis:
        """A store on database ``db`` of the same server (default: the same), same options."""
        url = self.db_url
        if db is not None:
            if not isinstance(db, int) or isinstance(db, bool) or db < 0:
                raise ValueError(f"db must be an int >= 0, not {db!r}")
            url = urlunsplit(urlsplit(url)._replace(path=f"/{db}"))
        return DataStore_Redis(
            url,
            self.retention_length,
            self.objts_retention_length,
            self.objts_timebin,
            layout=self._wanted_layout,
            connect_timeout=self.connect_timeout,
            retry_timeout=self.retry_timeout,
        )

    def _closed_check(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")

    def _close(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"DataStore_Redis({self.address!r})"


def _positive(name: str, value: object) -> None:
    check_seconds(name, value)
    if value == 0:
        raise ValueError(f"{name} must be > 0 seconds, not {value!r}")
