"""A PostgreSQL outage seen by a whole server: its data source and a module writing with
``DataStore_PostgreSQL`` both reach the database through a TCP proxy that the test cuts.

The shared server is never stopped: the proxy (tests/tcp_proxy.py) refuses new connections and
cuts the open ones. Without PostgreSQL (or psycopg) the test skips; with
``SLOWDASH_TRIO_REQUIRE_SERVICES=1`` it fails instead (support.postgres_url).
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from support import MakeProject, postgres_url, serving
from tcp_proxy import Proxy, postgres_proxy, proxied, proxied_url

from slowdash_stores import DataStore_SQLite

CHANNEL = "pgw"  # what the writer records in PostgreSQL
LOCAL = "local"  # what the SQLite source has

WRITER = """
import time

from slowdash_stores import (
    DataStore_PostgreSQL,
    LongTableFormat_DateTime_PostgreSQL,
    StoreConnectionError,
)


class NoKey(LongTableFormat_DateTime_PostgreSQL):
    # no primary key: a row written twice would be there twice, and counted
    schema_numeric = (
        '("timestamp" TIMESTAMP WITH TIME ZONE, channel VARCHAR(100), value DOUBLE PRECISION)'
    )


def _initialize(params):
    global store, acks, t0, seq
    acks, t0, seq = params["acks"], params["t0"], 0
    store = DataStore_PostgreSQL(
        params["url"], params["table"], NoKey(), connect_timeout=2, retry_timeout=0.5
    )


def _loop():
    global seq
    i, seq = seq, seq + 1
    try:
        store.append(float(i), tag="CHANNEL", timestamp=t0 + i * 0.01)
    except StoreConnectionError as exc:
        acks.refused(i, str(exc))
    else:
        acks.ack(i)
    time.sleep(0.005)


def _finalize():
    store.close()
""".replace("CHANNEL", CHANNEL)


class Acks:
    """What the writer module reports from its thread; the test awaits counts of it."""

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.acked: list[int] = []  # append() returned: committed
        self.kept: list[int] = []  # refused, the rows kept queued (to be written later)
        self.dropped: list[int] = []  # refused, the rows not queued (max_pending)
        self.messages: list[str] = []
        self._waiters: list[tuple[Callable[[], bool], trio.Event]] = []

    # from the module's thread
    def ack(self, i: int) -> None:
        self.acked.append(i)
        self._poke()

    def refused(self, i: int, message: str) -> None:
        (self.dropped if "were not queued" in message else self.kept).append(i)
        self.messages.append(message)
        self._poke()

    def _poke(self) -> None:
        try:
            self.token.run_sync_soon(self._check)
        except trio.RunFinishedError:
            pass

    # on the Trio thread
    def _check(self) -> None:
        for waiter in [w for w in self._waiters if w[0]()]:
            self._waiters.remove(waiter)
            waiter[1].set()

    async def until(self, condition: Callable[[], bool]) -> None:
        if condition():
            return
        event = trio.Event()
        self._waiters.append((condition, event))
        await event.wait()


class Table:
    """The writer's table, read and dropped directly (not through the proxy)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.name = f"sdt_{uuid.uuid4().hex[:12]}"
        self.conn = psycopg.connect(url, autocommit=True)

    def values(self) -> list[tuple[int, float]]:
        """``(value, UNIX time)`` of every row the writer wrote, in no particular order."""
        rows = self.conn.execute(
            f'SELECT value, EXTRACT(EPOCH FROM "timestamp") FROM {self.name} WHERE channel = %s',
            (CHANNEL,),
        ).fetchall()
        return [(int(value), float(t)) for value, t in rows]

    def close(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {self.name}")
        self.conn.close()


@pytest.fixture
def pg_table() -> Iterator[tuple[str, Table]]:
    url = postgres_url()
    table = Table(url)
    yield url, table
    table.close()


def fill_local(path: Path, now: float) -> None:
    with DataStore_SQLite(f"sqlite:///{path}", "data") as local:
        for k in range(10):
            local.append(float(k), tag=LOCAL, timestamp=now - 100 + k)


def sources(pg_url: str, port: int, table: str) -> list[dict[str, Any]]:
    """A PostgreSQL source reached through the proxy on ``port``, and an SQLite source."""
    return [
        {
            "url": proxied_url(pg_url, port),
            "connect_timeout": 2,
            "time_series": f"{table}[channel]@timestamp(with time zone)=value",
        },
        {"url": "sqlite:///local", "time_series": "data[channel]@timestamp(unix)=value"},
    ]


def problems(response: httpx.Response) -> str:
    return urllib.parse.unquote(response.headers.get("X-Slowdash-Source-Problems", ""))


def states(config: dict[str, Any]) -> dict[str, str]:
    return {entry["type"]: entry["state"] for entry in config["data_source"]}


async def until_state(client: httpx.AsyncClient, kind: str, state: str) -> None:
    """Poll /api/config until the source has ``state`` (the retry has no event to await);
    bounded by the caller's fail_after."""
    while states((await client.get("/api/config")).json()).get(kind) != state:  # noqa: ASYNC110
        await trio.sleep(0.1)


async def test_a_postgresql_outage_under_a_server(
    tmp_path: Path, make_project: MakeProject, pg_table: tuple[str, Table]
) -> None:
    pg_url, table = pg_table
    now = time.time()
    t0 = float(int(now) - 60)  # the writer's rows start a minute ago (all in the window)
    await trio.to_thread.run_sync(fill_local, tmp_path / "local", now)
    acks = Acks()
    async with postgres_proxy(pg_url) as proxy:
        project = make_project(
            modules={"writer": WRITER},
            parameters={
                "acks": acks,
                "t0": t0,
                "table": table.name,
                "url": proxied(pg_url, proxy.port),
            },
            data_source=sources(pg_url, proxy.port, table.name),
        )
        both = f"/api/data/{CHANNEL},{LOCAL}"
        with trio.fail_after(60):
            async with serving(project) as (_, client):
                # linked: both sources answer
                await acks.until(lambda: len(acks.acked) >= 20)
                reply = await client.get(both)
                assert reply.status_code == 200 and not problems(reply), reply.headers
                assert set(reply.json()) == {CHANNEL, LOCAL}

                cut_at = len(acks.acked)
                await cut(proxy, acks, client, both)
                restored_at = len(acks.acked)
                assert restored_at - cut_at <= 1  # at most the call in flight at the cut

                # the link returns: the writer goes on, the source comes back up
                proxy.refuse = False
                await acks.until(lambda: len(acks.acked) >= restored_at + 20)
                await until_state(client, "PostgreSQL", "up")
                reply = await client.get(f"/api/data/{CHANNEL}", params={"length": 600})
                assert reply.status_code == 200 and not problems(reply), reply.headers
                seen = {round(x) for x in reply.json()[CHANNEL]["x"]}
                assert set(acks.acked[: restored_at + 20]) <= seen
            # the server stopped: the writer's _finalize closed the store
    stored = table.values()
    values = [value for value, _ in stored]
    assert len(values) == len(set(values)), "a row was written twice"
    assert all(round((t - t0) / 0.01) == value for value, t in stored)
    assert acks.kept and not acks.dropped
    # every acknowledged row is there, and the rows the outage kept queued; nothing else
    assert set(values) == set(acks.acked) | set(acks.kept)


async def cut(proxy: Proxy, acks: Acks, client: httpx.AsyncClient, both: str) -> None:
    """Cut the link and check what the server says meanwhile."""
    proxy.refuse = True
    proxy.cut_all()
    refused = len(acks.kept)
    await acks.until(lambda: len(acks.kept) >= refused + 2)  # the writer met the outage
    assert "kept queued" in acks.messages[-1]

    # the first request may be the one that finds the link lost; then the source is down
    for _ in range(2):
        with trio.fail_after(15):
            reply = await client.get(both)
        assert reply.status_code == 200
        assert set(reply.json()) == {LOCAL}  # SQLite still answers
        assert reply.json()[LOCAL]["x"] == [float(k) for k in range(10)]
        assert f"PostgreSQL postgresql://127.0.0.1:{proxy.port}/" in problems(reply)
    assert "down:" in problems(reply)
    config = (await client.get("/api/config")).json()
    assert states(config) == {"PostgreSQL": "down", "SQLite": "up"}
    down = next(s for s in config["data_source"] if s["type"] == "PostgreSQL")
    assert "cannot connect" in down["error"] or "connection lost" in down["error"]
    assert (await client.get("/api/ping")).json() == ["pong"]
    assert proxy.refused > 0


async def test_a_channel_asked_alone_while_its_source_is_down(
    tmp_path: Path, make_project: MakeProject, pg_table: tuple[str, Table]
) -> None:
    pg_url, table = pg_table
    await trio.to_thread.run_sync(fill_local, tmp_path / "local", time.time())
    async with postgres_proxy(pg_url) as proxy:
        proxy.refuse = True  # down from the start
        project = make_project(data_source=sources(pg_url, proxy.port, table.name))
        with trio.fail_after(30):
            async with serving(project) as (_, client):
                reply = await client.get(f"/api/data/{LOCAL}")
                assert reply.status_code == 200 and set(reply.json()) == {LOCAL}
                assert "PostgreSQL" in problems(reply)  # the SQLite answer says it, too
                # not a 404 "unknown channel": the answer says the source is down
                reply = await client.get(f"/api/data/{CHANNEL}")
                assert reply.status_code == 200 and reply.json() == {}, reply.text
                assert "down:" in problems(reply)
