"""SQL stores: table formats and ``DataStore_SQLite`` (PostgreSQL's store is in ``_postgresql``).

A table format builds the SQL; a store owns the connection and the transactions. Every call
of ``append``/``update`` is one transaction: all its rows are stored, or (it raises) none.

SQLite: the stdlib ``sqlite3``, one connection per store opened on the first write (from any
thread: calls are serialised by a lock), WAL journal, ``synchronous=NORMAL`` (``durable=True``:
``FULL``), ``BEGIN IMMEDIATE`` ... ``COMMIT`` around each call, the rows of a call inserted with
one ``executemany``.

Table names are validated identifiers (they are written into SQL text); channel names and
values always travel as parameters.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self

from ._errors import (
    DuplicateRowError,
    InvalidDataError,
    InvalidURLError,
    StoreClosedError,
    StoreConnectionError,
    StoreError,
    StoreTimeout,
    StoreWriteError,
)
from ._store import (
    DataStore,
    Row,
    is_numeric_value,
    object_text,
    validate_table_name,
    value_text,
)
from .tiers import DEFAULT_WIDTHS, TierWriter, check_widths


@dataclass(frozen=True)
class SQLDialect:
    """What a table format may need to know of the database: ``self.db`` of a bound format."""

    name: str
    placeholder: str
    objects_in_numeric_tables: bool
    """SQLite keeps JSON text in a REAL column (and SlowDash reads it back as an object);
    PostgreSQL refuses it."""


SQLITE: Final = SQLDialect("sqlite", "?", True)
POSTGRESQL: Final = SQLDialect("postgresql", "%s", False)

_NUMERIC_TYPE: Final = re.compile(
    r"REAL|FLOA|DOUB|NUMERIC|DECIMAL|(^|\s)(TINY|SMALL|MEDIUM|BIG)?INT", re.IGNORECASE
)


# ----------------------------------------------------------------------------------------------
# table formats


class TableFormat:
    """How rows become SQL. Subclass it for your own table layout (docs/stores.md).

    Hooks, as in SlowPy: ``schema_numeric`` / ``schema_text`` (the column list used to create
    the table, ``None`` to never create it), ``create_numeric_table(cur)``,
    ``create_text_table(cur)``, ``insert_numeric_data(cur, timestamp, channel, value)``,
    ``insert_text_data(cur, timestamp, channel, value)`` (``value`` is a str),
    ``write_single(cur, timestamp, channel, value, update)``. New here: ``indexes`` (SQL run
    after creating the table), ``prepare(columns)`` and the batch hook
    ``write_rows(cur, rows, update)``. ``self.table`` is the table name, ``self.db.placeholder``
    the parameter marker (``?`` for SQLite, ``%s`` for PostgreSQL).
    """

    schema_numeric: ClassVar[str | None] = None
    schema_text: ClassVar[str | None] = None
    time_column: ClassVar[str] = "timestamp"
    indexes: ClassVar[tuple[str, ...]] = ()
    """SQL statements run once after the store created the table; ``{table}`` and
    ``{time_column}`` are filled in."""

    def __init__(self) -> None:
        self.db: SQLDialect | None = None
        self.table: str = ""

    def bind(self, db: SQLDialect, table: str) -> None:
        """Attach the format to one store's table (done by the store)."""
        if callable(getattr(self, "write", None)):
            raise StoreError(
                f"{type(self).__name__} defines write(): SlowPy's write() hook is not called "
                "by slowdash_stores; override write_rows(cur, rows, update) or the insert_* hooks"
            )
        if self.db is not None:
            raise StoreError(
                f"this {type(self).__name__} already serves table {self.table!r}; "
                "give every store a table format of its own"
            )
        self.db = db
        self.table = table

    @property
    def placeholder(self) -> str:
        return "?" if self.db is None else self.db.placeholder

    # -- creation --------------------------------------------------------------------------------

    def create_table(self, cur: Any, value: object) -> bool:
        """Create the table for a first value; False if this format creates no table."""
        if is_numeric_value(value):
            return self.create_numeric_table(cur)
        return self.create_text_table(cur)

    def create_numeric_table(self, cur: Any) -> bool:
        if self.schema_numeric is None:
            return False
        cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table}{self.schema_numeric}")
        return True

    def create_text_table(self, cur: Any) -> bool:
        if self.schema_text is None:
            return False
        cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table}{self.schema_text}")
        return True

    def create_indexes(self, cur: Any) -> None:
        for sql in self.indexes:
            cur.execute(sql.format(table=self.table, time_column=self.time_column))

    def prepare(self, columns: dict[str, str]) -> None:
        """Called before the first write with the table's columns (lower-case name -> type)."""

    def unbound_copy(self) -> Self:
        """A copy with the same options, for another table (``store.another()`` uses it)."""
        clone = copy.copy(self)
        clone.db = None
        clone.table = ""
        clone._forget()
        return clone

    def _forget(self) -> None:
        """Drop what was learnt about the bound table (for ``unbound_copy``)."""

    # -- writing ---------------------------------------------------------------------------------

    def write_rows(self, cur: Any, rows: list[Row], update: bool) -> None:
        """Write one call's rows; with ``update``, each channel's old rows go first."""
        deleted: set[str] = set()
        for timestamp, channel, value in rows:
            first = update and channel not in deleted
            if first:
                deleted.add(channel)
            self.write_single(cur, timestamp, channel, value, first)

    def write_single(
        self, cur: Any, timestamp: float, channel: str, value: object, update: bool
    ) -> None:
        """One row: SlowPy's dispatch (numbers -> numeric, everything else -> text)."""
        if update:
            cur.execute(f"DELETE FROM {self.table} WHERE channel={self.placeholder}", (channel,))
        if isinstance(value, (str, bool)):
            self.insert_text_data(cur, timestamp, channel, value_text(value))
        elif isinstance(value, (int, float)):
            self.insert_numeric_data(cur, timestamp, channel, value)
        elif is_numeric_value(value):
            self.insert_numeric_data(cur, timestamp, channel, float(value))  # type: ignore[arg-type]
        else:
            self.insert_text_data(cur, timestamp, channel, value_text(value))

    def insert_numeric_data(self, cur: Any, timestamp: float, channel: str, value: float) -> None:
        raise StoreError(f"{type(self).__name__} does not implement insert_numeric_data()")

    def insert_text_data(self, cur: Any, timestamp: float, channel: str, value: str) -> None:
        raise StoreError(f"{type(self).__name__} does not implement insert_text_data()")


class LongTableFormat(TableFormat):
    """SlowPy's long format: ``(timestamp REAL, channel VARCHAR(100), value REAL|TEXT)``.

    Read by SlowDash with ``time_series: {schema: TABLE[channel]@timestamp(unix)=value}``.
    The value column is REAL or TEXT after the first value written, as in SlowPy; timestamps
    are kept to the millisecond (the primary key is ``(timestamp, channel)``, which is also
    the index for time windows). A subclass that overrides the insert hooks gets them called
    row by row; otherwise a call's rows are inserted with one ``executemany``.

    ``channel_index``: also index ``(channel, timestamp)`` when the store creates the table
    (queries of a few channels among many, ``update()`` on a long table). Default: yes for
    PostgreSQL; no for SQLite, where it makes each call write one more page per channel
    (about 3x slower writes; docs/stores.md has the figures).
    """

    schema_numeric: ClassVar[str | None] = (
        "(timestamp REAL, channel VARCHAR(100), value REAL, PRIMARY KEY(timestamp,channel))"
    )
    schema_text: ClassVar[str | None] = (
        "(timestamp REAL, channel VARCHAR(100), value TEXT, PRIMARY KEY(timestamp,channel))"
    )
    channel_index_sql: ClassVar[str] = (
        "CREATE INDEX IF NOT EXISTS {table}_channel_time ON {table}(channel,{time_column})"
    )
    time_value: ClassVar[str] = "{p}"
    """The SQL of the inserted timestamp; ``{p}`` is the parameter (UNIX seconds)."""

    def __init__(self, *, channel_index: bool | None = None) -> None:
        super().__init__()
        self.channel_index = channel_index
        self.numeric: bool | None = None
        self._fast: bool | None = None
        self._insert_sql = ""

    def _forget(self) -> None:
        self.numeric = None
        self._fast = None
        self._insert_sql = ""

    def create_indexes(self, cur: Any) -> None:
        wanted = self.channel_index
        if wanted is None:
            wanted = self.db is not None and self.db.name == "postgresql"
        if wanted:
            cur.execute(
                self.channel_index_sql.format(table=self.table, time_column=self.time_column)
            )
        super().create_indexes(cur)

    def prepare(self, columns: dict[str, str]) -> None:
        self._insert_sql = self.insert_sql
        declared = columns.get("value")
        self.numeric = declared is not None and bool(_NUMERIC_TYPE.search(declared))

    @property
    def insert_sql(self) -> str:
        p = self.placeholder
        time_value = self.time_value.format(p=p)
        columns = f"{self.time_column},channel,value"
        return f"INSERT INTO {self.table}({columns}) VALUES({time_value},{p},{p})"

    def insert_numeric_data(self, cur: Any, timestamp: float, channel: str, value: float) -> None:
        cur.execute(self.insert_sql, (round(timestamp, 3), channel, float(value)))

    def insert_text_data(self, cur: Any, timestamp: float, channel: str, value: str) -> None:
        cur.execute(self.insert_sql, (round(timestamp, 3), channel, value_text(value)))

    def write_rows(self, cur: Any, rows: list[Row], update: bool) -> None:
        if self._fast is None:
            cls = type(self)
            self._fast = (
                cls.insert_numeric_data is LongTableFormat.insert_numeric_data
                and cls.insert_text_data is LongTableFormat.insert_text_data
                and cls.write_single is TableFormat.write_single
            )
        if not self._fast:
            super().write_rows(cur, rows, update)
            return
        if update:
            channels = dict.fromkeys(channel for _, channel, _ in rows)
            cur.executemany(
                f"DELETE FROM {self.table} WHERE channel={self.placeholder}",
                [(channel,) for channel in channels],
            )
        first = rows[0][0]  # the rows of a call mostly share one time (one float object)
        rounded = round(first, 3)
        params: list[tuple[float, str, object]]
        if self.numeric:
            number = self._number
            params = [
                (
                    rounded if t is first else round(t, 3),
                    channel,
                    v if type(v) is float else number(channel, v),
                )
                for t, channel, v in rows
            ]
        else:
            params = [
                (rounded if t is first else round(t, 3), channel, value_text(v))
                for t, channel, v in rows
            ]
        cur.executemany(self._insert_sql or self.insert_sql, params)

    def _number(self, channel: str, value: object) -> float | str:
        kind = type(value)
        if kind is float or kind is int or kind is bool:
            return float(value)  # type: ignore[arg-type]
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        else:
            text = object_text(value)
            if text is not None:
                if self.db is not None and self.db.objects_in_numeric_tables:
                    return text
                raise InvalidDataError(
                    f"channel {channel!r}: table {self.table!r} holds numbers (REAL), and this "
                    f"database keeps no objects there; write {type(value).__name__} objects to "
                    "a table of their own (store.another('objects'))"
                )
            if not isinstance(value, (bytes, bytearray, complex)):
                try:
                    return float(value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    pass
        raise InvalidDataError(
            f"channel {channel!r}: {value!r} is not a number, and table {self.table!r} holds "
            "numbers (REAL); write text to a table of its own (store.another('...'))"
        )


class LongTableFormat_DateTime_PostgreSQL(LongTableFormat):
    """The long format with ``"timestamp" TIMESTAMP WITH TIME ZONE`` (PostgreSQL's default).

    Read by SlowDash with ``TABLE[channel]@timestamp(with time zone)=value``.
    """

    schema_numeric = (
        '("timestamp" TIMESTAMP WITH TIME ZONE, channel VARCHAR(100), value REAL, '
        'PRIMARY KEY("timestamp",channel))'
    )
    schema_text = (
        '("timestamp" TIMESTAMP WITH TIME ZONE, channel VARCHAR(100), value TEXT, '
        'PRIMARY KEY("timestamp",channel))'
    )
    time_column = '"timestamp"'
    time_value = "TO_TIMESTAMP({p})"


# ----------------------------------------------------------------------------------------------
# the common part of the SQL stores


def check_url(db_url: object) -> str:
    if not isinstance(db_url, str):
        raise InvalidURLError(f"a database URL is a string, not {type(db_url).__name__}")
    return db_url


def check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")


class SQLStore(DataStore):
    dialect: ClassVar[SQLDialect]
    placeholder: ClassVar[str]

    def __init__(self, db_url: str, table: str, table_format: TableFormat | None) -> None:
        super().__init__()
        self.db_url = check_url(db_url)
        self.table = validate_table_name(table)
        if table_format is None:
            table_format = self._default_format()
        elif not isinstance(table_format, TableFormat):
            raise TypeError(f"table_format must be a TableFormat, not {table_format!r}")
        table_format.bind(self.dialect, self.table)
        self.table_format = table_format

    @staticmethod
    def _default_format() -> TableFormat:
        return LongTableFormat()


def columns_ready(fmt: TableFormat, columns: dict[str, str], cur: Any, first: object) -> bool:
    """Shared by the writers: create the table if ``columns`` is empty; False if created."""
    if columns:
        fmt.prepare(columns)
        return True
    if not fmt.create_table(cur, first):
        raise StoreWriteError(
            "the table does not exist and its format creates none (its schema is None)",
            table=fmt.table,
        )
    fmt.create_indexes(cur)
    return False


# ----------------------------------------------------------------------------------------------
# SQLite


def sqlite_path(db_url: str) -> str:
    """The file of ``sqlite:///NAME`` (``NAME.db``; ``.db`` added if missing), as SlowPy has it.

    ``sqlite:////abs/path`` is absolute; a URL without a scheme is taken as the file name.
    """
    if db_url.startswith("sqlite:///"):
        path = db_url[len("sqlite:///") :]
    elif "://" in db_url:
        raise InvalidURLError(
            f"not an SQLite URL: {db_url!r} (use sqlite:///NAME for NAME.db)", url=db_url
        )
    else:
        path = db_url
    if path == ":memory:":
        return path
    if not path or path.endswith("/"):
        raise InvalidURLError(f"no file name in {db_url!r}", url=db_url)
    if not path.endswith(".db"):
        path += ".db"
    return os.path.abspath(path)


class _SQLiteWriter:
    """The connection of one SQLite store and the lock that serialises its use."""

    def __init__(self, path: str, fmt: TableFormat, *, synchronous: str, timeout: float) -> None:
        self.path = path
        self.fmt = fmt
        self.synchronous = synchronous
        self.timeout = timeout
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        self.cur: sqlite3.Cursor  # with conn
        self.closed = False
        self.table_ready = False
        self.journal_mode: str | None = None
        self.tiers: TierWriter | None = None

    def _tiered(self) -> bool:
        """Tiers are kept for numeric long tables with UNIX-seconds times only."""
        fmt = self.fmt
        return (
            isinstance(fmt, LongTableFormat)
            and fmt.numeric is True
            and fmt.time_column == "timestamp"
            and fmt.time_value == "{p}"
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreConnectionError(
                f"cannot open the SQLite database: {exc}", address=self.path
            ) from exc
        try:
            self.journal_mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def write(self, rows: list[Row], update: bool) -> None:
        with self.lock:
            if self.closed:
                raise StoreClosedError(f"the store of {self.path!r} is closed")
            conn = self.conn
            if conn is None:
                conn = self.conn = self._connect()
                self.cur = conn.cursor()
            cur = self.cur
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                if not self.table_ready:
                    columns = self._columns(cur)
                    if not columns_ready(self.fmt, columns, cur, rows[0][2]):
                        self.fmt.prepare(self._columns(cur))
                self.fmt.write_rows(cur, rows, update)
                if self.tiers is not None and self._tiered():
                    self.tiers.write(cur, rows, update)
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            finally:
                if conn.in_transaction:  # anything raised before COMMIT, KeyboardInterrupt too
                    self._rollback(conn)
            self.table_ready = True

    def _columns(self, cur: sqlite3.Cursor) -> dict[str, str]:
        cur.execute("SELECT name, type FROM pragma_table_info(?)", (self.fmt.table,))
        return {str(name).lower(): str(kind) for name, kind in cur.fetchall()}

    def _rollback(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            # the connection is in a state we cannot use: open a fresh one on the next call
            self.conn = None
            conn.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        message = str(exc)
        code = getattr(exc, "sqlite_errorname", "")
        table = self.fmt.table
        if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in message.upper():
            return DuplicateRowError(
                "a row with the same timestamp (to the millisecond) and channel is already "
                f"stored; nothing of this call was written ({message})",
                table=table,
            )
        if code in ("SQLITE_BUSY", "SQLITE_LOCKED") or "database is locked" in message:
            return StoreTimeout(
                f"SQLite database {self.path!r} stayed locked by another writer",
                timeout=self.timeout,
            )
        if "no such table" in message:
            self.table_ready = False
        return StoreWriteError(f"{message}; nothing of this call was written", table=table)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class DataStore_SQLite(SQLStore):
    """A table in an SQLite file: ``DataStore_SQLite('sqlite:///NAME', table='data')``.

    - ``sqlite:///NAME`` is the file ``NAME.db`` (``.db`` added if missing), relative to the
      working directory at construction; ``sqlite:////abs/path`` is absolute;
      ``sqlite:///:memory:`` is an in-memory database (for tests).
    - ``table_format``: default ``LongTableFormat()``; one instance per store.
    - ``durable``: False (default): what ``append`` returned for survives the writing process
      being killed (WAL, ``synchronous=NORMAL``); True: it also survives a power loss or an OS
      crash (``synchronous=FULL``: an fsync per call), at a cost docs/performance.md gives.
    - ``timeout``: seconds to wait while another process holds the write lock
      (then ``StoreTimeout``).
    - ``tiers``: widths in seconds of the downsampling tiers kept for a numeric long table
      (``slowdash_stores.tiers``; default 60, 600 and 3600 s); ``()`` keeps none.

    The file is opened on the first write, from whichever thread makes it; calls from several
    threads are serialised.
    """

    dialect = SQLITE
    placeholder = "?"

    def __init__(
        self,
        db_url: str,
        table: str,
        table_format: TableFormat | None = None,
        *,
        durable: bool = False,
        timeout: float = 10.0,
        tiers: Sequence[int] = DEFAULT_WIDTHS,
    ) -> None:
        check_seconds("timeout", timeout)
        widths = check_widths(tiers)
        path = sqlite_path(check_url(db_url))  # all checks before the format is bound
        super().__init__(db_url, table, table_format)
        self.path = path
        self.durable = bool(durable)
        self.timeout = float(timeout)
        self._writer = _SQLiteWriter(
            self.path,
            self.table_format,
            synchronous="FULL" if self.durable else "NORMAL",
            timeout=self.timeout,
        )
        self.tiers = widths
        if widths:
            self._writer.tiers = TierWriter(self.table, widths)
        self._finalizer = weakref.finalize(self, self._writer.close)

    def another(self, table: str, table_format: TableFormat | None = None) -> DataStore_SQLite:
        """A store for another table of the same file, with the same options."""
        if table_format is None:
            table_format = self.table_format.unbound_copy()
        return DataStore_SQLite(
            self.db_url,
            table,
            table_format,
            durable=self.durable,
            timeout=self.timeout,
            tiers=self.tiers,
        )

    @property
    def journal_mode(self) -> str | None:
        """``wal`` once connected (``memory`` for ``:memory:``); None before the first write."""
        return self._writer.journal_mode

    def _write_rows(self, rows: list[Row], update: bool) -> None:
        self._writer.write(rows, update)

    def _close(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"DataStore_SQLite({self.db_url!r}, table={self.table!r})"
