"""DataStore_SQLite: round trips, the long-format schema, naming and value rules, bad input,
threads, Trio, and create_datastore_from_url."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from slowdash_stores._csv import DataStore_CSV, DataStore_TextDump
from slowdash_stores._errors import (
    DuplicateRowError,
    InvalidDataError,
    InvalidNameError,
    InvalidURLError,
    StoreClosedError,
    StoreError,
    StoreTimeout,
    StoreWriteError,
    WrongThreadError,
)
from slowdash_stores._factory import create_datastore_from_url
from slowdash_stores._graph import Graph
from slowdash_stores._histogram import Histogram
from slowdash_stores._postgresql import DataStore_PostgreSQL
from slowdash_stores._sql import DataStore_SQLite, LongTableFormat, TableFormat
from slowdash_stores._store import DataStore_Null
from slowdash_stores._timeseries import TimeSeries
from slowdash_stores._trend import Trend

T0 = 1_700_000_000.0

# the long format as SlowPy creates it (reference, section 6.3 / 13.2), byte for byte
SLOWPY_NUMERIC = (
    "CREATE TABLE {t}(timestamp REAL, channel VARCHAR(100), value REAL, "
    "PRIMARY KEY(timestamp,channel))"
)
SLOWPY_TEXT = (
    "CREATE TABLE {t}(timestamp REAL, channel VARCHAR(100), value TEXT, "
    "PRIMARY KEY(timestamp,channel))"
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/test"


def db_file(url: str) -> str:
    return url[len("sqlite:///") :] + ".db"


def rows(url: str, table: str = "data") -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        return conn.execute(
            f"SELECT timestamp, channel, value FROM {table} ORDER BY timestamp, channel"
        ).fetchall()


def schema(url: str) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master"))


# ---------------------------------------------------------------------------------------------
# round trips


def test_scalars_with_tags(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append(1.5, tag="a", timestamp=T0)
        store.append(2, tag="b", timestamp=T0)
        store.append(-3.25e-7, tag="a", timestamp=T0 + 1)
        store.append(math.inf, tag="c", timestamp=T0)
        store.append(True, tag="flag", timestamp=T0)  # bool in a numeric table: 1.0
        store.append("4.5", tag="s", timestamp=T0)  # a numeric string in a numeric table
    assert rows(url) == [
        (T0, "a", 1.5),
        (T0, "b", 2.0),
        (T0, "c", math.inf),
        (T0, "flag", 1.0),
        (T0, "s", 4.5),
        (T0 + 1, "a", -3.25e-7),
    ]


def test_nan_is_stored_as_null_in_sqlite(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append(math.nan, tag="a", timestamp=T0)
    assert rows(url) == [(T0, "a", None)]


def test_strings_make_a_text_table(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append("on", tag="state", timestamp=T0)
        store.append(1.5, tag="level", timestamp=T0)  # numbers become text here
        store.append(False, tag="flag", timestamp=T0)
        store.append("a,b 'c' \"d\"\n", tag="state", timestamp=T0 + 1)
    assert rows(url) == [
        (T0, "flag", "False"),
        (T0, "level", "1.5"),
        (T0, "state", "on"),
        (T0 + 1, "state", "a,b 'c' \"d\"\n"),
    ]
    assert schema(url)["data"] == SLOWPY_TEXT.format(t="data")


def test_dicts_with_and_without_tag(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append({"ch0": 1.0, "ch1": 2.0, "off": None}, timestamp=T0)
        store.append({"ch0": 3.0, 7: 4.0}, tag="dev", timestamp=T0)
        store.append({}, timestamp=T0 + 5)  # nothing to write, no error
    assert rows(url) == [
        (T0, "ch0", 1.0),
        (T0, "ch1", 2.0),
        (T0, "dev:7", 4.0),
        (T0, "dev:ch0", 3.0),
    ]


def test_objects_are_stored_as_their_json(url: str) -> None:
    hist = Histogram(4, 0, 4)
    hist.fill([0.5, 1.5, 1.7])
    graph = Graph(["x", "y"])
    graph.add_point([1, 2], [10, 20])
    trend = Trend(length=10, tick=1, metric="count", start=T0)
    for k in range(5):
        trend.fill(T0 + k + 0.5)
    with DataStore_SQLite(url, "objects") as store:
        store.append(hist, tag="hist", timestamp=T0)
        store.append(graph, tag="graph", timestamp=T0)
        store.append(trend, tag="trend", timestamp=T0)
        store.append({"a": [1, 2], "b": {"k": "v"}}, tag="plain", timestamp=T0)
    stored = {channel: value for _, channel, value in rows(url, "objects")}
    assert json.loads(stored["hist"]) == hist.to_json()
    assert stored["hist"] == str(hist)
    assert json.loads(stored["graph"]) == graph.to_json()
    assert json.loads(stored["trend"]) == trend.to_json()
    assert json.loads(stored["plain:a"]) == [1, 2]
    assert json.loads(stored["plain:b"]) == {"k": "v"}
    assert schema(url)["objects"] == SLOWPY_TEXT.format(t="objects")  # first value: an object


def test_sqlite_keeps_objects_in_a_numeric_table(url: str) -> None:
    # SlowPy's examples mix numbers and histograms in one SQLite table; SlowDash reads both
    hist = Histogram(2, 0, 2)
    with DataStore_SQLite(url, "data") as store:
        store.append(1.0, tag="x", timestamp=T0)
        store.append(hist, tag="h", timestamp=T0)
    assert rows(url) == [(T0, "h", str(hist)), (T0, "x", 1.0)]


def test_timeseries_named_and_tagged(url: str) -> None:
    named = TimeSeries(start=T0, name="rate")
    named.write(1.0, t=0.5)
    named.write(None, t=1.5)  # skipped
    named.write(3.0, t=2.5)
    unnamed = TimeSeries(start=T0, fields=["v", "err"])
    unnamed.write({"v": 5.0, "err": 0.5}, t=0)
    unnamed.write({"v": 6.0}, t=1)
    with DataStore_SQLite(url, "data") as store:
        store.append(named)
        store.append(unnamed, tag="volt")
        store.append(named, tag="renamed")  # an explicit tag wins over the name
    assert rows(url) == [
        (T0, "volt", 5.0),
        (T0, "volt:err", 0.5),
        (T0 + 0.5, "rate", 1.0),
        (T0 + 0.5, "renamed", 1.0),
        (T0 + 1, "volt", 6.0),
        (T0 + 2.5, "rate", 3.0),
        (T0 + 2.5, "renamed", 3.0),
    ]


def test_trend_time_series_writes_each_bin_once(url: str) -> None:
    trend = Trend(length=100, tick=1, metric="mean", start=T0)
    with DataStore_SQLite(url, "data") as store:
        for k in range(6):
            trend.fill(T0 + k + 0.5, value=float(k))
            store.append(trend.time_series("temp"))
    stored = rows(url)
    means = [(t, value) for t, channel, value in stored if channel == "temp"]
    assert means == [(T0 + k + 0.5, float(k)) for k in range(5)]  # bin 5 is still filling
    assert {channel for _, channel, _ in stored} <= {
        "temp",
        "temp:x_err",
        "temp:x_min",
        "temp:x_max",
    }


def test_update_keeps_only_the_latest(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append(1.0, tag="a", timestamp=T0)
        store.append(2.0, tag="a", timestamp=T0 + 1)
        store.append(5.0, tag="b", timestamp=T0)
        store.update(3.0, tag="a", timestamp=T0 + 2)
        store.update({"x": 1.0, "y": 2.0}, tag="d", timestamp=T0)
        store.update({"x": 7.0}, tag="d", timestamp=T0 + 1)
        series = TimeSeries(start=T0, name="s")
        series.write(1.0, t=0)
        series.write(2.0, t=1)
        store.update(series)
        store.update(series)  # the whole series replaces the channel, not just its last point
    assert rows(url) == [
        (T0, "b", 5.0),
        (T0, "d:y", 2.0),
        (T0, "s", 1.0),
        (T0 + 1, "d:x", 7.0),
        (T0 + 1, "s", 2.0),
        (T0 + 2, "a", 3.0),
    ]


def test_update_of_a_histogram(url: str) -> None:
    hist = Histogram(2, 0, 2)
    with DataStore_SQLite(url, "objects") as store:
        for k in range(3):
            hist.fill(0.5)
            store.update(hist, tag="h", timestamp=T0 + k)
    assert rows(url, "objects") == [(T0 + 2, "h", str(hist))]
    assert json.loads(rows(url, "objects")[0][2])["counts"][0] == 3


def test_timestamps(url: str) -> None:
    aware = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    with DataStore_SQLite(url, "data") as store:
        before = time.time()
        store.append(1.0, tag="now")
        store.append(2.0, tag="ago", timestamp=-60)
        store.append(3.0, tag="zero", timestamp=0)
        after = time.time()
        store.append(4.0, tag="dt", timestamp=aware)
        store.append(5.0, tag="ms", timestamp=T0 + 0.123456)  # kept to the millisecond
        for bad in ("now", math.nan, math.inf, True, [1]):
            with pytest.raises(InvalidDataError, match="timestamp"):
                store.append(1.0, tag="bad", timestamp=bad)
        with pytest.raises(InvalidDataError, match="own times"):
            store.append(TimeSeries(name="x"), timestamp=T0)
    stored = {channel: t for t, channel, _ in rows(url)}
    assert before - 0.001 <= stored["now"] <= after + 0.001
    assert before - 60.001 <= stored["ago"] <= after - 59.999
    assert before - 0.001 <= stored["zero"] <= after + 0.001
    assert stored["dt"] == aware.timestamp()
    assert stored["ms"] == round(T0 + 0.123456, 3)
    assert "bad" not in stored


# ---------------------------------------------------------------------------------------------
# what SlowDash reads: the schema, the index, the durability settings


def test_schema_is_slowpys_long_format(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append(1.0, tag="a", timestamp=T0)
        text = store.another("texts")
        text.append("x", tag="a", timestamp=T0)
        text.close()
    # exactly SlowPy's tables (beside the downsampling tiers of the numeric one); the
    # primary key's own index serves time windows
    tables = schema(url)
    tiers = {name for name in tables if "tier" in name}
    assert tiers == {"slowdash_tiers", "sqlite_autoindex_slowdash_tiers_1"} | {
        f"data__tier{w}" for w in (60, 600, 3600)
    }
    assert {k: v for k, v in tables.items() if k not in tiers} == {
        "data": SLOWPY_NUMERIC.format(t="data"),
        "sqlite_autoindex_data_1": None,
        "texts": SLOWPY_TEXT.format(t="texts"),
        "sqlite_autoindex_texts_1": None,
    }
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT timestamp, value FROM data "
                "WHERE channel = 'a' AND timestamp >= 0 AND timestamp < 1e10"
            )
        )
    assert "sqlite_autoindex_data_1" in plan


def test_channel_index_on_request(url: str) -> None:
    with DataStore_SQLite(url, "data", LongTableFormat(channel_index=True)) as store:
        store.append(1.0, tag="a", timestamp=T0)
        other = store.another("more")  # the option goes along
        other.append(1.0, tag="a", timestamp=T0)
        other.close()
    tables = schema(url)
    assert tables["data"] == SLOWPY_NUMERIC.format(t="data")
    assert tables["data_channel_time"] == (
        "CREATE INDEX data_channel_time ON data(channel,timestamp)"
    )
    assert "more_channel_time" in tables
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT timestamp, value FROM data "
                "WHERE channel = 'a' AND timestamp >= 0 AND timestamp < 1e10"
            )
        )
    assert "data_channel_time" in plan


def test_writes_to_a_table_slowpy_created(url: str) -> None:
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        conn.execute(SLOWPY_NUMERIC.format(t="old"))
        conn.execute(SLOWPY_TEXT.format(t="oldtext"))
        conn.execute("INSERT INTO old VALUES(1.0, 'a', 1.0)")
        conn.commit()
    with DataStore_SQLite(url, "old") as store:
        store.append(2.0, tag="a", timestamp=T0)
        with pytest.raises(InvalidDataError, match="not a number"):
            store.append("text", tag="a", timestamp=T0 + 1)
    with DataStore_SQLite(url, "oldtext") as store:
        store.append(2.5, tag="a", timestamp=T0)
    assert rows(url, "old") == [(1.0, "a", 1.0), (T0, "a", 2.0)]
    assert rows(url, "oldtext") == [(T0, "a", "2.5")]
    assert "old_channel_time" not in schema(url)  # we add indexes only to our own tables


@pytest.mark.parametrize(("durable", "level"), [(False, 1), (True, 2)])
def test_wal_and_synchronous_level(url: str, durable: bool, level: int) -> None:
    with DataStore_SQLite(url, "data", durable=durable) as store:
        before = store.journal_mode
        store.append(1.0, tag="a")
        assert before is None and store.journal_mode == "wal"
        conn = store._writer.conn
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == level  # NORMAL=1, FULL=2


def test_in_memory_database() -> None:
    with DataStore_SQLite("sqlite:///:memory:", "data") as store:
        store.append(1.0, tag="a", timestamp=T0)
        assert store.journal_mode == "memory"
        conn = store._writer.conn
        assert conn is not None
        assert conn.execute("SELECT value FROM data").fetchall() == [(1.0,)]


# ---------------------------------------------------------------------------------------------
# custom table formats


class QuickTourTestDataFormat(LongTableFormat):
    """The seed document's example, with its missing parenthesis put back."""

    schema_numeric = (
        "(datetime DATETIME, timestamp INTEGER, channel STRING, value REAL, "
        "PRIMARY KEY(timestamp, channel))"
    )
    schema_text = (
        "(datetime DATETIME, timestamp INTEGER, channel STRING, value REAL, "
        "PRIMARY KEY(timestamp, channel))"
    )

    def insert_numeric_data(self, cur: Any, timestamp: float, channel: str, value: float) -> None:
        cur.execute(
            f"INSERT INTO {self.table} VALUES(CURRENT_TIMESTAMP,%d,?,%f)" % (timestamp, value),
            (channel,),
        )

    def insert_text_data(self, cur: Any, timestamp: float, channel: str, value: str) -> None:
        cur.execute(
            f"INSERT INTO {self.table} VALUES(CURRENT_TIMESTAMP,%d,?,?)" % timestamp,
            (channel, value),
        )


class SeedQuickTourFormat(QuickTourTestDataFormat):
    """The seed document's example exactly as printed (insert_text_data lacks a ')')."""

    def insert_text_data(self, cur: Any, timestamp: float, channel: str, value: str) -> None:
        cur.execute(
            f"INSERT INTO {self.table} VALUES(CURRENT_TIMESTAMP,%d,?,?" % timestamp,
            (channel, value),
        )


def test_quick_tour_table_format(url: str) -> None:
    fmt = QuickTourTestDataFormat(channel_index=True)
    with DataStore_SQLite(url, "testdata", table_format=fmt) as store:
        store.append({"ch00": 1.25, "ch01": 2.5}, timestamp=T0 + 0.7)
        store.append("on", tag="state", timestamp=T0)
        store.update(3.5, tag="ch00", timestamp=T0 + 2)
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        stored = conn.execute(
            "SELECT datetime, timestamp, channel, value FROM testdata ORDER BY timestamp, channel"
        ).fetchall()
    assert [row[1:] for row in stored] == [
        (int(T0), "ch01", 2.5),
        (int(T0), "state", "on"),
        (int(T0) + 2, "ch00", 3.5),
    ]
    assert all(isinstance(row[0], str) and row[0][:2] == "20" for row in stored)
    assert "testdata_channel_time" in schema(url)  # the inherited index fits this layout too


def test_the_seed_examples_typo_is_a_clear_error(url: str) -> None:
    with DataStore_SQLite(url, "testdata", table_format=SeedQuickTourFormat()) as store:
        store.append(1.0, tag="a", timestamp=T0)
        with pytest.raises(StoreWriteError, match=r"testdata.*incomplete input"):
            store.append({"b": 2.0, "c": "text"}, timestamp=T0 + 1)
        store.append(3.0, tag="a", timestamp=T0 + 2)
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        assert conn.execute(
            "SELECT channel, value FROM testdata ORDER BY timestamp"
        ).fetchall() == [
            ("a", 1.0),
            ("a", 3.0),
        ]  # nothing of the failed call ("b" came first) was kept


class WideFormat(TableFormat):
    """A user layout with a batch hook: one row per call, channels as columns."""

    schema_numeric = "(t REAL PRIMARY KEY, a REAL, b REAL)"
    indexes = ("CREATE INDEX IF NOT EXISTS {table}_b ON {table}(b)",)

    def write_rows(self, cur: Any, rows: list[tuple[float, str, object]], update: bool) -> None:
        values = {channel: value for _, channel, value in rows}
        cur.execute(
            f"INSERT INTO {self.table}(t, a, b) VALUES(?, ?, ?)",
            (rows[0][0], values.get("a"), values.get("b")),
        )


def test_batch_hook_and_indexes_of_a_user_format(url: str) -> None:
    with DataStore_SQLite(url, "wide", table_format=WideFormat()) as store:
        store.append({"a": 1.0, "b": 2.0}, timestamp=T0)
        store.append({"b": 3.0}, timestamp=T0 + 1)
    with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
        assert conn.execute("SELECT * FROM wide ORDER BY t").fetchall() == [
            (T0, 1.0, 2.0),
            (T0 + 1, None, 3.0),
        ]
    assert "wide_b" in schema(url)


def test_table_format_misuse(url: str) -> None:
    class OldStyle(LongTableFormat):
        def write(self, cur: Any, *args: Any) -> None:
            pass

    with pytest.raises(StoreError, match="write_rows"):
        DataStore_SQLite(url, "data", table_format=OldStyle())
    shared = LongTableFormat()
    DataStore_SQLite(url, "one", table_format=shared).close()
    with pytest.raises(StoreError, match="already serves"):
        DataStore_SQLite(url, "two", table_format=shared)
    with pytest.raises(TypeError, match="TableFormat"):
        DataStore_SQLite(url, "data", table_format="long")  # type: ignore[arg-type]

    class NoSchema(LongTableFormat):
        schema_numeric = None

    with (
        DataStore_SQLite(url, "never", table_format=NoSchema()) as store,
        pytest.raises(StoreWriteError, match="creates none"),
    ):
        store.append(1.0, tag="a")

    class Unfinished(TableFormat):
        schema_numeric = "(timestamp REAL, channel TEXT, value REAL)"

    with (
        DataStore_SQLite(url, "unfinished", table_format=Unfinished()) as store,
        pytest.raises(StoreError, match="insert_numeric_data"),
    ):
        store.append(1.0, tag="a")


# ---------------------------------------------------------------------------------------------
# bad input: clear errors, nothing else disturbed


def test_a_value_with_no_channel_name_is_an_error(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        with pytest.raises(InvalidDataError, match="tag="):
            store.append(1.0)
        with pytest.raises(InvalidDataError, match="name"):
            store.append(TimeSeries(start=T0))
        with pytest.raises(InvalidDataError, match="None"):
            store.append(None, tag="a")
        with pytest.raises(ValueError, match="tag="):  # InvalidDataError is a ValueError
            store.update(2.0)
    assert "data" not in schema(url)  # nothing at all happened


@pytest.mark.parametrize(
    "table",
    [
        "data; DROP TABLE data",
        "data--",
        "x'y",
        'x"y',
        "1data",
        "",
        "da ta",
        "données",
        "select",
        "Table",
        "t" * 64,
        None,
        3,
    ],
)
def test_bad_table_names(url: str, table: Any) -> None:
    with pytest.raises(InvalidNameError):
        DataStore_SQLite(url, table)


@pytest.mark.parametrize(
    ("tag", "field"),
    [
        ("a'; DROP TABLE data; --", None),
        ('x" OR "1"="1', None),
        (None, "f); DELETE FROM data; --"),
        ("ch 1", None),
        ("température", None),
        ("a/b", None),
        ("x" * 101, None),
        ("", None),
        (None, ""),
        ("ok", ""),
        (1.5, None),
        (True, None),
        (("t",), None),
        (["t"], None),
    ],
)
def test_bad_channel_names_leave_the_table_alone(url: str, tag: Any, field: Any) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append(1.0, tag="keep", timestamp=T0)
        values: object = 2.0 if field is None else {field: 2.0, "good": 3.0}
        with pytest.raises(InvalidNameError):
            store.append(values, tag=tag, timestamp=T0 + 1)
        store.append(4.0, tag="keep", timestamp=T0 + 2)
    assert rows(url) == [(T0, "keep", 1.0), (T0 + 2, "keep", 4.0)]


def test_allowed_channel_characters(url: str) -> None:
    name = "Dev-1.temp_A:raw"
    with DataStore_SQLite(url, "data") as store:
        store.append(1.0, tag=name, timestamp=T0)
        store.append(2.0, tag=7, timestamp=T0)
        store.append(3.0, tag="x" * 100, timestamp=T0)
    assert sorted(channel for _, channel, _ in rows(url)) == sorted([name, "7", "x" * 100])


@pytest.mark.parametrize("bad", ["abc", "", "1,5", b"1.0", 1 + 2j, object()])
def test_non_numeric_values_in_a_numeric_table(url: str, bad: object) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append({"a": 1.0}, timestamp=T0)
        with pytest.raises(InvalidDataError, match=r"'a'.*not a number|bytes"):
            store.append({"b": 2.0, "a": bad}, timestamp=T0 + 1)
        store.append({"a": 3.0}, timestamp=T0 + 2)
    assert rows(url) == [(T0, "a", 1.0), (T0 + 2, "a", 3.0)]  # "b" of the failed call is not there


def test_bytes_are_refused_in_a_text_table(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append("x", tag="a", timestamp=T0)
        with pytest.raises(InvalidDataError, match="bytes"):
            store.append(b"raw", tag="a", timestamp=T0 + 1)
    assert rows(url) == [(T0, "a", "x")]


def test_duplicate_rows_are_refused_as_a_whole(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append({"a": 1.0}, timestamp=T0)
        with pytest.raises(DuplicateRowError, match="same timestamp"):
            store.append({"b": 2.0, "a": 5.0}, timestamp=T0 + 0.0002)  # same millisecond
        store.append({"a": 3.0}, timestamp=T0 + 1)
    assert rows(url) == [(T0, "a", 1.0), (T0 + 1, "a", 3.0)]


def test_a_dropped_table_is_made_again(url: str) -> None:
    with DataStore_SQLite(url, "data") as store:
        store.append(1.0, tag="a", timestamp=T0)
        with contextlib.closing(sqlite3.connect(db_file(url))) as conn:
            conn.execute("DROP TABLE data")
            conn.commit()
        with pytest.raises(StoreWriteError, match="no such table"):
            store.append(2.0, tag="a", timestamp=T0 + 1)
        store.append(3.0, tag="a", timestamp=T0 + 2)
    assert rows(url) == [(T0 + 2, "a", 3.0)]


def test_closed_store(url: str) -> None:
    store = DataStore_SQLite(url, "data")
    store.append(1.0, tag="a", timestamp=T0)
    store.close()
    store.close()  # twice is fine
    assert store.closed
    with pytest.raises(StoreClosedError):
        store.append(2.0, tag="a")
    with pytest.raises(StoreClosedError):
        store._write_rows([(T0, "a", 1.0)], False)  # the writer itself refuses too
    assert rows(url) == [(T0, "a", 1.0)]


def test_closed_when_collected(url: str) -> None:
    store = DataStore_SQLite(url, "data")
    store.append(1.0, tag="a", timestamp=T0)
    writer = store._writer
    del store
    assert writer.closed and writer.conn is None


def test_locked_database_times_out(url: str) -> None:
    with DataStore_SQLite(url, "data", timeout=0.2) as store:
        store.append(1.0, tag="a", timestamp=T0)
        with contextlib.closing(sqlite3.connect(db_file(url), isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(StoreTimeout, match="locked"):
                store.append(2.0, tag="a", timestamp=T0 + 1)
            assert time.monotonic() - started >= 0.15
            other.execute("ROLLBACK")
        store.append(3.0, tag="a", timestamp=T0 + 2)
    assert rows(url) == [(T0, "a", 1.0), (T0 + 2, "a", 3.0)]


def test_bad_urls_and_options(tmp_path: Path) -> None:
    for bad in ("sqlite://relative", "mysql://x/y", "sqlite:///", f"sqlite:///{tmp_path}/"):
        with pytest.raises(InvalidURLError):
            DataStore_SQLite(bad, "data")
    with pytest.raises(InvalidURLError):
        DataStore_SQLite(None, "data")  # type: ignore[arg-type]
    fmt = LongTableFormat()
    bad_timeouts: list[Any] = [-1, math.nan, "1", True]
    for bad_timeout in bad_timeouts:
        with pytest.raises(ValueError, match="timeout"):
            DataStore_SQLite(f"sqlite:///{tmp_path}/x", "data", fmt, timeout=bad_timeout)
    with pytest.raises(InvalidURLError):
        DataStore_SQLite("sqlite://x", "data", fmt)
    DataStore_SQLite(f"sqlite:///{tmp_path}/x", "data", fmt).close()  # fmt was not taken
    store = DataStore_SQLite(f"sqlite:///{tmp_path}/missing/dir/x", "data")
    with pytest.raises(StoreError, match="cannot open"):
        store.append(1.0, tag="a")
    store.close()


def test_file_names(tmp_path: Path) -> None:
    for given, expected in (("a", "a.db"), ("b.db", "b.db"), ("c.sqlite", "c.sqlite.db")):
        with DataStore_SQLite(f"sqlite:///{tmp_path}/{given}", "data") as store:
            store.append(1.0, tag="x")
        assert (tmp_path / expected).exists()
    with DataStore_SQLite(str(tmp_path / "plain"), "data") as store:  # no scheme: a file name
        store.append(1.0, tag="x")
    assert (tmp_path / "plain.db").exists()


def test_interrupted_call_leaves_nothing_and_the_store_works(url: str) -> None:
    class Interrupting(LongTableFormat):
        armed = False

        def insert_numeric_data(self, cur: Any, t: float, channel: str, value: float) -> None:
            if self.armed and channel == "b":
                raise KeyboardInterrupt
            super().insert_numeric_data(cur, t, channel, value)

    fmt = Interrupting()
    with DataStore_SQLite(url, "data", table_format=fmt) as store:
        store.append({"a": 1.0, "b": 1.0}, timestamp=T0)
        fmt.armed = True
        with pytest.raises(KeyboardInterrupt):
            store.append({"a": 2.0, "b": 2.0}, timestamp=T0 + 1)
        fmt.armed = False
        store.append({"a": 3.0, "b": 3.0}, timestamp=T0 + 2)
    assert rows(url) == [(T0, "a", 1.0), (T0, "b", 1.0), (T0 + 2, "a", 3.0), (T0 + 2, "b", 3.0)]


# ---------------------------------------------------------------------------------------------
# threads and Trio


def test_many_threads_one_store(url: str) -> None:
    errors: list[BaseException] = []
    with DataStore_SQLite(url, "data") as store:

        def writer(k: int) -> None:
            try:
                for i in range(200):
                    store.append({"v": float(i)}, tag=f"w{k}", timestamp=T0 + i)
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    stored = rows(url)
    assert len(stored) == 6 * 200
    assert {channel for _, channel, _ in stored} == {f"w{k}:v" for k in range(6)}


async def test_sync_calls_on_the_trio_thread_are_refused(url: str) -> None:
    store = DataStore_SQLite(url, "data")
    with pytest.raises(WrongThreadError, match="aio_append"):
        store.append(1.0, tag="a")
    with pytest.raises(WrongThreadError, match="aio_update"):
        store.update(1.0, tag="a")
    with pytest.raises(WrongThreadError, match="aio_close"):
        store.close()
    await store.aio_close()
    assert store.closed


async def test_async_twins(url: str) -> None:
    hist = Histogram(2, 0, 2)
    async with DataStore_SQLite(url, "data") as store:
        before = time.time()
        await store.aio_append(1.0, tag="a")
        await store.aio_append({"x": 2.0, "y": 3.0}, tag="d", timestamp=T0)
        await store.aio_update(4.0, tag="a", timestamp=T0 + 1)
        with pytest.raises(InvalidDataError):
            await store.aio_append(5.0)
        objects = store.another("objects")
        await objects.aio_append(hist, tag="h", timestamp=T0)
        await objects.aio_close()
    assert store.closed
    with pytest.raises(StoreClosedError):
        await store.aio_append(1.0, tag="a")
    assert rows(url) == [(T0, "d:x", 2.0), (T0, "d:y", 3.0), (T0 + 1, "a", 4.0)]
    assert rows(url, "objects") == [(T0, "h", str(hist))]
    assert before > T0


async def test_async_write_does_not_block_the_trio_thread(url: str) -> None:
    store = DataStore_SQLite(url, "data")
    await store.aio_append(0.0, tag="a", timestamp=T0)
    stamp = time.time()
    ticks = 0
    done = trio.Event()

    async def write() -> None:
        await store.aio_append(1.0, tag="a")  # "now" is taken here, not when the lock frees
        done.set()

    with trio.fail_after(10):
        await trio.to_thread.run_sync(store._writer.lock.acquire)  # another thread is writing
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            while ticks < 50:  # the Trio thread stays free while the write waits
                await trio.sleep(0.001)
                ticks += 1
            assert not done.is_set()
            store._writer.lock.release()
        assert done.is_set()
    await store.aio_close()
    (t, channel, value) = rows(url)[-1]
    assert (channel, value) == ("a", 1.0)
    assert stamp - 0.001 <= t < stamp + 0.05


async def test_cancelled_aio_append_finishes_its_write_in_order(url: str) -> None:
    store = DataStore_SQLite(url, "data")
    await store.aio_append(0.0, tag="a", timestamp=T0)
    await trio.to_thread.run_sync(store._writer.lock.acquire)
    with trio.move_on_after(0.05) as scope:
        await store.aio_append(1.0, tag="a", timestamp=T0 + 1)
    assert scope.cancelled_caught
    store._writer.lock.release()
    await store.aio_append(2.0, tag="a", timestamp=T0 + 2)  # queued behind the abandoned one
    await store.aio_close()
    assert rows(url) == [(T0, "a", 0.0), (T0 + 1, "a", 1.0), (T0 + 2, "a", 2.0)]


# ---------------------------------------------------------------------------------------------
# create_datastore_from_url and the null store


def test_factory(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path}/f"
    for store in (
        create_datastore_from_url(sqlite_url),
        create_datastore_from_url(sqlite_url, "positional"),
        create_datastore_from_url(sqlite_url, table="keyword", durable=True),
    ):
        assert isinstance(store, DataStore_SQLite)
        store.append(1.0, tag="a")
        store.close()
    assert set(schema(sqlite_url)) >= {"slow_data", "positional", "keyword"}
    csv_store = create_datastore_from_url(f"csv:///{tmp_path}/csv", "t")
    assert isinstance(csv_store, DataStore_CSV)
    csv_store.close()
    assert isinstance(create_datastore_from_url("dump:///"), DataStore_TextDump)
    pg = create_datastore_from_url("postgresql://u@127.0.0.1:1/db", table="t")
    assert isinstance(pg, DataStore_PostgreSQL)
    pg.close()
    for bad in ("mysql://u@h/db", "influxdb2://o:t@h/b", "ftp://x", "data"):
        with pytest.raises(InvalidURLError):
            create_datastore_from_url(bad)
    with pytest.raises(TypeError):
        create_datastore_from_url(sqlite_url, "a", "b")
    with pytest.raises(TypeError):
        create_datastore_from_url(sqlite_url, "a", table="b")
    with pytest.raises(InvalidNameError):
        create_datastore_from_url(sqlite_url, table="bad name")


def test_null_store_checks_and_keeps_nothing() -> None:
    store = DataStore_Null()
    store.append(1.0, tag="a")
    store.append({"x": Histogram(2, 0, 1)})
    with pytest.raises(InvalidDataError):
        store.append(1.0)
    with pytest.raises(InvalidNameError):
        store.append(1.0, tag="bad name")
    store.close()
    with pytest.raises(StoreClosedError):
        store.append(1.0, tag="a")
