"""A cache of raw rows for live windows of long SQLite tables.

A dashboard asks for the same channels over the last hour every few seconds. The first
request reads the rows from the window's start onwards; later ones read only what was
written since, found by ``rowid`` (SQLite gives each inserted row a rowid above every
existing one, whatever its timestamp), so late and out-of-order rows are picked up, not
just rows newer than the newest timestamp. A row count over the cached range checks that
nothing was deleted or replaced behind the cache's back (``update()`` deletes, for one);
if the count disagrees, the table's cache is dropped and read again.

Only live windows are cached (``to`` within a minute of now), at most ``max_points`` rows in
all (least recently used channels go first). Rows that have left every channel's latest
requested window are let go once they are as many as the window holds, so a dashboard that
stays open for months keeps a window's worth, not everything since it opened.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ._query import QueryError
from ._values import decode_value

if TYPE_CHECKING:
    from ._query import DataQuery
    from ._sqltable import SQLTable

LIVE_SLACK: Final = 60.0
IDLE: Final = 600.0  # seconds a channel nobody asks for stays cached


@dataclass(eq=False)
class _Series:
    lo: float
    times: np.ndarray[Any, np.dtype[np.float64]]
    values: list[Any]
    wanted: float = 0.0
    """The start of the window last asked of this channel."""
    asked: float = field(default_factory=time.monotonic)
    """When this channel was last asked for."""


@dataclass(eq=False)
class _TableCache:
    """The cached channels of one (table, field), valid up to ``rowid``."""

    rowid: int
    lo: float
    count: int
    top: tuple[Any, ...] | None
    """The row at ``rowid``: a row deleted and another inserted under the same rowid (SQLite
    reuses the largest rowid once its row is gone) leaves rowid and count as they were."""
    series: dict[str, _Series] = field(default_factory=dict)
    version: int | None = None
    """``PRAGMA data_version`` of the watching connection read before the snapshot this
    cache was last brought up to date in: while it stays the same, nobody has written."""


class RowCache:
    def __init__(self, *, max_points: int = 4_000_000) -> None:
        self.max_points = max_points
        self._tables: dict[tuple[str, str], _TableCache] = {}
        self._lru: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(
        self, table: SQLTable, tag: str, query: DataQuery
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], list[Any]] | None:
        """The rows of ``tag`` in the query's window, or None when not cacheable."""
        found = self.lookup_many(table, [tag], query)
        return None if found is None else found[tag]

    def lookup_many(
        self,
        table: SQLTable,
        tags: list[str],
        query: DataQuery,
        version: int | None = None,
    ) -> dict[str, tuple[np.ndarray[Any, np.dtype[np.float64]], list[Any]]] | None:
        """``{tag: (times, values)}`` in the query's window, or None when not cacheable.

        Runs in the caller's read transaction: what it returns is that snapshot's truth.
        ``version``: the database's ``data_version`` read (on another connection) before
        that transaction began; when it is the one the cache was refreshed at, nothing was
        written since and the checks are skipped.
        """
        if query.to < time.time() - LIVE_SLACK:
            return None
        name = table.schema.table
        assert name is not None
        key = (name, table.field_name)
        with self._lock:
            cache = self._tables.get(key)
            unchanged = cache is not None and version is not None and cache.version == version
            if cache is not None and not unchanged and not self._refresh(table, cache):
                self._drop(key)
                cache = None
            missing = []
            for tag in tags:
                series = cache.series.get(tag) if cache is not None else None
                if series is None or series.lo > query.begin:
                    missing.append(tag)
            if missing:
                self.misses += len(missing)
                cache = self._fill(table, key, cache, missing, query.begin)
                if cache is None:
                    return None
            self.hits += len(tags) - len(missing)
            if cache is None:
                return None
            cache.version = version
            out = {}
            for tag in tags:
                series = cache.series.get(tag)
                if series is None:
                    return None
                self._lru.move_to_end((*key, tag))
                series.wanted, series.asked = query.begin, time.monotonic()
                i = int(np.searchsorted(series.times, query.begin, "left"))
                j = int(np.searchsorted(series.times, query.to, "left"))
                out[tag] = (series.times[i:j], series.values[i:j])
            self._trim(table, key, cache)
            return out

    # -- keeping it true ---------------------------------------------------------------------

    def _state(self, table: SQLTable, lo: float) -> tuple[int, int, tuple[Any, ...] | None]:
        conn = table.conn
        (rowid,) = conn.execute(f"SELECT max(rowid) FROM {table.table}").fetchone()
        (count,) = conn.execute(
            f"SELECT count(*) FROM {table.table} WHERE {table.t()} >= ?", (lo,)
        ).fetchone()
        return int(rowid or 0), int(count), self._top(table, int(rowid or 0))

    @staticmethod
    def _top(table: SQLTable, rowid: int) -> tuple[Any, ...] | None:
        row = table.conn.execute(
            f"SELECT {table.tag}, {table.t()}, {table.field} FROM {table.table} WHERE rowid = ?",
            (rowid,),
        ).fetchone()
        return tuple(row) if row is not None else None

    def _refresh(self, table: SQLTable, cache: _TableCache) -> bool:
        """Bring ``cache`` up to date; False if it cannot be (rows were deleted)."""
        conn = table.conn
        (rowid,) = conn.execute(f"SELECT max(rowid) FROM {table.table}").fetchone()
        rowid = int(rowid or 0)
        if rowid < cache.rowid or self._top(table, cache.rowid) != cache.top:
            return False
        added = 0
        if rowid > cache.rowid:
            assert table.tag is not None
            assert table.field is not None
            rows = conn.execute(
                f"SELECT {table.tag}, {table.t()}, {table.field} FROM {table.table} "
                f"WHERE rowid > ? AND {table.t()} >= ?",
                (cache.rowid, cache.lo),
            ).fetchall()
            added = len(rows)
            replaced = 0
            for tag, t, value in rows:
                series = cache.series.get(tag)
                if series is not None and t >= series.lo and value is not None:
                    replaced += self._insert(series, t, decode_value(value))
            added -= replaced
        (count,) = conn.execute(
            f"SELECT count(*) FROM {table.table} WHERE {table.t()} >= ?", (cache.lo,)
        ).fetchone()
        if count != cache.count + added:
            return False
        cache.rowid, cache.count = rowid, int(count)
        cache.top = self._top(table, rowid)
        return True

    @staticmethod
    def _insert(series: _Series, t: float, value: Any) -> int:
        times = series.times
        n = len(times)
        if n == 0 or t > times[-1]:
            series.times = np.append(times, t)
            series.values.append(value)
            return 0
        k = int(np.searchsorted(times, t, "left"))
        if k < n and times[k] == t:
            series.values[k] = value
            return 1
        series.times = np.insert(times, k, t)
        series.values.insert(k, value)
        return 0

    def _fill(
        self,
        table: SQLTable,
        key: tuple[str, str],
        cache: _TableCache | None,
        tags: list[str],
        lo: float,
    ) -> _TableCache | None:
        try:  # never more than the cache may hold (a LIMIT, not a whole table in memory)
            columns = table._fetch_many(tags, lo, None, [self.max_points])
        except QueryError:
            return None
        if cache is None or lo < cache.lo:
            new_lo = lo if cache is None else min(lo, cache.lo)
            rowid, count, top = self._state(table, new_lo)
            if cache is not None and rowid != cache.rowid:
                self._drop(key)  # other series would miss the rows between
                cache = None
            if cache is None:
                cache = self._tables[key] = _TableCache(rowid, new_lo, count, top)
            else:
                cache.lo, cache.count = new_lo, count
        for tag, (times, values) in columns.items():
            cache.series[tag] = _Series(lo, np.asarray(times, dtype=np.float64), values, lo)
            self._lru[(*key, tag)] = len(times)
            self._lru.move_to_end((*key, tag))
        self._evict()
        return cache

    def _trim(self, table: SQLTable, key: tuple[str, str], cache: _TableCache) -> None:
        """Let go of the rows before every channel's latest window, once the stale span is as
        long as the live one (so this costs one count query now and then), and keep the sizes
        the eviction counts true."""
        idle = time.monotonic() - IDLE
        for tag in [tag for tag, series in cache.series.items() if series.asked < idle]:
            del cache.series[tag]  # nobody looks at it any more
            self._lru.pop((*key, tag), None)
        if not cache.series:
            self._drop(key)
            return
        lo = min(series.wanted for series in cache.series.values())
        if lo - cache.lo < max(time.time() - lo, LIVE_SLACK):
            return
        for tag, series in cache.series.items():
            k = int(np.searchsorted(series.times, lo, "left"))
            series.times, series.values = series.times[k:].copy(), series.values[k:]
            series.lo = max(series.lo, lo)
            self._lru[(*key, tag)] = len(series.times)
        (count,) = table.conn.execute(
            f"SELECT count(*) FROM {table.table} WHERE {table.t()} >= ?", (lo,)
        ).fetchone()
        cache.lo, cache.count = lo, int(count)
        self._evict()

    def _drop(self, key: tuple[str, str]) -> None:
        self._tables.pop(key, None)
        for lru_key in [k for k in self._lru if k[:2] == key]:
            del self._lru[lru_key]

    def _evict(self) -> None:
        while sum(self._lru.values()) > self.max_points and len(self._lru) > 1:
            (name, fieldname, tag), _ = self._lru.popitem(last=False)
            cache = self._tables.get((name, fieldname))
            if cache is not None:
                cache.series.pop(tag, None)
                if not cache.series:
                    del self._tables[(name, fieldname)]

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self._lru.clear()
