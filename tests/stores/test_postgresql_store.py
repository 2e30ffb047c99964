"""DataStore_PostgreSQL against the real server on 127.0.0.1.

The server comes from ``SLOWDASH_TRIO_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Without it (or without psycopg) these tests
skip; with ``SLOWDASH_TRIO_REQUIRE_SERVICES=1`` they fail instead. Every test uses tables of its
own and drops them. Lost connections are made by a small TCP proxy in the test that cuts its
connections; the shared server is never stopped.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
from support import postgres_url
from tcp_proxy import Proxy, postgres_proxy, proxied

from slowdash_stores._errors import (
    DuplicateRowError,
    InvalidDataError,
    InvalidNameError,
    InvalidURLError,
    StoreClosedError,
    StoreConnectionError,
    WrongThreadError,
)
from slowdash_stores._factory import create_datastore_from_url
from slowdash_stores._histogram import Histogram
from slowdash_stores._postgresql import DataStore_PostgreSQL
from slowdash_stores._sql import LongTableFormat, LongTableFormat_DateTime_PostgreSQL
from slowdash_stores._timeseries import TimeSeries

T0 = 1_700_000_000.0


@pytest.fixture
def pg_url() -> str:
    return postgres_url()


class Database:
    """Direct access for checking what the stores wrote."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.tables: list[str] = []

    def table(self) -> str:
        name = f"sdt_{uuid.uuid4().hex[:12]}"
        self.tables.append(name)
        return name

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def rows(self, table: str) -> list[tuple[float, str, Any]]:
        return [
            (float(t), channel, value)
            for t, channel, value in self.query(
                f'SELECT EXTRACT(EPOCH FROM "timestamp"), channel, value FROM {table} '
                'ORDER BY "timestamp", channel'
            )
        ]

    def close(self) -> None:
        for table in self.tables:
            self.conn.execute(f"DROP TABLE IF EXISTS {table}")
        self.conn.close()


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.close()


# ---------------------------------------------------------------------------------------------
# round trips and the schema


def test_round_trip(pg_url: str, db: Database) -> None:
    table = db.table()
    series = TimeSeries(start=T0, name="rate", fields=["x", "x_err"])
    series.write({"x": 1.0, "x_err": 0.5}, t=10)
    with DataStore_PostgreSQL(pg_url, table) as store:
        store.append(1.5, tag="a", timestamp=T0 + 0.1234)
        store.append({"x": 2, "y": 3.25, "n": None}, tag="d", timestamp=T0)
        store.append("4.5", tag="s", timestamp=T0)
        store.append(True, tag="flag", timestamp=T0)
        store.append(math.nan, tag="nan", timestamp=T0)
        store.append(series)
        store.update(7.0, tag="a", timestamp=T0 + 1)
    stored = db.rows(table)
    assert [(round(t, 3), ch) for t, ch, _ in stored] == [
        (T0, "d:x"),
        (T0, "d:y"),
        (T0, "flag"),
        (T0, "nan"),
        (T0, "s"),
        (T0 + 1, "a"),
        (T0 + 10, "rate"),
        (T0 + 10, "rate:x_err"),
    ]
    values = {ch: v for _, ch, v in stored}
    assert values["d:x"] == 2.0 and values["d:y"] == 3.25 and values["s"] == 4.5
    assert values["flag"] == 1.0 and math.isnan(values["nan"]) and values["a"] == 7.0
    assert values["rate"] == 1.0 and values["rate:x_err"] == 0.5


def test_schema_and_index(pg_url: str, db: Database) -> None:
    numeric, text = db.table(), db.table()
    with DataStore_PostgreSQL(pg_url, numeric) as store:
        store.append(1.0, tag="a", timestamp=T0)
        with store.another(text) as texts:
            texts.append("x", tag="a", timestamp=T0)
            texts.append(2.5, tag="b", timestamp=T0)
    columns = "SELECT column_name, data_type, character_maximum_length FROM "
    columns += "information_schema.columns WHERE table_name = %s ORDER BY ordinal_position"
    assert db.query(columns, numeric) == [
        ("timestamp", "timestamp with time zone", None),
        ("channel", "character varying", 100),
        ("value", "real", None),
    ]
    assert db.query(columns, text)[2] == ("value", "text", None)
    key = db.query(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        numeric,
    )
    assert key == [("timestamp",), ("channel",)]
    indexes = db.query("SELECT indexdef FROM pg_indexes WHERE tablename = %s", numeric)
    assert any('(channel, "timestamp")' in row[0] for row in indexes)
    assert [v for _, _, v in db.rows(text)] == ["x", "2.5"]


def test_unix_long_format_and_objects(pg_url: str, db: Database) -> None:
    class DoubleUnix(LongTableFormat):  # LongTableFormat with 64-bit columns for PostgreSQL
        schema_numeric = (
            "(timestamp DOUBLE PRECISION, channel VARCHAR(100), value DOUBLE PRECISION, "
            "PRIMARY KEY(timestamp,channel))"
        )

    numeric, objects = db.table(), db.table()
    hist = Histogram(2, 0, 2)
    hist.fill(0.5)
    with DataStore_PostgreSQL(pg_url, numeric, DoubleUnix()) as store:
        store.append(1.0 / 3.0, tag="a", timestamp=T0 + 0.5)
        with pytest.raises(InvalidDataError, match="table of their own"):
            store.append({"b": 1.0, "h": hist}, timestamp=T0 + 1)
        with store.another(objects, LongTableFormat_DateTime_PostgreSQL()) as store2:
            store2.append(hist, tag="h", timestamp=T0)
            store2.update(hist, tag="h", timestamp=T0 + 1)
    assert db.query(f"SELECT timestamp, channel, value FROM {numeric}") == [
        (T0 + 0.5, "a", 1.0 / 3.0)
    ]
    assert [(ch, v) for _, ch, v in db.rows(objects)] == [("h", str(hist))]


class TaggedFormat(LongTableFormat_DateTime_PostgreSQL):
    """A user format with %s placeholders and an extra column."""

    schema_numeric = (
        '("timestamp" TIMESTAMP WITH TIME ZONE, channel VARCHAR(100), value REAL, '
        'source TEXT, PRIMARY KEY("timestamp",channel))'
    )

    def insert_numeric_data(self, cur: Any, timestamp: float, channel: str, value: float) -> None:
        p = self.db.placeholder if self.db else "%s"
        cur.execute(
            f'INSERT INTO {self.table}("timestamp",channel,value,source) '
            f"VALUES(TO_TIMESTAMP({p}),{p},{p},'script')",
            (timestamp, channel, value),
        )


def test_custom_table_format(pg_url: str, db: Database) -> None:
    table = db.table()
    with DataStore_PostgreSQL(pg_url, table, table_format=TaggedFormat()) as store:
        store.append({"a": 1.0, "b": 2.0}, timestamp=T0)
        store.update(3.0, tag="a", timestamp=T0 + 1)
    assert db.query(f"SELECT channel, value, source FROM {table} ORDER BY channel") == [
        ("a", 3.0, "script"),
        ("b", 2.0, "script"),
    ]


class Interrupting(LongTableFormat_DateTime_PostgreSQL):
    """Raises ``error`` from the insert hook while it is set."""

    error: BaseException | None = None

    def insert_numeric_data(self, cur: Any, timestamp: float, channel: str, value: float) -> None:
        if self.error is not None:
            raise self.error
        super().insert_numeric_data(cur, timestamp, channel, value)


def test_a_broken_format_hook_does_not_wedge_the_queue(pg_url: str, db: Database) -> None:
    table = db.table()
    fmt = Interrupting()
    with DataStore_PostgreSQL(pg_url, table, fmt) as store:
        fmt.error = TypeError("broken hook")
        with pytest.raises(TypeError, match="broken hook"):
            store.append(1.0, tag="a", timestamp=T0)
        assert store.pending_rows == 0  # refused for good, not retried forever
        fmt.error = None
        store.append(2.0, tag="a", timestamp=T0 + 1)
    assert [(t - T0, ch, v) for t, ch, v in db.rows(table)] == [(1, "a", 2.0)]


def test_an_interrupted_call_stays_queued(pg_url: str, db: Database) -> None:
    table = db.table()
    fmt = Interrupting()
    with DataStore_PostgreSQL(pg_url, table, fmt) as store:
        store.append(1.0, tag="a", timestamp=T0)
        fmt.error = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt):
            store.append(2.0, tag="a", timestamp=T0 + 1)
        assert store.pending_rows == 1
        fmt.error = None
        store.append(3.0, tag="a", timestamp=T0 + 2)  # the queued call goes first
        assert store.pending_rows == 0
    assert [(t - T0, v) for t, _, v in db.rows(table)] == [(0, 1.0), (1, 2.0), (2, 3.0)]


def test_a_terminated_session_is_reconnected(pg_url: str, db: Database) -> None:
    table = db.table()
    with DataStore_PostgreSQL(pg_url, table) as store:
        store.append(1.0, tag="a", timestamp=T0)
        pid = store._writer.backend_pid
        assert db.query("SELECT pg_terminate_backend(%s)", pid) == [(True,)]
        store.append(2.0, tag="a", timestamp=T0 + 1)  # 57P01 is a broken link, not a refusal
        assert store.connects == 2
    assert [(t - T0, v) for t, _, v in db.rows(table)] == [(0, 1.0), (1, 2.0)]


def test_what_counts_as_a_broken_link(pg_url: str) -> None:
    import psycopg

    from slowdash_stores._postgresql import _link_lost

    with psycopg.connect(pg_url) as conn:
        # psycopg says this of a dead socket before libpq marks the connection bad
        assert _link_lost(conn, psycopg.OperationalError("connection socket closed"))
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("SELECT no_such_column FROM pg_class")
        assert not _link_lost(conn, refused.value)  # the server refused: not retried
        conn.rollback()
    assert _link_lost(conn, refused.value)  # a closed connection is always a broken link


# ---------------------------------------------------------------------------------------------
# bad input


def test_injection_attempts_and_bad_values(pg_url: str, db: Database) -> None:
    table = db.table()
    for bad_table in (f"{table}; DROP TABLE {table}", f"{table}'", "user", "a-b"):
        with pytest.raises(InvalidNameError):
            DataStore_PostgreSQL(pg_url, bad_table)
    with DataStore_PostgreSQL(pg_url, table) as store:
        store.append(1.0, tag="keep", timestamp=T0)
        for tag in (f"x'); DROP TABLE {table}; --", 'a" OR 1=1', "ch 1"):
            with pytest.raises(InvalidNameError):
                store.append(2.0, tag=tag, timestamp=T0 + 1)
        with pytest.raises(InvalidDataError, match="not a number"):
            store.append({"ok": 1.0, "keep": "abc"}, timestamp=T0 + 2)
        with pytest.raises(DuplicateRowError):
            store.append({"other": 1.0, "keep": 5.0}, timestamp=T0)
        store.append(3.0, tag="keep", timestamp=T0 + 3)
    assert [(ch, v) for _, ch, v in db.rows(table)] == [("keep", 1.0), ("keep", 3.0)]
    with pytest.raises(InvalidURLError):
        DataStore_PostgreSQL("sqlite:///x", "data")
    with pytest.raises(ValueError, match="max_pending"):
        DataStore_PostgreSQL(pg_url, "data", max_pending=0)
    with pytest.raises(ValueError, match="retry_timeout"):
        DataStore_PostgreSQL(pg_url, "data", retry_timeout=math.inf)


def test_bad_credentials_fail_fast(pg_url: str) -> None:
    store = DataStore_PostgreSQL(
        pg_url.rsplit("/", 1)[0] + "/no_such_database_here", "data", retry_timeout=60
    )
    started = time.monotonic()
    with pytest.raises(StoreConnectionError, match="does not exist") as info:
        store.append(1.0, tag="a")
    assert time.monotonic() - started < 10
    assert info.value.pending_rows == 1
    assert "no_such_database_here" in str(info.value)
    with pytest.raises(StoreConnectionError, match="closed with 1 queued rows unwritten"):
        store.close()
    with pytest.raises(StoreClosedError):
        store.append(1.0, tag="a")


def test_password_is_not_shown(pg_url: str) -> None:
    store = DataStore_PostgreSQL("postgresql://user:s3cret@127.0.0.1:1/db", "data")
    assert "s3cret" not in repr(store) and "s3cret" not in store.address
    store.close()
    for bad in (
        "mysql://user:s3cret@host/db",
        "host=h password=s3cret bogus",
        "postgresql://user:s3cret@h/db?bogus=1",
    ):
        with pytest.raises(InvalidURLError) as info:
            DataStore_PostgreSQL(bad, "data")
        assert "s3cret" not in str(info.value)
    with pytest.raises(InvalidURLError) as info:
        create_datastore_from_url("user:s3cret@host/db")
    assert "s3cret" not in str(info.value)


async def test_async_twins(pg_url: str, db: Database) -> None:
    table = db.table()
    store = DataStore_PostgreSQL(pg_url, table)
    with pytest.raises(WrongThreadError):
        store.append(1.0, tag="a")
    await store.aio_append({"a": 1.0, "b": 2.0}, timestamp=T0)
    await store.aio_update(3.0, tag="a", timestamp=T0 + 1)
    await store.aio_flush()
    await store.aio_close()
    assert [(ch, v) for _, ch, v in db.rows(table)] == [("b", 2.0), ("a", 3.0)]


# ---------------------------------------------------------------------------------------------
# lost connections, through a proxy that cuts them


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[Proxy]:
    async with postgres_proxy(pg_url) as server:
        yield server


class Progress:
    """Set from the writer's thread every ``every`` calls; awaited by the cutting task."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def set(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        await self.event.wait()
        self.event = trio.Event()


def writer_loop(
    store: DataStore_PostgreSQL, calls: int, acked: list[int], progress: Progress, every: int
) -> None:
    for i in range(calls):
        store.append({f"c{k}": float(i) for k in range(4)}, timestamp=T0 + i * 0.01)
        acked.append(i)
        if i % every == every - 1:
            trio.from_thread.run_sync(progress.set)


async def test_connections_cut_under_a_writer(pg_url: str, db: Database, proxy: Proxy) -> None:
    table = db.table()
    store = DataStore_PostgreSQL(proxied(pg_url, proxy.port), table, retry_timeout=20)
    acked: list[int] = []
    progress = Progress()
    cuts = 0
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def write() -> None:
                try:
                    await trio.to_thread.run_sync(writer_loop, store, 400, acked, progress, 20)
                finally:
                    nursery.cancel_scope.cancel()

            async def cut() -> None:
                nonlocal cuts
                while True:  # cut every connection whenever the writer got 20 calls further
                    await progress.wait()
                    cuts += proxy.cut_all()

            nursery.start_soon(write)
            nursery.start_soon(cut)
        await store.aio_close()
    assert len(acked) == 400
    assert cuts >= 5 and store.connects >= 5
    stored = db.rows(table)
    assert len(stored) == 4 * 400  # every acknowledged row, none twice (the key forbids it)
    assert {round((t - T0) / 0.01) for t, _, _ in stored} == set(range(400))
    assert all(v == round((t - T0) / 0.01) for t, _, v in stored)


@pytest.mark.parametrize("how", ["after", "client-only"])
async def test_commit_without_an_answer(pg_url: str, db: Database, proxy: Proxy, how: str) -> None:
    # "after": COMMIT reaches the server, its answer is lost: the row must not be written
    # again; "client-only": COMMIT never arrives and the server's session stays open (a
    # half-open link): the store must end that session and write the row again.
    table = db.table()
    store = DataStore_PostgreSQL(proxied(pg_url, proxy.port), table, retry_timeout=20)
    with trio.fail_after(30):
        await store.aio_append(1.0, tag="a", timestamp=T0)
        proxy.commit_cut = how
        await store.aio_append({"a": 2.0, "b": 2.0}, timestamp=T0 + 1)
        await store.aio_append(3.0, tag="a", timestamp=T0 + 2)
        await store.aio_close()
    assert proxy.commit_cuts == 1
    assert store.connects == 2
    assert [(t - T0, ch, v) for t, ch, v in db.rows(table)] == [
        (0, "a", 1.0),
        (1, "a", 2.0),
        (1, "b", 2.0),
        (2, "a", 3.0),
    ]


async def test_outage_keeps_rows_queued(pg_url: str, db: Database, proxy: Proxy) -> None:
    table = db.table()
    store = DataStore_PostgreSQL(
        proxied(pg_url, proxy.port), table, retry_timeout=0.3, max_pending=5
    )
    with trio.fail_after(30):
        await store.aio_append(1.0, tag="a", timestamp=T0)
        proxy.refuse = True
        proxy.cut_all()
        with pytest.raises(StoreConnectionError, match="kept queued") as info:
            await store.aio_append({"a": 2.0, "b": 2.0}, timestamp=T0 + 1)
        assert info.value.pending_rows == 2 == store.pending_rows
        with pytest.raises(StoreConnectionError):
            await store.aio_append({"a": 3.0, "b": 3.0, "c": 3.0}, timestamp=T0 + 2)
        assert store.pending_rows == 5
        with pytest.raises(StoreConnectionError, match="were not queued"):
            await store.aio_append(4.0, tag="a", timestamp=T0 + 3)  # over max_pending
        assert store.pending_rows == 5
        with pytest.raises(StoreConnectionError):
            await store.aio_flush(timeout=0.1)
        proxy.refuse = False
        await store.aio_append(5.0, tag="a", timestamp=T0 + 4)  # the queue goes first
        assert store.pending_rows == 0
        await store.aio_close()
    assert [(t - T0, ch) for t, ch, _ in db.rows(table)] == [
        (0, "a"),
        (1, "a"),
        (1, "b"),
        (2, "a"),
        (2, "b"),
        (2, "c"),
        (4, "a"),
    ]


async def test_close_writes_the_queue(pg_url: str, db: Database, proxy: Proxy) -> None:
    table = db.table()
    store = DataStore_PostgreSQL(proxied(pg_url, proxy.port), table, retry_timeout=0.3)
    with trio.fail_after(30):
        proxy.refuse = True
        with pytest.raises(StoreConnectionError):
            await store.aio_append(1.0, tag="a", timestamp=T0)
        proxy.refuse = False
        await store.aio_close()
    assert [(t - T0, ch) for t, ch, _ in db.rows(table)] == [(0, "a")]


async def test_cancelling_a_retrying_write(pg_url: str, db: Database, proxy: Proxy) -> None:
    table = db.table()
    store = DataStore_PostgreSQL(proxied(pg_url, proxy.port), table, retry_timeout=60)
    proxy.refuse = True
    with trio.fail_after(10):
        with trio.move_on_after(0.3) as scope:
            await store.aio_append(1.0, tag="a", timestamp=T0)
        assert scope.cancelled_caught
        proxy.refuse = False
        await store.aio_append(2.0, tag="a", timestamp=T0 + 1)  # waits for the thread to stop
        await store.aio_close()
    assert [(t - T0, ch) for t, ch, _ in db.rows(table)] == [(0, "a"), (1, "a")]
