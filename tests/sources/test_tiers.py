"""Downsampling tiers: answers read from them equal the answers read from the raw rows, exactly
(dyadic values), after late rows, update(), a killed writer and build_tiers; requests that
the tiers cannot answer are answered from the raw rows."""

from __future__ import annotations

import functools
import math
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import trio
from support import ROOT

from slowdash_stores import DataStore_SQLite, Histogram, LongTableFormat
from slowdash_stores import tiers as layout
from slowdash_trio._sources import DataQuery, _tiers, build_source, parse_query
from slowdash_trio._sources._sqlite import SQLiteSource

TA = 1_699_999_200  # a multiple of 3600
HOURS = 5
LONG = "data[channel]@timestamp(unix)=value"
TIERED = frozenset({"count", "sum", "mean", "min", "max"})
R = TypeVar("R")


async def off_trio(fn: Callable[..., R], *args: Any) -> R:
    return await trio.to_thread.run_sync(functools.partial(fn, *args))


def write_base(out: DataStore_SQLite) -> None:
    """Channels a and b every 10 s for five hours (dyadic values; b has a gap), a channel of
    infinities among numbers, one of histograms only, all in one numeric table."""
    hist = Histogram(2, 0, 2)
    hist.fill(0.5)
    for i in range(HOURS * 360):
        t = TA + 10 * i
        values: dict[str, Any] = {"a": (i * 37 % 801 - 400) / 8}
        if not 1000 <= i < 1200:
            values["b"] = (i % 17) / 4
        if i % 50 == 0:
            values["inf"] = float("inf") if i % 100 else i / 2
        if i == 20:
            values["h"] = hist
        out.append(values, timestamp=t)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiered.db`` (the store's default tiers) and ``plain.db`` (no tiers), same rows."""
    directory = tmp_path_factory.mktemp("tiers")
    for name, widths in (("tiered", layout.DEFAULT_WIDTHS), ("plain", ())):
        with DataStore_SQLite(f"sqlite:///{directory}/{name}", "data", tiers=widths) as out:
            write_base(out)
    return directory


@pytest.fixture
def project(base: Path, tmp_path: Path) -> Path:
    for name in ("tiered.db", "plain.db"):
        shutil.copy(base / name, tmp_path / name)
    return tmp_path


def stores(project: Path) -> list[DataStore_SQLite]:
    return [
        DataStore_SQLite(f"sqlite:///{project}/tiered", "data"),
        DataStore_SQLite(f"sqlite:///{project}/plain", "data", tiers=()),
    ]


async def opened(project: Path, name: str) -> SQLiteSource:
    src = SQLiteSource(
        {"url": f"sqlite:///{name}", "time_series": LONG, "cache": False}, project_dir=project
    )
    await src.open()
    return src


@pytest.fixture
def tier_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often the source read a tier (a spy on `_tiers.read`)."""
    calls: list[int] = []
    original = _tiers.read

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[4])  # the tier width
        return original(*args, **kwargs)

    monkeypatch.setattr(_tiers, "read", spy)
    return calls


def aligned_queries(channels: str = "a,b,inf,h,none") -> list[DataQuery]:
    """Windows the tiers can answer (align=1), some reaching past the rows (the live edge)."""
    end = TA + HOURS * 3600
    windows = [
        (HOURS * 3600, end, 3600),
        (3 * 3600, TA + 4 * 3600 + 7, 600),  # align moves `to` up to TA + 4 h + 600
        (7000, end - 5, 60),  # not a multiple: a partial first bucket, one tier bucket off
        (300, TA + 2 * 3600 + 100, 120),  # a multiple of the 60 s tier only
        (2 * 3600, end + 1800, 1200),  # the last hour and beyond: tier, raw, nothing
        (6 * 3600, end + 3600, 7200),
    ]
    return [
        parse_query(
            channels.split(","),
            length=length,
            to=to,
            resample=width,
            reducer=reducer,
            envelope=envelope,
            align=1,
            now=end,
        )
        for length, to, width in windows
        for reducer in sorted(TIERED)
        for envelope in (0, 1, 2)
    ]


async def assert_tiers_agree(
    project: Path, tier_reads: list[int], queries: list[DataQuery] | None = None
) -> None:
    tiered, plain = await opened(project, "tiered"), await opened(project, "plain")
    queries = aligned_queries() if queries is None else queries
    answered = 0
    for query in queries:
        before = len(tier_reads)
        got = await tiered.data(query)
        assert got == await plain.data(query), query
        answered += len(got)
        if query.envelope < 2 or query.reducer != "mean":  # x_err needs the raw rows
            assert len(tier_reads) > before, query  # the tier did answer
    assert answered
    assert await tiered.channels() == await plain.channels()


async def test_tier_answers_equal_raw_answers(project: Path, tier_reads: list[int]) -> None:
    await assert_tiers_agree(project, tier_reads)
    assert {60, 600, 3600} <= set(tier_reads)
    plain = await opened(project, "plain")
    query = aligned_queries("a")[0]
    assert query.reducer == "count"
    assert (await plain.data(query))["a"]["x"] == [360] * HOURS  # the data is what we think


async def test_a_channel_without_numbers_is_listed_and_absent_ones_stay_absent(
    project: Path, tier_reads: list[int]
) -> None:
    tiered = await opened(project, "tiered")
    assert [c["name"] for c in await tiered.channels()] == ["a", "b", "h", "inf"]
    query = aligned_queries("h,none,a")[0]
    assert set(await tiered.data(query)) == {"a"}  # no numbers in h; none does not exist
    assert tier_reads


async def test_requests_the_tiers_cannot_answer_are_read_raw(
    project: Path, tier_reads: list[int]
) -> None:
    tiered, plain = await opened(project, "tiered"), await opened(project, "plain")
    end = TA + HOURS * 3600
    for length, to, width, align in [
        (3600, end, 90, 1),  # not a multiple of a tier width
        (3600, end - 7, 60, 0),  # buckets that do not start on a tier edge
    ]:
        for reducer in sorted(TIERED):
            query = parse_query(
                ["a", "b"],
                length=length,
                to=to,
                resample=width,
                reducer=reducer,
                align=align,
                now=end,
            )
            got = await tiered.data(query)
            assert got == await plain.data(query) and got["a"]["x"]
    for reducer in ("first", "last", "median", "std", "sem"):  # not kept in tiers
        query = parse_query(["a"], length=3600, to=end, resample=600, reducer=reducer, now=end)
        assert await tiered.data(query) == await plain.data(query)
    assert tier_reads == []


async def test_late_rows_of_every_kind(project: Path, tier_reads: list[int]) -> None:
    hist = Histogram(1, 0, 1)
    late: list[tuple[Any, float]] = [
        (1.125, TA + 3.5),  # first bucket of every tier
        (True, TA + 3600 + 13.5),  # stored as 1.0
        ("2.5", TA + 7200 + 3.5),  # stored as 2.5
        (np.float64(-0.75), TA + 7200 + 4.5),
        (np.int64(3), TA + 7200 + 5.5),
        (float("inf"), TA + 600 + 1.5),
        (hist, TA + 600 + 2.5),  # JSON text
    ]

    def write() -> None:
        for out in stores(project):
            with out:
                for value, t in late:
                    out.append(value, tag="a", timestamp=t)
                out.append({"a": 0.5, "new": 4.0}, timestamp=TA + 1000.5)  # a new channel
                out.append(1.0, tag="a", timestamp=TA + HOURS * 3600 + 5)  # and on time

    await off_trio(write)
    await assert_tiers_agree(project, tier_reads)
    tiered = await opened(project, "tiered")
    assert "new" in [c["name"] for c in await tiered.channels()]


async def test_update_replaces_a_channel_in_the_tiers(project: Path, tier_reads: list[int]) -> None:
    def write() -> None:
        for out in stores(project):
            with out:
                out.update(3.0, tag="a", timestamp=TA + 100.5)  # in a closed bucket
                out.update(-2.0, tag="b", timestamp=TA + HOURS * 3600 + 30)

    await off_trio(write)
    await assert_tiers_agree(project, tier_reads)
    plain = await opened(project, "plain")
    whole = parse_query(
        ["a", "b"], length=8 * 3600, to=TA + 8 * 3600, resample=3600, reducer="count", now=TA
    )
    counts = await plain.data(whole)
    assert sum(counts["a"]["x"]) == 1 and sum(counts["b"]["x"]) == 1


WRITER = """
import sys
from slowdash_stores import DataStore_SQLite
out = DataStore_SQLite(sys.argv[1], "data")
for i in range(10**7):
    out.append({"a": (i % 97) / 8, "b": -(i % 13) / 4}, timestamp=TA + 2.5 * i)
    if i == 1500:
        print("written", flush=True)
"""


async def test_a_writer_killed_mid_stream(tmp_path: Path, tier_reads: list[int]) -> None:
    url = f"sqlite:///{tmp_path}/tiered"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER).replace("TA", str(TA)))
    proc = subprocess.Popen(  # noqa: ASYNC220 (started, then only read in a thread)
        [sys.executable, str(script), url],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "stores"), "PATH": ""},
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(30):
            line = await off_trio(proc.stdout.readline)
        assert line == "written\n"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with closing(sqlite3.connect(tmp_path / "tiered.db")) as conn:
        (newest,) = conn.execute("SELECT max(timestamp) FROM data").fetchone()
    assert newest >= TA + 2.5 * 1500

    def go_on() -> None:  # another writer continues, and writes some late rows too
        with DataStore_SQLite(url, "data") as out:
            for i in range(300):
                out.append({"a": i / 8, "b": 1.0}, timestamp=newest + 1 + 2.5 * i)
            out.append(0.25, tag="a", timestamp=TA + 1.25)

    await off_trio(go_on)
    src = await opened(tmp_path, "tiered")
    end = newest + 1000
    for width in (60, 600, 3600):
        for reducer in sorted(TIERED):
            query = parse_query(
                ["a", "b"],
                length=end - TA + 3600,
                to=end,
                resample=width,
                reducer=reducer,
                align=1,
                now=end,
            )
            reads = len(tier_reads)
            from_tiers = await src.data(query)
            assert len(tier_reads) == reads + 2
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(_tiers, "tier_for", lambda *args: None)  # the raw rows only
                assert from_tiers == await src.data(query)
            assert len(tier_reads) == reads + 2


def slowpy_table(path: Path, rows: list[tuple[float, str, float]]) -> None:
    """A table in SlowPy's layout, written with the sqlite3 module (no tiers)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS data(timestamp REAL, channel VARCHAR(100), "
            "value REAL, PRIMARY KEY(timestamp, channel))"
        )
        conn.executemany("INSERT INTO data VALUES(?,?,?)", rows)
        conn.commit()


def slowpy_rows(start: int, count: int) -> list[tuple[float, str, float]]:
    return [(TA + 7.5 * i, f"c{i % 3}", (i % 41) / 8) for i in range(start, start + count)]


def slowpy_queries(end: float) -> list[DataQuery]:
    return [
        parse_query(
            ["c0", "c1", "c2"],
            length=length,
            to=end,
            resample=width,
            reducer=reducer,
            align=1,
            now=end,
        )
        for length, width in [(4 * 3600, 600), (3 * 3600 + 60, 3600), (3600, 60)]
        for reducer in sorted(TIERED)
    ]


async def test_build_tiers_on_a_table_written_without_them(
    tmp_path: Path, tier_reads: list[int]
) -> None:
    slowpy_table(tmp_path / "data.db", slowpy_rows(0, 1900))
    src = await opened(tmp_path, "data")
    end = TA + 4 * 3600
    before = [await src.data(q) for q in slowpy_queries(end)]
    assert tier_reads == [] and all(before)
    done = await off_trio(layout.build_tiers, str(tmp_path / "data.db"), "data")
    assert done == {w: float(int((TA + 7.5 * 1899) // w * w)) for w in (60, 600, 3600)}
    assert [await src.data(q) for q in slowpy_queries(end)] == before
    assert len(tier_reads) == len(before) * 3
    # the tier-unaware writer goes on: its new rows come from the raw table
    await off_trio(slowpy_table, tmp_path / "data.db", slowpy_rows(1900, 20))
    tier_reads.clear()
    after = [await src.data(q) for q in slowpy_queries(end)]
    assert after != before and tier_reads
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_tiers, "tier_for", lambda *args: None)
        assert [await src.data(q) for q in slowpy_queries(end)] == after
    with pytest.raises(ValueError, match="whole number of seconds"):
        layout.build_tiers(str(tmp_path / "data.db"), "data", (0,))


async def test_a_tiered_store_taking_over_an_existing_table(
    tmp_path: Path, tier_reads: list[int]
) -> None:
    slowpy_table(tmp_path / "data.db", slowpy_rows(0, 1900))
    src = await opened(tmp_path, "data")
    end = TA + 5 * 3600

    def take_over() -> None:  # slowdash_stores now writes the table SlowPy wrote
        with DataStore_SQLite(f"sqlite:///{tmp_path}/data", "data") as out:
            out.append(1.0, tag="c0", timestamp=TA + 7.5 * 1900)

    await off_trio(take_over)
    assert tier_reads == []
    from_tiers = [await src.data(q) for q in slowpy_queries(end)]
    assert len(tier_reads) == len(from_tiers) * 3  # the tiers the store made answered...
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_tiers, "tier_for", lambda *args: None)
        assert [await src.data(q) for q in slowpy_queries(end)] == from_tiers  # ...right


class IntegerTimes(LongTableFormat):
    """A format of its own (as the seed's quick tour has, with %d and %f): whole seconds,
    values rounded down."""

    schema_numeric = (
        "(timestamp INTEGER, channel TEXT, value REAL, PRIMARY KEY(timestamp, channel))"
    )

    def insert_numeric_data(self, cur: Any, timestamp: float, channel: str, value: float) -> None:
        row = (int(timestamp), channel, float(math.floor(value)))
        cur.execute(f"INSERT INTO {self.table} VALUES(?, ?, ?)", row)


async def test_late_rows_through_a_table_format_of_its_own(
    tmp_path: Path, tier_reads: list[int]
) -> None:
    def write() -> None:
        fmt = IntegerTimes()
        with DataStore_SQLite(f"sqlite:///{tmp_path}/data", "data", table_format=fmt) as out:
            for i in range(720):
                out.append({"a": (i % 29) / 8, "b": 1.0}, timestamp=TA + 10 * i + 0.75)
            out.append(2.5, tag="a", timestamp=TA + 601.5)  # late; stored as TA + 601, 2.0
            out.append(-0.25, tag="b", timestamp=TA + 3599.9)

    await off_trio(write)
    src = await opened(tmp_path, "data")
    end = TA + 7200
    for width in (60, 600, 3600):
        for reducer in sorted(TIERED):
            query = parse_query(
                ["a", "b"], length=7200, to=end, resample=width, reducer=reducer, now=end
            )
            from_tiers = await src.data(query)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(_tiers, "tier_for", lambda *args: None)
                assert from_tiers == await src.data(query)
    assert len(tier_reads) == 3 * 5 * 2


@pytest.mark.parametrize("widths", [(0,), (1.5,), ("60",), (True,), (-60,)])
def test_bad_tier_widths(widths: tuple[Any, ...], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a tier width is a whole number of seconds >= 1"):
        DataStore_SQLite(f"sqlite:///{tmp_path}/x", "data", tiers=widths)


async def test_tiers_built_on_another_time_column_still_list_channels(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t(ts REAL, channel TEXT, value REAL, PRIMARY KEY(ts, channel))")
        conn.executemany(
            "INSERT INTO t VALUES(?,?,?)",
            [(1_700_000_000.0 + i, ch, i / 8) for i in range(7200) for ch in ("a", "b")],
        )
    done = layout.build_tiers(str(path), "t", (60,), time="ts")
    assert done[60] is not None and done[60] % 60 == 0
    source = build_source(
        {"url": f"sqlite:///{path}", "time_series": {"schema": "t[channel]@ts(unix)=value"}},
        project_dir=tmp_path,
    )
    await source.open()
    try:
        assert sorted(c["name"] for c in await source.channels()) == ["a", "b"]
    finally:
        await source.aclose()
