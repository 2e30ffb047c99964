"""The task manager: discovery, states and errors, start/stop/reload, per-task stop, the
task list long poll and the task API."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing
from support import build_project, serving, write

from slowdash_trio._project import Project
from slowdash_trio._server import Server
from slowdash_trio.webapi import Request, Response


@asynccontextmanager
async def tasks_running(project: Project) -> AsyncIterator[Server]:
    """The project's task manager running (no HTTP; requests through ``server.handle``)."""
    server = Server(project)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.tasks.run)
        try:
            yield server
        finally:
            server.tasks.request_stop()


async def call(server: Server, method: str, path: str, body: Any = None, **query: str) -> Response:
    data = b"" if body is None else json.dumps(body).encode()
    return await server.handle(Request(method, path, query, data))


async def action(server: Server, name: str, what: str) -> Response:
    return await call(server, "POST", f"/control/task/{name}", {"action": what})


async def wait_until(server: Server, check: Any) -> None:
    """Wait (bounded) until ``check()`` holds, woken by task-list changes."""
    with trio.fail_after(20):
        while not check():
            await server.tasks.wait_change(server.tasks.revision, 0.5)


COUNTER = """
import threading
count = 0
ticked = threading.Event()
def _loop():
    global count
    count += 1
    ticked.set()
    ControlSystem().sleep(0.01)
def value():
    return count
def stopped():
    return ControlSystem.is_stop_requested()
def stopper():
    ControlSystem.stop()
"""


def task_files(directory: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        write(directory / "config" / f"slowtask-{name}.py", source)


async def test_discovery_names_and_tasklist_update(tmp_path: Path) -> None:
    task_files(tmp_path, {"alpha": "x = 1\n", "other-task": "x = 2\n", "configured": "x = 3\n"})
    write(tmp_path / "scripts/custom.py", "x = 4\n")
    project = build_project(
        tmp_path,
        task=[
            {"name": "configured", "parameters": {"a": 1}},
            {"name": "custom", "file": "scripts/custom.py", "namespace": {"prefix": "c:"}},
        ],
    )
    async with tasks_running(project) as server:
        tasks = server.tasks.tasks
        assert list(tasks) == ["configured", "custom", "alpha", "other-task"]
        assert tasks["other-task"].prefix == "other-task."  # hyphens kept
        assert tasks["custom"].prefix == "c:"
        assert tasks["configured"].parameters == {"a": 1}
        assert all(task.state == "listed" for task in tasks.values())

        reply = await call(server, "GET", "/config")
        assert reply.content["task_module"]["alpha"]["state"] == "listed"
        assert reply.content["task_module"]["alpha"]["auto_load"] is False

        task_files(tmp_path, {"late-comer": "x = 5\n"})
        reply = await call(server, "POST", "/update/tasklist")
        assert reply.content == {"status": "ok", "added": ["late-comer"]}
        assert (await call(server, "POST", "/update/tasklist")).content["added"] == []
        listed = await call(server, "GET", "/control/task", since="0")
        assert [t["name"] for t in listed.content["tasks"]][-1] == "late-comer"


async def test_states_and_errors(tmp_path: Path) -> None:
    task_files(
        tmp_path,
        {
            "good": COUNTER,
            "broken": "x = 1\nraise RuntimeError('no device here')\n",
            "badinit": "def _initialize(params):\n    raise ValueError('bad parameter')\n",
            "badloop": (
                "import threading\nlooped = threading.Event()\n"
                "def _loop():\n    looped.set()\n    raise KeyError('gone')\n"
            ),
        },
    )
    project = build_project(tmp_path, task=[{"name": "good", "auto_load": True}])
    async with tasks_running(project) as server:
        good = server.tasks.tasks["good"]
        assert good.state == "running"  # auto_load: started before run() reported started

        reply = await action(server, "broken", "start")
        assert reply.content == {"status": "ok", "state": "error"}
        status = server.tasks.tasks["broken"].status()
        assert status["has_error"] and status["error"]["callback"] == "load"
        assert "RuntimeError: no device here" in status["error"]["message"]
        assert "slowtask-broken.py" in status["error"]["traceback"]
        assert good.state == "running"  # the server and the other task go on

        reply = await action(server, "badinit", "start")
        status = server.tasks.tasks["badinit"].status()
        # without a restart policy, an error in _initialize leaves the task in state error;
        # as in the original it runs on: functions and exports are still served, stop works
        assert (status["state"], status["error"]["callback"]) == ("error", "_initialize")
        assert status["is_serving"] is True and status["is_stopped"] is False
        assert "ValueError: bad parameter" in status["error"]["message"]

        reply = await action(server, "badloop", "start")
        badloop = server.tasks.tasks["badloop"]
        assert badloop.module is not None
        await wait_until(server, lambda: badloop.status()["has_error"])
        assert badloop.status()["error"]["callback"] == "_loop"
        assert badloop.state == "error" and badloop.status()["is_serving"] is True
        assert server.tasks.tasks["broken"].status()["is_serving"] is False

        for name in ("broken", "badinit", "badloop", "good"):
            reply = await action(server, name, "stop")
            assert reply.content["status"] == "ok"
        states = {name: task.state for name, task in server.tasks.tasks.items()}
        # a task that never loaded stays in error (with its message) until started again
        assert states == {
            "good": "stopped",
            "badinit": "stopped",
            "badloop": "stopped",
            "broken": "error",
        }
        assert server.tasks.tasks["good"].status()["is_stopped"] is True


async def test_reload_picks_up_the_edited_file(tmp_path: Path) -> None:
    task_files(tmp_path, {"edit": "def version():\n    return 1\n"})
    project = build_project(tmp_path, task=[{"name": "edit", "auto_load": True}])
    async with tasks_running(project) as server:
        reply = await call(server, "POST", "/control", {"await edit.version()": True})
        assert reply.content == {"status": "ok", "result": 1}
        task_files(tmp_path, {"edit": "def version():\n    return 2\n"})  # same size, same second
        assert (await action(server, "edit", "start")).content["state"] == "running"
        reply = await call(server, "POST", "/control", {"await edit.version()": True})
        assert reply.content == {"status": "ok", "result": 2}
        # a file broken by the edit: state error, and fixed again: running
        task_files(tmp_path, {"edit": "def version(:\n"})
        assert (await action(server, "edit", "reload")).content["state"] == "error"
        assert "SyntaxError" in server.tasks.tasks["edit"].status()["error"]["message"]
        task_files(tmp_path, {"edit": "def version():\n    return 3\n"})
        assert (await action(server, "edit", "restart")).content["state"] == "running"
        assert server.tasks.tasks["edit"].status()["error"] is None  # errors reset on load
        reply = await call(server, "POST", "/control", {"await edit.version()": True})
        assert reply.content["result"] == 3


async def test_stopping_one_task_leaves_another_running(tmp_path: Path) -> None:
    task_files(tmp_path, {"one": COUNTER, "two": COUNTER})
    project = build_project(
        tmp_path, task=[{"name": "one", "auto_load": True}, {"name": "two", "auto_load": True}]
    )
    async with tasks_running(project) as server:
        one, two = server.tasks.tasks["one"], server.tasks.tasks["two"]
        assert one.module is not None and two.module is not None
        user_two = two.module.module
        # ControlSystem.stop() in a task function stops that task's scope only
        await call(server, "POST", "/control", {"await one.stopper()": True})
        assert (await action(server, "one", "stop")).content["state"] == "stopped"
        before = user_two.count
        user_two.ticked.clear()
        assert await trio.to_thread.run_sync(user_two.ticked.wait, 20)
        assert user_two.count > before  # two's _loop still runs
        reply = await call(server, "POST", "/control", {"await two.stopped()": True})
        assert reply.content == {"status": "ok", "result": False}
        assert two.state == "running" and one.state == "stopped"


async def test_control_system_is_injected_and_stop_means_this_task(tmp_path: Path) -> None:
    source = """
ctrl = ControlSystem()          # no import: injected before the code runs
def stop_me():
    ControlSystem.stop()
    return ControlSystem.is_stop_requested()
def asked():
    return ControlSystem.is_stop_requested()
"""
    task_files(tmp_path, {"a": source, "b": source})
    project = build_project(
        tmp_path, task=[{"name": "a", "auto_load": True}, {"name": "b", "auto_load": True}]
    )
    async with tasks_running(project) as server:
        assert server.tasks.tasks["a"].state == "running"
        reply = await call(server, "POST", "/control", {"await a.stop_me()": True})
        assert reply.content == {"status": "ok", "result": True}
        reply = await call(server, "POST", "/control", {"await b.asked()": True})
        assert reply.content == {"status": "ok", "result": False}  # b's scope is untouched
        # a restart gives a fresh scope
        await action(server, "a", "start")
        reply = await call(server, "POST", "/control", {"await a.asked()": True})
        assert reply.content == {"status": "ok", "result": False}


async def test_long_poll_waits_for_a_change(tmp_path: Path) -> None:
    task_files(tmp_path, {"poll": "x = 1\n"})
    project = build_project(tmp_path)
    async with tasks_running(project) as server:
        first = await call(server, "GET", "/control/task", since="0")
        revision = first.content["revision"]
        assert revision >= 1 and first.content["tasks"][0]["name"] == "poll"
        answers: list[Response] = []
        asked = trio.Event()

        async def poll() -> None:
            asked.set()
            answers.append(await call(server, "GET", "/control/task", since=str(revision)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await asked.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert answers == []  # nothing changed: the poll waits
            await action(server, "poll", "start")
        assert answers[0].content["revision"] > revision
        assert answers[0].content["tasks"][0]["state"] in ("loading", "running")  # the first change

        # the wait is bounded
        server.tasks.poll_wait = 0.05
        with trio.fail_after(10):
            late = await call(server, "GET", "/control/task", since=str(10**9))
        assert late.content["tasks"][0]["state"] == "running"


async def test_task_api_errors(tmp_path: Path) -> None:
    task_files(tmp_path, {"t": "x = 1\n"})
    project = build_project(tmp_path)
    async with tasks_running(project) as server:
        reply = await action(server, "nosuch", "start")
        assert (reply.status, reply.content["message"]) == (404, "unknown task: nosuch")
        reply = await action(server, "t", "explode")
        assert (reply.status, reply.content["message"]) == (400, "unknown command: explode")
        reply = await server.handle(Request("POST", "/control/task/t", body=b"start"))
        assert reply.status == 400 and "not valid JSON" in reply.content["message"]
        reply = await server.handle(Request("POST", "/control/task/t", body=b"[1]"))
        assert reply.status == 400
        reply = await call(server, "GET", "/control/task", since="soon")
        assert reply.status == 400
        assert server.tasks.tasks["t"].state == "listed"  # nothing was disturbed


async def test_start_without_a_running_manager_is_refused(tmp_path: Path) -> None:
    task_files(tmp_path, {"t": "x = 1\n"})
    server = Server(build_project(tmp_path))
    reply = await action(server, "t", "start")
    assert reply.status == 503 and "not running" in reply.content["message"]


async def test_shutdown_stops_every_task_and_runs_finalize(tmp_path: Path) -> None:
    finalized = threading.Event()
    source = """
params = None
def _initialize(p):
    global params
    params = p
def _finalize():
    params["finalized"].set()
"""
    task_files(tmp_path, {"fin": source})
    project = build_project(
        tmp_path, task=[{"name": "fin", "auto_load": True, "parameters": {"finalized": finalized}}]
    )
    async with tasks_running(project) as server:
        assert server.tasks.tasks["fin"].state == "running"
    assert finalized.is_set()
    assert server.tasks.tasks["fin"].state == "stopped"


async def test_a_tasks_own_web_api_is_mounted_while_it_runs(tmp_path: Path) -> None:
    task_files(
        tmp_path,
        {
            "web": (
                "from slowdash_trio.webapi import WebApi\n"
                "webapi = WebApi()\n"
                "@webapi.get('/hello/{who}')\n"
                "def hello(who: str):\n"
                "    return {'hello': who}\n"
            )
        },
    )
    project = build_project(tmp_path, task=[{"name": "web", "auto_load": True}])
    async with tasks_running(project) as server:
        await wait_until(server, lambda: server.tasks.serving_modules())
        reply = await call(server, "GET", "/hello/world")
        assert (reply.status, reply.content) == (200, {"hello": "world"})
        assert (await action(server, "web", "stop")).status < 300
        await wait_until(server, lambda: not server.tasks.serving_modules())
        assert (await call(server, "GET", "/hello/world")).status == 404


async def test_a_waiting_long_poll_is_answered_when_the_server_shuts_down(
    tmp_path: Path,
) -> None:
    async with serving(build_project(tmp_path)) as (server, client):
        revision = server.tasks.revision
        answers: list[Any] = []
        answered = trio.Event()
        async with trio.open_nursery() as nursery:

            async def poll() -> None:
                reply = await client.get("/api/control/task", params={"since": revision})
                answers.append(reply)
                answered.set()

            nursery.start_soon(poll)
            await trio.testing.wait_all_tasks_blocked()
            assert answers == []  # waiting: nothing changed
            server.request_shutdown()
            with trio.fail_after(1):  # not the poll's 30 s, nor the graceful stop's 3 s
                await answered.wait()
    (reply,) = answers
    assert reply.status_code == 200 and reply.json()["revision"] == revision
