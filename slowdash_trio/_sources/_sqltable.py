"""SQL for one table entry and one field of an SQLite source (`SQLTable`), and the shapes
of its answers. `SQLiteSource` (``_sqlite``) decides which tables to ask; this module asks.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from typing import TYPE_CHECKING, Any, Final

from . import _tiers
from ._base import TableEntry, ViewEntry
from ._query import (
    TOO_MANY_POINTS,
    DataQuery,
    Grid,
    QueryError,
    auto_interval,
    envelope_keys,
    grid_reply,
    make_grid,
    raw_reply,
)
from ._schema import TableSchema, quote_ident
from ._values import decode_value

if TYPE_CHECKING:
    from ._cache import RowCache

logger = logging.getLogger("slowdash_trio.sources.sqlite")

FINITE: Final = "typeof({v}) IN ('integer','real') AND abs({v}) <= 1.7976931348623157e308"
FINITE_NUMERIC: Final = "{v} BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308"
AGGREGATES: Final = frozenset({"count", "sum", "mean", "min", "max", "std", "sem"})


class SQLTable:
    """SQL for one table entry and one field, on one connection."""

    def __init__(self, conn: sqlite3.Connection, entry: TableEntry, field: str) -> None:
        schema = entry.schema
        assert schema.table is not None
        self.conn = conn
        self.entry = entry
        self.table = quote_ident(schema.table)
        self.tag = quote_ident(schema.tag) if schema.tag is not None else None
        self.field = quote_ident(field) if field else None
        self.time_col = quote_ident(schema.time) if schema.time is not None else None
        self.time_type = schema.time_type
        self.schema = schema
        self.decode = entry.kind != "time_series"
        self._numeric: bool | None = None

    # -- time --------------------------------------------------------------------------------

    def _time_type(self) -> str:
        if self.time_type is None:
            row = self.conn.execute(
                f"SELECT typeof({self.time_col}) FROM {self.table} LIMIT 1"
            ).fetchone()
            self.time_type = "unix" if row is None or row[0] in ("integer", "real") else "aware"
        return self.time_type

    def t(self) -> str:
        kind = self._time_type()
        if kind == "unix":
            return f"{self.time_col}"
        # to the millisecond: julianday's days in floating point miss whole seconds by ~1e-5
        if kind == "naive":
            return f"round((julianday({self.time_col}, 'utc') - 2440587.5) * 86400.0, 3)"
        return f"round((julianday({self.time_col}) - 2440587.5) * 86400.0, 3)"

    def where(self, tag: str | None, lo: float, hi: float) -> tuple[str, list[Any]]:
        t = self.t()
        sql = f"{t} >= ? AND {t} < ?"
        params: list[Any] = [lo, hi]
        if tag is not None and self.tag is not None:
            sql = f"{self.tag} = ? AND {sql}"
            params.insert(0, tag)
        return sql, params

    # -- answers -----------------------------------------------------------------------------

    def raw(
        self, tag: str | None, query: DataQuery, budget: list[int], cache: RowCache | None
    ) -> dict[str, Any] | None:
        assert self.field is not None
        if (
            cache is not None
            and tag is not None
            and self.tag is not None
            and self._time_type() == "unix"
        ):
            cached = cache.lookup(self, tag, query)
            if cached is not None:
                times, values = cached
                if len(times) > budget[0]:
                    raise QueryError(TOO_MANY_POINTS)
                budget[0] -= len(times)
                return raw_reply(query, times, values) if len(times) else None
        where, params = self.where(tag, query.begin, query.to)
        rows = self.conn.execute(
            f"SELECT {self.t()}, {self.field} FROM {self.table} WHERE {where} "
            f"AND {self.field} IS NOT NULL ORDER BY {self.t()} LIMIT ?",
            [*params, budget[0] + 1],
        ).fetchall()
        if len(rows) > budget[0]:
            raise QueryError(TOO_MANY_POINTS)
        budget[0] -= len(rows)
        if not rows:
            return None
        values = [row[1] for row in rows]
        if self.decode or any(type(v) is str for v in values):
            values = [decode_value(v) for v in values]
        return raw_reply(query, [row[0] for row in rows], values)

    def raw_many(
        self,
        tags: list[str],
        query: DataQuery,
        budget: list[int],
        cache: RowCache | None,
        version: int | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        """Raw windows of several tags of a long table: one statement (or the cache)."""
        assert self.field is not None
        assert self.tag is not None
        series: dict[str, tuple[Any, list[Any]]] | None = None
        if cache is not None and self._time_type() == "unix":
            series = cache.lookup_many(self, tags, query, version)
        if series is None:
            series = self._fetch_many(tags, query.begin, query.to, budget)
        else:
            total = sum(len(times) for times, _ in series.values())
            if total > budget[0]:
                raise QueryError(TOO_MANY_POINTS)
            budget[0] -= total
        return {
            tag: raw_reply(query, times, values) if len(times) else None
            for tag, (times, values) in series.items()
        }

    def _fetch_many(
        self, tags: list[str], lo: float, hi: float | None, budget: list[int] | None
    ) -> dict[str, tuple[list[float], list[Any]]]:
        """``{tag: (times, values)}`` of the rows in ``[lo, hi)`` (``hi`` None: no end),
        each in time order."""
        assert self.field is not None
        assert self.tag is not None
        t = self.t()
        marks = ",".join("?" * len(tags))
        sql = f"SELECT {self.tag}, {t}, {self.field} FROM {self.table} WHERE {t} >= ?"
        params: list[Any] = [lo]
        if hi is not None:
            sql += f" AND {t} < ?"
            params.append(hi)
        sql += f" AND {self.tag} IN ({marks}) AND {self.field} IS NOT NULL"
        params.extend(tags)
        if budget is not None:
            sql += " LIMIT ?"
            params.append(budget[0] + 1)
        rows = self.conn.execute(sql, params).fetchall()
        if budget is not None:
            if len(rows) > budget[0]:
                raise QueryError(TOO_MANY_POINTS)
            budget[0] -= len(rows)
        return _by_tag(rows, tags, decode=self.decode)

    def prior(self, tag: str | None, before: float) -> tuple[float, Any] | None:
        assert self.field is not None
        t = self.t()
        where = f"{t} < ?"
        params: list[Any] = [before]
        if tag is not None and self.tag is not None:
            where = f"{self.tag} = ? AND {where}"
            params.insert(0, tag)
        row = self.conn.execute(
            f"SELECT {t}, {self.field} FROM {self.table} WHERE {where} "
            f"AND {self.field} IS NOT NULL ORDER BY {t} DESC LIMIT 1",
            params,
        ).fetchone()
        return (row[0], decode_value(row[1])) if row else None

    def current(self, tag: str | None, query: DataQuery) -> dict[str, Any] | None:
        assert self.field is not None
        where, params = "", []
        if tag is not None and self.tag is not None:
            where, params = f"WHERE {self.tag} = ?", [tag]
        row = self.conn.execute(
            f"SELECT {self.field} FROM {self.table} {where} ORDER BY rowid DESC LIMIT 1", params
        ).fetchone()
        if row is None:
            return None
        return {
            "start": query.begin,
            "length": query.length,
            "t": query.length,
            "x": decode_value(row[0]),
        }

    def empty_grid(self, query: DataQuery) -> dict[str, Any]:
        grid = query.grid(query.resample or query.length / 100)
        return grid_reply(query, grid, [[] for _ in range(grid.count)])

    def resampled(
        self,
        tag: str | None,
        query: DataQuery,
        *,
        numeric: bool,
        prefetched: dict[int, tuple[Any, ...]] | None = None,
    ) -> dict[str, Any] | None:
        interval = query.resample
        assert interval is not None
        if interval == 0:
            interval = self._auto_interval(tag, query)
        grid = make_grid(query.length, query.to, interval)
        reducer = query.reducer
        if not numeric:
            if reducer not in ("first", "last"):
                return None
            values = self._lookups(tag, grid, reducer, finite=False)
            if all(v is None for v in values):
                return None
            return _grid_values(query, grid, values, {})
        stats = None
        keys = envelope_keys(query)
        if reducer in AGGREGATES or keys:
            tiers_ok = reducer in _tiers.TIERED and "x_err" not in keys
            if prefetched is not None:
                stats = prefetched or None
            else:
                stats = self._aggregates(tag, grid, tiers_ok=tiers_ok)
            if stats is None:
                return None
        if reducer in ("first", "last"):
            values = self._lookups(tag, grid, reducer, finite=True)
        elif reducer == "median":
            values = self._medians(tag, grid)
        else:
            assert stats is not None
            values = [_from_stats(stats.get(k), reducer) for k in range(grid.count)]
        if stats is None and all(v is None for v in values):
            return None
        extra: dict[str, list[Any]] = {}
        for key in envelope_keys(query):
            source = {"x_min": "min", "x_max": "max", "x_n": "count", "x_err": "sem"}[key]
            assert stats is not None
            extra[key] = [_from_stats(stats.get(k), source) for k in range(grid.count)]
        return _grid_values(query, grid, values, extra)

    def aggregates_many(
        self, tags: list[str], grid: Grid, *, extremes: bool = True
    ) -> dict[str, dict[int, tuple[Any, ...]]] | None:
        """``{tag: {bucket: (n, sum, min, max, None, None, None)}}`` with one statement
        (``extremes=False``: min and max are None, and not computed); None when a tier fits
        the grid (the per-channel path reads it)."""
        assert self.field is not None
        assert self.tag is not None
        schema = self.schema
        if self._time_type() != "unix":
            return None
        if (
            schema.tag == "channel"
            and self.field_name == "value"
            and schema.table is not None
            and _tiers.tier_for(self.conn, schema.table, grid) is not None
        ):
            return None
        t, v = self.t(), self.field
        marks = ",".join("?" * len(tags))
        minmax = f"min({v}), max({v})" if extremes else "NULL, NULL"
        rows = self.conn.execute(
            f"SELECT {self.tag}, CAST(({t} - ?) / ? AS INTEGER) AS k, count({v}), sum({v}), "
            f"{minmax} FROM {self.table} WHERE {t} >= ? AND {t} < ? "
            f"AND {self.tag} IN ({marks}) AND {self.finite()} GROUP BY {self.tag}, k",
            [grid.start, grid.interval, grid.start, grid.end, *tags],
        ).fetchall()
        out: dict[str, dict[int, tuple[Any, ...]]] = {}
        for tag, k, n, total, lo, hi in rows:
            if 0 <= k < grid.count:
                out.setdefault(tag, {})[int(k)] = (n, total, lo, hi, None, None, None)
        return out

    def finite(self) -> str:
        """SQL that is true for the finite numbers of the field (not NULL, text, infinity).

        In a column of numeric affinity, ``BETWEEN`` does it alone (SQLite orders every
        number before any text); elsewhere the storage class is checked too.
        """
        assert self.field is not None
        if self._numeric is None:
            assert self.schema.table is not None
            declared = {
                row[1]: str(row[2]).upper()
                for row in self.conn.execute(f"PRAGMA table_info({quote_ident(self.schema.table)})")
            }.get(self.field_name, "")
            self._numeric = any(k in declared for k in ("INT", "REAL", "FLOA", "DOUB", "NUM"))
        if self._numeric:
            return FINITE_NUMERIC.format(v=self.field)
        return FINITE.format(v=self.field)

    def _auto_interval(self, tag: str | None, query: DataQuery) -> float:
        where, params = self.where(tag, query.begin, query.to)
        rows = self.conn.execute(
            f"SELECT {self.t()} FROM {self.table} WHERE {where} ORDER BY {self.t()} LIMIT 1001",
            params,
        ).fetchall()
        return auto_interval([r[0] for r in rows], query.length)

    def _aggregates(
        self, tag: str | None, grid: Grid, *, tiers_ok: bool
    ) -> dict[int, tuple[Any, ...]] | None:
        """``{bucket: (n, sum, min, max, sum of squares and sum about a shift, shift)}``."""
        assert self.field is not None
        if (
            tiers_ok
            and tag is not None
            and self.schema.tag == "channel"
            and self.field_name == "value"
            and self._time_type() == "unix"
        ):
            assert self.schema.table is not None
            assert self.tag is not None
            tier = _tiers.tier_for(self.conn, self.schema.table, grid)
            if tier is not None:
                tiered = _tiers.read(
                    self.conn,
                    self.schema.table,
                    tag,
                    grid,
                    *tier,
                    time_sql=self.t(),
                    value_sql=self.field,
                    table_sql=self.table,
                    tag_sql=self.tag,
                )
                return tiered or None  # no finite value: as without tiers
        where, params = self.where(tag, grid.start, grid.end)
        v = self.field
        finite = FINITE.format(v=v)
        shift_row = self.conn.execute(
            f"SELECT {v} FROM {self.table} WHERE {where} AND {finite} LIMIT 1", params
        ).fetchone()
        if shift_row is None:
            return None
        shift = float(shift_row[0])
        rows = self.conn.execute(
            f"SELECT CAST(({self.t()} - ?) / ? AS INTEGER) AS k, count({v}), sum({v}), "
            f"min({v}), max({v}), sum(({v} - ?) * ({v} - ?)), sum({v} - ?) "
            f"FROM {self.table} WHERE {where} AND {finite} GROUP BY k",
            [grid.start, grid.interval, shift, shift, shift, *params],
        ).fetchall()
        return {
            int(k): (n, s, lo, hi, sq, ds, shift)
            for k, n, s, lo, hi, sq, ds in rows
            if 0 <= k < grid.count
        }

    @property
    def field_name(self) -> str:
        assert self.field is not None
        return self.field[1:-1].replace('""', '"')

    def _lookups(self, tag: str | None, grid: Grid, reducer: str, *, finite: bool) -> list[Any]:
        """First or last value of every bucket: one indexed look-up each, in one statement."""
        assert self.field is not None
        v = self.field
        t = self.t()
        order = "DESC" if reducer == "last" else "ASC"
        tag_sql = f"{self.tag} = :tag AND " if tag is not None and self.tag is not None else ""
        filt = f" AND {FINITE.format(v=v)}" if finite else f" AND {v} IS NOT NULL"
        slack = grid.interval * 1e-9
        sql = (
            "WITH RECURSIVE b(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM b WHERE k + 1 < :n) "
            f"SELECT k, (SELECT {v} FROM {self.table} WHERE {tag_sql}"
            f"{t} >= max(:start, :start + k * :w - :slack) "
            f"AND {t} < :start + (k + 1) * :w + :slack "
            f"AND CAST(({t} - :start) / :w AS INTEGER) = k{filt} "
            f"ORDER BY {t} {order} LIMIT 1) FROM b"
        )
        params: dict[str, Any] = {
            "n": grid.count,
            "start": grid.start,
            "w": grid.interval,
            "slack": slack,
        }
        if tag_sql:
            params["tag"] = tag
        values: list[Any] = [None] * grid.count
        if grid.count == 0:
            return values
        for k, value in self.conn.execute(sql, params):
            values[k] = decode_value(value) if self.decode else value
        return values

    def _medians(self, tag: str | None, grid: Grid) -> list[Any]:
        import statistics

        assert self.field is not None
        where, params = self.where(tag, grid.start, grid.end)
        v = self.field
        cursor = self.conn.execute(
            f"SELECT CAST(({self.t()} - ?) / ? AS INTEGER), {v} FROM {self.table} "
            f"WHERE {where} AND {FINITE.format(v=v)} ORDER BY {self.t()}",
            [grid.start, grid.interval, *params],
        )
        out: list[Any] = [None] * grid.count
        current, bucket = -1, list[float]()
        while rows := cursor.fetchmany(4096):
            for k, value in rows:
                if k != current:
                    if bucket and 0 <= current < grid.count:
                        out[current] = statistics.median(bucket)
                    current, bucket = k, []
                bucket.append(value)
        if bucket and 0 <= current < grid.count:
            out[current] = statistics.median(bucket)
        return out


def _by_tag(
    rows: list[tuple[Any, ...]], tags: list[str], *, decode: bool
) -> dict[str, tuple[list[float], list[Any]]]:
    """Rows ``(tag, time, value)`` split by tag, each in time order. The rows come in time
    order from the index; the checks that it is so run in C (``sorted`` of a sorted list,
    ``set(map(type, ...))``)."""
    columns: dict[str, tuple[list[float], list[Any]]] = {tag: ([], []) for tag in tags}
    for tag, time_value, value in rows:
        times, values = columns[tag]
        times.append(time_value)
        values.append(value)
    for times, values in columns.values():
        ordered = sorted(times)
        if ordered != times:
            order = sorted(range(len(times)), key=times.__getitem__)
            times[:] = ordered
            values[:] = [values[i] for i in order]
        if decode or str in set(map(type, values)):
            values[:] = [decode_value(v) for v in values]
    return columns


def is_column(schema: TableSchema, name: str) -> bool:
    """Whether ``name`` may be a value column: a listed field, or when none are listed, any
    column but the tag, time and flag columns (the table says which exist)."""
    if schema.fields:
        return schema.field(name) is not None
    return name not in {schema.tag, schema.time, *schema.flags}


def _from_stats(stats: tuple[float, ...] | None, reducer: str) -> Any:
    if stats is None:
        return 0 if reducer == "count" else None
    n, total, lo, hi, sq, ds, _shift = stats
    if reducer == "count":
        return int(n)
    if n == 0:
        return None
    if reducer == "sum":
        return total
    if reducer == "mean":
        return total / n
    if reducer == "min":
        return lo
    if reducer == "max":
        return hi
    var_pop = max(0.0, sq / n - (ds / n) ** 2)
    if reducer == "std":
        return math.sqrt(var_pop)
    if reducer == "sem":
        return math.sqrt(var_pop * n / (n - 1)) / math.sqrt(n) if n >= 2 else None
    raise QueryError(f"unknown reducer {reducer!r}")


def _grid_values(
    query: DataQuery, grid: Grid, values: list[Any], extra: dict[str, list[Any]]
) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "start": grid.start,
        "length": grid.count * grid.interval,
        "t": grid.centres(),
        "x": values,
    }
    reply.update(extra)
    return reply


def run_view(conn: sqlite3.Connection, view: ViewEntry, query: DataQuery) -> dict[str, Any]:
    import datetime

    def iso(t: float, tz: datetime.tzinfo | None) -> str:
        return datetime.datetime.fromtimestamp(t, tz).isoformat(sep=" ", timespec="seconds")

    utc = datetime.UTC
    subs = {
        "FROM_UNIXTIME": str(int(query.begin)),
        "TO_UNIXTIME": str(int(query.to)),
        "FROM_DATETIME": iso(query.begin, utc).replace("+00:00", ""),
        "TO_DATETIME": iso(query.to, utc).replace("+00:00", ""),
        "FROM_DATETIME_UTC": iso(query.begin, utc),
        "TO_DATETIME_UTC": iso(query.to, utc),
        "FROM_DATETIME_NAIVE": iso(query.begin, None),
        "TO_DATETIME_NAIVE": iso(query.to, None),
    }
    sql = view.sql
    for key, value in subs.items():
        sql = sql.replace("${" + key + "}", value)
    try:
        cursor = conn.execute(sql)
        rows = cursor.fetchmany(10_001)
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise
        raise RuntimeError(f"view {view.name!r}: {exc}") from None
    columns = [d[0] for d in cursor.description or ()]
    return {
        "start": query.begin,
        "length": query.length,
        "t": query.length,
        "x": {"columns": columns, "table": [list(r) for r in rows[:10_000]]},
    }
