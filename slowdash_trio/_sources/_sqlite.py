"""The SQLite data source: long and wide time-series tables, objects, object time series and
SQL views, answered with SQL over an indexed time range.

- raw windows: one ``SELECT`` over ``time >= begin AND time < to`` (the primary key
  ``(timestamp, channel)`` of a long table is the index for it);
- ``count sum mean min max std sem``: one ``GROUP BY channel, bucket`` in SQL, or the
  downsampling tiers written by ``slowdash_stores`` when they give the same buckets;
- ``first last``: one indexed look-up per bucket, all of them in one SQL statement;
- ``median``: one streaming pass over the range, holding one bucket per channel.

Only finite numbers count in reducers (SQL ``typeof`` filters text, NULL and infinities).
Unix-time columns use their index; text time columns (ISO dates) are converted per row,
which reads the whole table: give SQLite tables a UNIX-seconds time column for speed.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from slowdash_stores import tiers as tier_layout

from . import _tiers
from ._base import (
    DataSource,
    PartialReply,
    SourceConfigError,
    TableEntry,
    table_entries,
    view_entries,
)
from ._cache import RowCache
from ._query import (
    DataQuery,
    QueryError,
    envelope_keys,
    make_grid,
    prepend_prior,
    raw_reply,
    wants_prior,
)
from ._schema import check_channel_name, quote_ident
from ._sqlpool import SQLitePool
from ._sqltable import SQLTable, is_column, run_view
from ._values import value_type

logger = logging.getLogger("slowdash_trio.sources.sqlite")

CHANNEL_RESCAN: Final = 60.0
"""Seconds a channel list is kept before the tables are looked at again (channels that a
writer starts recording appear within this time, or at once with ``force_rescan``)."""


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a channel lives: a table entry, a tag value (long tables) and a field."""

    entry: TableEntry
    tag: str | None
    field: str


def database_path(params: Mapping[str, Any], project_dir: Path) -> Path:
    url = params.get("url")
    file = params.get("file")
    if isinstance(url, str):
        scheme, _, rest = url.partition("://")
        if scheme.lower() != "sqlite":
            raise SourceConfigError(f"url {url!r}: an SQLite source takes sqlite:///NAME")
        name = rest[1:] if rest.startswith("/") else rest
    elif isinstance(file, str):
        name = file
    else:
        raise SourceConfigError("an SQLite source needs 'url: sqlite:///NAME' or 'file: NAME'")
    if not name:
        raise SourceConfigError("the SQLite URL names no file (sqlite:///NAME)")
    if not name.endswith(".db"):
        name += ".db"
    return (project_dir / name).resolve()


class SQLiteSource(DataSource):
    kind = "SQLite"

    def __init__(self, params: Mapping[str, Any], *, project_dir: Path) -> None:
        super().__init__(params, project_dir=project_dir)
        self.path = database_path(params, project_dir)
        self.entries = table_entries(params)
        self.views = view_entries(params)
        cache = params.get("cache", True)
        if not isinstance(cache, bool):
            raise SourceConfigError("cache: true or false")
        self.pool = SQLitePool(self.path)
        self.cache = RowCache() if cache else None
        self._channels: list[dict[str, Any]] | None = None
        self._scanned_at = 0.0
        self._watch: sqlite3.Connection | None = None
        self._watch_lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"SQLite {self.path.name}"

    async def open(self) -> None:
        await self.pool.run(lambda conn: conn.execute("SELECT count(*) FROM sqlite_master"))
        self._channels = None

    async def aclose(self) -> None:
        self.pool.close()
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None

    def _data_version(self) -> int | None:
        """``PRAGMA data_version`` of a connection that only watches: it changes whenever
        another connection commits (what the row cache needs to know)."""
        with self._watch_lock:
            try:
                if self._watch is None:
                    self._watch = sqlite3.connect(
                        f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False
                    )
                return int(self._watch.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return None

    # ------------------------------------------------------------------------------------------
    # channels

    async def channels(self, *, force_rescan: bool = False) -> list[dict[str, Any]]:
        stale = time.monotonic() - self._scanned_at > CHANNEL_RESCAN
        if self._channels is None or force_rescan or stale:
            self._channels = await self.pool.run(self._scan)
            self._scanned_at = time.monotonic()
        return list(self._channels)

    def _scan(self, conn: sqlite3.Connection) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for entry in self.entries:
            try:
                out.extend(self._scan_entry(conn, entry))
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
        out.extend({"name": view.name, "type": "table"} for view in self.views)
        return out

    def _table_columns(self, conn: sqlite3.Connection, table: str) -> list[str]:
        rows = conn.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
        return [row[1] for row in rows]

    def _fields(self, conn: sqlite3.Connection, entry: TableEntry) -> list[str]:
        schema = entry.schema
        if schema.fields:
            return [f.name for f in schema.fields]
        assert schema.table is not None
        skip = {schema.tag, schema.time, *schema.flags}
        return [c for c in self._table_columns(conn, schema.table) if c not in skip]

    def _scan_entry(self, conn: sqlite3.Connection, entry: TableEntry) -> list[dict[str, Any]]:
        schema = entry.schema
        assert schema.table is not None
        # SQLite reads a double-quoted name that is no column as a string: look first
        columns = {c.lower() for c in self._table_columns(conn, schema.table)}
        if any(c is not None and c.lower() not in columns for c in (schema.tag, schema.time)):
            return []
        fields = [f for f in self._fields(conn, entry) if f.lower() in columns]
        if not fields:
            return []
        default = schema.default_field or fields[0]
        names: list[tuple[str, str | None, str]] = []  # (channel, tag, field)
        if schema.tag is not None:
            for tag in self._tags(conn, entry):
                if default in fields:
                    names.append((tag, tag, default))
                names.extend((f"{tag}:{f}", tag, f) for f in fields if f != default)
        else:
            names.extend((f, None, f) for f in fields)
        out = []
        for name, tag_value, field_name in names:
            if not _requestable(name + entry.suffix):
                continue  # a tag value no request could name
            item: dict[str, Any] = {"name": name + entry.suffix}
            if entry.kind != "time_series" or schema.tag is None:
                kind = self._latest_type(conn, entry, tag_value, field_name)
                if kind is not None:
                    item["type"] = kind
                elif schema.tag is None and entry.kind == "time_series":
                    item["type"] = "numeric"
            if entry.kind == "object":
                item["current"] = True
            out.append(item)
        return out

    def _tags(self, conn: sqlite3.Connection, entry: TableEntry) -> list[str]:
        if entry.tags is not None:
            return list(entry.tags)
        if entry.tags_sql is not None:
            rows = conn.execute(entry.tags_sql).fetchall()
        else:
            schema = entry.schema
            assert schema.table is not None
            assert schema.tag is not None
            rows = tier_layout.distinct_channels(conn, schema.table, schema.tag)
        return sorted({str(row[0]) for row in rows if row[0] is not None})

    def _latest_type(
        self, conn: sqlite3.Connection, entry: TableEntry, tag: str | None, field: str
    ) -> str | None:
        schema = entry.schema
        assert schema.table is not None
        where, params = "", []
        if tag is not None and schema.tag is not None:
            where, params = f"WHERE {quote_ident(schema.tag)} = ?", [tag]
        order = (
            f"ORDER BY {quote_ident(schema.time)} DESC" if schema.time else "ORDER BY rowid DESC"
        )
        row = conn.execute(
            f"SELECT {quote_ident(field)} FROM {quote_ident(schema.table)} {where} {order} LIMIT 1",
            params,
        ).fetchone()
        return value_type(row[0]) if row else None

    # ------------------------------------------------------------------------------------------
    # data

    def _bindings(self, names: Iterable[str]) -> dict[str, list[Binding]]:
        """Candidate places of each requested name; a long table's tag is tried as a whole
        name first (``TAG:FIELD`` written by a store is a tag), then split at the last ``:``."""
        out: dict[str, list[Binding]] = {}
        for name in names:
            check_channel_name(name)
            for entry in self.entries:
                if entry.suffix:
                    if not name.endswith(entry.suffix):
                        continue
                    bare = name[: -len(entry.suffix)]
                else:
                    bare = name
                schema = entry.schema
                if not bare:
                    continue
                if schema.tag is not None:
                    default = schema.default_field
                    candidates = []
                    if default is not None or not schema.fields:
                        candidates.append(Binding(entry, bare, default or ""))
                    tag, colon, field = bare.rpartition(":")
                    if colon and tag and field and is_column(schema, field):
                        candidates.append(Binding(entry, tag, field))
                    out.setdefault(name, []).extend(candidates)
                elif not is_column(schema, bare):
                    continue
                else:
                    out.setdefault(name, []).append(Binding(entry, None, bare))
        return out

    async def data(self, query: DataQuery) -> dict[str, Any]:
        reply: dict[str, Any] = {}
        bindings = self._bindings(query.channels)
        views = [v for v in self.views if v.name in query.channels]
        if bindings:
            reply.update(
                await self.pool.run(functools.partial(self._answer, query=query, bindings=bindings))
            )
        problems = []
        for view in views:
            try:
                reply[view.name] = await self.pool.run(
                    functools.partial(run_view, view=view, query=query)
                )
            except (RuntimeError, sqlite3.Error) as exc:  # a broken view spoils only itself
                logger.warning("%s: %s", self.label, exc)
                problems.append(str(exc))
        return PartialReply(reply, problems) if problems else reply

    def _answer(
        self, conn: sqlite3.Connection, query: DataQuery, bindings: dict[str, list[Binding]]
    ) -> dict[str, Any]:
        version = self._data_version() if self.cache is not None else None  # before BEGIN
        conn.execute("BEGIN")  # one snapshot for every statement of this answer
        columns: dict[str, set[str]] = {}
        bindings = {
            name: [r for b in candidates if (r := self._resolve(conn, b, columns)) is not None]
            for name, candidates in bindings.items()
        }
        reply: dict[str, Any] = {}
        budget = [query.max_points]
        batch = self._raw_batch(conn, query, bindings, budget, version)
        for name, candidates in bindings.items():
            for binding in candidates:
                try:
                    answer = self._one(conn, query, binding, budget, batch)
                except sqlite3.OperationalError as exc:
                    if "no such column" in str(exc) or "no such table" in str(exc):
                        continue
                    raise
                if answer is not None:
                    reply[name] = answer
                    break
        return reply

    def _resolve(
        self, conn: sqlite3.Connection, b: Binding, columns: dict[str, set[str]]
    ) -> Binding | None:
        """``b`` with its field named, if its table has the columns it needs (SQLite would
        read a double-quoted name that is no column as a string constant)."""
        schema = b.entry.schema
        assert schema.table is not None
        known = columns.get(schema.table)
        if known is None:
            known = columns[schema.table] = {
                c.lower() for c in self._table_columns(conn, schema.table)
            }
        field = b.field
        if not field:  # no fields listed: the first column that is not tag or time
            fields = [f for f in self._fields(conn, b.entry) if f.lower() in known]
            if not fields:
                return None
            field = fields[0]
        needed = (field, schema.tag if b.tag is not None else None, schema.time)
        if any(c is not None and c.lower() not in known for c in needed):
            return None
        return Binding(b.entry, b.tag, field)

    def _raw_batch(
        self,
        conn: sqlite3.Connection,
        query: DataQuery,
        bindings: dict[str, list[Binding]],
        budget: list[int],
        version: int | None = None,
    ) -> dict[tuple[int, str, str | None], Any]:
        """Raw windows (for a resampled query: bucket statistics) of every tag asked of a
        long table, read with one statement per table and field (a statement per channel
        would read the window's index range once per channel)."""
        if query.resample is not None:
            return self._aggregate_batch(conn, query, bindings)
        groups: dict[tuple[int, str], tuple[TableEntry, set[str]]] = {}
        for candidates in bindings.values():
            for b in candidates:
                if b.tag is not None and b.field and b.entry.kind != "object":
                    groups.setdefault((id(b.entry), b.field), (b.entry, set()))[1].add(b.tag)
        out: dict[tuple[int, str, str | None], dict[str, Any] | None] = {}
        for (key, field_name), (entry, tags) in groups.items():
            table = SQLTable(conn, entry, field_name)
            try:
                answers = table.raw_many(sorted(tags), query, budget, self.cache, version)
            except sqlite3.OperationalError as exc:
                if "no such column" in str(exc) or "no such table" in str(exc):
                    continue
                raise
            for tag, answer in answers.items():
                out[(key, field_name, tag)] = answer
        return out

    def _aggregate_batch(
        self, conn: sqlite3.Connection, query: DataQuery, bindings: dict[str, list[Binding]]
    ) -> dict[tuple[int, str, str | None], dict[int, tuple[Any, ...]]]:
        """Bucket statistics of every tag asked of a long numeric table, with one
        ``GROUP BY tag, bucket`` per table and field, when no tier answers the request and
        no spread (std, sem, x_err) is asked for (those are computed per channel)."""
        keys = set(envelope_keys(query))
        wanted = query.reducer in _tiers.TIERED or (
            query.reducer in ("first", "last", "median") and keys
        )
        if not query.resample or not wanted or "x_err" in keys:
            return {}
        groups: dict[tuple[int, str], tuple[TableEntry, set[str]]] = {}
        for candidates in bindings.values():
            for b in candidates:
                if b.tag is not None and b.field and b.entry.kind == "time_series":
                    groups.setdefault((id(b.entry), b.field), (b.entry, set()))[1].add(b.tag)
        grid = make_grid(query.length, query.to, query.resample)
        out: dict[tuple[int, str, str | None], dict[int, tuple[Any, ...]]] = {}
        for (key, field_name), (entry, tags) in groups.items():
            table = SQLTable(conn, entry, field_name)
            try:
                extremes = query.reducer in ("min", "max") or bool(keys & {"x_min", "x_max"})
                found = table.aggregates_many(sorted(tags), grid, extremes=extremes)
            except sqlite3.OperationalError as exc:
                if "no such column" in str(exc) or "no such table" in str(exc):
                    continue
                raise
            if found is None:
                continue
            for tag in tags:
                out[(key, field_name, tag)] = found.get(tag, {})
        return out

    def _one(
        self,
        conn: sqlite3.Connection,
        query: DataQuery,
        b: Binding,
        budget: list[int],
        batch: dict[tuple[int, str, str | None], Any],
    ) -> dict[str, Any] | None:
        entry = b.entry
        field = b.field
        if not field:  # no fields listed: the first column that is not tag or time
            fields = self._fields(conn, entry)
            if not fields:
                return None
            field = fields[0]
        table = SQLTable(conn, entry, field)
        if entry.kind == "object":
            return table.current(b.tag, query)
        numeric = entry.kind == "time_series"
        batched = (id(entry), field, b.tag)
        answer: dict[str, Any] | None
        if query.resample is None and batched in batch:
            answer = batch.pop(batched)
        elif query.resample is None:
            answer = table.raw(b.tag, query, budget, cache=self.cache)
        else:
            prefetched = batch.get(batched) if batched in batch else None
            answer = table.resampled(b.tag, query, numeric=numeric, prefetched=prefetched)
        if wants_prior(query, answer) and (query.resample is None or query.envelope == 0):
            empty = raw_reply(query, [], []) if query.resample is None else table.empty_grid(query)
            # the prior point comes before the first bucket (which may start before the window)
            before = query.begin if query.resample is None else (answer or empty)["start"]
            prior = table.prior(b.tag, before)
            if prior is not None:
                if answer is None:
                    answer = empty
                prepend_prior(answer, prior)
        return answer


def _requestable(name: str) -> bool:
    try:
        check_channel_name(name)
    except QueryError:
        return False
    return True
