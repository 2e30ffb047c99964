"""The ``DataStore`` base: the write API every store shares.

``append(values, tag=None, timestamp=None)`` records values; ``update(...)`` records them and
drops what the store held before for the same channels ("keep only the latest"); ``close()``;
a store is a context manager and is closed when it is garbage-collected or the interpreter
exits. ``aio_append``/``aio_update``/``aio_close`` are the async twins: they run the sync write
in a Trio worker thread, one at a time per store, so the Trio thread never waits on a database.

What a call turns into (rows of ``(timestamp, channel, value)``):

- a scalar (number, string, bool, data object): one row; the channel is ``tag`` (required);
- a dict: one row per field whose value is not ``None``; the channel is ``TAG:FIELD``, or
  ``FIELD`` when no tag is given;
- a ``TimeSeries``: one row per time point and field (``None`` values skipped); the channel is
  the tag if one is given, else the series' ``name`` (one of them is required); the first field
  is written under that channel, further fields under ``CHANNEL:FIELD``.

Timestamps are UNIX seconds: ``None`` means now, a number ``<= 0`` means now plus that number, a
``datetime`` is converted (naive ones are local time, as ``datetime.timestamp()`` has it).

Channel names follow the rule of the SlowDash reader: ASCII letters, digits and ``. _ - :``, at
most 100 characters. A call that breaks any rule raises ``InvalidDataError`` and writes nothing.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import numbers
import re
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self, TypeAlias

import trio

from ._errors import InvalidDataError, InvalidNameError, StoreClosedError, WrongThreadError

Row: TypeAlias = tuple[float, str, object]
"""One stored value: ``(unix_timestamp, channel, value)``; the value is as the caller gave it."""

MAX_CHANNEL_LENGTH: Final = 100
MAX_TABLE_LENGTH: Final = 63
_CHANNEL_RE: Final = re.compile(r"[A-Za-z0-9._:\-]+")
_TABLE_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# words that SQLite or PostgreSQL do not take as an unquoted table name
_RESERVED: Final = frozenset(
    """all analyse analyze and any as asc between by case cast check collate column constraint
    create cross current_date current_time current_timestamp current_user default deferrable
    delete desc distinct do drop else end except exists false fetch for foreign from full grant
    group having in index inner insert intersect into is join key leading left like limit
    natural not null offset on only or order outer primary references returning right select
    session_user set some table then to trailing transaction true union unique update user
    using values when where window with""".split()  # noqa: SIM905
)


# ----------------------------------------------------------------------------------------------
# names


def validate_table_name(table: object) -> str:
    """``table`` if it is a plain SQL identifier (it is written into SQL text), else an error."""
    if not isinstance(table, str):
        raise InvalidNameError(
            f"a table name is a string, not {type(table).__name__}: {table!r}", name=table
        )
    if len(table) > MAX_TABLE_LENGTH or not _TABLE_RE.fullmatch(table):
        raise InvalidNameError(
            f"bad table name {table!r}: use ASCII letters, digits and '_', starting with a "
            f"letter or '_', at most {MAX_TABLE_LENGTH} characters",
            name=table,
        )
    if table.lower() in _RESERVED:
        raise InvalidNameError(f"bad table name {table!r}: it is an SQL keyword", name=table)
    return table


def _name_part(part: object, what: str) -> str:
    if isinstance(part, str):
        if part:
            return part
        raise InvalidNameError(f"an empty {what} cannot name a channel", name=part)
    if isinstance(part, int) and not isinstance(part, bool):
        return str(part)
    raise InvalidNameError(
        f"a {what} is a string (or an int), not {type(part).__name__}: {part!r}", name=part
    )


@functools.lru_cache(maxsize=8192)
def _channel(tag: str | int | None, field: str | int | None) -> str:
    if tag is not None and field is not None:
        name = f"{_name_part(tag, 'tag')}:{_name_part(field, 'field name')}"
    elif tag is not None:
        name = _name_part(tag, "tag")
    elif field is not None:
        name = _name_part(field, "field name")
    else:
        raise InvalidDataError("nothing names the channel: give tag=")
    if len(name) > MAX_CHANNEL_LENGTH or not _CHANNEL_RE.fullmatch(name):
        raise InvalidNameError(
            f"bad channel name {name!r}: SlowDash reads only channels made of ASCII letters, "
            f"digits and '. _ - :', at most {MAX_CHANNEL_LENGTH} characters",
            name=name,
        )
    return name


def channel_name(tag: object, field: object) -> str:
    """The channel for a tag and a field: ``TAG:FIELD``, ``TAG`` or ``FIELD``, validated."""
    try:
        return _channel(tag, field)  # types are checked inside
    except TypeError:  # unhashable: not a name either
        part, what = (tag, "tag") if field is None else (field, "field name")
        raise InvalidNameError(
            f"a {what} is a string (or an int), not {type(part).__name__}: {part!r}",
            name=part,
        ) from None


# ----------------------------------------------------------------------------------------------
# timestamps and values


def resolve_timestamp(timestamp: object) -> float:
    """UNIX seconds for a ``timestamp=`` argument: None -> now, <= 0 -> now + it, datetime."""
    if timestamp is None:
        return time.time()
    if type(timestamp) is float and timestamp > 0 and timestamp != math.inf:
        return timestamp
    if isinstance(timestamp, datetime.datetime):
        return timestamp.timestamp()
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Real):
        raise InvalidDataError(
            f"timestamp= is UNIX seconds (a number) or a datetime, not {timestamp!r}"
        )
    t = float(timestamp)
    if not math.isfinite(t):
        raise InvalidDataError(f"timestamp= must be finite, not {timestamp!r}")
    return t if t > 0 else time.time() + t


def is_timeseries(values: object) -> bool:
    """True for a data-object ``TimeSeries`` (duck-typed: the class name and ``points()``)."""
    return type(values).__name__ == "TimeSeries" and callable(getattr(values, "points", None))


def object_text(value: object) -> str | None:
    """The JSON text stored for an object value, or None if ``value`` is not an object.

    Data objects (anything with ``to_json()``: histograms, graphs, trends) are stored as
    ``str(obj)``, their compact JSON, as SlowPy does; dicts and lists as JSON.
    """
    if hasattr(value, "to_json"):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(f"value {value!r} cannot be written as JSON: {exc}") from None
    return None


def value_text(value: object) -> str:
    """A value as stored in a text column or a CSV file."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidDataError("bytes cannot be stored as a value; decode them first")
    text = object_text(value)
    return str(value) if text is None else text


def is_numeric_value(value: object) -> bool:
    """What chooses a new table's value column, as in SlowPy: numbers (and anything that
    converts with ``float()``) make a numeric table; strings, bools and objects a text one."""
    if isinstance(value, (str, bool, bytes, dict, list, tuple)) or hasattr(value, "to_json"):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)  # type: ignore[arg-type]  # Decimal, Fraction, numpy scalars, nodes, ...
    except (TypeError, ValueError):
        return False
    return True


def _point_time(t: object) -> float:
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(float(t)):
        raise InvalidDataError(f"a TimeSeries point has a bad time: {t!r}")
    return float(t)


def _timeseries_rows(series: Any, tag: object) -> list[Row]:
    base = tag if tag is not None else getattr(series, "name", None)
    if base is None:
        raise InvalidDataError(
            "nothing names the TimeSeries' channel: give it a name or pass tag= "
            "(SlowPy silently wrote nothing here)"
        )
    fields = list(series.fields)
    channels = {
        field: channel_name(base, None) if index == 0 else channel_name(base, field)
        for index, field in enumerate(fields)
    }
    rows: list[Row] = []
    for t, point in series.points():
        timestamp = _point_time(t)
        for field, value in point.items():
            if value is not None:
                channel = channels.get(field)
                if channel is None:
                    channel = channels[field] = channel_name(base, field)
                rows.append((timestamp, channel, value))
    return rows


def make_rows(values: object, tag: object = None, timestamp: object = None) -> list[Row]:
    """The rows an ``append``/``update`` call writes (module docstring has the rules)."""
    if type(values) is not dict and is_timeseries(values):
        if timestamp is not None:
            raise InvalidDataError("a TimeSeries carries its own times; do not pass timestamp=")
        return _timeseries_rows(values, tag)
    t = resolve_timestamp(timestamp)
    if type(values) is dict or isinstance(values, Mapping):
        return [(t, channel_name(tag, field), v) for field, v in values.items() if v is not None]
    if values is None:
        raise InvalidDataError("nothing to write: the value is None")
    if tag is None:
        raise InvalidDataError(
            f"a single value needs tag= to name its channel (value {values!r}); "
            "SlowPy silently wrote nothing here"
        )
    return [(t, channel_name(tag, None), values)]


def ensure_not_trio_thread(method: str) -> None:
    """Refuse a blocking call on the Trio thread, naming the ``aio_`` twin to await."""
    if trio.lowlevel.in_trio_run():
        raise WrongThreadError(
            f"store.{method}() was called on the Trio thread, where it would block every task; "
            f"use 'await store.aio_{method}(...)' in async code"
        )


def check_trio_cancelled() -> None:
    """In a Trio worker thread, raise ``trio.Cancelled`` if its task was cancelled."""
    try:
        trio.from_thread.check_cancelled()
    except RuntimeError:  # not a Trio worker thread: a plain script or thread
        pass


# ----------------------------------------------------------------------------------------------
# the base class


class DataStore:
    """Base of every store. Subclasses implement ``_write_rows`` and ``_close``."""

    def __init__(self) -> None:
        self._closed = False
        self._limiter: trio.CapacityLimiter | None = None
        self._limiter_lock = threading.Lock()

    # -- the API ---------------------------------------------------------------------------------

    def append(self, values: object, tag: object = None, timestamp: object = None) -> None:
        """Record ``values`` (a scalar, a dict of fields, or a TimeSeries).

        When this returns, the rows are stored (docs/stores.md says what survives what); when it
        raises, they are not.
        """
        ensure_not_trio_thread("append")
        self._write(values, tag, timestamp, False)

    def update(self, values: object, tag: object = None, timestamp: object = None) -> None:
        """Like ``append``, but the channels written keep only this call's rows."""
        ensure_not_trio_thread("update")
        self._write(values, tag, timestamp, True)

    def close(self) -> None:
        """Finish pending work and release the connection or file; later writes raise.

        Closing twice is fine. Stores also close when collected and at interpreter exit.
        """
        ensure_not_trio_thread("close")
        self._closed = True
        self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- async twins -----------------------------------------------------------------------------

    async def aio_append(
        self, values: object, tag: object = None, timestamp: object = None
    ) -> None:
        """``append`` from async code: the write runs in a worker thread, one at a time."""
        await self._aio_write(values, tag, timestamp, False)

    async def aio_update(
        self, values: object, tag: object = None, timestamp: object = None
    ) -> None:
        """``update`` from async code: the write runs in a worker thread, one at a time."""
        await self._aio_write(values, tag, timestamp, True)

    async def aio_close(self) -> None:
        """``close`` from async code (after the writes already started by this store)."""
        self._closed = True
        await self._in_thread(self._close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aio_close()

    async def _aio_write(
        self, values: object, tag: object, timestamp: object, update: bool
    ) -> None:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        if not is_timeseries(values):
            timestamp = resolve_timestamp(timestamp)  # "now" is when the call was made
        await self._in_thread(self._write, values, tag, timestamp, update)

    async def _in_thread(self, fn: Callable[..., None], *args: object) -> None:
        # Cancelling the caller abandons the thread, which finishes its write (or, in a retry
        # loop, stops at its next check); the limiter is held until the thread ends, so writes
        # of one store never overlap or reorder.
        with self._limiter_lock:
            if self._limiter is None:
                self._limiter = trio.CapacityLimiter(1)
            limiter = self._limiter
        await trio.to_thread.run_sync(
            functools.partial(fn, *args), limiter=limiter, abandon_on_cancel=True
        )

    # -- for subclasses --------------------------------------------------------------------------

    def _write(self, values: object, tag: object, timestamp: object, update: bool) -> None:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        rows = make_rows(values, tag, timestamp)
        if rows:
            self._write_rows(rows, update)

    def _write_rows(self, rows: list[Row], update: bool) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass


class DataStore_Null(DataStore):
    """A store that checks every call as the others do and keeps nothing (for dry runs)."""

    def _write_rows(self, rows: list[Row], update: bool) -> None:
        for _, _, value in rows:
            value_text(value)

    def __repr__(self) -> str:
        return "DataStore_Null()"
