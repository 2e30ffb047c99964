"""The CSV data source: files written by DataStore_CSV and by hand, read back; reducers against
a reference computed here; incremental parsing; bad input."""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from slowdash_stores import DataStore_CSV, Graph, Histogram, Table, Tree
from slowdash_trio._sources import (
    DataQuery,
    QueryError,
    SourceConfigError,
    SourceUnavailable,
    _csv,
    build_source,
    parse_query,
)
from slowdash_trio._sources._csv import CSVSource

T0 = 1_700_000_000
LONG = "slow_data[channel]@timestamp(unix)=value"


def source(project: Path, **params: Any) -> CSVSource:
    params.setdefault("url", "csv:///data")
    return CSVSource(params, project_dir=project)


def store(project: Path, table: str = "slow_data", **options: Any) -> DataStore_CSV:
    return DataStore_CSV(f"csv:///{project}/data", table, **options)


async def off_trio(fn: Any) -> None:
    """Stores refuse to block the Trio thread: write from a worker thread."""
    await trio.to_thread.run_sync(fn)


def write(project: Path, name: str, text: str, mode: str = "w") -> Path:
    path = project / "data" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8", newline="") as file:
        file.write(text)
    return path


def query(channels: str, length: float = 100, to: float = T0 + 50, **params: Any) -> DataQuery:
    return parse_query(channels.split(","), length=length, to=to, now=T0, **params)


async def get(src: CSVSource, channels: str, **params: Any) -> dict[str, Any]:
    return await src.data(query(channels, **params))


def names(channels: list[dict[str, Any]]) -> dict[str, str | None]:
    return {c["name"]: c.get("type") for c in channels}


# ----------------------------------------------------------------------------------------------
# what DataStore_CSV writes, read back


async def test_long_format_written_by_the_store(tmp_path: Path) -> None:
    hist = Histogram(2, 0, 2)
    hist.fill(0.5)
    awkward = 'a,b "quoted"\nnext line'

    def fill() -> None:
        with store(tmp_path) as out:
            for i in range(5):
                out.append(1.5 * i, tag="a", timestamp=T0 + i)
            out.append({"x": 2, "y": "on"}, tag="d", timestamp=T0 + 1)
            out.append(hist, tag="hist", timestamp=T0 + 2)
            out.append(awkward, tag="text", timestamp=T0 + 3)
            out.append(7, tag="a:b", timestamp=T0 + 4)  # a tag value with ':' in it

    await off_trio(fill)
    src = source(tmp_path, time_series={"schema": LONG})
    await src.open()
    assert names(await src.channels()) == {
        "a": None,  # long-format time series carry no type
        "a:b": None,
        "d:x": None,
        "d:y": None,
        "hist": None,
        "text": None,
        "slow_data.csv": "table",
    }
    reply = await get(src, "a,d:x,d:y,hist,text,a:b,nothing")
    assert reply["a"] == {
        "start": T0 - 50,
        "length": 100,
        "t": [50.0, 51.0, 52.0, 53.0, 54.0],
        "x": [0.0, 1.5, 3.0, 4.5, 6.0],
    }
    assert reply["d:x"]["x"] == [2.0]
    assert reply["d:y"]["x"] == ["on"]
    assert reply["hist"]["x"] == [hist.to_json()]
    assert reply["text"]["x"] == [awkward]
    assert reply["text"]["t"] == [53.0]
    assert reply["a:b"]["x"] == [7.0]
    assert "nothing" not in reply


async def test_slowpy_escaped_commas(tmp_path: Path) -> None:
    write(
        tmp_path,
        "slow_data.csv",
        "timestamp,channel,value\n"
        f"{T0},s,a\\,b\n"
        f'{T0 + 1},j,{{"x": 1\\, "y": [1\\,2]}}\n'
        f"{T0 + 2},path,C:\\dir\\file\n"
        f"{T0 + 3},both,x\\\\,y\n"  # a backslash, then an escaped comma
        f'{T0 + 4},quote,5 inch"\n',
    )
    src = source(tmp_path, time_series=LONG)
    await src.open()
    reply = await get(src, "s,j,path,both,quote")
    assert reply["s"]["x"] == ["a,b"]
    assert reply["j"]["x"] == [{"x": 1, "y": [1, 2]}]
    assert reply["path"]["x"] == ["C:\\dir\\file"]
    assert reply["both"]["x"] == ["x\\,y"]
    assert reply["quote"]["x"] == ['5 inch"']


async def test_crlf_bom_blank_lines_and_iso_times(tmp_path: Path) -> None:
    write(
        tmp_path,
        "wide.csv",
        "\ufefftime,temp,state\r\n"
        "2023-11-14T22:13:20+00:00,21.5,on\r\n"
        "\r\n"
        "2023-11-14T22:13:21,22.0,off\r\n",  # naive ISO: read as UTC
    )
    src = source(tmp_path, time_series="wide@time")
    await src.open()
    assert names(await src.channels()) == {
        "temp": None,  # no type: numeric
        "state": "string",
        "wide.csv": "table",
    }
    reply = await get(src, "temp,state")
    assert reply["temp"]["t"] == [50.0, 51.0]
    assert reply["temp"]["x"] == [21.5, 22.0]
    assert reply["state"]["x"] == ["on", "off"]
    assert src.file_stats()["wide.csv"]["skipped"] == 0


async def test_wide_file_and_fields(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i},{i},{10 * i},{'' if i % 2 else 'ok'}\n" for i in range(4))
    write(tmp_path, "run.csv", "timestamp,a,b,note\n" + rows)
    src = source(
        tmp_path,
        time_series=[
            {"schema": "run@timestamp(unix)=a,b", "suffix": ".w"},
            {"schema": "run@timestamp(unix)"},
        ],
    )
    await src.open()
    assert names(await src.channels()) == {
        "a.w": None,
        "b.w": None,
        "a": None,
        "b": None,
        "note": "string",
        "run.csv": "table",
    }
    reply = await get(src, "a.w,b,note,note.w")
    assert reply["a.w"]["x"] == [0.0, 1.0, 2.0, 3.0]
    assert reply["b"]["x"] == [0.0, 10.0, 20.0, 30.0]
    assert reply["note"] == {"start": T0 - 50, "length": 100, "t": [50.0, 52.0], "x": ["ok", "ok"]}
    assert "note.w" not in reply  # not a field of that entry


async def test_tag_with_several_fields_tags_list_and_suffix(tmp_path: Path) -> None:
    write(
        tmp_path,
        "cal.csv",
        f"ts,channel,raw,cal\n{T0},v0,1,1.5\n{T0},v1,2,2.5\n{T0 + 1},v0,3,3.5\n",
    )
    src = source(
        tmp_path,
        time_series=[
            {"schema": "cal[channel]@ts(unix)=raw(default),cal"},
            {"schema": "cal[channel]@ts(unix)=raw", "tags": {"list": ["v1"]}, "suffix": ":x"},
        ],
    )
    await src.open()
    assert set(names(await src.channels())) == {
        "v0",
        "v0:cal",
        "v1",
        "v1:cal",
        "v1:x",
        "cal.csv",
    }
    reply = await get(src, "v0,v0:cal,v1:cal,v1:x,v0:x,v0:raw,v9:cal")
    assert reply["v0"]["x"] == [1.0, 3.0]
    assert reply["v0:cal"]["x"] == [1.5, 3.5]
    assert reply["v1:cal"]["x"] == [2.5]
    assert reply["v1:x"]["x"] == [2.0]
    assert set(reply) == {"v0", "v0:cal", "v1:cal", "v1:x"}  # v0 not listed; raw is default


async def test_objects_and_object_time_series(tmp_path: Path) -> None:
    hist = Histogram(2, 0, 2)
    hist.fill(1.5)
    graph = Graph()
    graph.add_point(1, 2)
    table = Table(["a", "b"])
    table.add_row([1, 2])
    tree = Tree()
    tree.set("x/y", 1)

    def fill() -> None:
        with store(tmp_path, "current") as out:
            out.append(hist, tag="hist", timestamp=T0 + 10)
            out.append(graph, tag="graph", timestamp=T0 + 10)
            out.append(table, tag="table", timestamp=T0 + 10)
            out.append(tree, tag="tree", timestamp=T0 + 10)
            out.append([1, 2], tag="list", timestamp=T0 + 10)
            out.append("fine", tag="status", timestamp=T0 + 10)
            out.append("better", tag="status", timestamp=T0 + 20)
            out.append("future", tag="status", timestamp=T0 + 60)

    await off_trio(fill)
    write(tmp_path, "state.csv", 'name,value\nmode,"{""tree"": {""a"": 1}}"\nmode,run\n')

    def fill_hists() -> None:
        with store(tmp_path, "hists", time_decimals=1) as out:
            for i in range(6):
                h = Histogram(2, 0, 2)
                h.fill(0.5, weight=i)
                out.append(h, tag="h", timestamp=T0 + 10 * i + 0.5)

    await off_trio(fill_hists)
    src = source(
        tmp_path,
        object=[{"schema": "current[channel]@timestamp(unix)=value"}, "state[name]=value"],
        object_time_series={"schema": "hists[channel]@timestamp(unix)=value"},
    )
    await src.open()
    found = names(await src.channels())
    assert {k: v for k, v in found.items() if not k.endswith(".csv")} == {
        "hist": "histogram",
        "graph": "graph",
        "table": "table",
        "tree": "tree",
        "list": "json",
        "status": "string",
        "mode": "string",  # a current object: the type of its current value
        "h": "histogram",
    }
    reply = await get(src, "hist,graph,status,mode,list,h")
    assert reply["hist"] == {"start": T0 - 50, "length": 100, "t": 60.0, "x": hist.to_json()}
    assert reply["graph"]["x"] == graph.to_json()
    assert reply["status"]["x"] == "better"  # the last one before `to`
    assert reply["status"]["t"] == 70.0
    assert reply["mode"] == {"start": T0 - 50, "length": 100, "t": 100, "x": "run"}
    assert reply["list"]["x"] == [1, 2]
    assert reply["h"]["t"] == [50.5, 60.5, 70.5, 80.5, 90.5]
    assert [x["counts"] for x in reply["h"]["x"]] == [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]]
    # object time series resampled: the last (first) object of each bucket; no numeric reducers
    last = await get(src, "h", resample=20, reducer="last", length=60, to=T0 + 60)
    assert last["h"]["t"] == [10.0, 30.0, 50.0]
    assert [x["counts"][0] for x in last["h"]["x"]] == [1, 3, 5]
    first = await get(src, "h", resample=20, reducer="first", length=60, to=T0 + 60)
    assert [x["counts"][0] for x in first["h"]["x"]] == [0, 2, 4]
    assert await get(src, "h", resample=20, reducer="mean", length=60, to=T0 + 60) == {}
    assert await get(src, "status", length=10, to=T0 + 10) == {}  # nothing before T0+10
    older = await get(src, "status", length=10, to=T0 + 50)  # the object as it was at `to`
    assert older["status"] == {"start": T0 + 40, "length": 10, "t": -20.0, "x": "better"}


# ----------------------------------------------------------------------------------------------
# table channels


async def test_every_file_is_a_table_channel(tmp_path: Path) -> None:
    write(tmp_path, "big.csv", "n,square\n" + "".join(f"{i},{i * i}\n" for i in range(200)))
    write(tmp_path, "small.csv", "a,b\n1,x\\,y\n2,z\n")
    write(tmp_path, ".update-tmp.csv", "a\n1\n")  # DataStore_CSV's temporary files
    write(tmp_path, "notes.txt", "not a table\n")
    write(tmp_path, "bad name.csv", "a\n1\n")
    src = source(tmp_path)
    await src.open()
    assert names(await src.channels()) == {"big.csv": "table", "small.csv": "table"}
    reply = await get(src, "big.csv,small.csv")
    assert reply["small.csv"] == {
        "start": T0 - 50,
        "length": 100,
        "t": 100,
        "x": {"columns": ["a", "b"], "table": [["1", "x,y"], ["2", "z"]]},
    }
    big = reply["big.csv"]["x"]
    assert big["columns"] == ["n", "square"]
    assert len(big["table"]) == 128
    assert big["table"][-1] == ["127", str(127 * 127)]


async def test_table_entries_head_and_tail(tmp_path: Path) -> None:
    write(tmp_path, "log.csv", "n\n" + "".join(f"{i}\n" for i in range(50)))
    write(tmp_path, "other.csv", "a\n1\n")
    src = source(
        tmp_path,
        table=[
            {"name": "first", "file": "log.csv", "head": 3},
            {"name": "last", "file": "log.csv", "tail": 2},
            {"name": "both", "file": "log.csv", "head": 2, "tail": 2},
            {"name": "all", "file": "log.csv", "head": 30, "tail": 40},
            {"name": "gone", "file": "sub/none.csv"},
        ],
    )
    await src.open()
    assert set(names(await src.channels())) == {"first", "last", "both", "all", "gone"}
    reply = await get(src, "first,last,both,all,gone,other.csv")

    def rows(name: str) -> list[int]:
        return [int(r[0]) for r in reply[name]["x"]["table"]]

    assert rows("first") == [0, 1, 2]
    assert rows("last") == [48, 49]
    assert rows("both") == [0, 1, 48, 49]
    assert rows("all") == list(range(50))  # the parts overlap: each row once
    assert set(reply) == {"first", "last", "both", "all"}
    # the tail follows appended rows
    write(tmp_path, "log.csv", "50\n51\n", mode="a")
    assert [int(r[0]) for r in (await get(src, "last"))["last"]["x"]["table"]] == [50, 51]


# ----------------------------------------------------------------------------------------------
# resampling and raw windows against a reference computed here (reference §4.7 geometry)


def finite(values: list[Any]) -> list[float]:
    return [v for v in values if type(v) is float and math.isfinite(v)]


def reference_reduce(values: list[Any], reducer: str) -> Any:
    numbers = finite(values)
    n = len(numbers)
    if reducer == "count":
        return n
    if n == 0:
        return None
    mean = sum(numbers) / n
    square = sum((v - mean) ** 2 for v in numbers)
    ordered = sorted(numbers)
    return {
        "first": numbers[0],
        "last": numbers[-1],
        "sum": sum(numbers),
        "mean": mean,
        "min": ordered[0],
        "max": ordered[-1],
        "median": (ordered[(n - 1) // 2] + ordered[n // 2]) / 2,
        "std": math.sqrt(square / n),
        "sem": math.sqrt(square / (n - 1)) / math.sqrt(n) if n > 1 else None,
    }[reducer]


CANONICAL = {"stdev": "std", "sd": "std", "rms": "std", "sigma": "std", "err": "sem"}


def reference_resample(
    points: list[tuple[float, Any]],
    length: float,
    to: float,
    width: float,
    reducer: str,
    envelope: int,
    prior_data: int,
) -> dict[str, Any] | None:
    reducer = CANONICAL.get(reducer, reducer)
    if width == 0:  # automatic: median spacing of the window's points, else length / 100
        times = [t for t, _ in points if to - length <= t < to]
        gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
        width = gaps[len(gaps) // 2] if gaps else length / 100
    nbins = math.floor(length / width + 1e-9)
    start = to - nbins * width
    if abs(length / width - nbins) > 1e-9 * max(1.0, length / width):
        start -= width
        nbins += 1
    buckets: list[list[Any]] = [[] for _ in range(nbins)]
    for t, v in points:
        k = math.floor((t - start) / width)
        if start <= t < to and 0 <= k < nbins:
            buckets[k].append(v)
    before = [(t, v) for t, v in points if t < start]
    prior = before[-1] if before and prior_data else None
    if not any(buckets) and (prior is None or envelope != 0):
        return None
    reply: dict[str, Any] = {
        "start": start,
        "length": nbins * width,
        "t": [(k + 0.5) * width for k in range(nbins)],
        "x": [reference_reduce(b, reducer) for b in buckets],
    }
    if envelope >= 1 and reducer in ("first", "last", "mean", "median"):
        reply["x_min"] = [reference_reduce(b, "min") for b in buckets]
        reply["x_max"] = [reference_reduce(b, "max") for b in buckets]
    if envelope >= 2 and reducer != "count":
        reply["x_n"] = [len(finite(b)) for b in buckets]
    if envelope >= 2 and reducer == "mean":
        reply["x_err"] = [reference_reduce(b, "sem") for b in buckets]
    empty = all(x is None for x in reply["x"])
    if prior is not None and envelope == 0 and (prior_data == 2 or empty):
        reply["t"].insert(0, round(prior[0] - start, 3))
        reply["x"].insert(0, prior[1])
    return reply


def reference_raw(
    points: list[tuple[float, Any]], length: float, to: float, prior_data: int
) -> dict[str, Any] | None:
    begin = to - length
    start = int(begin)
    inside = [(t, v) for t, v in points if begin <= t < to]
    before = [(t, v) for t, v in points if t < begin]
    if prior_data and before and (prior_data == 2 or not inside):
        inside.insert(0, before[-1])
    if not inside:
        return None
    t = [round(t - start, 3) for t, _ in inside]
    return {"start": start, "length": int(length), "t": t, "x": [v for _, v in inside]}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return not isinstance(a, bool) and not isinstance(b, bool) and a == pytest.approx(b)
    return bool(a == b) and type(a) is type(b)


@pytest.fixture
def series(tmp_path: Path) -> tuple[Path, dict[str, list[tuple[float, Any]]]]:
    """Channels with irregular times (never on a bucket edge), strings and NaN among the
    numbers, late rows, and a sparse channel; the points as the file holds them."""
    rng = random.Random(7)
    points: dict[str, list[tuple[float, Any]]] = {"v": [], "mixed": [], "sparse": []}
    with store(tmp_path, time_decimals=3) as out:
        t = T0 + 0.137
        while t < T0 + 400:
            value = round(rng.gauss(5, 2), 3)
            out.append(value, tag="v", timestamp=t)
            points["v"].append((round(t, 3), value))
            mixed: Any = rng.choice([value, value, "off", float("nan"), -value])
            out.append(mixed, tag="mixed", timestamp=t)
            points["mixed"].append((round(t, 3), mixed if mixed != "off" else "off"))
            t += rng.choice([0.5, 1.3, 2.9, 7.7])
        for late in (T0 + 100.25, T0 + 5.75):  # written late, belong in the middle
            out.append(99.0, tag="v", timestamp=late)
            points["v"].append((late, 99.0))
        for ts in (T0 + 20.5, T0 + 300.5):
            out.append(1.0, tag="sparse", timestamp=ts)
            points["sparse"].append((ts, 1.0))
    for name in points:
        points[name].sort(key=lambda p: p[0])
    return tmp_path, points


REDUCERS = ["first", "last", "mean", "median", "sum", "min", "max", "count"]
REDUCERS += ["std", "sd", "stdev", "rms", "sigma", "sem", "err"]


@pytest.mark.parametrize("reducer", REDUCERS)
async def test_every_reducer_against_the_reference(
    series: tuple[Path, dict[str, list[tuple[float, Any]]]], reducer: str
) -> None:
    project, points = series
    src = source(project, time_series=LONG)
    await src.open()
    checked = 0
    for length, to, width in [
        (300, T0 + 350, 10),
        (290, T0 + 400, 30),  # not a multiple: one more bucket in front
        (300, T0 + 350, 7),
        (100, T0 + 200, 0),  # automatic width
        (50, T0 + 280, 5),  # sparse has nothing inside
        (1000, T0 + 500, 100),
    ]:
        for envelope in (0, 1, 2):
            for prior_data in (0, 1, 2):
                reply = await get(
                    src,
                    "v,mixed,sparse",
                    length=length,
                    to=to,
                    resample=width,
                    reducer=reducer,
                    envelope=envelope,
                    prior_data=prior_data,
                )
                for name, pts in points.items():
                    expected = reference_resample(
                        pts, length, to, width, reducer, envelope, prior_data
                    )
                    assert same(reply.get(name), expected), (name, length, width, envelope)
                    checked += expected is not None
    assert checked > 100


async def test_raw_windows_and_prior_points(
    series: tuple[Path, dict[str, list[tuple[float, Any]]]],
) -> None:
    project, points = series
    src = source(project, time_series=LONG)
    await src.open()
    for length, to in [(100, T0 + 150.5), (400, T0 + 400), (10, T0 + 290), (5, T0 - 100)]:
        for prior_data in (0, 1, 2):
            reply = await get(src, "v,mixed,sparse", length=length, to=to, prior_data=prior_data)
            for name, pts in points.items():
                assert same(reply.get(name), reference_raw(pts, length, to, prior_data)), (
                    name,
                    length,
                    to,
                    prior_data,
                )
    # late rows were put in time order
    whole = await get(src, "v", length=500, to=T0 + 450)
    assert whole["v"]["t"] == sorted(whole["v"]["t"])
    assert 99.0 in whole["v"]["x"]


async def test_a_raw_answer_too_big_asks_for_resampling(
    series: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = source(series[0], time_series=LONG)
    await src.open()
    with pytest.raises(QueryError, match=r"at most 50: system\.max_points.*resample"):
        await get(src, "v,mixed", length=400, to=T0 + 400, max_points=50)
    assert (await get(src, "v", length=400, to=T0 + 400, resample=40, max_points=50))["v"]["x"]
    assert len((await get(src, "v", length=20, to=T0 + 50, max_points=50))["v"]["x"]) < 50


# ----------------------------------------------------------------------------------------------
# incremental parsing


async def test_appended_rows_are_parsed_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[int] = []
    original = _csv._CSVFile._parse

    def spy(self: _csv._CSVFile, data: bytes) -> int:
        parsed.append(len(data))
        return original(self, data)

    monkeypatch.setattr(_csv._CSVFile, "_parse", spy)
    out = store(tmp_path)

    def fill() -> None:
        for i in range(100):
            out.append(float(i), tag="a", timestamp=T0 + i % 50)

    await off_trio(fill)
    src = source(tmp_path, time_series=LONG)
    await src.open()
    assert len((await get(src, "a"))["a"]["x"]) == 100
    size = (tmp_path / "data" / "slow_data.csv").stat().st_size
    assert sum(parsed) == size
    parsed.clear()
    assert len((await get(src, "a"))["a"]["x"]) == 100
    assert parsed == []  # unchanged: not read again

    def more() -> None:
        out.append(1000.0, tag="a", timestamp=T0 + 10)
        out.append(5.0, tag="b", timestamp=T0 + 11)
        out.close()

    await off_trio(more)
    reply = await get(src, "a,b")
    assert parsed == [(tmp_path / "data" / "slow_data.csv").stat().st_size - size]
    assert len(reply["a"]["x"]) == 101
    assert reply["a"]["x"][reply["a"]["t"].index(60.0) + 2] == 1000.0  # after the two at T0+10
    assert reply["b"]["x"] == [5.0]
    assert "b" in names(await src.channels())


async def test_a_partial_last_line_waits_for_its_end(tmp_path: Path) -> None:
    write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},a,1\n")
    src = source(tmp_path, time_series=LONG)
    await src.open()
    assert (await get(src, "a"))["a"]["x"] == [1.0]
    write(tmp_path, "slow_data.csv", f"{T0 + 1},a,4", mode="a")
    assert (await get(src, "a"))["a"]["x"] == [1.0]
    write(tmp_path, "slow_data.csv", f'2\n{T0 + 2},s,"one\nline', mode="a")
    assert (await get(src, "a"))["a"]["x"] == [1.0, 42.0]
    assert "s" not in await get(src, "s")  # inside a quoted field: not a record yet
    write(tmp_path, "slow_data.csv", ' two"""\n', mode="a")
    assert (await get(src, "s"))["s"]["x"] == ['one\nline two"']
    assert src.file_stats()["slow_data.csv"]["skipped"] == 0


async def test_truncated_replaced_and_rewritten_files(tmp_path: Path) -> None:
    path = write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},a,1\n{T0 + 1},a,2\n")
    src = source(tmp_path, time_series=LONG)
    await src.open()
    assert (await get(src, "a"))["a"]["x"] == [1.0, 2.0]
    write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},b,3\n")  # truncated
    reply = await get(src, "a,b")
    assert "a" not in reply
    assert reply["b"]["x"] == [3.0]
    replacement = write(tmp_path, "new.tmp", f"timestamp,channel,value\n{T0},c,4\n{T0},c,5\n")
    os.replace(replacement, path)  # another inode, larger
    reply = await get(src, "b,c")
    assert reply == {"c": {"start": T0 - 50, "length": 100, "t": [50.0, 50.0], "x": [4.0, 5.0]}}
    before = path.stat()
    # same size, same inode, other content
    write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},d,6\n{T0},d,7\n", "r+")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert (await get(src, "c,d")) == {
        "d": {"start": T0 - 50, "length": 100, "t": [50.0, 50.0], "x": [6.0, 7.0]}
    }

    def fill() -> None:
        with store(tmp_path) as out:  # update(): DataStore_CSV rewrites the file atomically
            out.update(8.0, tag="d", timestamp=T0 + 1)

    await off_trio(fill)
    assert (await get(src, "d"))["d"]["x"] == [8.0]
    path.unlink()
    assert await get(src, "d") == {}
    assert "d" not in names(await src.channels())


# ----------------------------------------------------------------------------------------------
# a missing directory, files that appear


async def test_missing_directory_then_created(tmp_path: Path) -> None:
    src = source(tmp_path, time_series=LONG)
    with pytest.raises(SourceUnavailable, match="does not exist"):
        await src.open()
    with pytest.raises(SourceUnavailable):
        await src.channels()
    with pytest.raises(SourceUnavailable):
        await get(src, "a")
    (tmp_path / "data").mkdir()
    await src.open()
    assert await src.channels() == []
    assert await get(src, "a") == {}

    def fill() -> None:
        with store(tmp_path) as out:
            out.append(1.0, tag="a", timestamp=T0)

    await off_trio(fill)
    assert (await get(src, "a"))["a"]["x"] == [1.0]  # the schema's file appeared
    write(tmp_path, "later.csv", "x\n1\n")
    assert (await get(src, "later.csv"))["later.csv"]["x"]["table"] == [["1"]]
    assert names(await src.channels(force_rescan=True)) == {
        "a": None,
        "slow_data.csv": "table",
        "later.csv": "table",
    }
    (tmp_path / "data" / "later.csv").unlink()
    (tmp_path / "data" / "slow_data.csv").unlink()
    (tmp_path / "data").rmdir()
    with pytest.raises(SourceUnavailable):
        await get(src, "a")


async def test_absolute_url_and_directory_parameter(tmp_path: Path) -> None:
    write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},a,1\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for src in [
        CSVSource({"url": f"csv:///{tmp_path}/data", "time_series": LONG}, project_dir=elsewhere),
        CSVSource({"directory": "data", "time_series": LONG}, project_dir=tmp_path),
        build_source(
            {"type": "CSV", "url": "csv:///data", "parameters": {"time_series": LONG}},
            project_dir=tmp_path,
        ),
        build_source({"url": "csv:///data", "time_series": LONG}, project_dir=tmp_path),
    ]:
        assert isinstance(src, CSVSource)
        assert src.label.startswith("CSV ")
        await src.open()
        assert (await src.data(query("a")))["a"]["x"] == [1.0]


# ----------------------------------------------------------------------------------------------
# bad input


async def test_malformed_lines_are_skipped_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        tmp_path,
        "slow_data.csv",
        "timestamp,channel,value\n"
        f"{T0},a,1\n"
        f"{T0},a,2,extra\n"  # too many fields
        f"{T0}\n"  # too few
        f"yesterday,a,3\n"  # bad time
        f"nan,a,4\n"
        f"{T0 + 1},a,5\n",
    )
    write(tmp_path, "wide.csv", "timestamp,x\n" + "".join(f"{T0 + i},{i},\n" for i in range(20)))
    src = source(tmp_path, time_series=[LONG, "wide@timestamp(unix)"])
    with caplog.at_level(logging.WARNING, logger="slowdash_trio.sources"):
        await src.open()
        reply = await get(src, "a,x")
    assert reply["a"]["x"] == [1.0, 5.0]
    assert "x" not in reply
    stats = src.file_stats()
    assert (stats["slow_data.csv"]["rows"], stats["slow_data.csv"]["skipped"]) == (2, 4)
    assert (stats["wide.csv"]["rows"], stats["wide.csv"]["skipped"]) == (0, 20)
    messages = [r.getMessage() for r in caplog.records]
    assert any("slow_data.csv: line 3: 4 fields where the header has 3" in m for m in messages)
    assert any("line 5: bad time 'yesterday'" in m for m in messages)
    assert sum("wide.csv: line" in m for m in messages) == _csv.MAX_WARNINGS
    assert any("counted, not logged" in m for m in messages)
    # later good rows still come in
    write(tmp_path, "slow_data.csv", f"{T0 + 2},a,6\n", mode="a")
    assert (await get(src, "a"))["a"]["x"] == [1.0, 5.0, 6.0]


async def test_unclosed_quotes_and_endless_lines_do_not_hold_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_csv, "CHUNK", 64)
    monkeypatch.setattr(_csv, "MAX_RECORD", 200)
    monkeypatch.setattr(_csv, "MAX_LINE", 300)
    good = "".join(f"{T0 + i},a,{i}\n" for i in range(20))
    write(
        tmp_path,
        "slow_data.csv",
        f'timestamp,channel,value\n{T0},s,"never closed\n{good}{T0},x,{"y" * 1000}\n{good}',
    )
    src = source(tmp_path, time_series=LONG)
    await src.open()
    reply = await get(src, "a,s,x")
    assert reply["a"]["x"] == [float(i // 2) for i in range(40)]  # both copies, in time order
    assert set(reply) == {"a"}
    assert src.file_stats()["slow_data.csv"]["skipped"] == 2
    assert src.file_stats()["slow_data.csv"]["rows"] == 40
    # a file that ends with a skipped line: rows appended later are read on from there
    write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},b,1\n{T0},b,{'z' * 1000}\n")
    resets: list[Path] = []
    original = _csv._CSVFile.reset

    def counted(self: _csv._CSVFile) -> None:
        resets.append(self.path)
        original(self)

    assert (await get(src, "b"))["b"]["x"] == [1.0]
    monkeypatch.setattr(_csv._CSVFile, "reset", counted)
    write(tmp_path, "slow_data.csv", f"{T0 + 1},b,2\n", mode="a")
    assert (await get(src, "b"))["b"]["x"] == [1.0, 2.0]
    assert resets == []


async def test_header_without_the_schema_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "slow_data.csv", f"time,name,value\n{T0},a,1\n")
    src = source(tmp_path, time_series=LONG)
    with caplog.at_level(logging.ERROR, logger="slowdash_trio.sources"):
        await src.open()
        assert names(await src.channels()) == {"slow_data.csv": "table"}
        assert await get(src, "a") == {}
    assert any("no time column 'timestamp'" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "bad", ["a;DROP TABLE x", "../etc/passwd", "a b", "x" * 201, "", "a\x00", "ü"]
)
async def test_bad_channel_names(tmp_path: Path, bad: str) -> None:
    write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},a,1\n")
    src = source(tmp_path, time_series=LONG)
    await src.open()
    with pytest.raises(QueryError, match="bad channel name"):
        await src.data(query("a").with_channels(["a", bad]))
    assert (await get(src, "a"))["a"]["x"] == [1.0]  # nothing else disturbed


async def test_unusable_names_in_files_are_left_out(tmp_path: Path) -> None:
    write(tmp_path, "slow_data.csv", f"timestamp,channel,value\n{T0},a b,1\n{T0},ok,2\n")
    src = source(tmp_path, time_series=LONG)
    await src.open()
    assert names(await src.channels()) == {"ok": None, "slow_data.csv": "table"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"time_series": "'../../etc/passwd'[channel]@timestamp=value"}, "inside the CSV"),
        ({"time_series": "'sub/x'[channel]@timestamp=value"}, "file name"),
        ({"time_series": "'a\\b'[channel]@timestamp=value"}, "file name"),
        ({"table": {"name": "t", "file": "../../etc/passwd"}}, "no absolute path, no '..'"),
        ({"table": {"name": "t", "file": "/etc/passwd"}}, "no absolute path"),
        ({"table": {"name": "t", "file": "a/../../b.csv"}}, "no '..'"),
        ({"table": {"name": "t", "file": "..\\x.csv"}}, "a file name"),
        ({"table": {"name": "t"}}, "a file name"),
        ({"table": {"name": "t t", "file": "x.csv"}}, "bad channel name"),
        ({"table": ["x.csv"]}, "needs 'name:'"),
        ({"table": {"name": "t", "file": "x.csv", "head": -1}}, "row count"),
        ({"table": {"name": "t", "file": "x.csv", "tail": "all"}}, "row count"),
        ({"table": {"name": "t", "file": "x.csv", "head": True}}, "row count"),
        ({"time_series": {"schema": LONG, "tags": {"sql": "SELECT 1"}}}, "no SQL"),
        ({"time_series": "slow_data[channel]=value"}, "needs a time column"),
        ({"url": "sqlite:///data"}, "csv:///DIR"),
        ({"url": "csv:///"}, "no usable directory"),
        ({"url": 5}, "csv:///DIR"),
        ({"directory": ["x"]}, "directory"),
    ],
)
def test_bad_configuration(tmp_path: Path, params: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceConfigError, match=message):
        source(tmp_path, **params)


# ----------------------------------------------------------------------------------------------
# threads: one at a time, cancellable, consistent


async def test_concurrent_requests_agree(
    series: tuple[Path, dict[str, list[tuple[float, Any]]]],
) -> None:
    src = source(series[0], time_series=LONG)
    await src.open()
    replies: list[dict[str, Any]] = []

    async def one() -> None:
        replies.append(await get(src, "v,mixed", length=400, to=T0 + 400, resample=20))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(one)
    assert len(replies) == 8
    assert all(same(r, replies[0]) for r in replies)
    assert len(replies[0]["v"]["x"]) == 20


async def test_a_cancelled_request_returns_at_once_and_leaves_the_index_sound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fill() -> None:
        with store(tmp_path) as out:
            for i in range(3000):
                out.append(float(i), tag="a", timestamp=T0 + i / 100)

    await off_trio(fill)
    monkeypatch.setattr(_csv, "CHUNK", 4096)  # many chunks, a check between each
    entered, release = trio.Event(), threading.Event()
    used: list[int] = []
    original = _csv._CSVFile._parse

    def blocking(self: _csv._CSVFile, data: bytes) -> int:
        if not used:
            used.append(0)
            trio.from_thread.run_sync(entered.set)
            release.wait(30)
        used.append(original(self, data))
        return used[-1]

    monkeypatch.setattr(_csv._CSVFile, "_parse", blocking)
    src = source(tmp_path, time_series=LONG)
    await src.open()
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(get, src, "a")
                await entered.wait()
                scope.cancel()  # the thread is still blocked: the request must not wait
        assert scope.cancelled_caught
        assert not release.is_set()
        release.set()
        async with src._limiter:  # held by the abandoned thread until it ends
            assert len(used) == 2  # it stopped after the chunk it was in
        reply = await get(src, "a", length=100, to=T0 + 50)
    assert reply["a"]["x"] == [float(i) for i in range(3000)]
    assert src.file_stats()["slow_data.csv"]["rows"] == 3000
    # the next request went on from where the abandoned thread stopped
    assert sum(used) == (tmp_path / "data" / "slow_data.csv").stat().st_size
