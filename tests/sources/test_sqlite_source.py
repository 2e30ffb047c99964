"""The SQLite data source: what DataStore_SQLite (and hand-made tables) hold, read back; every
reducer and bucket edge case against a reference computed here; bad input; cancellation."""

from __future__ import annotations

import functools
import itertools
import math
import random
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from slowdash_stores import (
    DataStore_SQLite,
    Graph,
    Histogram,
    Histogram2d,
    LongTableFormat,
    Table,
    Tree,
)
from slowdash_trio._sources import (
    DataQuery,
    QueryError,
    SourceConfigError,
    SourceUnavailable,
    parse_query,
)
from slowdash_trio._sources._sqlite import SQLiteSource
from slowdash_trio._sources._sqlpool import SQLitePool

T0 = 1_700_000_000
LONG = "data[channel]@timestamp(unix)=value"
R = TypeVar("R")


def source(project: Path, **params: Any) -> SQLiteSource:
    params.setdefault("url", "sqlite:///data")
    return SQLiteSource(params, project_dir=project)


def store(project: Path, table: str = "data", **options: Any) -> DataStore_SQLite:
    options.setdefault("tiers", ())  # the raw SQL paths; tiers have tests of their own
    return DataStore_SQLite(f"sqlite:///{project}/data", table, **options)


async def off_trio(fn: Callable[..., R], *args: Any) -> R:
    return await trio.to_thread.run_sync(functools.partial(fn, *args))


def query(channels: str, length: float = 100, to: float = T0 + 50, **params: Any) -> DataQuery:
    return parse_query(channels.split(","), length=length, to=to, now=T0, **params)


async def get(src: SQLiteSource, channels: str, **params: Any) -> dict[str, Any]:
    return await src.data(query(channels, **params))


def names(channels: list[dict[str, Any]]) -> dict[str, Any]:
    return {c["name"]: (c.get("type"), c.get("current", False)) for c in channels}


def hand_made(project: Path, sql: str, rows: list[tuple[Any, ...]] | None = None) -> Path:
    """``data.db`` written with the sqlite3 module: ``sql`` creates, rows go into the first
    table it names."""
    path = project / "data.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(sql)
        if rows:
            table = sql.split("(")[0].split()[-1]
            marks = ",".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES({marks})", rows)
        conn.commit()
    return path


# ----------------------------------------------------------------------------------------------
# the reference computation (reference §4.7)


def finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def ref_reduce(values: list[Any], reducer: str) -> Any:
    numbers = [float(v) for v in values if finite(v)]
    n = len(numbers)
    if reducer == "count":
        return n
    if n == 0:
        return None
    ordered = sorted(numbers)
    mean = math.fsum(numbers) / n
    square = math.fsum((v - mean) ** 2 for v in numbers)
    if reducer == "first":
        return numbers[0]
    if reducer == "last":
        return numbers[-1]
    if reducer == "mean":
        return mean
    if reducer == "median":
        return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    if reducer == "sum":
        return math.fsum(numbers)
    if reducer == "min":
        return ordered[0]
    if reducer == "max":
        return ordered[-1]
    if reducer == "std":
        return math.sqrt(square / n)
    assert reducer == "sem"
    return math.sqrt(square / (n - 1)) / math.sqrt(n) if n > 1 else None


CANONICAL = {"sd": "std", "stdev": "std", "rms": "std", "sigma": "std", "err": "sem"}


def ref_interval(points: list[tuple[float, Any]], length: float, to: float) -> float:
    """The automatic width: the median spacing of the times in the window."""
    times = sorted(t for t, _ in points if to - length <= t < to)
    gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    return gaps[len(gaps) // 2] if gaps else length / 100


def reference(
    points: list[tuple[float, Any]],
    *,
    length: float,
    to: float,
    interval: float,
    reducer: str,
    envelope: int = 0,
    prior_data: int = 0,
) -> dict[str, Any] | None:
    reducer = CANONICAL.get(reducer, reducer)
    if interval == 0:
        interval = ref_interval(points, length, to)
    nbins = math.floor(length / interval)
    start = to - nbins * interval
    if nbins * interval != length:
        nbins += 1
        start -= interval
    buckets: list[list[Any]] = [[] for _ in range(nbins)]
    before = []
    for t, v in sorted(points, key=lambda p: p[0]):
        k = math.floor((t - start) / interval)
        if 0 <= k < nbins:
            buckets[k].append(v)
        elif k < 0:
            before.append((t, v))
    reply: dict[str, Any] | None = None
    if any(finite(v) for bucket in buckets for v in bucket):
        reply = {
            "start": start,
            "length": nbins * interval,
            "t": [(k + 0.5) * interval for k in range(nbins)],
            "x": [ref_reduce(b, reducer) for b in buckets],
        }
        if envelope >= 1 and reducer in ("first", "last", "mean", "median"):
            reply["x_min"] = [ref_reduce(b, "min") for b in buckets]
            reply["x_max"] = [ref_reduce(b, "max") for b in buckets]
        if envelope >= 2 and reducer != "count":
            reply["x_n"] = [ref_reduce(b, "count") for b in buckets]
        if envelope >= 2 and reducer == "mean":
            reply["x_err"] = [ref_reduce(b, "sem") for b in buckets]
    wants = prior_data == 2 or (
        prior_data == 1 and (reply is None or all(x is None for x in reply["x"]))
    )
    if wants and envelope == 0 and before:
        if reply is None:
            reply = {
                "start": start,
                "length": nbins * interval,
                "t": [(k + 0.5) * interval for k in range(nbins)],
                "x": [ref_reduce([], reducer) for _ in range(nbins)],
            }
        t, v = before[-1]
        reply["t"] = [round(t - start, 3), *reply["t"]]
        reply["x"] = [v, *reply["x"]]
    return reply


def ref_raw(
    points: list[tuple[float, Any]], *, length: float, to: float, prior_data: int = 0
) -> dict[str, Any] | None:
    start = int(to - length)
    inside = [(t, v) for t, v in sorted(points, key=lambda p: p[0]) if to - length <= t < to]
    before = [(t, v) for t, v in sorted(points, key=lambda p: p[0]) if t < to - length]
    if prior_data == 2 or (prior_data == 1 and not inside):
        inside = before[-1:] + inside
    if not inside:
        return None
    return {
        "start": start,
        "length": int(length),
        "t": [round(t - start, 3) for t, _ in inside],
        "x": [v for _, v in inside],
    }


def assert_same(got: dict[str, Any] | None, want: dict[str, Any] | None, *, exact: bool) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got.keys() == want.keys()
    assert got["start"] == want["start"]
    assert got["length"] == want["length"]
    assert got["t"] == want["t"]
    for key in want:
        if key in ("start", "length", "t"):
            continue
        assert len(got[key]) == len(want[key]), key
        for a, b in zip(got[key], want[key], strict=True):
            if b is None or (not exact and isinstance(b, float)):
                assert a == (None if b is None else pytest.approx(b, rel=1e-9)), key
            else:
                assert a == b and type(a) is type(b), key


# ----------------------------------------------------------------------------------------------
# one data set for the reducers


Points = dict[str, list[tuple[float, Any]]]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Points]:
    """Channel ``a``: dyadic values at irregular times, some exactly on bucket edges, none in
    [T0+1500, T0+2000); ``r``: random floats; ``m``: dyadic values with infinities and
    histograms (JSON text) among them, in the same numeric table."""
    project = tmp_path_factory.mktemp("sqlite_dataset")
    rng = random.Random(11)
    points: Points = {"a": [], "r": [], "m": []}
    moments = sorted(
        {*rng.sample(range(0, 1500), 90), *rng.sample(range(2000, 3000), 60), 1000, 1100, 2500}
    )
    hist = Histogram(2, 0, 2)
    hist.fill(0.5)
    with store(project) as out:
        for i, dt in enumerate(moments):
            t = T0 + dt + (0.25 if i % 3 == 0 else 0)
            value = rng.randint(-400, 400) / 8
            out.append(value, tag="a", timestamp=t)
            points["a"].append((t, value))
        for i in range(0, 3000, 7):
            value = rng.gauss(10, 3)
            out.append(value, tag="r", timestamp=T0 + i + 0.5)
            points["r"].append((T0 + i + 0.5, value))
        for i in range(0, 3000, 13):
            m: Any = rng.choice([i / 8, -i / 8, math.inf, -math.inf, hist])
            out.append(m, tag="m", timestamp=T0 + i)
            points["m"].append((T0 + i, hist.to_json() if m is hist else m))
    return project, points


REDUCERS = [
    "first",
    "last",
    "mean",
    "median",
    "sum",
    "min",
    "max",
    "count",
    "std",
    "sd",
    "stdev",
    "rms",
    "sigma",
    "sem",
    "err",
]
CASES: list[dict[str, Any]] = [
    {"length": 3000, "to": T0 + 3000, "resample": 100},  # rows exactly on bucket edges
    {"length": 2950, "to": T0 + 3000, "resample": 100},  # partial first bucket
    {"length": 1000, "to": T0 + 2100, "resample": 250.0},  # empty buckets in the gap
    {"length": 3000, "to": T0 + 3000.5, "resample": 37.5},
    {"length": 400, "to": T0 + 1900, "resample": 100},  # nothing in the window for `a`
]


@pytest.mark.parametrize("reducer", REDUCERS)
async def test_every_reducer_against_the_reference(
    dataset: tuple[Path, Points], reducer: str
) -> None:
    project, points = dataset
    src = source(project, time_series=LONG)
    await src.open()
    exact = CANONICAL.get(reducer, reducer) not in ("std", "sem")
    answered = 0
    for case in CASES:
        reply = await get(src, "a,r,m", reducer=reducer, **case)
        for name, pts in points.items():
            want = reference(pts, interval=case["resample"], reducer=reducer, **_window(case))
            assert_same(reply.get(name), want, exact=exact and name != "r")
            answered += want is not None
    assert answered == len(CASES) * 3 - 1


def _window(case: dict[str, Any]) -> dict[str, Any]:
    return {"length": case["length"], "to": case["to"]}


@pytest.mark.parametrize("reducer", ["first", "last", "mean", "median", "sum", "count", "std"])
@pytest.mark.parametrize("envelope", [1, 2])
async def test_envelopes_against_the_reference(
    dataset: tuple[Path, Points], reducer: str, envelope: int
) -> None:
    project, points = dataset
    src = source(project, time_series=LONG)
    await src.open()
    for case in CASES[:3]:
        reply = await get(src, "a,m", reducer=reducer, envelope=envelope, **case)
        for name in ("a", "m"):
            want = reference(
                points[name],
                interval=case["resample"],
                reducer=reducer,
                envelope=envelope,
                **_window(case),
            )
            # x_err is a sample standard error: not exact in floating point
            assert_same(reply.get(name), want, exact=reducer not in ("std", "mean"))


async def test_automatic_width(dataset: tuple[Path, Points]) -> None:
    project, points = dataset
    src = source(project, time_series=LONG)
    await src.open()
    for length, to in [(3000, T0 + 3000), (700, T0 + 1400)]:
        reply = await get(src, "a,r", length=length, to=to, resample=0, reducer="mean")
        for name in ("a", "r"):
            want = reference(points[name], length=length, to=to, interval=0, reducer="mean")
            assert_same(reply[name], want, exact=name == "a")
        assert reply["a"]["t"] != reply["r"]["t"]  # each channel its own spacing


async def test_to_relative_to_now(dataset: tuple[Path, Points]) -> None:
    project, points = dataset
    src = source(project, time_series=LONG)
    await src.open()
    relative = parse_query(["a"], length=1000, to=-900, resample=100, reducer="max", now=T0 + 3900)
    assert relative.to == T0 + 3000
    want = reference(points["a"], length=1000, to=T0 + 3000, interval=100, reducer="max")
    assert_same((await src.data(relative))["a"], want, exact=True)
    raw = parse_query(["a"], length=1000, to=-900, now=T0 + 3900)
    assert (await src.data(raw))["a"] == ref_raw(points["a"], length=1000, to=T0 + 3000)


async def test_raw_windows_and_prior_points(dataset: tuple[Path, Points]) -> None:
    project, points = dataset
    src = source(project, time_series=LONG)
    await src.open()
    for length, to in [(100, T0 + 150.5), (3000, T0 + 3000), (400, T0 + 1900), (5, T0 - 1)]:
        for prior_data in (0, 1, 2):
            reply = await get(src, "a,m", length=length, to=to, prior_data=prior_data)
            for name in ("a", "m"):
                want = ref_raw(points[name], length=length, to=to, prior_data=prior_data)
                assert reply.get(name) == want, (name, length, to, prior_data)
    # the gap: nothing inside, the prior point alone (with a negative time)
    gap = await get(src, "a", length=400, to=T0 + 1900, prior_data=1)
    assert len(gap["a"]["t"]) == 1 and gap["a"]["t"][0] < 0


@pytest.mark.parametrize("prior_data", [1, 2])
@pytest.mark.parametrize("reducer", ["mean", "last", "count"])
async def test_resampled_prior_points(
    dataset: tuple[Path, Points], prior_data: int, reducer: str
) -> None:
    project, points = dataset
    src = source(project, time_series=LONG)
    await src.open()
    prior_points = 0
    for case in CASES:
        reply = await get(src, "a", reducer=reducer, prior_data=prior_data, **case)
        want = reference(
            points["a"],
            interval=case["resample"],
            reducer=reducer,
            prior_data=prior_data,
            **_window(case),
        )
        assert_same(reply.get("a"), want, exact=True)
        if want is not None and len(want["t"]) > round(want["length"] / case["resample"]):
            assert reply["a"]["t"][0] < 0  # a prior point: before the first bucket
            prior_points += 1
    assert prior_points >= (2 if prior_data == 2 else 1)
    with_envelope = await get(src, "a", reducer=reducer, prior_data=2, envelope=1, **CASES[1])
    assert len(with_envelope["a"]["t"]) == len(with_envelope["a"]["x"]) == 30  # no prior


async def test_rows_just_before_the_first_bucket_stay_out(tmp_path: Path) -> None:
    hand_made(
        tmp_path,
        "CREATE TABLE data(timestamp REAL, channel TEXT, value REAL)",
        [(T0, "a", 1.0), (T0 + 100, "a", 2.0), (T0 + 3000, "a", 3.0)],
    )
    src = source(tmp_path, time_series=LONG)
    await src.open()
    to = T0 + 3600 + 1e-6  # the first bucket starts a microsecond after the first row
    for reducer, expected in [("first", 2.0), ("last", 3.0), ("mean", 2.5), ("count", 2)]:
        reply = await get(src, "a", length=3600, to=to, resample=3600, reducer=reducer)
        assert reply["a"]["x"] == [expected], reducer


# ----------------------------------------------------------------------------------------------
# what the store writes, read back


async def test_values_written_by_the_store(tmp_path: Path) -> None:
    hist = Histogram(2, 0, 2)
    hist.fill(0.5)
    hist2 = Histogram2d(2, 0, 2, 2, 0, 2)
    hist2.fill(0.5, 1.5)
    graph = Graph(["x", "y"])
    graph.add_point(1, 2)
    table = Table(["a", "b"])
    table.add_row([1, "x"])
    tree = Tree()
    tree.set("run/id", 7)

    def fill() -> None:
        with store(tmp_path) as out:
            for i in range(5):
                out.append(i / 4, tag="a", timestamp=T0 + i)
            out.append({"x": 2, "y": 3.5}, tag="d", timestamp=T0 + 1)
            out.append({"free": 1.0}, timestamp=T0 + 2)  # no tag: the field is the channel
            with out.another("text_data") as text:
                text.append("on", tag="state", timestamp=T0 + 1)
                text.append({"mode": "auto", "level": "3"}, tag="ctl", timestamp=T0 + 2)
            with out.another("objts") as objs:
                for i, obj in enumerate([hist, hist2, graph, table, tree]):
                    objs.append(obj, tag=f"o{i}", timestamp=T0 + 10 + i)
                objs.append(hist, tag="o0", timestamp=T0 + 20)
            with out.another("current") as current:
                for i in range(3):
                    hist.fill(1.5)
                    current.update(hist, tag="h", timestamp=T0 + 30 + i)
                    current.append(graph, tag="g", timestamp=T0 + 30 + i)

    await off_trio(fill)
    src = source(
        tmp_path,
        time_series=[LONG, "text_data[channel]@timestamp(unix)=value"],
        object_time_series="objts[channel]@timestamp(unix)=value",
        object="current[channel]=value",
    )
    await src.open()
    assert names(await src.channels()) == {
        "a": (None, False),  # long time series carry no type
        "d:x": (None, False),
        "d:y": (None, False),
        "free": (None, False),
        "state": (None, False),
        "ctl:mode": (None, False),
        "ctl:level": (None, False),
        "o0": ("histogram", False),
        "o1": ("histogram2d", False),
        "o2": ("graph", False),
        "o3": ("table", False),
        "o4": ("tree", False),
        "h": ("histogram", True),
        "g": ("graph", True),
    }
    reply = await get(src, "a,d:x,d:y,free,state,ctl:mode,ctl:level,o0,o4,h,g,nothing")
    assert reply["a"] == {
        "start": T0 - 50,
        "length": 100,
        "t": [50.0, 51.0, 52.0, 53.0, 54.0],
        "x": [0.0, 0.25, 0.5, 0.75, 1.0],
    }
    assert reply["d:x"]["x"] == [2.0] and reply["d:y"]["x"] == [3.5]  # TAG:FIELD as tags
    assert reply["free"]["x"] == [1.0]
    assert reply["state"] == {"start": T0 - 50, "length": 100, "t": [51.0], "x": ["on"]}
    assert reply["ctl:mode"]["x"] == ["auto"] and reply["ctl:level"]["x"] == ["3"]
    assert reply["o0"]["t"] == [60.0, 70.0]
    assert reply["o0"]["x"][0] == {"bins": {"min": 0, "max": 2}, "counts": [1, 0]}
    assert reply["o4"]["x"] == [tree.to_json()] and "tree" in tree.to_json()
    # objects: the latest one, at a time relative to start
    assert reply["h"]["x"]["counts"] == [1, 3] and reply["h"]["t"] == reply["h"]["length"]
    assert reply["h"]["start"] == T0 - 50
    assert reply["g"]["x"] == graph.to_json()
    assert "nothing" not in reply
    # resampled object series: the last object of each bucket; numeric reducers skip them
    last = await get(src, "o0,o2", length=20, to=T0 + 21, resample=10, reducer="last")
    assert last["o0"]["x"] == reply["o0"]["x"]  # one object in each bucket
    assert last["o2"]["x"] == [None, graph.to_json()]
    assert await get(src, "o0", length=20, to=T0 + 21, resample=10, reducer="mean") == {}


async def test_update_keeps_only_the_latest(tmp_path: Path) -> None:
    def fill() -> None:
        with store(tmp_path) as out:
            for i in range(3):
                out.append(float(i), tag="appended", timestamp=T0 + i)
                out.update(float(i), tag="updated", timestamp=T0 + i)

    await off_trio(fill)
    src = source(tmp_path, time_series=LONG)
    await src.open()
    reply = await get(src, "appended,updated")
    assert reply["appended"]["x"] == [0.0, 1.0, 2.0]
    assert reply["updated"] == {"start": T0 - 50, "length": 100, "t": [52.0], "x": [2.0]}


class QuickTourTestDataFormat(LongTableFormat):
    """The seed document's custom format: an extra datetime column, integer timestamps."""

    schema_numeric = (
        "(datetime DATETIME, timestamp INTEGER, channel STRING, value REAL, "
        "PRIMARY KEY(timestamp, channel))"
    )
    schema_text = schema_numeric

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


async def test_custom_table_format(tmp_path: Path) -> None:
    before = time.time()

    def fill() -> None:
        with store(tmp_path, "testdata", table_format=QuickTourTestDataFormat()) as out:
            out.append({"ch00": 1.25, "ch01": 2.5}, timestamp=T0 + 0.7)
            out.append("on", tag="state", timestamp=T0)
            out.update(3.5, tag="ch00", timestamp=T0 + 2)

    await off_trio(fill)
    src = source(
        tmp_path,
        time_series=[
            "testdata[channel]@timestamp(unix)=value",
            {"schema": "testdata[channel]@datetime(unspecified utc)=value", "suffix": ".w"},
        ],
    )
    await src.open()
    assert set(names(await src.channels())) == {
        "ch00",
        "ch01",
        "state",
        "ch00.w",
        "ch01.w",
        "state.w",
    }
    reply = await get(src, "ch00,ch01,state")
    assert reply["ch00"]["t"] == [52.0] and reply["ch00"]["x"] == [3.5]
    assert reply["ch01"]["t"] == [50.0] and reply["ch01"]["x"] == [2.5]  # integer seconds
    assert reply["state"]["x"] == ["on"]
    # the same rows by their (text, UTC) insertion time
    now = parse_query(["ch01.w"], length=600, to=0, now=time.time() + 300)
    by_wall_clock = (await src.data(now))["ch01.w"]
    assert by_wall_clock["x"] == [2.5]
    assert int(before) - 1 <= by_wall_clock["start"] + by_wall_clock["t"][0] <= time.time() + 1


async def test_wide_tables(tmp_path: Path) -> None:
    rows = [(T0 + i, i / 2, 10.0 * i, "ok" if i % 2 else None) for i in range(6)]
    hand_made(tmp_path, "CREATE TABLE run(t REAL, a REAL, b REAL, note TEXT)", rows)
    src = source(
        tmp_path,
        time_series=[
            {"schema": "run@t(unix)=a,b", "suffix": ".w"},
            {"schema": "run@t"},  # every column; the time type from the first row
        ],
    )
    await src.open()
    assert names(await src.channels()) == {
        "a.w": ("numeric", False),
        "b.w": ("numeric", False),
        "a": ("numeric", False),
        "b": ("numeric", False),
        "note": ("string", False),
    }
    reply = await get(src, "a.w,b,note,note.w,t,a:b")
    assert reply["a.w"]["x"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert reply["b"]["t"] == [50.0, 51.0, 52.0, 53.0, 54.0, 55.0]
    assert reply["note"] == {
        "start": T0 - 50,
        "length": 100,
        "t": [51.0, 53.0, 55.0],
        "x": ["ok"] * 3,
    }
    assert set(reply) == {"a.w", "b", "note"}  # not a field; the time column is no channel
    mean = await get(src, "b", length=6, to=T0 + 6, resample=2, reducer="mean")
    assert mean["b"]["x"] == [5.0, 25.0, 45.0]


async def test_tag_with_several_fields_and_tags_holding_colons(tmp_path: Path) -> None:
    rows = [(T0, "v0", 1.0, 1.5), (T0, "d:x", 2.0, 2.5), (T0 + 1, "v0", 3.0, 3.5)]
    hand_made(tmp_path, "CREATE TABLE cal(ts REAL, channel TEXT, raw REAL, cal REAL)", rows)
    src = source(tmp_path, time_series="cal[channel]@ts(unix)=raw(default),cal")
    await src.open()
    assert set(names(await src.channels())) == {"v0", "v0:cal", "d:x", "d:x:cal"}
    reply = await get(src, "v0,v0:cal,d:x,d:x:cal,d,v0:nope")
    assert reply["v0"]["x"] == [1.0, 3.0]
    assert reply["v0:cal"]["x"] == [1.5, 3.5]
    assert reply["d:x"]["x"] == [2.0]  # a tag value holding ':' is a channel of its own
    assert reply["d:x:cal"]["x"] == [2.5]
    assert set(reply) == {"v0", "v0:cal", "d:x", "d:x:cal"}


async def test_a_long_schema_without_fields_reads_every_column(tmp_path: Path) -> None:
    rows = [(T0, "a", 1.0, 10.0), (T0 + 1, "a", 2.0, 20.0)]
    hand_made(tmp_path, "CREATE TABLE data(timestamp REAL, channel TEXT, value REAL, x REAL)", rows)
    src = source(tmp_path, time_series="data[channel]@timestamp(unix)")
    await src.open()
    assert set(names(await src.channels())) == {"a", "a:x"}
    reply = await get(src, "a,a:x,a:timestamp,a:channel")
    assert reply["a"]["x"] == [1.0, 2.0]  # the first value column is the default
    assert reply["a:x"]["x"] == [10.0, 20.0]
    assert set(reply) == {"a", "a:x"}


async def test_suffix_tags_list_and_tags_sql(tmp_path: Path) -> None:
    def fill() -> None:
        with store(tmp_path) as out:
            for name in ("a", "b", "c"):
                out.append(1.0, tag=name, timestamp=T0)

    await off_trio(fill)
    src = source(
        tmp_path,
        time_series=[
            {"schema": LONG, "tags": {"list": ["b", "zz"]}, "suffix": ":ist"},
            {"schema": LONG, "tags": {"sql": "SELECT 'c' UNION SELECT 'a'"}},
        ],
    )
    await src.open()
    assert list(names(await src.channels())) == ["b:ist", "zz:ist", "a", "c"]
    reply = await get(src, "b:ist,a,c,a:ist")
    assert reply["b:ist"]["x"] == [1.0]
    assert reply["a"]["x"] == [1.0] and reply["c"]["x"] == [1.0]
    assert reply["a:ist"]["x"] == [1.0]  # the list names channels; data is answered for all


async def test_iso_text_times(tmp_path: Path) -> None:
    rows = [
        ("2023-11-14 22:13:20+00:00", "a", 1.0),  # T0
        ("2023-11-14T23:13:21+01:00", "a", 2.0),  # T0 + 1, another offset
        ("2023-11-14 22:13:22.500Z", "a", 3.0),
    ]
    hand_made(tmp_path, "CREATE TABLE iso(time TEXT, channel TEXT, value REAL)", rows)
    for schema in ("iso[channel]@time(with time zone)=value", "iso[channel]@time=value"):
        src = source(tmp_path, time_series=schema)
        await src.open()
        reply = await get(src, "a")
        assert reply["a"]["t"] == [50.0, 51.0, 52.5], schema
        mean = await get(src, "a", length=4, to=T0 + 4, resample=2, reducer="mean")
        assert mean["a"]["x"] == [1.5, 3.0]


async def test_views_with_time_substitutions(tmp_path: Path) -> None:
    def fill() -> None:
        with store(tmp_path) as out:
            for i in range(10):
                out.append(float(i), tag="a" if i % 2 else "b", timestamp=T0 + 10 * i)

    await off_trio(fill)
    src = source(
        tmp_path,
        time_series=LONG,
        view=[
            {
                "name": "counts",
                "sql": "SELECT channel, count(*) AS n, sum(value) AS total FROM data "
                "WHERE timestamp >= ${FROM_UNIXTIME} AND timestamp < ${TO_UNIXTIME} "
                "GROUP BY channel ORDER BY channel",
            },
            {"name": "span", "sql": "SELECT '${FROM_DATETIME}', '${TO_DATETIME_UTC}'"},
            {"name": "broken", "sql": "SELECT x FROM nowhere"},
        ],
    )
    await src.open()
    listed = names(await src.channels())
    assert listed["counts"] == listed["span"] == ("table", False)
    reply = await get(src, "counts,span", length=40, to=T0 + 50)
    assert reply["counts"] == {
        "start": T0 + 10,
        "length": 40,
        "t": 40,  # relative to start, as every reply's t
        "x": {"columns": ["channel", "n", "total"], "table": [["a", 2, 4.0], ["b", 2, 6.0]]},
    }
    assert reply["span"]["x"]["table"] == [["2023-11-14 22:13:30", "2023-11-14 22:14:10+00:00"]]
    # a broken view spoils only itself: the other channels of the same request are answered,
    # and the problem travels with the answer (the server puts it in a header)
    both = await src.data(parse_query(["broken", "counts"], length=40, to=T0 + 50, now=T0))
    assert set(both) == {"counts"}
    assert any("view 'broken': no such table: nowhere" in p for p in getattr(both, "problems", []))
    assert (await get(src, "counts"))["counts"]["x"]["table"]  # the source is still fine


# ----------------------------------------------------------------------------------------------
# bad input and failures


@pytest.mark.parametrize(
    "bad",
    ["a'; DROP TABLE data;--", "a OR 1=1", 'a"', "a/b", "x" * 300, "", "a\x00"],
)
async def test_bad_channel_names_never_reach_the_database(tmp_path: Path, bad: str) -> None:
    def fill() -> None:
        with store(tmp_path) as out:
            out.append(1.0, tag="a", timestamp=T0)

    await off_trio(fill)
    src = source(tmp_path, time_series=LONG, view={"name": "v", "sql": "SELECT 1"})
    await src.open()
    with pytest.raises(QueryError, match="bad channel name"):
        await src.data(query("a").with_channels(["a", bad]))
    assert (await get(src, "a"))["a"]["x"] == [1.0]  # the table is intact


async def test_unusable_tag_values_are_not_listed(tmp_path: Path) -> None:
    rows = [(T0, "good", 1.0), (T0, "bad name", 2.0), (T0, "x'; --", 3.0), (T0, None, 4.0)]
    hand_made(tmp_path, "CREATE TABLE data(timestamp REAL, channel TEXT, value REAL)", rows)
    src = source(tmp_path, time_series=LONG)
    await src.open()
    assert list(names(await src.channels())) == ["good"]


async def test_a_raw_answer_too_big_asks_for_resampling(
    dataset: tuple[Path, Points], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, points = dataset
    src = source(project, time_series=LONG)
    await src.open()
    assert len(points["a"]) < 200 < len(points["a"]) + len(points["r"])
    window = {"length": 3000, "to": T0 + 3000, "max_points": 200}
    assert len((await get(src, "a", **window))["a"]["t"]) == len(points["a"])
    with pytest.raises(QueryError, match=r"system\.max_points.*resample"):
        await get(src, "a,r", **window)  # the limit is for all channels
    resampled = await get(src, "a,r", **window, resample=100)
    assert set(resampled) == {"a", "r"}


async def test_missing_file_unreadable_file_then_a_database(tmp_path: Path) -> None:
    src = source(tmp_path, time_series=LONG)
    with pytest.raises(SourceUnavailable, match="no database file"):
        await src.open()
    with pytest.raises(SourceUnavailable):
        await src.channels()
    with pytest.raises(SourceUnavailable):
        await get(src, "a")
    (tmp_path / "data.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(SourceUnavailable, match="not a database"):
        await src.open()
    (tmp_path / "data.db").unlink()

    def fill() -> None:
        with store(tmp_path) as out:
            out.append(1.0, tag="a", timestamp=T0)

    await off_trio(fill)
    await src.open()
    assert list(names(await src.channels())) == ["a"]


async def test_a_table_that_appears_later_is_found_by_a_rescan(tmp_path: Path) -> None:
    hand_made(tmp_path, "CREATE TABLE other(x REAL)")
    src = source(tmp_path, time_series=LONG)
    await src.open()
    assert await src.channels() == []
    assert await get(src, "a") == {}

    def fill() -> None:
        with store(tmp_path) as out:
            out.append(1.0, tag="a", timestamp=T0)

    await off_trio(fill)
    assert await get(src, "a") == {"a": {"start": T0 - 50, "length": 100, "t": [50.0], "x": [1.0]}}
    assert list(names(await src.channels(force_rescan=True))) == ["a"]


async def test_bad_sql_in_the_project_is_an_error_not_an_outage(tmp_path: Path) -> None:
    hand_made(tmp_path, "CREATE TABLE data(timestamp REAL, channel TEXT, value REAL)")
    src = source(tmp_path, time_series={"schema": LONG, "tags": {"sql": "SELEC nonsense"}})
    await src.open()
    with pytest.raises(Exception, match="syntax error") as info:
        await src.channels()
    assert not isinstance(info.value, SourceUnavailable)  # the file is there and readable


def test_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="sqlite:///NAME"):
        SQLiteSource({"url": "mysql://x"}, project_dir=tmp_path)
    with pytest.raises(SourceConfigError, match="cache: true or false"):
        SQLiteSource({"url": "sqlite:///d", "cache": 1}, project_dir=tmp_path)
    src = SQLiteSource({"url": "sqlite:///d"}, project_dir=tmp_path)  # no I/O at construction
    assert not (tmp_path / "d.db").exists() and src.path == tmp_path / "d.db"


SLOW_VIEW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
    "SELECT count(*) FROM c"
)


async def test_a_cancelled_query_is_interrupted_and_its_connection_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    connect = SQLitePool._connect

    def counting(self: SQLitePool) -> Any:
        opened.append(connect(self))
        return opened[-1]

    monkeypatch.setattr(SQLitePool, "_connect", counting)

    def fill() -> None:
        with store(tmp_path) as out:
            out.append(1.0, tag="a", timestamp=T0)

    await off_trio(fill)
    src = source(tmp_path, time_series=LONG, view={"name": "slow", "sql": SLOW_VIEW})
    await src.open()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(2 * src.pool.size):  # more than the pool: all must stop
                nursery.start_soon(_cancelled_after, 0.2, src, "slow")
        # the statements were interrupted: their connections come back (uninterrupted, the
        # view would hold them for minutes)
        while len(src.pool._idle) < len(opened):  # noqa: ASYNC110 (polling, with a deadline)
            await trio.sleep(0.01)
        assert (await get(src, "a"))["a"]["x"] == [1.0]
    assert 1 < len(opened) <= src.pool.size + 1  # the slow ones, and perhaps one for "a"


async def _cancelled_after(seconds: float, src: SQLiteSource, channels: str) -> None:
    with trio.move_on_after(seconds) as scope:
        await get(src, channels)
    assert scope.cancelled_caught


async def test_concurrent_requests_agree(dataset: tuple[Path, Points]) -> None:
    project, _ = dataset
    src = source(project, time_series=LONG)
    await src.open()
    replies: list[dict[str, Any]] = []

    async def one(reducer: str) -> None:
        replies.append(
            await get(src, "a,r", length=3000, to=T0 + 3000, resample=60, reducer=reducer)
        )

    async with trio.open_nursery() as nursery:
        for _ in range(12):
            nursery.start_soon(one, "median")
    assert len(replies) == 12 and all(r == replies[0] for r in replies)
