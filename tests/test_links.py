"""Device links: which module or task owns a link, a stalled device, and links shown through
the HTTP API while a fake instrument on 127.0.0.1 drops, stalls and comes back."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from support import build_project, free_port, serving, write

from slowdash_controls import (
    DeviceConnectionError,
    DeviceTimeout,
    LinkState,
    StopScope,
    stop_scope,
)
from slowdash_controls._link import Link, links_of, set_link_hook
from slowdash_controls.testing import open_fake_instrument

# ---------------------------------------------------------------------------------------------
# the control library alone (fake instrument on memory streams)


async def test_a_link_belongs_to_the_scope_that_made_or_connected_it() -> None:
    task = StopScope("task t")
    changed: list[Link[Any]] = []
    previous = set_link_hook(changed.append)
    try:
        async with open_fake_instrument(listen=False) as instrument:
            shared = instrument.ethernet()  # made in the process scope: nobody's yet
            assert changed == [] and links_of(task) == []
            with stop_scope(task):
                own = instrument.ethernet()
            # a thread node's scope counts as the task it runs in
            with stop_scope(StopScope("thread", parent=task, kind="thread")):
                threaded = instrument.ethernet()
            assert links_of(task) == [own.link, threaded.link]
            # a node made elsewhere belongs to the code that connects it
            with stop_scope(task):
                assert await shared.scpi().command("*IDN").aio_get() == instrument.adapter.idn
            assert links_of(task) == [shared.link, own.link, threaded.link]
            assert changed == [shared.link, shared.link]  # connecting, up
            assert links_of(StopScope("task u")) == []
            del own, threaded
            gc.collect()
            assert links_of(task) == [shared.link]  # garbage is forgotten
    finally:
        set_link_hook(previous)


async def test_a_link_down_stays_down_while_it_tries_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task = StopScope("task t")
    shown: list[tuple[str, str | None]] = []
    previous = set_link_hook(lambda link: shown.append((link.status.state, link.status.last_error)))
    try:
        async with open_fake_instrument(listen=False) as instrument:
            instrument.refuse_connections = True
            with stop_scope(task):
                v0 = instrument.ethernet(backoff_initial=1, backoff_max=4).scpi().command("V0")
            for attempt in range(4):
                with pytest.raises(DeviceConnectionError):
                    await v0.aio_get()
                if attempt == 0:
                    down_since = links_of(task)[0].status.since
                await trio.sleep(5)  # past the back-off: the next get tries again
            status = links_of(task)[0].status
            assert (status.state, status.failures, status.since) == ("down", 4, down_since)
            # one change for the dashboard: connecting, then down; not one per attempt
            assert [state for state, _ in shown] == ["connecting", "down"]
            assert "refuses connections" in (shown[-1][1] or "")
            instrument.refuse_connections = False
            assert await v0.aio_get() == "0.0"
            assert links_of(task)[0].status.state is LinkState.UP
            assert [state for state, _ in shown] == ["connecting", "down", "up"]
    finally:
        set_link_hook(previous)


async def test_a_device_that_stops_answering_shows_as_stalled() -> None:
    task = StopScope("task t")
    async with open_fake_instrument(listen=False) as instrument:
        with stop_scope(task):
            v0 = instrument.ethernet(timeout=0.2).scpi().command("MEAS:V0")
        link = links_of(task)[0]
        assert await v0.aio_get() == "0.0"
        assert link.status.state is LinkState.UP
        instrument.never_reply = True
        with trio.fail_after(5):
            for _ in range(2):  # the second query reconnects (the first left a reply unread)
                try:
                    await v0.aio_get()
                except DeviceTimeout:
                    pass
                else:
                    raise AssertionError("a silent device answered")
        status = link.status
        assert status.state is LinkState.STALLED
        assert link.state is LinkState.UP  # connected all the same
        assert status.last_error == "MEAS:V0?: no answer within 0.2 s"
        assert status.timeouts == 2
        instrument.never_reply = False
        instrument.adapter.values[0] = 3.5
        assert await v0.aio_get() == "3.5"
        assert link.status.state is LinkState.UP and link.status.last_error is None


# ---------------------------------------------------------------------------------------------
# a task reading a fake instrument, seen through the HTTP API of a real server

READER = """
import time
from slowdash_controls import ControlException, ValueNode
ctrl = ControlSystem()
device = ctrl.ethernet(
    "127.0.0.1", {port}, timeout=0.5, connect_timeout=2, backoff_initial=0.05, backoff_max=0.2
)
V0 = device.scpi().command("MEAS:V0")
reading = ValueNode(-1.0)
failures = []

def _export():
    return [("V0", reading)]

def _loop():
    started = time.monotonic()
    try:
        reading.set(float(V0.get()))
    except ControlException as exc:
        failures.append((type(exc).__name__, time.monotonic() - started))
    ControlSystem().sleep(0.02)

def last_failure():
    return failures[-1] if failures else None
"""


def reader_project(tmp_path: Path, port: int) -> Any:
    write(tmp_path / "config/slowtask-hv.py", READER.replace("{port}", str(port)))
    return build_project(tmp_path, task=[{"name": "hv", "auto_load": True}])


async def hv_until(client: httpx.AsyncClient, check: Callable[[dict[str, Any]], bool]) -> Any:
    """Follow the task list's long poll (a link's change moves it) until the task's only
    link passes ``check``; returns that link."""
    since = 0
    with trio.fail_after(20):
        while True:
            doc = (await client.get("/api/control/task", params={"since": since})).json()
            task = next(t for t in doc["tasks"] if t["name"] == "hv")
            assert task["state"] == "running", task  # the task never hangs or dies
            if len(task["links"]) == 1 and check(task["links"][0]):
                return task["links"][0]
            since = doc["revision"]


async def reading(client: httpx.AsyncClient) -> Any:
    reply = await client.get("/api/data/hv.V0", params={"length": 60})
    return reply.json()["hv.V0"]["x"] if reply.status_code == 200 else None


async def reading_becomes(client: httpx.AsyncClient, value: float) -> None:
    with trio.fail_after(10):
        while await reading(client) != value:  # noqa: ASYNC110 (no event for values; a deadline)
            await trio.sleep(0.02)


async def failure_of(client: httpx.AsyncClient, kind: str) -> float:
    """How long the task's last failed read took, once it failed with ``kind`` (the link
    shows a failure a moment before the task's code sees it)."""
    with trio.fail_after(10):
        while True:
            reply = await client.post("/api/control", json={"await hv.last_failure()": True})
            failure = reply.json()["result"]
            if failure is not None and failure[0] == kind:
                return float(failure[1])
            await trio.sleep(0.02)


async def test_a_dropped_device_shows_as_a_down_link_and_values_flow_again_when_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    with trio.fail_after(30):
        await drop_and_return(tmp_path, port, address)


async def drop_and_return(tmp_path: Path, port: int, address: str) -> None:
    async with serving(reader_project(tmp_path, port)) as (server, client):
        link = await hv_until(client, lambda link: link["state"] == "down")
        assert link["address"] == address
        assert f"connect to {address} failed" in link["last_error"]  # nothing listens yet
        async with open_fake_instrument(port=port) as instrument:
            instrument.adapter.values[0] = 1.25
            await hv_until(client, lambda link: link["state"] == "up")
            await reading_becomes(client, 1.25)
        # the instrument is gone (its connections closed, its port shut): the connection
        # breaks, and reconnecting fails
        link = await hv_until(client, lambda link: link["state"] == "down" and link["failures"])
        assert f"connect to {address} failed" in link["last_error"] and link["since"] > 0
        # ... also in /api/config, and the task still answers at once
        config = (await client.get("/api/config")).json()
        assert config["task_module"]["hv"]["links"][0]["address"] == address
        await failure_of(client, "DeviceConnectionError")
        async with open_fake_instrument(port=port) as instrument:
            instrument.adapter.values[0] = 2.5
            link = await hv_until(client, lambda link: link["state"] == "up")
            assert link["last_error"] is None
            await reading_becomes(client, 2.5)
        await server.tasks.tasks["hv"].stop()
    assert server.tasks.tasks["hv"].status()["links"] == []  # a stopped task shows none


async def test_a_stalled_device_times_out_shows_in_the_link_and_nothing_hangs(
    tmp_path: Path,
) -> None:
    port = free_port()
    with trio.fail_after(30):
        async with open_fake_instrument(port=port) as instrument:
            instrument.adapter.values[0] = 4.0
            async with serving(reader_project(tmp_path, port)) as (_server, client):
                await reading_becomes(client, 4.0)
                instrument.never_reply = True  # connected, listening, silent
                link = await hv_until(client, lambda link: link["state"] == "stalled")
                assert link["last_error"] == "MEAS:V0?: no answer within 0.5 s"
                seconds = await failure_of(client, "DeviceTimeout")
                assert 0.5 <= seconds < 5  # the node's timeout, not for ever
                instrument.adapter.values[0] = 5.0
                instrument.never_reply = False
                await hv_until(client, lambda link: link["state"] == "up")
                await reading_becomes(client, 5.0)


MODULE_READER = """
from slowdash_controls import ControlSystem, ControlException
device = ControlSystem().ethernet("127.0.0.1", {port}, timeout=0.5, backoff_max=0.2)
V0 = device.scpi().command("V0")
def _loop():
    try:
        V0.get()
    except ControlException:
        ControlSystem().sleep(0.02)
"""


async def test_a_user_module_shows_its_links_in_the_config(tmp_path: Path) -> None:
    port = free_port()
    write(tmp_path / "reader.py", MODULE_READER.replace("{port}", str(port)))
    project = build_project(tmp_path, module=[{"file": "reader.py"}])
    async with serving(project) as (_server, client):
        with trio.fail_after(10):
            while True:  # module states have no long poll: poll, bounded
                status = (await client.get("/api/config")).json()["user_module"]["reader"]
                if status["links"] and status["links"][0]["state"] == "down":
                    break
                await trio.sleep(0.02)
    assert status["state"] == "running"
    link = status["links"][0]
    assert link["address"] == f"127.0.0.1:{port}"
    assert "failed" in link["last_error"]  # refused
    assert set(link) >= {"address", "state", "since", "last_error", "retry_in"}
