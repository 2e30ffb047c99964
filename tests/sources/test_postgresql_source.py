"""PostgreSQLSource against the real server on 127.0.0.1.

The server comes from ``SLOWDASH_TRIO_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Without it (or without psycopg) these tests
skip; with ``SLOWDASH_TRIO_REQUIRE_SERVICES=1`` they fail instead. Data are written with
``DataStore_PostgreSQL`` (or by hand for layouts the stores do not make) into tables of the
test's own, dropped at the end, and read back through the source; resampled answers are
compared with ``resample_points``, the reference computation.
"""

from __future__ import annotations

import bisect
import datetime
import json
import math
import re
import socket
import uuid
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from support import postgres_url

from slowdash_stores import (
    DataStore_PostgreSQL,
    Graph,
    Histogram,
    Histogram2d,
    LongTableFormat_DateTime_PostgreSQL,
)
from slowdash_trio._sources import _pgpool as pgpool
from slowdash_trio._sources._base import SourceConfigError, SourceUnavailable, build_source
from slowdash_trio._sources._postgresql import PostgreSQLSource, local_zone, plain
from slowdash_trio._sources._query import (
    DataQuery,
    QueryError,
    auto_interval,
    make_grid,
    parse_query,
    raw_reply,
    resample_points,
    wants_prior,
)

T0 = 1_700_000_000.0
NOW = T0 + 10_000
TZ = '"timestamp"(with time zone)'


@pytest.fixture
def pg_url() -> str:
    return postgres_url()


class Database:
    """Direct access: tables of this test (dropped at the end), writes and checks."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)
        self.prefix = f"sdt_{uuid.uuid4().hex[:10]}"
        self.tables: list[str] = []

    def table(self, name: str) -> str:
        table = f"{self.prefix}_{name}"
        self.tables.append(table)
        return table

    def execute(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.encode() if not params else sql, params or None)
        return cur.fetchall() if cur.description else []

    def exists(self, table: str) -> bool:
        return self.execute("SELECT to_regclass(%s) IS NOT NULL", table)[0][0] is True

    async def store(
        self, table: str, fill: Callable[[DataStore_PostgreSQL], None], fmt: Any = None
    ) -> None:
        """Write with DataStore_PostgreSQL (in a worker thread, as its sync API wants)."""

        def work() -> None:
            with DataStore_PostgreSQL(self.url, table, fmt) as store:
                fill(store)

        await trio.to_thread.run_sync(work)

    def close(self) -> None:
        for table in self.tables:
            self.conn.execute(f'DROP TABLE IF EXISTS "{table}"'.encode())
        self.conn.close()


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.close()


Maker = Callable[..., Awaitable[PostgreSQLSource]]


@pytest.fixture
async def make(pg_url: str, tmp_path: Path) -> AsyncIterator[Maker]:
    """``await make(time_series=..., ...)``: an opened source; closed at the end."""
    made: list[PostgreSQLSource] = []

    async def build(**params: Any) -> PostgreSQLSource:
        params.setdefault("url", pg_url)
        source = PostgreSQLSource(params, project_dir=tmp_path)
        made.append(source)
        await source.open()
        return source

    yield build
    for source in made:
        await source.aclose()


def query(channels: list[str], **kw: Any) -> DataQuery:
    kw.setdefault("to", T0 + 100)
    kw.setdefault("length", 100)
    return parse_query(channels, now=NOW, **kw)


def with_app(url: str, name: str) -> str:
    return url + ("&" if "?" in url else "?") + f"application_name={name}"


# ---------------------------------------------------------------------------------------------
# the reference computation for one channel


def expected(
    q: DataQuery, points: list[tuple[float, Any]], *, numeric: bool = True
) -> dict[str, Any] | None:
    """What a channel with ``points`` (time, stored value; sorted) must answer."""
    points = [(t, v) for t, v in points if v is not None]
    times = [t for t, _ in points]
    values = [v if numeric and isinstance(v, float) else plain(v) for _, v in points]
    if q.resample is None:
        lo, hi = bisect.bisect_left(times, q.begin), bisect.bisect_left(times, q.to)
        reply = raw_reply(q, times[lo:hi], [plain(v) for v in values[lo:hi]]) if hi > lo else None
        before = q.begin
    else:
        width = q.resample
        if width == 0:
            lo, hi = bisect.bisect_left(times, q.begin), bisect.bisect_left(times, q.to)
            width = auto_interval(times[lo:hi], q.length)
        grid = make_grid(q.length, q.to, width)
        inside = [t for t in times if 0 <= grid.index(t) < grid.count and t >= grid.start]
        reply = resample_points(q, times, values) if inside else None
        before = grid.start
    if wants_prior(q, reply) and (q.resample is None or q.envelope == 0):
        earlier = [(t, v) for t, v in points if t < before]
        if earlier:
            prior = (earlier[-1][0], plain(earlier[-1][1]))
            if q.resample is None:
                reply = reply or raw_reply(q, [], [])
                reply["t"] = [round(prior[0] - reply["start"], 3), *reply["t"]]
                reply["x"] = [prior[1], *reply["x"]]
            else:
                reply = resample_points(q, times, values, prior)
    return reply


INEXACT = {"std", "sem"}


def assert_same(got: dict[str, Any] | None, want: dict[str, Any] | None, q: DataQuery) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got.keys() == want.keys()
    for key, value in want.items():
        inexact = key == "x_err" or (key == "x" and q.reducer in INEXACT)
        if inexact:
            assert len(got[key]) == len(value)
            for a, b in zip(got[key], value, strict=True):
                assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
        else:
            assert got[key] == value, (key, q)


# ---------------------------------------------------------------------------------------------
# stores -> source round trips


async def test_scalars_strings_and_dicts(db: Database, make: Maker) -> None:
    num, txt = db.table("num"), db.table("txt")

    def fill_num(store: DataStore_PostgreSQL) -> None:
        store.append(1.5, tag="a", timestamp=T0 + 10.25)
        store.append({"x": 2.0, "y": 3.25}, tag="d", timestamp=T0 + 20)
        store.append({"b": 4.0, "a": 5.0}, timestamp=T0 + 30)
        store.append(math.nan, tag="a", timestamp=T0 + 40)
        store.append(0.1, tag="p", timestamp=T0 + 1)  # REAL: 0.1 is 0.10000000149...
        store.append(0.1, tag="p", timestamp=T0 + 2)

    def fill_txt(store: DataStore_PostgreSQL) -> None:
        store.append("on", tag="state", timestamp=T0 + 1)
        store.append("2.5", tag="state", timestamp=T0 + 2)
        store.append(True, tag="flag", timestamp=T0 + 3)

    await db.store(num, fill_num)
    await db.store(txt, fill_txt)
    source = await make(
        time_series=[f"{num}[channel]@{TZ}=value", {"schema": f"{txt}[channel]@{TZ}=value"}]
    )
    channels = await source.channels()
    assert channels == [
        {"name": "a"},
        {"name": "b"},
        {"name": "d:x"},
        {"name": "d:y"},
        {"name": "p"},
        {"name": "flag"},
        {"name": "state"},
    ]
    q = query(["a", "b", "d:x", "d:y", "state", "flag", "nothing"])
    reply = await source.data(q)
    assert reply == {
        "a": {"start": int(T0), "length": 100, "t": [10.25, 30, 40], "x": [1.5, 5.0, None]},
        "b": {"start": int(T0), "length": 100, "t": [30], "x": [4.0]},
        "d:x": {"start": int(T0), "length": 100, "t": [20], "x": [2.0]},
        "d:y": {"start": int(T0), "length": 100, "t": [20], "x": [3.25]},
        "state": {"start": int(T0), "length": 100, "t": [1, 2], "x": ["on", 2.5]},
        "flag": {"start": int(T0), "length": 100, "t": [3], "x": ["True"]},  # as stored
    }
    resampled = await source.data(query(["state", "a"], resample=50, reducer="sum"))
    assert resampled["state"]["x"] == [2.5, None]  # text that is not a number does not count
    assert resampled["a"]["x"] == [6.5, None]  # NaN does not count
    # a REAL is read as the number it shows, in raw and in resampled answers alike
    assert (await source.data(query(["p"])))["p"]["x"] == [0.1, 0.1]
    for reducer in ("mean", "first", "median", "max"):
        assert (await source.data(query(["p"], resample=100, reducer=reducer)))["p"]["x"] == [0.1]


async def test_objects_update_and_append(db: Database, make: Maker) -> None:
    objects = db.table("obj")
    hist1, hist2 = Histogram(4, 0, 4), Histogram(4, 0, 4)
    hist1.fill(1.5)
    hist2.fill([0.5, 2.5, 2.5])
    graph1, graph2 = Graph(["t", "v"]), Graph(["t", "v"])
    graph1.add_point(1, 2)
    graph2.add_point([1, 2], [3, 4])
    hist2d = Histogram2d(2, 0, 2, 2, 0, 2)
    hist2d.fill(0.5, 1.5)

    def fill(store: DataStore_PostgreSQL) -> None:
        store.update(hist1, tag="h", timestamp=T0 + 10)
        store.update(hist2, tag="h", timestamp=T0 + 20)  # replaces: one row
        store.append(graph1, tag="g", timestamp=T0 + 10)
        store.append(graph2, tag="g", timestamp=T0 + 30)  # appends: two rows
        store.append(hist2d, tag="h2", timestamp=T0 + 10)
        store.append("running", tag="status", timestamp=T0 + 10)
        store.append(3.5, tag="level", timestamp=T0 + 10)

    await db.store(objects, fill)
    assert db.execute(f"SELECT count(*) FROM {objects} WHERE channel = 'h'") == [(1,)]
    source = await make(
        object=f"{objects}[channel]@{TZ}=value",
        object_time_series={"schema": f"{objects}[channel]@{TZ}=value", "suffix": ".ts"},
    )
    names = {c["name"]: c for c in await source.channels()}
    assert names["h"] == {"name": "h", "type": "histogram", "current": True}
    assert names["g"] == {"name": "g", "type": "graph", "current": True}
    assert names["h2"]["type"] == "histogram2d"
    assert names["status"]["type"] == "string"
    assert "type" not in names["level"]
    assert names["g.ts"] == {"name": "g.ts", "type": "graph"}
    reply = await source.data(query(["h", "g", "status", "level"]))
    assert reply["h"] == {"start": T0, "length": 100, "t": 20, "x": json.loads(str(hist2))}
    assert reply["g"]["x"] == json.loads(str(graph2)) and reply["g"]["t"] == 30
    assert reply["status"]["x"] == "running" and reply["level"]["x"] == 3.5
    # as of an earlier time: the object then
    earlier = await source.data(query(["g"], to=T0 + 20, length=10))
    assert earlier["g"]["x"] == json.loads(str(graph1)) and earlier["g"]["t"] == 0
    series = await source.data(query(["g.ts", "h.ts"]))
    assert series["g.ts"] == {
        "start": int(T0),
        "length": 100,
        "t": [10, 30],
        "x": [json.loads(str(graph1)), json.loads(str(graph2))],
    }
    last = await source.data(query(["g.ts"], resample=50, reducer="last"))
    assert last["g.ts"]["x"] == [json.loads(str(graph2)), None]
    first = await source.data(query(["g.ts"], resample=100, reducer="first"))
    assert first["g.ts"]["x"] == [json.loads(str(graph1))]
    assert await source.data(query(["g.ts"], resample=50, reducer="mean")) == {}


async def test_json_columns_and_tables_without_time(db: Database, make: Maker) -> None:
    current, series = db.table("cur"), db.table("js")
    db.execute(f"CREATE TABLE {current} (name TEXT PRIMARY KEY, doc JSONB, note TEXT)")
    db.execute(
        f"INSERT INTO {current} VALUES ('psu', '{{\"tree\": {{\"V\": 1}}}}', 'ok'), "
        f'(\'cam\', \'{{"mime": "image/png", "id": "x"}}\', \'hi\')'
    )
    db.execute(f"CREATE TABLE {series} (ts TIMESTAMPTZ, ch TEXT, doc JSONB)")
    for t, doc in (
        (10, "5"),
        (20, "[1, 2]"),
        (30, '{"counts": [1], "bins": {"min": 0, "max": 1}}'),
    ):
        db.execute(f"INSERT INTO {series} VALUES (to_timestamp(%s), 'j', %s)", T0 + t, doc)
    source = await make(
        object=f"{current}[name]=doc(default),note",
        object_time_series=f"{series}[ch]@ts=doc",
    )
    assert await source.channels() == [
        {"name": "cam", "type": "blob", "current": True},
        {"name": "cam:note", "type": "string", "current": True},
        {"name": "psu", "type": "tree", "current": True},
        {"name": "psu:note", "type": "string", "current": True},
        {"name": "j", "type": "histogram"},
    ]
    reply = await source.data(query(["psu", "cam:note", "j"]))
    assert reply["psu"] == {"start": T0, "length": 100, "t": 100, "x": {"tree": {"V": 1}}}
    assert reply["cam:note"]["x"] == "hi"
    assert reply["j"]["x"] == [5, [1, 2], {"counts": [1], "bins": {"min": 0, "max": 1}}]
    first = await source.data(query(["j"], resample=100, reducer="first"))
    assert first["j"]["x"] == [[1, 2]]  # the first object: 5 is not one


async def test_wide_table(db: Database, make: Maker) -> None:
    wide = db.table("wide")
    db.execute(
        f"CREATE TABLE {wide} (time DOUBLE PRECISION PRIMARY KEY, a REAL, b DOUBLE PRECISION, "
        "c TEXT, n INTEGER, d NUMERIC)"
    )
    special = {5: Decimal("NaN"), 7: Decimal("1e400"), 9: Decimal("-1e-400")}
    rows = [
        (T0 + k * 2.5, k / 8, -k / 4 if k % 3 else None, f"s{k}", k, special.get(k, Decimal(k) / 8))
        for k in range(40)
    ]
    db.conn.cursor().executemany(f"INSERT INTO {wide} VALUES (%s, %s, %s, %s, %s, %s)", rows)
    source = await make(time_series=[f"{wide}@time(unix)=a,b", {"schema": f"{wide}@time"}])
    channels = await source.channels()
    assert channels[:2] == [{"name": "a", "type": "numeric"}, {"name": "b", "type": "numeric"}]
    assert [c["name"] for c in channels[2:]] == ["a", "b", "c", "n", "d"]  # all columns
    q = query(["a", "b", "c", "n", "d"])
    reply = await source.data(q)
    for i, name in enumerate(["a", "b", "c", "n", "d"], start=1):
        assert reply[name] == expected(q, [(r[0], r[i]) for r in rows]), name
    assert reply["d"]["x"][5:10:2] == [None, None, 0.0]  # NaN, too big for a float, too small
    for reducer in ("mean", "last", "count", "median", "std"):
        q = query(["a", "b", "n", "d"], resample=7, reducer=reducer, envelope=2)
        reply = await source.data(q)
        for name, i in (("a", 1), ("b", 2), ("n", 4), ("d", 5)):
            assert_same(reply[name], expected(q, [(r[0], r[i]) for r in rows]), q)


class TaggedFormat(LongTableFormat_DateTime_PostgreSQL):
    """A user format: an extra column written by the insert hook."""

    schema_numeric = (
        '("timestamp" TIMESTAMP WITH TIME ZONE, channel VARCHAR(100), value DOUBLE PRECISION, '
        'source TEXT, PRIMARY KEY("timestamp",channel))'
    )

    def insert_numeric_data(self, cur: Any, timestamp: float, channel: str, value: float) -> None:
        cur.execute(
            f'INSERT INTO {self.table}("timestamp",channel,value,source) '
            "VALUES(TO_TIMESTAMP(%s),%s,%s,'script')",
            (timestamp, channel, value),
        )


async def test_custom_format_and_fields(db: Database, make: Maker) -> None:
    table = db.table("fmt")

    def fill(store: DataStore_PostgreSQL) -> None:
        store.append({"a": 1 / 3, "b": 2.0}, timestamp=T0 + 5)
        store.append(0.1, tag="a", timestamp=T0 + 6)

    await db.store(table, fill, TaggedFormat())
    source = await make(
        time_series={
            "schema": f"{table}[channel]@{TZ}=value(default),source",
            "tags": {"list": ["a"]},
        }
    )
    assert await source.channels() == [{"name": "a"}, {"name": "a:source"}]
    reply = await source.data(query(["a", "a:source", "b"]))  # b: not in tags.list
    assert reply.keys() == {"a", "a:source"}
    assert reply["a"]["x"] == [1 / 3, 0.1]  # DOUBLE PRECISION keeps every digit
    assert reply["a:source"]["x"] == ["script", "script"]


async def test_colon_rule_for_tags(db: Database, make: Maker) -> None:
    table = db.table("cal")
    db.execute(f"CREATE TABLE {table} (ts TIMESTAMPTZ, ch TEXT, raw REAL, cal REAL)")
    insert = f"INSERT INTO {table} VALUES (to_timestamp(%s), %s, %s, %s)"
    for ch, raw, cal in (("e", 1.0, 10.0), ("d:cal", 2.0, 20.0), ("p:q", 3.0, 30.0)):
        db.execute(insert, T0 + 1, ch, raw, cal)
    source = await make(time_series=f"{table}[ch]@ts=raw,cal")
    names = [c["name"] for c in await source.channels()]
    assert names == ["d:cal", "d:cal:cal", "e", "e:cal", "p:q", "p:q:cal"]
    reply = await source.data(query(["e", "e:cal", "d:cal", "d:cal:cal", "p:q", "p:q:cal"]))
    values = {name: r["x"] for name, r in reply.items()}
    assert values == {
        "e": [1.0],
        "e:cal": [10.0],
        "d:cal": [2.0],  # a known tag: read as a whole, not as field cal of tag d
        "d:cal:cal": [20.0],
        "p:q": [3.0],
        "p:q:cal": [30.0],
    }


# ---------------------------------------------------------------------------------------------
# reducers and bucket edges, against the reference computation

REDUCERS = ["first", "last", "mean", "median", "sum", "min", "max", "count", "std", "sem"]


def reference_points() -> dict[str, list[tuple[float, float]]]:
    """Grid of the queries below: to = T0 + 100, length 100; with resample 8 the buckets
    start at T0 - 4 (a partial first bucket) and edges fall at T0 - 4 + 8 m."""
    a = []
    for k in range(-40, 170):
        value = ((k * 5) % 11) / 8 - 0.5
        if k % 17 == 0:
            value = math.nan
        elif k % 23 == 0:
            value = math.inf if k > 0 else -math.inf
        a.append((T0 + k * 0.625, value))
    b = [
        (T0 - 4.125, 0.25),  # before the first bucket: the prior point
        (T0 - 4, 1.0),  # exactly the first edge
        (T0 + 4, 2.0),  # an inner edge
        (T0 + 36, -3.5),
        (T0 + 36.125, 4.0),
        (T0 + 99.875, 5.0),  # the last bucket
        (T0 + 100, 99.0),  # exactly `to`: out
    ]
    c = [(T0 - 50, 7.0), (T0 - 20, 8.0)]  # nothing inside the window
    n = [(T0 - 30, 6.0), (T0 + 50, math.nan), (T0 + 60, math.nan)]  # inside: no finite value
    return {"a": a, "b": b, "c": c, "n": n}


@pytest.fixture
async def reference_source(db: Database, make: Maker) -> tuple[PostgreSQLSource, dict[str, Any]]:
    table = db.table("ref")
    points = reference_points()

    def fill(store: DataStore_PostgreSQL) -> None:
        for channel, series in points.items():
            for t, v in series:
                store.append(v, tag=channel, timestamp=t)

    await db.store(table, fill)
    return await make(time_series=f"{table}[channel]@{TZ}=value"), points


@pytest.mark.parametrize("resample", [8, 10, 0])
async def test_resampling_matches_the_reference(
    reference_source: tuple[PostgreSQLSource, dict[str, Any]], resample: float
) -> None:
    source, points = reference_source
    checked = 0
    for reducer in REDUCERS:
        for envelope in (0, 1, 2):
            for prior_data in (0, 1, 2):
                q = query(
                    [*points, "absent"],
                    resample=resample,
                    reducer=reducer,
                    envelope=envelope,
                    prior_data=prior_data,
                )
                reply = await source.data(q)
                for channel, series in points.items():
                    assert_same(reply.get(channel), expected(q, series), q)
                    checked += channel in reply
                assert "absent" not in reply
    assert checked > 200


async def test_raw_window_and_prior(
    reference_source: tuple[PostgreSQLSource, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, points = reference_source
    for prior_data in (0, 1, 2):
        for to, length in ((T0 + 100, 100), (T0 + 36, 0.125), (T0 + 1.3, 7.7)):
            q = query([*points], to=to, length=length, prior_data=prior_data)
            reply = await source.data(q)
            for channel, series in points.items():
                assert reply.get(channel) == expected(q, series), (channel, q)
    q = query(["b"], prior_data=2)
    assert (await source.data(q))["b"]["t"][:2] == [-4, 4]  # the prior point, then the window
    # relative end (to <= 0) is resolved by parse_query against now
    q = parse_query(["b"], to=-(NOW - T0 - 100), length=100, now=NOW)
    assert (await source.data(q))["b"] == expected(query(["b"]), points["b"])
    # too many raw points: the client must resample
    with pytest.raises(QueryError, match=r"system\.max_points.*resample"):
        await source.data(query(["a", "b"], max_points=100))
    assert (await source.data(query(["b"], max_points=100)))["b"]["x"] == [2.0, -3.5, 4.0, 5.0]


async def test_text_values_in_a_numeric_context(db: Database, make: Maker) -> None:
    table = db.table("mixed")
    texts = ["1.5", "abc", '{"y": [1]}', "1e999", "NaN", " 2.25 ", "Infinity", "-0.5e1", "7."]
    texts += ["1e-310", "2e-324", "-1e999", "1_0", "0x10", ".5"]
    points = [(T0 + 1 + i, text) for i, text in enumerate(texts)]

    def fill(store: DataStore_PostgreSQL) -> None:
        for t, text in points:
            store.append(text, tag="m", timestamp=t)

    await db.store(table, fill)
    source = await make(time_series=f"{table}[channel]@{TZ}=value")
    raw = (await source.data(query(["m"])))["m"]["x"]
    assert raw == [
        *(1.5, "abc", {"y": [1]}, "1e999", "NaN", 2.25, "Infinity", -5.0, 7.0),
        *(1e-310, 0.0, "-1e999", "1_0", "0x10", 0.5),
    ]
    for reducer in REDUCERS:
        q = query(["m"], resample=3, reducer=reducer, envelope=1)
        assert_same((await source.data(q))["m"], expected(q, points, numeric=False), q)


# ---------------------------------------------------------------------------------------------
# time columns


async def test_time_column_types(db: Database, make: Maker) -> None:
    zone = "America/New_York"
    naive, utc, ints, nums = db.table("naive"), db.table("utc"), db.table("int"), db.table("num")
    db.execute(f"CREATE TABLE {naive} (ts TIMESTAMP, ch TEXT, v REAL)")
    db.execute(f"CREATE TABLE {utc} (ts TIMESTAMP, ch TEXT, v REAL)")
    db.execute(f"CREATE TABLE {ints} (t BIGINT, ch TEXT, v REAL)")
    db.execute(f"CREATE TABLE {nums} (t NUMERIC(16,3), ch TEXT, v REAL)")
    times = [T0 - 2, T0, T0 + 0.5, T0 + 49, T0 + 99, T0 + 100]
    for i, t in enumerate(times):
        local = datetime.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(zone)).replace(tzinfo=None)
        at_utc = datetime.datetime.fromtimestamp(t, datetime.UTC).replace(tzinfo=None)
        db.execute(f"INSERT INTO {naive} VALUES (%s, 'n', %s)", local, i)
        db.execute(f"INSERT INTO {utc} VALUES (%s, 'u', %s)", at_utc, i)
        if t == int(t):
            db.execute(f"INSERT INTO {ints} VALUES (%s, 'i', %s)", int(t), i)
        db.execute(f"INSERT INTO {nums} VALUES (%s, 'd', %s)", t, i)
    source = await make(
        time_zone=zone,
        time_series=[
            f"{naive}[ch]@ts(naive)=v",
            f"{utc}[ch]@ts=v",  # TIMESTAMP without a time type: UTC
            f"{ints}[ch]@t=v",
            f"{nums}[ch]@t(unix)=v",
        ],
    )
    q = query(["n", "u", "i", "d"], prior_data=2)
    reply = await source.data(q)
    all_points = [(t, float(i)) for i, t in enumerate(times)]
    for channel in ("n", "u", "d"):
        assert reply[channel] == expected(q, all_points), channel
    assert reply["i"] == expected(q, [p for p in all_points if p[0] == int(p[0])])
    q = query(["n", "u", "d"], resample=25, reducer="sum")
    reply = await source.data(q)
    for channel in ("n", "u", "d"):
        assert_same(reply[channel], expected(q, all_points), q)


def test_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert local_zone() == "Asia/Tokyo"
    monkeypatch.setenv("TZ", "No/Such_Zone")
    assert local_zone().startswith("UTC")  # today's offset, as a POSIX rule


# ---------------------------------------------------------------------------------------------
# views


async def test_views(db: Database, make: Maker) -> None:
    table = db.table("view")

    def fill(store: DataStore_PostgreSQL) -> None:
        for k in range(10):
            store.append(float(k), tag="v", timestamp=T0 + 10 * k)

    await db.store(table, fill)
    views = [
        {
            "name": "stats",
            "sql": f"SELECT count(*) AS n, sum(value) AS total FROM {table} WHERE "
            '"timestamp" >= to_timestamp(${FROM_UNIXTIME}) AND '
            "\"timestamp\" < '${TO_DATETIME_UTC}'::timestamptz",
        },
        {
            "name": "bounds",
            "sql": "SELECT ${FROM_UNIXTIME} AS f, ${TO_UNIXTIME} AS t, "
            "'${FROM_DATETIME}' AS d, '${TO_DATETIME_NAIVE}' AS n, 100 % 7 AS m",
        },
        {"name": "bad", "sql": "SELECT * FROM no_such_table_here"},
        {"name": "writer", "sql": f"DROP TABLE {table}"},
    ]
    source = await make(view=views, time_zone="UTC")
    assert {"name": "stats", "type": "table"} in await source.channels()
    reply = await source.data(query(["stats", "bounds"], to=T0 + 50, length=30))
    assert reply["stats"] == {
        "start": T0 + 20,
        "length": 30,
        "t": 30,
        "x": {"columns": ["n", "total"], "table": [[3, 9.0]]},
    }
    start = datetime.datetime.fromtimestamp(T0 + 20, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    end = datetime.datetime.fromtimestamp(T0 + 50, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert reply["bounds"]["x"]["table"] == [[int(T0 + 20), int(T0 + 50), start, end, 2]]
    # a broken view spoils only itself; its problem travels with the answer
    both = await source.data(query(["bad", "stats"]))
    assert set(both) == {"stats"}
    assert any(
        re.search(r"view 'bad'.*no_such_table_here", p) for p in getattr(both, "problems", [])
    )
    refused = await source.data(query(["writer"]))
    assert refused == {} and any("read-only" in p for p in getattr(refused, "problems", []))
    assert db.exists(table)
    # view "parameters" are numbers the server makes: nothing else reaches the SQL
    with pytest.raises(QueryError):
        await source.data(DataQuery(("bounds",), length=10, to=math.nan))
    with pytest.raises(QueryError):
        await source.data(query(["stats'; DROP TABLE x; --"]))
    assert (await source.data(query(["stats"])))["stats"]["x"]["table"] == [[10, 45.0]]


# ---------------------------------------------------------------------------------------------
# bad input, missing tables, configuration


async def test_sql_injection_through_channel_names(db: Database, make: Maker) -> None:
    table = db.table("inj")

    def fill(store: DataStore_PostgreSQL) -> None:
        store.append(1.0, tag="a", timestamp=T0 + 1)

    await db.store(table, fill)
    source = await make(time_series=f"{table}[channel]@{TZ}=value")
    for name in (
        f"a'); DROP TABLE {table}; --",
        'a" OR 1=1 --',
        "a b",
        "a%s",
        "a\x00",
        "x" * 500,
    ):
        for kw in ({}, {"resample": 10, "reducer": "mean"}, {"prior_data": 2}):
            with pytest.raises(QueryError, match="bad channel name"):
                await source.data(query(["a", name], **kw))
    assert db.exists(table)
    assert (await source.data(query(["a"])))["a"]["x"] == [1.0]


async def test_missing_table_and_rescans(db: Database, make: Maker) -> None:
    table = db.table("late")
    source = await make(time_series=f"{table}[channel]@{TZ}=value")
    assert await source.channels() == []
    assert await source.data(query(["a"])) == {}

    def fill(store: DataStore_PostgreSQL) -> None:
        store.append(1.0, tag="a", timestamp=T0 + 1)

    await db.store(table, fill)
    assert await source.channels() == [{"name": "a"}]  # a missing table is looked up again

    def more(store: DataStore_PostgreSQL) -> None:
        store.append(2.0, tag="b", timestamp=T0 + 2)

    await db.store(table, more)
    assert await source.channels() == [{"name": "a"}]  # cached
    assert await source.channels(force_rescan=True) == [{"name": "a"}, {"name": "b"}]
    db.execute(f"DROP TABLE {table}")
    assert await source.data(query(["a"])) == {}  # dropped under us: no data, no error
    assert await source.channels(force_rescan=True) == []


async def test_tags_sql_and_suffix(db: Database, make: Maker) -> None:
    table = db.table("tags")

    def fill(store: DataStore_PostgreSQL) -> None:
        store.append({"a": 1.0, "b": 2.0, "c": 3.0}, timestamp=T0 + 1)

    await db.store(table, fill)
    source = await make(
        time_series=[
            {
                "schema": f"{table}[channel]@{TZ}=value",
                "tags": {"sql": f"SELECT DISTINCT channel FROM {table} WHERE channel <> 'c'"},
                "suffix": ".raw",
            },
        ]
    )
    assert await source.channels() == [{"name": "a.raw"}, {"name": "b.raw"}]
    reply = await source.data(query(["a.raw", "c.raw", "a", ".raw"]))
    assert reply.keys() == {"a.raw", "c.raw"}
    assert reply["a.raw"]["x"] == [1.0]


async def test_unreachable_servers(pg_url: str, tmp_path: Path) -> None:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg_url)
    host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
    user = params.get("user", "postgres")
    no_db = f"postgresql://{user}:s3cret@{host}:{port}/no_such_database_here"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    no_port = f"postgresql://{user}:s3cret@127.0.0.1:{free}/test"
    for url, words in ((no_db, "no_such_database_here"), (no_port, str(free))):
        source = PostgreSQLSource({"url": url, "time_series": "t[c]@t=v"}, project_dir=tmp_path)
        assert "s3cret" not in source.label
        with trio.fail_after(20), pytest.raises(SourceUnavailable) as info:
            await source.open()
        assert words in str(info.value) and "cannot connect" in str(info.value)
        assert "s3cret" not in str(info.value)
        with pytest.raises(SourceUnavailable):
            await source.channels()
        await source.aclose()


def test_configuration_errors(pg_url: str, tmp_path: Path) -> None:
    good = {"url": pg_url, "time_series": "t[c]@ts=v"}
    for bad, words in (
        ({"url": "mysql://u:s3cret@h/db"}, "postgresql://"),
        ({"url": None}, "postgresql://"),
        ({"connections": 0}, "connections"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_series": "t[c]=v"}, "time column"),
        ({"view": {"name": "a b", "sql": "SELECT 1"}}, "view"),
    ):
        with pytest.raises(SourceConfigError, match=words) as info:
            PostgreSQLSource({**good, **bad}, project_dir=tmp_path)
        assert "s3cret" not in str(info.value)
    for scheme in ("postgresql", "postgres"):
        source = build_source(
            {"url": pg_url.replace("postgresql", scheme, 1), "parameters": good},
            project_dir=tmp_path,
        )
        assert isinstance(source, PostgreSQLSource) and source.kind == "PostgreSQL"


# ---------------------------------------------------------------------------------------------
# cancellation and lost connections


async def _active(db: Database, app: str) -> list[int]:
    rows = db.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
        "AND query LIKE %s",
        app,
        "%pg_sleep%",
    )
    return [row[0] for row in rows]


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while True:  # the server's state: nothing to wait on but polling
            if await check():
                return
            await trio.sleep(0.02)


async def test_cancelled_query_stops_and_the_pool_stays_usable(
    pg_url: str, db: Database, make: Maker
) -> None:
    app = f"{db.prefix}_cancel"
    source = await make(
        url=with_app(pg_url, app),
        connections=2,
        view=[{"name": "slow", "sql": "SELECT pg_sleep(30)"}, {"name": "one", "sql": "SELECT 1"}],
    )
    for _ in range(3):  # more times than there are connections
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def slow(scope: trio.CancelScope = scope) -> None:
                with scope:
                    await source.data(query(["slow"]))

            nursery.start_soon(slow)
            await _wait_for(lambda: _running(db, app))
            cancelled_at = trio.current_time()
            scope.cancel()
        assert trio.current_time() - cancelled_at < 5
        assert scope.cancelled_caught
        await _wait_for(lambda: _stopped(db, app))  # the server stopped the statement

    async def one(results: list[Any]) -> None:
        results.append(await source.data(query(["one"])))

    results: list[Any] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(one, results)
    assert [r["one"]["x"]["table"] for r in results] == [[[1]]] * 8
    connections = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", app
    )
    assert connections[0][0] <= 2


async def _running(db: Database, app: str) -> bool:
    return len(await _active(db, app)) > 0


async def _stopped(db: Database, app: str) -> bool:
    return len(await _active(db, app)) == 0


async def test_lost_connection_marks_the_source_down(
    pg_url: str, db: Database, make: Maker
) -> None:
    app = f"{db.prefix}_lost"
    source = await make(
        url=with_app(pg_url, app),
        view=[{"name": "slow", "sql": "SELECT pg_sleep(30)"}, {"name": "one", "sql": "SELECT 1"}],
    )
    errors: list[BaseException] = []

    async def slow() -> None:
        try:
            await source.data(query(["slow"]))
        except SourceUnavailable as exc:
            errors.append(exc)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            await _wait_for(lambda: _running(db, app))
            for pid in await _active(db, app):
                db.execute("SELECT pg_terminate_backend(%s)", pid)
    assert len(errors) == 1 and "connection lost" in str(errors[0])
    await source.open()  # what the server does for a source that went down
    assert (await source.data(query(["one"])))["one"]["x"]["table"] == [[1]]


# ---------------------------------------------------------------------------------------------
# big tables: every statement reads an indexed range


class Recording:
    """A pooled connection that records the statements run on it."""

    def __init__(self, conn: Any, log: list[tuple[Any, Any]]) -> None:
        self._conn = conn
        self._log = log

    def execute(self, sql: Any, params: Any = None) -> Any:
        self._log.append((sql, params))
        return self._conn.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def test_queries_use_the_indexes(
    db: Database, make: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = db.table("big")

    def fill(store: DataStore_PostgreSQL) -> None:
        store.append(0.0, tag="c00", timestamp=T0 - 100_000)

    await db.store(table, fill)  # the stores' table: primary key and (channel, time) index
    db.execute(
        f"INSERT INTO {table} SELECT to_timestamp({T0} + k), 'c' || lpad(c::text, 2, '0'), "
        "k % 7 FROM generate_series(-10000, 10000) AS k, generate_series(0, 19) AS c"
    )
    db.execute(f"ANALYZE {table}")
    log: list[tuple[Any, Any]] = []
    take = pgpool.Pool.take

    def recording_take(pool: Any) -> Any:
        conn = take(pool)
        return conn if isinstance(conn, Recording) else Recording(conn, log)

    monkeypatch.setattr(pgpool.Pool, "take", recording_take)
    source = await make(time_series=f"{table}[channel]@{TZ}=value")
    assert len(await source.channels()) == 20
    for kw in (
        {},
        {"prior_data": 2},
        {"resample": 10, "reducer": "mean"},
        {"resample": 10, "reducer": "last", "prior_data": 1},
        {"resample": 0, "reducer": "median"},
    ):
        reply = await source.data(query(["c03", "c17"], **kw))
        assert reply.keys() == {"c03", "c17"}
    statements = [(sql, params) for sql, params in log if table in str(sql)]
    assert len(statements) == 8  # channels; raw; raw + prior; mean; last; widths + median
    for sql, params in statements:
        text = sql.decode() if isinstance(sql, bytes) else sql
        plan = db.conn.execute(
            ("EXPLAIN " + text).encode() if params is None else "EXPLAIN " + text, params
        )
        lines = "\n".join(row[0] for row in plan.fetchall())
        assert "Seq Scan" not in lines, (text, lines)
