"""Task functions from forms: the command key, binding and conversion, the runner
(busy/parallel/await, cancellation at stop), and the calls through ``POST /api/control``."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from support import build_project, serving, write

from slowdash_trio._taskfunc import (
    Busy,
    CallError,
    FunctionRunner,
    bind,
    convert,
    find_command,
    parse_command,
)

# ---------------------------------------------------------------------------------------------
# the command key


def test_command_key_grammar() -> None:
    assert find_command({"V0": 1, "test.set_V0()": True}) == "test.set_V0()"
    assert find_command({"a.f()": True, "b.g()": True}) == "b.g()"  # the last one wins
    assert find_command({"V0": 1, "()": True}) is None
    command = parse_command("test.set_V0()")
    assert (command.name, command.args, command.wait, command.parallel) == (
        "test.set_V0",
        {},
        False,
        False,
    )
    command = parse_command("await parallel test.f(a=1, b='x, y', c=[1, 2], d=text)")
    assert (command.wait, command.parallel) == (True, True)
    assert command.args == {"a": 1, "b": "x, y", "c": [1, 2], "d": "text"}
    for qualifier in ("parallel", "reentrant", "async"):
        assert parse_command(f"{qualifier} t.f()").parallel
        assert not parse_command(f"{qualifier} t.f()").wait


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("eventually t.f()", "unknown qualifier 'eventually'"),
        ("t.f(1)", "bad argument '1'"),
        ("t.f(a=1, 2b=3)", "bad argument '2b=3'"),
        ("t.f(a='x)", "unclosed quote"),
        ("t.f(a=[1, 2)", "unclosed quote or bracket"),
        (" ()", "no function name"),
    ],
)
def test_bad_command_keys_name_the_field(key: str, fragment: str) -> None:
    with pytest.raises(CallError) as caught:
        parse_command(key)
    assert fragment in caught.value.message
    assert repr(key) in caught.value.message
    assert caught.value.status == 400


# ---------------------------------------------------------------------------------------------
# binding and conversion


def test_conversions_by_annotation() -> None:
    for text in ("false", "0", "", "off", "no", False, 0):
        assert convert(text, bool) is False
    for text in ("true", "1", "yes", "on", True, 1):
        assert convert(text, bool) is True
    assert convert("2.5", float) == 2.5 and convert(3, float) == 3.0
    assert convert("7", int) == 7 and convert(7.0, int) == 7
    assert convert(1.5, str) == "1.5"
    assert convert({"a": 1}, "list") == {"a": 1}  # other annotations: as given
    for value, kind in [("abc", float), ("nan", float), (True, float), ("3.5", int), (2.5, int)]:
        with pytest.raises(ValueError, match="is not a"):
            convert(value, kind)
    with pytest.raises(ValueError, match="not a boolean"):
        convert("maybe", bool)


def test_bind_by_name_with_defaults_and_kwargs() -> None:
    def set_v(
        V0: float, ramping: float = 1.0, on: bool = True, note: str = "", **rest: Any
    ) -> None:
        pass

    args, kwargs = bind(set_v, {"V0": "2.5", "ramping": "", "on": "false", "x": 1})
    assert args == []
    assert kwargs == {"V0": 2.5, "on": False, "x": 1}  # blank ramping: its default

    with pytest.raises(CallError, match="missing parameter 'V0'"):
        bind(set_v, {"ramping": 1})
    with pytest.raises(CallError, match="missing parameter 'V0'"):
        bind(set_v, {"V0": "  "})
    with pytest.raises(CallError, match="field 'ramping'"):
        bind(set_v, {"V0": 1, "ramping": "fast"})

    def plain(a, b=2):  # type: ignore[no-untyped-def]
        pass

    assert bind(plain, {"a": [1], "b": "x", "c": 3}) == ([], {"a": [1], "b": "x"})


def test_bind_reads_string_annotations() -> None:
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "def f(n: int, x: float | None = None, flag: Optional[bool] = None): pass\n",
        namespace,
    )
    assert bind(namespace["f"], {"n": "4", "x": "0.5", "flag": "0"}) == (
        [],
        {"n": 4, "x": 0.5, "flag": False},
    )


# ---------------------------------------------------------------------------------------------
# the runner, in memory (no threads): autojump_clock


async def test_busy_parallel_and_await(autojump_clock: trio.testing.MockClock) -> None:
    runner = FunctionRunner("task t")
    ended: list[str] = []

    async def work(label: str, seconds: float) -> str:
        await trio.sleep(seconds)
        ended.append(label)
        return label

    async with trio.open_nursery() as nursery:
        await nursery.start(runner.host)
        assert await runner.call("t.work(a)", work, ["a", 10], {}) is None  # answered at once
        assert runner.busy_with == "t.work(a)"
        with pytest.raises(Busy, match=r"command already running: t.work\(a\)"):
            await runner.call("t.work(b)", work, ["b", 1], {})
        # parallel calls run beside it, and "await" answers with the return value
        result = await runner.call("t.work(c)", work, ["c", 1], {}, parallel=True, wait=True)
        assert result is not None and result.unwrap() == "c"
        assert ended == ["c"] and runner.busy_with == "t.work(a)"
        await trio.sleep(10)
        assert ended == ["c", "a"] and runner.busy_with is None
        # the slot is free again
        result = await runner.call("t.work(d)", work, ["d", 1], {}, wait=True)
        assert result is not None and result.unwrap() == "d"
        runner.stop()


async def test_stop_cancels_a_running_async_function(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[str] = []
    runner = FunctionRunner("task t", on_error=lambda label, exc: errors.append(label))
    cancelled = trio.Event()
    started = trio.Event()

    async def forever() -> None:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    outcomes = []
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.host)

        async def waiter() -> None:
            outcomes.append(await runner.call("t.forever()", forever, [], {}, wait=True))

        nursery.start_soon(waiter)
        await started.wait()
        runner.stop()
        with trio.fail_after(1):  # immediate (autojump would skip any grace period)
            await cancelled.wait()
            await runner.wait_stopped()
    assert cancelled.is_set()
    assert len(outcomes) == 1 and outcomes[0] is not None
    with pytest.raises(CallError, match=r"stopped while t\.forever"):
        outcomes[0].unwrap()
    assert errors == []  # a stop is not an error of the function
    with pytest.raises(CallError, match="not running"):
        await runner.call("t.forever()", forever, [], {})


async def test_a_failing_function_is_reported_and_frees_the_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[tuple[str, str]] = []
    runner = FunctionRunner("task t", on_error=lambda label, exc: errors.append((label, str(exc))))

    async def fail() -> None:
        await trio.sleep(1)
        raise RuntimeError("broken")

    async with trio.open_nursery() as nursery:
        await nursery.start(runner.host)
        result = await runner.call("t.fail()", fail, [], {}, wait=True)
        assert result is not None
        with pytest.raises(RuntimeError, match="broken"):
            result.unwrap()
        assert errors == [("t.fail()", "broken")]
        assert runner.busy_with is None
        runner.stop()


# ---------------------------------------------------------------------------------------------
# through the web API


TASK = """
import threading, time
calls = []
release = threading.Event()
entered = threading.Event()

def set_V0(V0: float, ramping: float, enabled: bool = True):
    calls.append(("set_V0", V0, ramping, enabled))
    return V0 * 2

def hold():
    entered.set()
    release.wait(30)
    calls.append(("hold",))

def quick(n: int = 1):
    calls.append(("quick", n))
    return n

async def aquick(word: str):
    return word.upper()

def failing():
    raise ValueError("no such voltage")

def _process_command(doc):
    if doc.get("hello") == "task":
        return {"status": "ok", "greeting": "hi"}
    return None
"""


async def post(client: httpx.AsyncClient, doc: dict[str, Any]) -> httpx.Response:
    # the browser's HTML panel posts JSON; the body is read whatever the Content-Type says
    return await client.post("/api/control", content=json.dumps(doc))


async def wait_for(event: threading.Event) -> None:
    assert await trio.to_thread.run_sync(event.wait, 20), "the task function never started"


async def test_form_calls_through_the_api(tmp_path: Path) -> None:
    write(tmp_path / "config/slowtask-test.py", TASK)
    project = build_project(tmp_path, task=[{"name": "test", "auto_load": True}])
    async with serving(project) as (server, client):
        task = server.tasks.get("test")
        assert task is not None and task.module is not None and task.module.module is not None
        user = task.module.module

        reply = await post(client, {"V0": "2.5", "ramping": 1, "await test.set_V0()": True})
        assert (reply.status_code, reply.json()) == (200, {"status": "ok", "result": 5.0})
        reply = await post(
            client, {"V0": "1", "ramping": "0.5", "enabled": "false", "await test.set_V0()": True}
        )
        assert reply.json()["result"] == 2.0
        assert user.calls == [("set_V0", 2.5, 1.0, True), ("set_V0", 1.0, 0.5, False)]

        # bad input: a 4xx naming the field, and the function is not called
        bad = [
            ({"V0": "high", "ramping": 1, "test.set_V0()": True}, 400, "field 'V0'"),
            ({"V0": 1, "test.set_V0()": True}, 400, "missing parameter 'ramping'"),
            (
                {"V0": 1, "ramping": 1, "enabled": "perhaps", "test.set_V0()": True},
                400,
                "field 'enabled'",
            ),
            ({"test.set_V9()": True}, 404, "undefined function: test.set_V9()"),
            ({"test._process_command()": True}, 403, "names starting with '_'"),
            ({"nosuch.f()": True}, 404, "unknown task function"),
            ({"test.f(1)": True}, 400, "bad argument"),
        ]
        for doc, status, fragment in bad:
            reply = await post(client, doc)
            assert reply.status_code == status, (doc, reply.text)
            assert reply.json()["status"] == "error" and fragment in reply.json()["message"]
        assert len(user.calls) == 2

        # arguments in the parentheses win over form fields
        reply = await post(client, {"n": 1, "await test.quick(n=7)": True})
        assert reply.json() == {"status": "ok", "result": 7}
        reply = await post(client, {"await test.aquick(word=ok)": True})
        assert reply.json() == {"status": "ok", "result": "OK"}

        # a function that raises: the awaiting caller hears it, the task records it
        reply = await post(client, {"await test.failing()": True})
        assert reply.status_code == 500 and "no such voltage" in reply.json()["message"]
        assert task.status()["error"]["message"].endswith("no such voltage")

        # busy: one non-parallel call at a time; parallel ones beside it
        reply = await post(client, {"test.hold()": True})
        assert reply.json() == {"status": "ok"}
        await wait_for(user.entered)
        reply = await post(client, {"test.quick()": True})
        assert reply.status_code == 409
        assert "command already running: test.hold()" in reply.json()["message"]
        reply = await post(client, {"await parallel test.quick(n=3)": True})
        assert reply.json() == {"status": "ok", "result": 3}
        assert task.status()["is_command_running"] and task.status()["busy"] == "test.hold()"
        user.release.set()
        with trio.fail_after(20):
            while task.status()["busy"] is not None:
                await server.tasks.wait_change(server.tasks.revision, 1)
        reply = await post(client, {"await test.quick(n=4)": True})
        assert reply.json() == {"status": "ok", "result": 4}

        # not a task function: the task's own _process_command answers
        reply = await post(client, {"hello": "task"})
        assert reply.json() == {"status": "ok", "greeting": "hi"}


async def test_calls_to_a_stopped_or_listed_task_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "config/slowtask-test.py", TASK)
    project = build_project(tmp_path)
    async with serving(project) as (_server, client):
        reply = await post(client, {"await test.quick()": True})
        assert reply.status_code == 409 and "not running (state listed)" in reply.json()["message"]
        reply = await client.post("/api/control/task/test", content=b'{"action": "start"}')
        assert reply.json() == {"status": "ok", "state": "running"}
        assert (await post(client, {"await test.quick()": True})).json()["result"] == 1
        await client.post("/api/control/task/test", content=b'{"action": "stop"}')
        reply = await post(client, {"await test.quick()": True})
        assert reply.status_code == 409 and "state stopped" in reply.json()["message"]


async def test_stop_ends_a_running_sync_function_within_its_grace(tmp_path: Path) -> None:
    source = """
import threading
entered = threading.Event()
seen = []
def wait_for_stop():
    entered.set()
    ctrl = ControlSystem()
    while not ControlSystem.is_stop_requested():
        ctrl.sleep(60)              # wakes at once when this task stops
    seen.append("stopped")
"""
    write(tmp_path / "config/slowtask-waiter.py", source)
    project = build_project(
        tmp_path, task=[{"name": "waiter", "auto_load": True}], system={"module_stop_grace": 30}
    )
    async with serving(project) as (server, client):
        task = server.tasks.get("waiter")
        assert task is not None and task.module is not None
        user = task.module.module
        assert (await post(client, {"waiter.wait_for_stop()": True})).json() == {"status": "ok"}
        await wait_for(user.entered)
        with trio.fail_after(10):  # far below the 30 s grace: the stop reached the function
            reply = await client.post("/api/control/task/waiter", content=b'{"action": "stop"}')
        assert reply.json() == {"status": "ok", "state": "stopped"}
        assert user.seen == ["stopped"]
        assert task.status()["has_error"] is False
