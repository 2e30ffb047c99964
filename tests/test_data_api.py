"""/api/channels, /api/data and /api/config with an SQLite data source and a user module, over
HTTP; a source that is down, bad parameters, injection attempts, clients that leave; the
command line's query mode and projects with bad data_source entries."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from support import build_project, serving, write

from slowdash_stores import DataStore_SQLite
from slowdash_trio._errors import ProjectError
from slowdash_trio._project import load_project
from slowdash_trio._server import Server
from slowdash_trio._sources._sqlite import SQLiteSource
from slowdash_trio._sources._sqlpool import SQLitePool

LONG = "data[channel]@timestamp(unix)=value"
SLOW_VIEW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
    "SELECT count(*) FROM c"
)
MODULE = """
APP = None
SEEN = {}

def _setup(app):
    global APP
    APP = app

async def _initialize(params):
    # the data sources are open before the modules start
    reply = await APP.request_data("a", length=3600)
    SEEN["a"] = reply.get("a", {}).get("x", [None])[-1]

def _get_channels():
    return [{"name": "m1", "type": "numeric"}, {"name": "seen"}]

def _get_data(channel):
    if channel == "m1":
        return 42
    if channel == "seen":
        return SEEN.get("a")
    return None
"""


def source_entry(**extra: Any) -> dict[str, Any]:
    return {
        "url": "sqlite:///data",
        "time_series": {"schema": LONG},
        "view": [{"name": "slow", "sql": SLOW_VIEW}],
        **extra,
    }


def fill(project: Path, now: float) -> None:
    with DataStore_SQLite(f"sqlite:///{project}/data", "data") as out:
        for i in range(60):
            out.append({"a": i / 4, "b": 1.0}, timestamp=now - 60 + i)


def problems(response: httpx.Response) -> str | None:
    header = response.headers.get("x-slowdash-source-problems")
    return None if header is None else urllib.parse.unquote(header)


@asynccontextmanager
async def served(project: Path, **entry: Any) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    async with serving(
        build_project(project, {"mod": MODULE}, data_source=[source_entry(**entry)])
    ) as (server, client):
        yield server, client


@pytest.fixture
async def filled(tmp_path: Path) -> Path:
    await trio.to_thread.run_sync(fill, tmp_path, time.time())
    return tmp_path


async def test_channels_and_data_from_modules_and_sources(filled: Path) -> None:
    async with served(filled) as (_, client):
        channels = await client.get("/api/channels")
        assert channels.status_code == 200 and problems(channels) is None
        assert channels.json() == [
            {"name": "m1", "type": "numeric", "current": True},
            {"name": "seen", "current": True},
            {"name": "a"},
            {"name": "b"},
            {"name": "slow", "type": "table"},
        ]
        before = time.time()
        data = await client.get("/api/data/m1,a,seen", params={"length": 30})
        assert data.status_code == 200 and problems(data) is None
        reply = data.json()
        assert set(reply) == {"m1", "a", "seen"}
        assert reply["m1"]["x"] == 42 and reply["m1"]["length"] == 30
        assert before - 1 <= reply["m1"]["start"] + reply["m1"]["t"] <= time.time() + 1
        assert reply["a"]["x"] == [i / 4 for i in range(30, 60)][-len(reply["a"]["x"]) :]
        assert 29 <= len(reply["a"]["x"]) <= 30
        assert reply["seen"]["x"] == 59 / 4  # _initialize read the source
        mean = (await client.get("/api/data/a?length=60&resample=20&reducer=mean&align=1")).json()
        assert len(mean["a"]["x"]) in (3, 4) and mean["a"]["start"] % 20 == 0
        config = (await client.get("/api/config")).json()
        assert config["data_source"] == [
            {
                "type": "SQLite",
                "name": "SQLite data.db",
                "state": "up",
                "since": config["data_source"][0]["since"],
            }
        ]


async def test_a_missing_file_is_a_source_down_then_up(tmp_path: Path) -> None:
    async with served(tmp_path) as (_, client):
        (status,) = (await client.get("/api/config")).json()["data_source"]
        assert status["state"] == "down" and "no database file" in status["error"]
        data = await client.get("/api/data/m1,a")
        assert data.status_code == 200
        assert set(data.json()) == {"m1"}
        assert "SQLite data.db: down: no database file" in (problems(data) or "")
        assert data.headers["x-slowdash-unknown-channels"] == "a"
        channels = await client.get("/api/channels")
        assert [c["name"] for c in channels.json()] == ["m1", "seen"]
        assert "down" in (problems(channels) or "")
        await trio.to_thread.run_sync(fill, tmp_path, time.time())
        with trio.fail_after(10):  # retried after 0.5, 1, 2, 4 s, then every 5 s
            while True:
                config = (await client.get("/api/config")).json()
                if config["data_source"][0]["state"] == "up":
                    break
                await trio.sleep(0.02)
        data = await client.get("/api/data/m1,a")
        assert set(data.json()) == {"m1", "a"} and problems(data) is None


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"length": -1}, "'length': must be positive"),
        ({"length": 1e30}, "'length': must be positive and at most"),
        ({"length": "abc"}, "'length': bad value 'abc'"),
        ({"resample": 1e-9, "length": 1e6}, "buckets; at most 100000"),
        ({"reducer": "bogus"}, "unknown reducer 'bogus'"),
        ({"reducer": "last';DROP TABLE data;--"}, "unknown reducer"),
        ({"envelope": 7}, "'envelope': 0, 1 or 2, not 7"),
        ({"prior_data": 5}, "'prior_data': 0, 1 or 2"),
        ({"align": 3}, "'align': 0 or 1"),
        ({"to": "nan"}, "'to': bad value 'nan'"),
        ({"length": "1;DROP TABLE data"}, "'length': bad value"),
        ({"filler": "zero"}, "'filler': only 'fillna'"),
    ],
)
async def test_bad_parameters_are_400(filled: Path, params: dict[str, Any], fragment: str) -> None:
    async with served(filled) as (_, client):
        response = await client.get("/api/data/a,m1", params=params)
        assert response.status_code == 400
        assert fragment in response.json()["message"]
        assert (await client.get("/api/data/a")).json()["a"]["x"]  # nothing was disturbed


async def test_negative_resample_is_raw(filled: Path) -> None:
    async with served(filled) as (_, client):
        raw = (await client.get("/api/data/a?resample=-5&length=10")).json()
        assert isinstance(raw["a"]["start"], int) and len(raw["a"]["t"]) in (9, 10, 11)


async def test_a_subnormal_resample_is_400(filled: Path) -> None:
    async with served(filled) as (_, client):
        assert (await client.get("/api/data/a?resample=5e-324")).status_code == 400


async def test_injection_through_channel_names(filled: Path) -> None:
    async with served(filled) as (_, client):
        attack = "/api/data/a'%3B%20DROP%20TABLE%20data%3B--"
        response = await client.get(attack)
        assert response.status_code == 400
        assert response.json()["message"].startswith(
            'bad channel name "a\'; DROP TABLE data;--": channel names are ASCII letters'
        )
        mixed = await client.get("/api/data/a,b%22%20OR%201%3D1")
        assert mixed.status_code == 200 and set(mixed.json()) == {"a"}
        assert urllib.parse.unquote(mixed.headers["x-slowdash-unknown-channels"]) == 'b" OR 1=1'
    with closing(sqlite3.connect(filled / "data.db")) as conn:
        assert conn.execute("SELECT count(*) FROM data").fetchone() == (120,)


async def test_commas_and_slashes_in_the_channel_list(filled: Path) -> None:
    async with served(filled) as (_, client):
        both = await client.get("/api/data/a%2Cb")  # an encoded comma still separates
        assert set(both.json()) == {"a", "b"}
        assert set((await client.get("/api/data/a,,b,")).json()) == {"a", "b"}
        slash = await client.get("/api/data/a/b")
        assert slash.status_code == 404 and "nothing answers" in slash.json()["message"]
        encoded = await client.get("/api/data/a%2Fb")
        assert encoded.status_code in (400, 404) and encoded.json()["message"]
        assert (await client.get("/api/data/,")).status_code == 400


async def test_a_huge_raw_request_asks_for_resampling(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = build_project(
        filled, {"mod": MODULE}, data_source=[source_entry()], system={"max_points": 50}
    )
    async with serving(project) as (_, client):
        for params in ({"length": 3600}, {"length": 3600, "to": time.time() - 1}):
            response = await client.get("/api/data/a", params=params)
            assert response.status_code == 400
            message = response.json()["message"]
            assert "system.max_points" in message and "resample=SECONDS" in message
        resampled = await client.get("/api/data/a", params={"length": 3600, "resample": 60})
        assert resampled.status_code == 200 and resampled.json()["a"]["x"]


async def test_clients_that_leave_do_not_leave_the_server_busy(
    filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    connect = SQLitePool._connect

    def counting(self: SQLitePool) -> Any:
        opened.append(connect(self))
        return opened[-1]

    monkeypatch.setattr(SQLitePool, "_connect", counting)
    async with served(filled) as (server, client):
        source = server.sources.states[0].source
        assert isinstance(source, SQLiteSource)

        async def leave_early() -> None:
            async with httpx.AsyncClient(base_url=str(client.base_url)) as own:
                with trio.move_on_after(0.3):
                    await own.get("/api/data/slow")

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(source.pool.size + 2):
                    nursery.start_soon(leave_early)
            # the statements were interrupted: every connection is back in the pool, or
            # closed (the pool keeps at most its size)
            while any(_busy(conn, source.pool._idle) for conn in opened):  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert len(opened) > 1
        with trio.fail_after(2):
            assert (await client.get("/api/ping")).json() == ["pong"]
            assert (await client.get("/api/data/a?length=10")).json()["a"]["x"]


def _busy(conn: Any, idle: list[Any]) -> bool:
    if any(conn is other for other in idle):
        return False
    try:
        conn.total_changes  # noqa: B018 (raises once the connection is closed)
    except sqlite3.ProgrammingError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# command line


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slowdash_trio", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLOWDASH_PROJECT": ""},
        check=False,
    )


PROJECT = """
slowdash_project:
  name: Stored
  data_source:
    - url: sqlite:///data
      parameters:
        time_series:
          schema: data[channel]@timestamp(unix)=value
"""


def test_query_mode_answers_from_an_sqlite_source(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project / "SlowdashProject.yaml", PROJECT)
    with DataStore_SQLite(f"sqlite:///{project}/data", "data") as out:
        for i in range(5):
            out.append(i / 2, tag="ch", timestamp=1_700_000_000 + i)
    done = cli("data/ch?length=60&to=1700000010", "--project-dir", str(project), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "ch": {
            "start": 1_699_999_950,
            "length": 60,
            "t": [50.0, 51.0, 52.0, 53.0, 54.0],
            "x": [0.0, 0.5, 1.0, 1.5, 2.0],
        }
    }


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("schema: data[channel@timestamp(unix)=value", "schema 'data[channel@timestamp"),
        ("schema: data[channel]@timestamp(bogus)=value", "unknown time type 'bogus'"),
        ("schema: '[channel]@timestamp=value'", "names no table"),
        ("schema: 5", "needs 'schema: TABLE[TAG]@TIME=FIELDS'"),
        ("tags: [a]", "tags: a mapping"),
    ],
)
def test_bad_data_source_entries_name_file_line_and_reason(
    tmp_path: Path, entry: str, fragment: str
) -> None:
    yaml = PROJECT.replace("schema: data[channel]@timestamp(unix)=value", entry)
    if entry.startswith("tags"):
        yaml = PROJECT + "          " + entry + "\n"
    write(tmp_path / "SlowdashProject.yaml", yaml)
    project = load_project(tmp_path)
    with pytest.raises(ProjectError) as info:
        Server(project)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'SlowdashProject.yaml'}:4: time_series[0]")
    assert fragment in message


def test_a_bad_schema_refuses_the_project(tmp_path: Path) -> None:
    write(tmp_path / "SlowdashProject.yaml", PROJECT.replace("channel]@", "channel@"))
    done = cli("channels", cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path / 'SlowdashProject.yaml'}:4: time_series[0]: schema " in done.stderr
    assert "expected ']', found '@'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_data_source_without_type_or_url_refuses_the_project(tmp_path: Path) -> None:
    write(tmp_path / "SlowdashProject.yaml", "slowdash_project:\n  data_source:\n    - file: x\n")
    done = cli("channels", cwd=tmp_path)
    assert done.returncode == 2
    assert "SlowdashProject.yaml:3" in done.stderr and "'url' or 'type'" in done.stderr


RECORDING_MODULE = """
def _get_channels():
    return [{"name": "a"}]

def _get_data(channel):
    return 99.0 if channel == "a" else None
"""


async def test_a_channel_recorded_and_current_answers_its_series_and_then_its_value(
    filled: Path,
) -> None:
    """A task or module that records its own value: the recorded series, not only the
    current value, with the current value at its end."""
    project = build_project(filled, {"rec": RECORDING_MODULE}, data_source=[source_entry()])
    async with serving(project) as (_, client):
        before = time.time()
        reply = (await client.get("/api/data/a", params={"length": 30})).json()["a"]
        assert reply["x"][:-1] == [i / 4 for i in range(30, 60)][-(len(reply["x"]) - 1) :]
        assert len(reply["x"]) >= 30
        assert reply["x"][-1] == 99.0
        assert before - 1 <= reply["start"] + reply["t"][-1] <= time.time() + 1
