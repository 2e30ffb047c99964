"""The PostgreSQL data source: long and wide time-series tables, objects, object time series
and SQL views, answered in SQL (psycopg 3, sync connections used from worker threads).

Every answer is computed by the server over an indexed time range: raw windows are one
``SELECT ... ORDER BY time``; resampled windows are one ``GROUP BY channel, bucket`` with the
bucket geometry of ``make_grid`` (``floor((epoch - start) / interval)``); first/last take the
first/last finite value of each bucket, median is ``percentile_cont(0.5)``, std
``stddev_pop``, sem ``stddev_samp / sqrt(n)``. Only finite numbers count: NaN and infinities
of float columns, and text that is not a number, are left out (text that is a number counts).
Raw replies skip NULL values; NaN and infinities there are ``null``; text that is a number is
returned as a number, JSON text (``{...}``/``[...]``) decoded.

Time columns: the column's type decides. ``timestamptz`` is absolute; ``timestamp`` (without
time zone) holds UTC unless the descriptor says ``naive``/``local``/``without time zone``, in
which case it holds the local time of the slowdash process (its ``TZ``), or of the
``time_zone:`` parameter; numbers are UNIX seconds.

Indexes a table needs (without them every query reads the whole table):

- Long tables (``data[channel]@timestamp=value``): an index on ``(channel, timestamp)``. A
  window of a few channels is then a range scan of just their rows; the prior point and the
  latest object of a channel are one index probe each; and listing the channels is a loose
  index scan (one probe per distinct channel) instead of reading every row. The stores'
  ``PRIMARY KEY(timestamp, channel)`` is an index that starts with the time: a window is read
  for all channels and filtered, which is fine when most channels are wanted, but it does not
  help to list channels nor to find the last point of a rarely written channel before a
  window. ``DataStore_PostgreSQL`` creates both. For an existing table:
  ``CREATE INDEX ON data (channel, "timestamp")``. A tag column of another type than text
  is compared as text, which uses no index.
- Wide tables (``run@time=a,b``): an index (or primary key) on the time column.
- Object tables without a time column: an index on the tag column.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import threading
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict

from slowdash_stores._postgresql import redact

from ._base import (
    DataSource,
    PartialReply,
    SourceConfigError,
    TableEntry,
    ViewEntry,
    table_entries,
    view_entries,
)
from ._pgpool import Call, Pool
from ._query import (
    MAX_BUCKETS,
    TOO_MANY_POINTS,
    DataQuery,
    Grid,
    QueryError,
    envelope_keys,
    make_grid,
    prepend_prior,
    raw_reply,
    wants_prior,
)
from ._schema import check_channel_name, quote_ident
from ._values import decode_value, value_type

logger = logging.getLogger("slowdash_trio.sources.postgresql")
T = TypeVar("T")
Key = tuple[str | None, int]
"""A channel in a table: (tag value or None for wide tables, field index)."""

MAX_VIEW_ROWS: Final = 10_000
_MAXF: Final = "1.7976931348623157e308"
_HALF_TINY: Final = "2.4703282292062328e-324"  # below it a float is 0 (PostgreSQL: an error)
_NUMBER: Final = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$"
_NUMBER_RE: Final = re.compile(_NUMBER)
_EPS: Final = 1e-6  # index bounds are widened by this; the exact test is on the epoch
_KINDS: Final = {
    "real": "float4",
    "double precision": "float8",
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "numeric": "numeric",
    "boolean": "bool",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "json": "json",
    "jsonb": "json",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "date": "timestamp",
}
_AGG: Final = {
    "count": "count({v})",
    "sum": "sum({v})",
    "mean": "avg({v})",
    "min": "min({v})",
    "max": "max({v})",
    "median": "percentile_cont(0.5) WITHIN GROUP (ORDER BY {v})",
    "std": "stddev_pop({v})",
    "sem": "stddev_samp({v}) / sqrt(count({v}))",
    "first": "(array_agg({v} ORDER BY ep) FILTER (WHERE {v} IS NOT NULL))[1]",
    "last": "(array_agg({v} ORDER BY ep DESC) FILTER (WHERE {v} IS NOT NULL))[1]",
}
_ENVELOPE: Final = {"x_min": "min", "x_max": "max", "x_n": "count", "x_err": "sem"}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # a value of _KINDS, or "other"
    attnum: int

    @property
    def sql(self) -> str:
        return quote_ident(self.name)


@dataclass(frozen=True, slots=True)
class Table:
    """A table entry resolved against the database's catalog."""

    entry: TableEntry
    sql: str
    tag: Column | None
    time: Column | None
    time_kind: str | None  # aware, naive, unspecified_utc, unix
    fields: tuple[Column, ...]
    default: int
    tag_indexed: bool

    def field_index(self, name: str) -> int | None:
        for i, f in enumerate(self.fields):
            if f.name == name:
                return i
        return None


# ----------------------------------------------------------------------------------------------
# values and SQL expressions


def local_zone() -> str:
    """The IANA name of this process's local time zone, or a fixed POSIX offset."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            zoneinfo.ZoneInfo(tz)
            return tz
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass  # a POSIX rule such as JST-9: today's offset below
    else:
        path = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in path:
            return path.split("zoneinfo/", 1)[1]
    offset = datetime.datetime.now().astimezone().utcoffset() or datetime.timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes >= 0 else "+"  # POSIX signs are west-positive
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def plain(value: Any) -> Any:
    """A database value as the API returns it (JSON-able; NaN and infinities are None)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if _NUMBER_RE.match(value):
            number = float(value)
            return number if math.isfinite(number) else value
        return decode_value(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() and abs(value) <= Decimal(_MAXF) else None
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def number_sql(c: Column) -> str:
    """SQL of a column's value as a finite float8, or NULL."""
    x = c.sql
    if c.kind in ("float4", "float8"):
        cast = f"{x}::text::float8" if c.kind == "float4" else x
        return f"CASE WHEN {x} > '-Infinity' AND {x} < 'Infinity' THEN {cast} END"
    if c.kind == "int":
        return f"{x}::float8"
    if c.kind == "bool":
        return f"{x}::int::float8"
    if c.kind in ("numeric", "text"):
        n = f"{x}::numeric"
        checked = (
            f"CASE WHEN abs({n}) > {_MAXF} THEN NULL WHEN abs({n}) <= {_HALF_TINY} THEN 0::float8 "
            f"ELSE {n}::float8 END"
        )
        if c.kind == "numeric":
            return checked
        return f"CASE WHEN {x} ~ '{_NUMBER}' THEN {checked} END"
    return "NULL::float8"


def object_sql(c: Column) -> str:
    """SQL condition: the column holds a JSON object or array."""
    if c.kind == "text":
        return f"{c.sql} ~ '^\\s*[\\[{{]'"
    if c.kind == "json":
        return f"jsonb_typeof({c.sql}::jsonb) IN ('object', 'array')"
    return "FALSE"


def view_sql(text: str, begin: float, to: float, zone: datetime.tzinfo | None) -> str:
    """A view's SQL with the time substitutions (numbers and dates we make: nothing to quote).

    ``${FROM_UNIXTIME}`` (integer seconds), ``${FROM_DATETIME}`` (UTC, no offset),
    ``${FROM_DATETIME_UTC}`` (UTC with ``+00:00``), ``${FROM_DATETIME_NAIVE}`` (local time);
    the same with ``TO_``. Dates are ``YYYY-MM-DD HH:MM:SS``; write them in quotes.
    """
    for prefix, t in (("FROM", begin), ("TO", to)):
        utc = datetime.datetime.fromtimestamp(t, datetime.UTC)
        local = datetime.datetime.fromtimestamp(t, zone).replace(tzinfo=None)
        subs = {
            "UNIXTIME": str(int(t)),
            "DATETIME": utc.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds"),
            "DATETIME_UTC": utc.isoformat(sep=" ", timespec="seconds"),
            "DATETIME_NAIVE": local.isoformat(sep=" ", timespec="seconds"),
        }
        for key, value in subs.items():
            text = text.replace("${" + prefix + "_" + key + "}", value)
    return text


# ----------------------------------------------------------------------------------------------
# connections


class PostgreSQLSource(DataSource):
    kind = "PostgreSQL"

    def __init__(self, params: Mapping[str, Any], *, project_dir: Path) -> None:
        super().__init__(params, project_dir=project_dir)
        url = params.get("url")
        if not isinstance(url, str) or not url.lower().startswith(("postgresql://", "postgres://")):
            shown = redact(url) if isinstance(url, str) else url
            raise SourceConfigError(f"url {shown!r}: needs postgresql://USER:PASS@HOST:PORT/DB")
        try:
            conninfo = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise SourceConfigError(f"bad PostgreSQL URL: {redact(str(exc))}") from None
        size = params.get("connections", 4)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 64:
            raise SourceConfigError(f"connections: a number of connections 1..64, not {size!r}")
        timeout = params.get("connect_timeout", 5)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise SourceConfigError(f"connect_timeout: seconds > 0, not {timeout!r}")
        zone = params.get("time_zone")
        if zone is not None:
            try:
                zoneinfo.ZoneInfo(str(zone))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise SourceConfigError(f"time_zone: unknown time zone {zone!r}") from None
        self.zone = str(zone) if zone is not None else local_zone()
        self.tzinfo: datetime.tzinfo | None = None  # None: the process's local time
        if zone is not None:
            self.tzinfo = zoneinfo.ZoneInfo(self.zone)
        self.entries = table_entries(params)
        self.views = view_entries(params)
        options = str(conninfo.get("options", ""))
        conninfo["options"] = (options + " -c default_transaction_read_only=on").strip()
        conninfo.setdefault("application_name", "slowdash_trio")
        conninfo.setdefault("connect_timeout", str(max(2, math.ceil(timeout))))
        host, port = conninfo.get("host", "localhost"), conninfo.get("port", "5432")
        self.address = f"postgresql://{host}:{port}/{conninfo.get('dbname', '')}"
        self._pool = Pool(conninfo, self.address, size)
        self._limiter = trio.CapacityLimiter(size)
        self._lock = threading.Lock()
        self._tables: dict[int, Table] = {}
        self._scans: dict[int, tuple[list[dict[str, Any]], frozenset[str]]] = {}
        self._warned: set[str] = set()

    @property
    def label(self) -> str:
        return f"PostgreSQL {self.address}"

    async def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``fn(conn)`` in a worker thread; its statement is cancelled if this task is."""
        call = Call()
        with self._pool.lock:
            self._pool.calls.add(call)
        try:
            return await trio.to_thread.run_sync(
                self._pool.work, call, fn, abandon_on_cancel=True, limiter=self._limiter
            )
        except trio.Cancelled:
            # the thread goes on until the server stops the statement; it then gives the
            # connection back (if healthy) and the limiter lets the next call in
            trio.lowlevel.start_thread_soon(call.cancel, lambda _: None)
            raise

    async def open(self) -> None:
        self._pool.drop_idle(closed=False)  # after an outage, idle connections are dead
        await self._run(lambda conn: conn.execute("SELECT 1").fetchall())

    async def aclose(self) -> None:
        with self._pool.lock:
            calls = list(self._pool.calls)
        for call in calls:
            trio.lowlevel.start_thread_soon(call.cancel, lambda _: None)
        self._pool.drop_idle(closed=True)

    # ------------------------------------------------------------------------------------------
    # catalog

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s: %s", self.label, message)

    def _table(self, conn: psycopg.Connection[Any], index: int) -> Table | None:
        with self._lock:
            table = self._tables.get(index)
        if table is None:
            table = self._resolve(conn, self.entries[index])
            if table is not None:
                with self._lock:
                    self._tables[index] = table
        return table

    def _resolve(self, conn: psycopg.Connection[Any], entry: TableEntry) -> Table | None:
        schema = entry.schema
        assert schema.table is not None
        oid = None
        for name in dict.fromkeys((schema.table, schema.table.lower())):
            found = conn.execute("SELECT to_regclass(%s)::oid", (quote_ident(name),)).fetchone()
            oid = found[0] if found else None
            if oid is not None:
                break
        if oid is None:
            return None  # not (yet) there: looked up again next time
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, NULL), attnum FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (oid,),
        ).fetchall()
        columns = [Column(str(n), _KINDS.get(str(k), "other"), int(a)) for n, k, a in rows]
        relname = conn.execute("SELECT relname FROM pg_class WHERE oid = %s", (oid,)).fetchone()
        where = f"table {schema.table!r} ({schema.text!r})"

        def find(name: str) -> Column | None:
            for c in columns:
                if c.name == name:
                    return c
            folded = [c for c in columns if c.name.lower() == name.lower()]
            return folded[0] if len(folded) == 1 else None

        tag = time = None
        if schema.tag is not None and (tag := find(schema.tag)) is None:
            self._warn(f"{where}: no column {schema.tag!r}")
            return None
        if schema.time is not None and (time := find(schema.time)) is None:
            self._warn(f"{where}: no column {schema.time!r}")
            return None
        if schema.fields:
            fields = []
            for f in schema.fields:
                if (c := find(f.name)) is None:
                    self._warn(f"{where}: no column {f.name!r}")
                    return None
                fields.append(c)
        else:
            skip = {x.lower() for x in (schema.tag, schema.time, *schema.flags) if x}
            fields = [c for c in columns if c.name.lower() not in skip]
        if not fields:
            self._warn(f"{where}: no value columns")
            return None
        time_kind = None
        if time is not None:
            if time.kind in ("int", "float4", "float8", "numeric"):
                time_kind = "unix"
            elif time.kind == "timestamptz":
                time_kind = "aware"
            elif time.kind == "timestamp":
                time_kind = "naive" if schema.time_type == "naive" else "unspecified_utc"
            else:
                self._warn(f"{where}: time column {time.name!r} is not a timestamp or number")
                return None
        default = 0
        if schema.default_field is not None:
            default = [f.name for f in schema.fields].index(schema.default_field)
        indexed = False
        if tag is not None:
            row = conn.execute(
                "SELECT EXISTS(SELECT 1 FROM pg_index WHERE indrelid = %s AND indkey[0] = %s)",
                (oid, tag.attnum),
            ).fetchone()
            indexed = bool(row and row[0])
        table_sql = quote_ident(str(relname[0])) if relname else quote_ident(schema.table)
        return Table(entry, table_sql, tag, time, time_kind, tuple(fields), default, indexed)

    def _forget(self, index: int) -> None:
        with self._lock:
            self._tables.pop(index, None)
            self._scans.pop(index, None)

    # ------------------------------------------------------------------------------------------
    # SQL pieces

    def _epoch(self, t: Table) -> str:
        assert t.time is not None
        c = t.time.sql
        if t.time_kind == "unix":
            return f"{c}::float8"
        if t.time_kind == "aware":
            return f"EXTRACT(EPOCH FROM {c})::float8"
        if t.time_kind == "naive":
            return f"EXTRACT(EPOCH FROM {c}::timestamp AT TIME ZONE %(zone)s)::float8"
        return f"EXTRACT(EPOCH FROM {c}::timestamp)::float8"

    def _bound(self, t: Table, p: dict[str, Any], name: str, x: float, upper: bool) -> str:
        """SQL of time bound ``x`` in the column's own type (so that its index is used)."""
        assert t.time is not None
        x = x + _EPS if upper else x - _EPS
        if t.time_kind == "unix":
            kind = t.time.kind
            p[name] = math.ceil(x) if kind == "int" else Decimal(x) if kind == "numeric" else x
            return f"%({name})s"
        p[name] = x
        if t.time_kind == "aware":
            return f"to_timestamp(%({name})s)"
        if t.time_kind == "naive":
            return f"(to_timestamp(%({name})s) AT TIME ZONE %(zone)s)"
        return f"(to_timestamp(%({name})s) AT TIME ZONE 'UTC')"

    def _where(
        self,
        t: Table,
        p: dict[str, Any],
        tags: Iterable[str] | None,
        lo: float | None,
        hi: float | None,
    ) -> str:
        """Conditions: the tags, and ``lo <= epoch < hi`` (either may be None)."""
        p["zone"] = self.zone
        conds = ["TRUE"]
        if tags is not None and t.tag is not None:
            p["tags"] = sorted(set(tags))
            tag_sql = t.tag.sql if t.tag.kind == "text" else f"{t.tag.sql}::text"
            conds.append(f"{tag_sql} = ANY(%(tags)s)")
        if t.time is not None:
            ep = self._epoch(t)
            if lo is not None:
                p["lo_ep"] = lo
                conds += [f"{t.time.sql} >= {self._bound(t, p, 'lo', lo, False)}"]
                conds += [f"{ep} >= %(lo_ep)s"]
            if hi is not None:
                p["hi_ep"] = hi
                conds += [f"{t.time.sql} < {self._bound(t, p, 'hi', hi, True)}"]
                conds += [f"{ep} < %(hi_ep)s"]
        return " AND ".join(conds)

    def _tag_select(self, t: Table) -> str:
        return f"{t.tag.sql}::text AS tag" if t.tag is not None else "NULL::text AS tag"

    # ------------------------------------------------------------------------------------------
    # channels

    async def channels(self, *, force_rescan: bool = False) -> list[dict[str, Any]]:
        if force_rescan:
            with self._lock:
                self._tables.clear()
                self._scans.clear()
        return await self._run(self._channels)

    def _channels(self, conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for index in range(len(self.entries)):
            scan = self._scan(conn, index)
            if scan is not None:
                out.extend(scan[0])
        out.extend({"name": view.name, "type": "table"} for view in self.views)
        return out

    def _scan(
        self, conn: psycopg.Connection[Any], index: int
    ) -> tuple[list[dict[str, Any]], frozenset[str]] | None:
        with self._lock:
            cached = self._scans.get(index)
        if cached is not None:
            return cached
        t = self._table(conn, index)
        if t is None:
            return None
        try:
            scan = self._scan_table(conn, t)
        except psycopg.errors.UndefinedTable:
            self._forget(index)
            return None
        with self._lock:
            self._scans[index] = scan
        return scan

    def _tags(self, conn: psycopg.Connection[Any], t: Table) -> list[str]:
        entry = t.entry
        assert t.tag is not None
        if entry.tags is not None:
            return list(entry.tags)
        if entry.tags_sql is not None:
            rows = conn.execute(entry.tags_sql.encode()).fetchall()
        elif t.tag_indexed:  # a loose index scan: one probe per distinct value
            c = t.tag.sql
            rows = conn.execute(
                f"WITH RECURSIVE sd_r(v) AS (SELECT min({c}) FROM {t.sql} UNION ALL "
                f"SELECT (SELECT min({c}) FROM {t.sql} WHERE {c} > sd_r.v) FROM sd_r "
                "WHERE sd_r.v IS NOT NULL) SELECT v::text FROM sd_r WHERE v IS NOT NULL"
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT DISTINCT {t.tag.sql}::text FROM {t.sql} WHERE {t.tag.sql} IS NOT NULL"
            ).fetchall()
        tags = sorted({str(row[0]) for row in rows if row and row[0] is not None})
        good = []
        for tag in tags:
            try:
                good.append(check_channel_name(tag))
            except QueryError:
                self._warn(f"table {t.sql}: channel {tag[:60]!r} left out (bad name)")
        return good

    def _scan_table(
        self, conn: psycopg.Connection[Any], t: Table
    ) -> tuple[list[dict[str, Any]], frozenset[str]]:
        entry = t.entry
        suffix = entry.suffix
        keys: list[tuple[Key, str]] = []
        tags: list[str] = []
        if t.tag is not None:
            tags = self._tags(conn, t)
            for tag in tags:
                keys.append(((tag, t.default), tag))
                keys += [
                    ((tag, i), f"{tag}:{f.name}") for i, f in enumerate(t.fields) if i != t.default
                ]
        else:
            keys = [((None, i), f.name) for i, f in enumerate(t.fields)]
        latest: dict[Key, tuple[float | None, Any]] = {}
        if entry.kind != "time_series" and keys:
            latest = self._latest(conn, t, [k for k, _ in keys], None)
        out = []
        for key, name in keys:
            try:
                item: dict[str, Any] = {"name": check_channel_name(name + suffix)}
            except QueryError:
                self._warn(f"table {t.sql}: channel {name[:60]!r} left out (bad name)")
                continue
            spec = entry.schema.field(t.fields[key[1]].name)
            kind = spec.type if spec is not None and spec.type else None
            if kind is None and entry.kind != "time_series":
                kind = value_type(latest.get(key, (None, None))[1])
            elif kind is None and t.tag is None:
                numeric = t.fields[key[1]].kind in ("int", "float4", "float8", "numeric")
                kind = "numeric" if numeric else None
            if kind is not None:
                item["type"] = kind
            if entry.kind == "object":
                item["current"] = True
            out.append(item)
        return out, frozenset(tags)

    # ------------------------------------------------------------------------------------------
    # data

    async def data(self, query: DataQuery) -> dict[str, Any]:
        for name in query.channels:
            check_channel_name(name)
        if not (math.isfinite(query.to) and math.isfinite(query.length)):
            raise QueryError("the time window must be finite numbers")
        if not query.channels:
            return {}
        return await self._run(lambda conn: self._data(conn, query))

    def _data(self, conn: psycopg.Connection[Any], query: DataQuery) -> dict[str, Any]:
        out: dict[str, Any] = {}
        problems: list[str] = []
        for view in self.views:
            if view.name in query.channels:
                try:
                    out[view.name] = self._view(conn, view, query)
                except RuntimeError as exc:  # a broken view spoils only itself
                    logger.warning("%s: %s", self.label, exc)
                    problems.append(str(exc))
        budget = [query.max_points]
        for index in range(len(self.entries)):
            t = self._table(conn, index)
            if t is None:
                continue
            try:
                req = self._requests(conn, index, t, query.channels)
                if not req:
                    continue
                if t.entry.kind == "object":
                    out.update(self._objects(conn, t, req, query))
                elif query.resample is None:
                    out.update(self._raw(conn, t, req, query, budget))
                else:
                    out.update(self._resampled(conn, t, req, query))
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
                self._forget(index)  # the table changed under us: looked up again next time
        return PartialReply(out, problems) if problems else out

    def _requests(
        self, conn: psycopg.Connection[Any], index: int, t: Table, names: Iterable[str]
    ) -> dict[Key, str]:
        """The requested channels this table has: ``{(tag, field index): name}``."""
        entry = t.entry
        req: dict[Key, str] = {}
        for name in names:
            base = name
            if entry.suffix:
                if not name.endswith(entry.suffix) or name == entry.suffix:
                    continue
                base = name[: -len(entry.suffix)]
            if t.tag is None:
                fi = t.field_index(base)
                if fi is not None:
                    req[(None, fi)] = name
                continue
            tag, fi = base, t.default
            if len(t.fields) > 1 and ":" in base:
                scan = self._scan(conn, index)
                if scan is None or base not in scan[1]:
                    head, _, field = base.rpartition(":")
                    split = t.field_index(field)
                    if head and split is not None:
                        tag, fi = head, split
            if entry.tags is None or tag in entry.tags:
                req[(tag, fi)] = name
        return req

    def _latest(
        self, conn: psycopg.Connection[Any], t: Table, keys: Iterable[Key], before: float | None
    ) -> dict[Key, tuple[float | None, Any]]:
        """The last non-NULL value of each channel (before ``before``), with its time."""
        keys = list(keys)
        out: dict[Key, tuple[float | None, Any]] = {}
        for fi in sorted({fi for _, fi in keys}):
            f = t.fields[fi]
            p: dict[str, Any] = {}
            cond = self._where(t, p, None, None, before) + f" AND {f.sql} IS NOT NULL"
            ep = self._epoch(t) if t.time is not None else "NULL::float8"
            order = f"ORDER BY {t.time.sql} DESC " if t.time is not None else ""
            inner = f"SELECT {ep} AS ep, {f.sql} AS v FROM {t.sql} WHERE {cond}"
            if t.tag is not None:
                p["keys"] = sorted({tag for tag, i in keys if i == fi and tag is not None})
                tag_sql = t.tag.sql if t.tag.kind == "text" else f"{t.tag.sql}::text"
                sql = (
                    "SELECT sd_u.tag, sd_x.ep, sd_x.v FROM unnest(%(keys)s::text[]) AS sd_u(tag) "
                    f"CROSS JOIN LATERAL ({inner} AND {tag_sql} = sd_u.tag {order}LIMIT 1) sd_x"
                )
            else:
                sql = f"SELECT NULL::text, ep, v FROM ({inner} {order}LIMIT 1) sd_x"
            for tag, when, value in conn.execute(sql, p):
                out[(tag, fi)] = (when, plain(value))
        return out

    def _objects(
        self, conn: psycopg.Connection[Any], t: Table, req: dict[Key, str], query: DataQuery
    ) -> dict[str, Any]:
        out = {}
        for key, (when, value) in self._latest(conn, t, req, query.to).items():
            out[req[key]] = {
                "start": query.begin,
                "length": query.length,
                "t": round((when if when is not None else query.to) - query.begin, 3),
                "x": value,
            }
        return out

    def _raw(
        self,
        conn: psycopg.Connection[Any],
        t: Table,
        req: dict[Key, str],
        query: DataQuery,
        budget: list[int],
    ) -> dict[str, Any]:
        assert t.time is not None
        fields = sorted({fi for _, fi in req})
        tags = {tag for tag, _ in req if tag is not None}
        p: dict[str, Any] = {"limit": budget[0] // len(fields) + 1}
        where = self._where(t, p, tags, query.begin, query.to)
        columns = ", ".join(t.fields[fi].sql for fi in fields)
        rows = conn.execute(
            f"SELECT {self._tag_select(t)}, {self._epoch(t)} AS ep, {columns} FROM {t.sql} "
            f"WHERE {where} ORDER BY {t.time.sql} LIMIT %(limit)s",
            p,
        ).fetchall()
        if len(rows) * len(fields) > budget[0]:
            raise QueryError(TOO_MANY_POINTS)
        budget[0] -= len(rows) * len(fields)
        series: dict[Key, tuple[list[float], list[Any]]] = {}
        for row in rows:
            for j, fi in enumerate(fields):
                key = (row[0], fi)
                value = row[2 + j]
                if value is not None and key in req:
                    times, values = series.setdefault(key, ([], []))
                    times.append(row[1])
                    values.append(plain(value))
        replies = {k: raw_reply(query, *series[k]) for k in series}
        return self._with_prior(conn, t, req, query, replies, query.begin, None)

    def _with_prior(
        self,
        conn: psycopg.Connection[Any],
        t: Table,
        req: dict[Key, str],
        query: DataQuery,
        replies: dict[Key, dict[str, Any]],
        before: float,
        empty: Callable[[], dict[str, Any]] | None,
    ) -> dict[str, Any]:
        """Name the replies, with prior points in front where the query wants them."""
        wanted = [k for k in req if wants_prior(query, replies.get(k))]
        if wanted and (query.resample is None or query.envelope == 0):
            for key, (when, value) in self._latest(conn, t, wanted, before).items():
                reply = replies.get(key)
                if reply is None:
                    reply = empty() if empty is not None else raw_reply(query, [], [])
                    replies[key] = reply
                assert when is not None
                prepend_prior(reply, (when, value))
        return {req[k]: reply for k, reply in replies.items()}

    def _resampled(
        self, conn: psycopg.Connection[Any], t: Table, req: dict[Key, str], query: DataQuery
    ) -> dict[str, Any]:
        objects = t.entry.kind == "object_time_series"
        if objects and query.reducer not in ("first", "last"):
            return {}  # numeric reducers skip object series
        width = query.resample
        assert width is not None
        widths = {tag: width for tag, _ in req}
        if width == 0:
            widths = self._auto_widths(conn, t, {tag for tag, _ in req}, query)
        out: dict[str, Any] = {}
        for w in sorted(set(widths.values())):
            group = {k: n for k, n in req.items() if widths[k[0]] == w}
            grid = make_grid(query.length, query.to, w)
            if objects:
                replies = self._object_buckets(conn, t, group, grid, query)
            else:
                replies = self._buckets(conn, t, group, grid, query)

            def empty(grid: Grid = grid) -> dict[str, Any]:
                return self._grid_reply(query, grid, objects)

            out.update(self._with_prior(conn, t, group, query, replies, grid.start, empty))
        return out

    def _auto_widths(
        self, conn: psycopg.Connection[Any], t: Table, tags: set[str | None], query: DataQuery
    ) -> dict[str | None, float]:
        """Per tag: the median spacing of its times in the window, else length / 100."""
        p: dict[str, Any] = {}
        where = self._where(t, p, {x for x in tags if x is not None}, query.begin, query.to)
        rows = conn.execute(
            "SELECT tag, d FROM (SELECT tag, d, row_number() OVER (PARTITION BY tag ORDER BY d) "
            "- 1 AS i, count(*) OVER (PARTITION BY tag) AS n FROM (SELECT tag, ep - lag(ep) "
            "OVER (PARTITION BY tag ORDER BY ep) AS d FROM "
            f"(SELECT {self._tag_select(t)}, {self._epoch(t)} AS ep FROM {t.sql} WHERE {where}) r"
            ") g WHERE d > 0) h WHERE i = n / 2",
            p,
        ).fetchall()
        spacing = {tag: float(d) for tag, d in rows}
        out = {}
        for tag in tags:
            d = spacing.get(tag, 0.0)
            out[tag] = d if d > 0 and query.length / d <= MAX_BUCKETS else query.length / 100
        return out

    def _grid_reply(self, query: DataQuery, grid: Grid, objects: bool) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "start": grid.start,
            "length": grid.count * grid.interval,
            "t": grid.centres(),
            "x": [0 if query.reducer == "count" else None] * grid.count,
        }
        if not objects:
            for key in envelope_keys(query):
                reply[key] = [0 if key == "x_n" else None] * grid.count
        return reply

    def _bucket_sql(self, p: dict[str, Any], grid: Grid) -> str:
        p.update(g0=grid.start, gw=grid.interval, gn=grid.count)
        return "floor((ep - %(g0)s) / %(gw)s)"

    def _buckets(
        self,
        conn: psycopg.Connection[Any],
        t: Table,
        req: dict[Key, str],
        grid: Grid,
        query: DataQuery,
    ) -> dict[Key, dict[str, Any]]:
        fields = sorted({fi for _, fi in req})
        tags = {tag for tag, _ in req if tag is not None}
        p: dict[str, Any] = {}
        where = self._where(t, p, tags, grid.start, grid.end)
        k = self._bucket_sql(p, grid)
        keys = ["x", *envelope_keys(query)]
        reducers = [query.reducer, *(_ENVELOPE[key] for key in keys[1:])]
        values = ", ".join(f"{number_sql(t.fields[fi])} AS v{fi}" for fi in fields)
        aggs = ", ".join(_AGG[r].format(v=f"v{fi}") for fi in fields for r in reducers)
        rows = conn.execute(
            f"SELECT tag, {k}::int AS k, {aggs} FROM (SELECT {self._tag_select(t)}, "
            f"{self._epoch(t)} AS ep, {values} FROM {t.sql} WHERE {where}) r "
            f"WHERE {k} >= 0 AND {k} < %(gn)s GROUP BY tag, {k}",
            p,
        ).fetchall()
        replies: dict[Key, dict[str, Any]] = {}
        for row in rows:
            for j, fi in enumerate(fields):
                key = (row[0], fi)
                if key not in req:
                    continue
                reply = replies.get(key)
                if reply is None:
                    reply = replies[key] = self._grid_reply(query, grid, False)
                for m, name in enumerate(keys):
                    value = row[2 + j * len(keys) + m]
                    if value is not None:
                        reply[name][row[1]] = value
        return replies

    def _object_buckets(
        self,
        conn: psycopg.Connection[Any],
        t: Table,
        req: dict[Key, str],
        grid: Grid,
        query: DataQuery,
    ) -> dict[Key, dict[str, Any]]:
        replies: dict[Key, dict[str, Any]] = {}
        order = "DESC" if query.reducer == "last" else "ASC"
        for fi in sorted({fi for _, fi in req}):
            f = t.fields[fi]
            tags = {tag for tag, i in req if i == fi and tag is not None}
            p: dict[str, Any] = {}
            where = self._where(t, p, tags, grid.start, grid.end) + f" AND {object_sql(f)}"
            k = self._bucket_sql(p, grid)
            rows = conn.execute(
                f"SELECT DISTINCT ON (tag, k) tag, k, v FROM (SELECT tag, {k}::int AS k, ep, v "
                f"FROM (SELECT {self._tag_select(t)}, {self._epoch(t)} AS ep, {f.sql} AS v "
                f"FROM {t.sql} WHERE {where}) r) s WHERE k >= 0 AND k < %(gn)s "
                f"ORDER BY tag, k, ep {order}",
                p,
            ).fetchall()
            for tag, bucket, value in rows:
                key = (tag, fi)
                if key in req:
                    reply = replies.get(key)
                    if reply is None:
                        reply = replies[key] = self._grid_reply(query, grid, True)
                    reply["x"][bucket] = plain(value)
        return replies

    # ------------------------------------------------------------------------------------------
    # views

    def _view(
        self, conn: psycopg.Connection[Any], view: ViewEntry, query: DataQuery
    ) -> dict[str, Any]:
        text = view_sql(view.sql, query.begin, query.to, self.tzinfo)
        try:
            cursor = conn.execute(text.encode())  # no parameters: '%' in the SQL is itself
            rows = cursor.fetchmany(MAX_VIEW_ROWS + 1) if cursor.description else []
        except psycopg.Error as exc:
            if conn.closed or conn.broken or isinstance(exc, psycopg.errors.QueryCanceled):
                raise
            raise RuntimeError(f"view {view.name!r}: {str(exc).strip()}") from None
        if len(rows) > MAX_VIEW_ROWS:
            raise QueryError(f"view {view.name!r} returns more than {MAX_VIEW_ROWS} rows")
        columns = [d.name for d in cursor.description or ()]
        return {
            "start": query.begin,
            "length": query.length,
            "t": query.length,
            "x": {"columns": columns, "table": [[plain(v) for v in row] for row in rows]},
        }
