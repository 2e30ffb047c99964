"""The supervision policy: ``restart:`` in the project file, modules and tasks that crash
restarted with a capped back-off until the policy's limit, stops during the back-off, and
crashes left alone without a policy."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from support import MakeProject, build_project, running, serving, until, write

from slowdash_trio._errors import ProjectError
from slowdash_trio._project import load_project
from slowdash_trio._server import Server
from slowdash_trio._usermodule import ModuleState, UserModule
from slowdash_trio.webapi import Request

# ---------------------------------------------------------------------------------------------
# the configuration


@pytest.mark.parametrize(
    ("restart", "reason", "key"),
    [
        ("always", "'always' is not a restart policy", "restart"),
        ("yes", "must be 'no', 'on-failure', or a mapping", "restart"),
        ("[on-failure]", "must be 'no', 'on-failure', or a mapping", "restart"),
        ("{policy: sometimes}", "'sometimes' is not a restart policy", "restart.policy"),
        ("{max_restarts: -1}", "greater than or equal to 0", "restart.max_restarts"),
        ("{max_restarts: 2.5}", "valid integer", "restart.max_restarts"),
        ("{max_restarts: yes}", "True is not a number", "restart.max_restarts"),
        ("{window: 0}", "greater than 0", "restart.window"),
        ("{delay: soon}", "valid number", "restart.delay"),
        ("{delay: .inf}", "finite number", "restart.delay"),
        ("{delay: 10, max_delay: 1}", "max_delay (1) is below delay (10)", "restart"),
    ],
)
@pytest.mark.parametrize(("section", "entry"), [("module", "file: m.py"), ("task", "name: t")])
def test_bad_restart_values_are_refused_with_their_place(
    tmp_path: Path, section: str, entry: str, restart: str, reason: str, key: str
) -> None:
    write(
        tmp_path / "SlowdashProject.yaml",
        f"slowdash_project:\n  {section}:\n    - {entry}\n      restart: {restart}\n",
    )
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path)
    error = info.value
    assert error.file == tmp_path / "SlowdashProject.yaml"
    assert error.line == 4
    assert error.key == f"slowdash_project.{section}[0].{key}"
    assert reason in error.reason


def test_restart_short_and_long_forms(tmp_path: Path) -> None:
    write(
        tmp_path / "SlowdashProject.yaml",
        """
        slowdash_project:
          module:
            - file: a.py
            - file: b.py
              restart: on-failure
            - file: c.py
              restart: no
          task:
            - name: hv
              restart:
                max_restarts: 3
                window: 60
                delay: 0.5
                max_delay: 4
                retries: 9
        """,
    )
    project = load_project(tmp_path)
    a, b, c = project.config.module
    assert not a.restart.enabled and not c.restart.enabled  # the default, and YAML's `no`
    assert b.restart.enabled
    assert (b.restart.max_restarts, b.restart.window, b.restart.delay, b.restart.max_delay) == (
        5,
        600,
        1,
        60,
    )
    hv = project.config.task[0].restart
    assert hv.enabled  # the long form means on-failure unless it says otherwise
    assert (hv.max_restarts, hv.window, hv.delay, hv.max_delay) == (3, 60, 0.5, 4)
    assert any(":15: " in w and "unknown key 'retries'" in w for w in project.warnings)


# ---------------------------------------------------------------------------------------------
# user modules

CRASHING = """
import time
calls = finals = None
def _initialize(params):
    global calls, finals
    calls, finals = params["calls"], params["finals"]
def _loop():
    calls.append(time.monotonic())
    raise RuntimeError(f"crash number {len(calls)}")
def _finalize():
    finals.append(len(calls))
"""

STEADY = """
import time
count = None
def _initialize(params):
    global count
    count = params["count"]
def _loop():
    count.append(1)
    time.sleep(0.005)
"""


def module(server: Server, name: str) -> UserModule:
    """The module's current instance (a restart replaces it in the list)."""
    return next(m for m in server.modules if m.name == name)


async def test_a_crashing_loop_is_restarted_with_growing_capped_back_off_then_left_in_error(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []
    finals: list[int] = []
    count: list[int] = []
    policy = {"max_restarts": 4, "window": 60, "delay": 0.05, "max_delay": 0.15}
    project = make_project(
        {"crashy": CRASHING, "steady": STEADY},
        entries={
            "crashy": {"restart": policy, "parameters": {"calls": calls, "finals": finals}},
            "steady": {"parameters": {"count": count}},
        },
    )
    caplog.set_level(logging.WARNING, logger="slowdash_trio.module")
    async with running(project) as server:
        first = module(server, "crashy")
        await until(lambda: module(server, "crashy").status.to_json()["restart"]["gave_up"])
        crashy = module(server, "crashy")
        steady_count = len(count)
        assert crashy is not first  # each restart is a fresh instance: the file loaded afresh
        # the module that does not crash ran all along
        assert module(server, "steady").status.state == ModuleState.RUNNING
        await until(lambda: len(count) > steady_count)
    assert len(calls) == 5  # the first run and four restarts; none after the limit
    assert finals == [1, 2, 3, 4, 5]  # every crashed instance was finalized
    delays = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"crashy: crashed in _loop; restart in ([0-9.]+) s", r.getMessage()))
    ]
    assert delays == [0.05, 0.1, 0.15, 0.15]  # doubling, capped at max_delay
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert all(gap >= delay - 0.005 for gap, delay in zip(gaps, delays, strict=True)), gaps
    status = crashy.status.to_json()
    assert status["state"] == "error"
    assert status["error"]["callback"] == "_loop"
    assert "RuntimeError: crash number 5" in status["error"]["message"]
    assert "crash number" in status["error"]["traceback"]
    assert status["restart"]["gave_up"] is True
    assert (status["restart"]["restarts"], status["restart"]["total"]) == (4, 4)
    assert status["restart"]["next_attempt"] is None
    assert module(server, "steady").status.error is None


async def test_without_restart_a_crashed_loop_leaves_state_error_and_is_not_called_again(
    make_project: MakeProject,
) -> None:
    calls: list[float] = []
    count: list[int] = []
    crashing = CRASHING + "def _get_data(channel):\n    return len(calls)\n"
    project = make_project(
        {"crashy": crashing, "steady": STEADY},
        entries={
            "crashy": {"parameters": {"calls": calls, "finals": []}},
            "steady": {"parameters": {"count": count}},
        },
    )
    async with running(project) as server:
        crashy = module(server, "crashy")
        await until(lambda: crashy.status.error is not None)
        # while the other module loops a hundred times more, nothing restarts this one
        seen = len(count)
        await until(lambda: len(count) > seen + 100)
        assert module(server, "crashy") is crashy
        assert len(calls) == 1
        # left in state error; as in the original, requests are still served
        assert crashy.status.state == ModuleState.ERROR
        reply = await server.app.request_data("anything")
        assert reply["anything"]["x"] == 1
        assert (await server.handle(Request("GET", "/config"))).content["user_module"]["crashy"][
            "state"
        ] == "error"
    # a stop ends the error state like any other
    assert crashy.status.state == ModuleState.STOPPED
    status = crashy.status.to_json()
    assert status["restart"] is None
    assert status["error"]["callback"] == "_loop"
    assert "RuntimeError: crash number 1" in status["error"]["message"]


async def test_a_restart_loads_the_file_afresh(make_project: MakeProject, tmp_path: Path) -> None:
    broken = "def _initialize(params):\n    raise OSError('no device yet')\n"
    project = make_project(
        {"fixme": broken},
        entries={"fixme": {"restart": {"delay": 0.2, "max_delay": 0.4, "max_restarts": 20}}},
    )
    async with running(project) as server:
        await until(lambda: module(server, "fixme").status.state == ModuleState.RESTARTING)
        status = module(server, "fixme").status.to_json()
        assert status["error"]["callback"] == "_initialize"  # a crash in _initialize counts
        assert status["restart"]["next_attempt"] > time.time() - 1
        write(tmp_path / "fixme.py", "def _get_data(channel):\n    return 'fixed'\n")
        await until(lambda: module(server, "fixme").status.state == ModuleState.RUNNING)
        reply = await server.app.request_data("x")
        assert reply["x"]["x"] == "fixed"
        status = module(server, "fixme").status.to_json()
    # the last error stays visible, with the count of restarts
    assert "OSError: no device yet" in status["error"]["message"]
    assert status["restart"]["total"] >= 1 and status["restart"]["gave_up"] is False


async def test_a_stop_during_the_back_off_is_immediate(make_project: MakeProject) -> None:
    project = make_project(
        {"crashy": "raise RuntimeError('broken at load')\n"},
        entries={"crashy": {"restart": {"delay": 300, "max_delay": 300}}},
    )
    with trio.fail_after(10):
        async with running(project) as server:
            await until(lambda: module(server, "crashy").status.state == ModuleState.RESTARTING)
            status = module(server, "crashy").status.to_json()
            assert status["error"]["callback"] == "load"
            assert status["restart"]["restarts"] == 0
            assert status["restart"]["next_attempt"] > time.time() + 200
            stopping_at = trio.current_time()
        # leaving `running` stopped the server: no 300 s wait
        assert trio.current_time() - stopping_at < 5
    assert module(server, "crashy").status.state == ModuleState.STOPPED


# ---------------------------------------------------------------------------------------------
# tasks, through the HTTP API


async def task_until(
    client: httpx.AsyncClient, name: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Follow the task list's long poll until task ``name`` passes ``check``."""
    since = 0
    with trio.fail_after(20):
        while True:
            reply = await client.get("/api/control/task", params={"since": since})
            doc = reply.json()
            task = next(t for t in doc["tasks"] if t["name"] == name)
            if check(task):
                return task
            since = doc["revision"]


async def act(client: httpx.AsyncClient, name: str, action: str) -> dict[str, Any]:
    reply = await client.post(f"/api/control/task/{name}", content=json.dumps({"action": action}))
    assert reply.status_code < 300, reply.text
    result: dict[str, Any] = reply.json()
    return result


FLAKY_TASK = """
import threading
def _initialize(params):
    global attempts
    attempts = params["attempts"]
    attempts.append(1)
def _loop():
    if len(attempts) <= 2:
        raise ConnectionError(f"device gone (attempt {len(attempts)})")
    ControlSystem().sleep(0.01)
def attempt_count():
    return len(attempts)
"""

STOP_RAISES = """
def _loop():
    while not ControlSystem.is_stop_requested():
        ControlSystem().sleep(0.05)
    raise RuntimeError("interrupted by the stop")
"""


async def test_a_task_is_restarted_and_its_status_shows_it(tmp_path: Path) -> None:
    attempts: list[int] = []
    write(tmp_path / "config/slowtask-flaky.py", FLAKY_TASK)
    write(tmp_path / "config/slowtask-patient.py", "raise RuntimeError('no calibration')\n")
    write(tmp_path / "config/slowtask-quitter.py", STOP_RAISES)
    policy = {"delay": 0.05, "max_delay": 0.1, "max_restarts": 3}
    project = build_project(
        tmp_path,
        task=[
            {"name": "flaky", "parameters": {"attempts": attempts}, "restart": policy},
            {"name": "patient", "restart": {"delay": 300, "max_delay": 300}},
            {"name": "quitter", "auto_load": True, "restart": "on-failure"},
        ],
    )
    # leaving `serving` shuts the server down while "patient" waits 300 s: at once, too
    with trio.fail_after(30):
        async with serving(project) as (_server, client):
            await check_restarts(client)


async def check_restarts(client: httpx.AsyncClient) -> None:
    """flaky: restarted twice, then runs; patient: stopped in its back-off; quitter:
    fails at a stop, which is no crash."""
    assert (await act(client, "flaky", "start"))["status"] == "ok"
    task = await task_until(client, "flaky", lambda t: t["state"] == "restarting")
    assert task["restart"]["next_attempt"] is not None
    assert task["is_routine_running"] is True  # the UI offers Stop while waiting
    task = await task_until(
        client, "flaky", lambda t: t["state"] == "running" and t["restart"]["total"] == 2
    )
    # the crash before the restart that worked stays visible
    assert task["error"]["callback"] == "_loop"
    assert "ConnectionError: device gone (attempt 2)" in task["error"]["message"]
    reply = await client.post("/api/control", json={"await flaky.attempt_count()": True})
    assert reply.json() == {"status": "ok", "result": 3}

    # a stop during a long back-off ends it at once
    await act(client, "patient", "start")
    task = await task_until(client, "patient", lambda t: t["state"] == "restarting")
    assert task["error"]["callback"] == "load"
    with trio.fail_after(5):
        assert (await act(client, "patient", "stop"))["state"] == "stopped"
    # and a start begins afresh: the count of restarts too
    await act(client, "patient", "start")
    task = await task_until(client, "patient", lambda t: t["state"] == "restarting")
    assert task["restart"]["total"] == 0

    # code that fails because it was asked to stop has not crashed
    assert (await act(client, "quitter", "stop"))["state"] == "stopped"
    task = await task_until(client, "quitter", lambda t: t["state"] == "stopped")
    assert task["error"]["message"] == "RuntimeError: interrupted by the stop"
    assert task["restart"]["total"] == 0
