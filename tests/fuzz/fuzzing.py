"""What the fuzz tests share: hypothesis settings, a project with something behind every
route, and running a hypothesis test beside the Trio loop that serves.

Hypothesis drives sync test functions; the server runs on the test's Trio loop. So a fuzz
test runs its ``@given`` function in a worker thread (`off_trio`), and each example makes
its requests on the loop with `on_trio` (``trio.from_thread.run``), through the same client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio
from hypothesis import HealthCheck, settings
from support import build_project, serving, write

from slowdash_stores import DataStore_SQLite
from slowdash_trio._project import Project
from slowdash_trio._server import Server

R = TypeVar("R")

REQUEST_BOUND = 20.0  # seconds any one request may take before the test fails


def fuzz_settings(max_examples: int) -> settings:
    """Modest example counts, no deadline (requests go through a real server), no example
    database (nothing is written into the working tree)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


async def off_trio(test: Callable[[], None]) -> None:
    """Run a hypothesis test in a worker thread while this Trio loop keeps serving."""
    await trio.to_thread.run_sync(test)


def on_trio(fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
    """From the hypothesis thread: ``await fn(*args, **kwargs)`` on the Trio loop, bounded."""

    async def bounded() -> R:
        with trio.fail_after(REQUEST_BOUND):
            return await fn(*args, **kwargs)

    return trio.from_thread.run(bounded)


# ---------------------------------------------------------------------------------------------
# a project with something behind every route

T0 = 1_700_000_000  # the recorded data lie at T0 ... T0 + 59
RECORDED = ("rec_a", "rec_b")
LONG = "data[channel]@timestamp(unix)=value"

MODULE = """
from slowdash_trio.webapi import WebApi

COMMANDS = []
webapi = WebApi()

@webapi.get("/hello/{name}")
def hello(name: str, loud: bool = False, times: int = 1):
    return {"hello": name.upper() if loud else name, "times": times}

def _get_webapi():
    return webapi

def _get_channels():
    return [{"name": "mod_value", "type": "numeric"}, {"name": "mod_tree", "type": "tree"}]

def _get_data(channel):
    if channel == "mod_value":
        return 42.0
    if channel == "mod_tree":
        return {"tree": {"state": "ok"}}
    return None

def _process_command(doc):
    if "set_mod" in doc:
        COMMANDS.append(doc["set_mod"])
        return True
    return None
"""

TASK = """
STATE = {"V0": 0.0, "calls": 0}

def set_V0(V0: float, ramping: float = 1.0, on: bool = True):
    STATE["V0"] = V0
    STATE["calls"] += 1
    return V0

async def get_state():
    return dict(STATE)

def echo(text: str = ""):
    return text
"""

KEPT_FILES = {
    "slowplot-kept.json": b'{"meta": {"title": "kept"}, "panels": []}',
    "slowdash-kept.yaml": b"meta:\n  title: kept\npanels: []\n",
    "html-kept.html": b"<p>kept</p>",
}


def _record(directory: Path) -> None:
    with DataStore_SQLite(f"sqlite:///{directory}/data", "data") as out:
        for i in range(60):
            out.append({"rec_a": i / 4, "rec_b": -i}, timestamp=T0 + i)


async def fuzz_project(directory: Path) -> Project:
    """A user module (channels, commands, its own web API route), a task with functions, an
    SQLite data source with data recorded at `T0`, and files in ``config/``."""
    write(directory / "config" / "slowtask-test.py", TASK)
    for name, body in KEPT_FILES.items():
        (directory / "config" / name).write_bytes(body)
    await trio.to_thread.run_sync(_record, directory)
    return build_project(
        directory,
        {"mod": MODULE},
        task=[{"name": "test", "auto_load": True}],
        data_source=[{"url": "sqlite:///data", "time_series": {"schema": LONG}}],
    )


def recorded_query() -> dict[str, float]:
    """The window that holds every recorded point."""
    return {"to": T0 + 100, "length": 200}


def kept_files_unchanged(directory: Path) -> None:
    for name, body in KEPT_FILES.items():
        assert (directory / "config" / name).read_bytes() == body, name


@asynccontextmanager
async def fuzzed_server(directory: Path) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    """The fuzz project served; on leaving, the server must still answer, and the recorded
    data and config files must be as they were."""
    project = await fuzz_project(directory)
    async with serving(project) as (server, client):
        server.tasks.poll_wait = 0.05  # GET /control/task?since=BIG is a long poll
        before = await client.get(f"/api/data/{','.join(RECORDED)}", params=recorded_query())
        assert before.status_code == 200 and len(before.json()["rec_a"]["x"]) == 60
        yield server, client
        with trio.fail_after(20):
            assert (await client.get("/api/ping")).json() == ["pong"]
            after = await client.get(f"/api/data/{','.join(RECORDED)}", params=recorded_query())
        assert after.json() == before.json()
        kept_files_unchanged(directory)
