"""The user-module runtime: lifecycle order, threads, failures, stop, watchdog, the call gate."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import trio
import trio.testing
from support import MakeProject, running

from slowdash_trio._usermodule import ModuleState
from slowdash_trio.webapi import Request


async def wait_for(event: threading.Event) -> None:
    """Wait for a threading.Event set by user code (from a worker thread, real clock)."""
    assert await trio.to_thread.run_sync(event.wait, 20), "user code never signalled"


RECORDER = """
import threading, time
LOAD_THREAD = threading.get_ident()
events = None
looped = None
count = 0

def _setup(app, params):
    global events, looped
    events, looped = params["events"], params["looped"]
    events.append(("load", LOAD_THREAD))
    events.append(("_setup", threading.get_ident()))

def _initialize(params):
    events.append(("_initialize", threading.get_ident()))

def _loop():
    global count
    count += 1
    events.append(("_loop", threading.get_ident()))
    if count == 3:
        looped.set()
    time.sleep(0.001)

def _finalize():
    events.append(("_finalize", threading.get_ident()))
"""

ASYNC_RECORDER = """
import threading
import trio
import trio.testing
events = None
looped = None
count = 0

async def _setup(app, params):
    global events, looped
    events, looped = params["events"], params["looped"]
    events.append(("_setup", threading.get_ident()))

async def _initialize(params):
    events.append(("_initialize", threading.get_ident()))

async def _loop():
    global count
    count += 1
    events.append(("_loop", threading.get_ident()))
    if count == 3:
        looped.set()
    await trio.sleep(0.001)

async def _finalize():
    events.append(("_finalize", threading.get_ident()))
"""


def names(events: list[tuple[str, int]]) -> list[str]:
    out: list[str] = []
    for name, _ in events:
        if not out or out[-1] != name:
            out.append(name)
    return out


async def test_sync_lifecycle_order_on_one_dedicated_thread(make_project: MakeProject) -> None:
    events: list[tuple[str, int]] = []
    looped = threading.Event()
    project = make_project({"rec": RECORDER}, parameters={"events": events, "looped": looped})
    async with running(project) as server:
        await wait_for(looped)
    assert names(events) == ["load", "_setup", "_initialize", "_loop", "_finalize"]
    assert server.modules[0].status.error is None  # a clean stop records nothing
    threads = {ident for _, ident in events}
    assert len(threads) == 1, "top level and all thread-side callbacks share one thread"
    assert threads != {threading.get_ident()}, "...which is not the Trio thread"


async def test_async_callbacks_run_on_the_trio_thread_in_order(make_project: MakeProject) -> None:
    events: list[tuple[str, int]] = []
    looped = threading.Event()
    project = make_project({"rec": ASYNC_RECORDER}, parameters={"events": events, "looped": looped})
    async with running(project) as server:
        await wait_for(looped)
    assert names(events) == ["_setup", "_initialize", "_loop", "_finalize"]
    assert server.modules[0].status.error is None
    assert {ident for _, ident in events} == {threading.get_ident()}


async def test_run_and_halt_then_loop_then_finalize(make_project: MakeProject) -> None:
    source = """
    import threading
    events, started = None, None
    halted = threading.Event()

    def _initialize(params):
        global events, started
        events, started = params["events"], params["started"]

    def _run():
        events.append(("_run", threading.get_ident()))
        started.set()
        halted.wait(30)
        events.append(("_run returns", threading.get_ident()))

    def _halt():
        events.append(("_halt", threading.get_ident()))
        halted.set()

    def _loop():
        events.append(("_loop", threading.get_ident()))
        halted.wait(30)

    def _finalize():
        events.append(("_finalize", threading.get_ident()))
    """
    events: list[tuple[str, int]] = []
    started = threading.Event()
    project = make_project({"runner": source}, parameters={"events": events, "started": started})
    async with running(project) as server:
        await wait_for(started)
    assert server.modules[0].status.error is None
    order = names(events)
    assert order[:3] == ["_run", "_halt", "_run returns"]
    # after _halt the stop flag is up: _loop is not started any more, _finalize runs
    assert order[-1] == "_finalize"
    thread = dict(events)
    assert thread["_run"] == thread["_finalize"] != thread["_halt"]


async def test_run_returning_is_followed_by_loop(make_project: MakeProject) -> None:
    source = """
    events, looped = None, None
    def _initialize(params):
        global events, looped
        events, looped = params["events"], params["looped"]
    def _run():
        events.append(("_run", 0))
    def _loop():
        events.append(("_loop", 0))
        looped.set()
        import time; time.sleep(0.001)
    """
    events: list[tuple[str, int]] = []
    looped = threading.Event()
    project = make_project({"m": source}, parameters={"events": events, "looped": looped})
    async with running(project):
        await wait_for(looped)
    assert names(events) == ["_run", "_loop"]


async def test_modules_load_in_parallel(make_project: MakeProject) -> None:
    # Each _initialize waits for the other: sequential loading would break the barrier.
    source = """
    def _initialize(params):
        params["barrier"].wait()
    """
    barrier = threading.Barrier(2, timeout=20)
    project = make_project({"a": source, "b": source}, parameters={"barrier": barrier})
    async with running(project) as server:
        assert [m.status.state for m in server.modules] == [ModuleState.RUNNING] * 2
        assert [m.status.error for m in server.modules] == [None, None]


async def test_hung_initialize_does_not_keep_the_server_dark(make_project: MakeProject) -> None:
    hung = """
    def _initialize(params):
        params["release"].wait(60)
    def _get_channels():
        return [{"name": "late"}]
    """
    quick = """
    def _get_channels():
        return [{"name": "quick"}]
    """
    release = threading.Event()
    project = make_project(
        {"hung": hung, "quick": quick},
        parameters={"release": release},
        system={"module_startup_timeout": 0.3},
    )
    try:
        async with running(project) as server:
            hung_module, quick_module = server.modules
            assert hung_module.status.state == ModuleState.ERROR
            assert hung_module.status.error is not None
            assert "not ready after 0.3 s" in hung_module.status.error.message
            assert "_initialize" in hung_module.status.error.message
            channels = await server.app.request_channels()
            assert channels == [{"name": "quick", "current": True}]
            release.set()
            await hung_module.ready.wait()
            # once it returns, it serves after all
            assert hung_module.status.state == ModuleState.RUNNING
            assert quick_module.status.state == ModuleState.RUNNING
    finally:
        release.set()


async def test_setup_requests_see_ready_modules_and_never_wait(make_project: MakeProject) -> None:
    hung = """
    def _initialize(params):
        params["release"].wait(60)
    def _get_channels():
        return [{"name": "hung_ch"}]
    """
    asker = """
    async def _setup(app, params):
        params["seen"].append(await app.request_channels())
    """
    release = threading.Event()
    seen: list[Any] = []
    project = make_project(
        {"hung": hung, "asker": asker},
        parameters={"release": release, "seen": seen},
        system={"module_startup_timeout": 0.5},
    )
    try:
        async with running(project) as server:
            asker_module = server.modules[1]
            with trio.fail_after(10):
                await asker_module.ready.wait()
            assert asker_module.status.error is None
            assert seen == [[]], "the hung module is not asked, and not waited for"
            release.set()
    finally:
        release.set()


CALLBACKS_RAISING = ["_setup", "_initialize", "_run", "_loop", "_halt", "_finalize"]


@pytest.mark.parametrize("callback", CALLBACKS_RAISING)
async def test_raising_lifecycle_callback_is_recorded(
    make_project: MakeProject, callback: str
) -> None:
    source = f"""
    import threading
    raised = threading.Event()
    def {callback}(*args):
        raised.set()
        raise RuntimeError("boom in {callback}")
    """
    healthy = """
    def _get_data(channel):
        return 42 if channel == "answer" else None
    """
    project = make_project({"bad": source, "good": healthy})
    async with running(project) as server:
        reply = await server.app.request_data("answer")
        assert reply["answer"]["x"] == 42
        if callback in ("_run", "_loop"):  # routines: wait until it ran, before stopping
            module = server.modules[0].module
            assert module is not None
            await wait_for(module.raised)
    bad = server.modules[0]
    assert bad.status.error is not None
    assert bad.status.error.callback == callback
    assert f"RuntimeError: boom in {callback}" in bad.status.error.message
    assert "boom in" in bad.status.error.traceback
    assert server.modules[1].status.error is None


@pytest.mark.parametrize("callback", ["_get_channels", "_get_data", "_process_command"])
async def test_raising_request_callback_is_recorded(
    make_project: MakeProject, callback: str
) -> None:
    source = f"""
    def {callback}(*args):
        raise ValueError("bad {callback}")
    """
    project = make_project({"bad": source})
    async with running(project) as server:
        channels = await server.handle(Request("GET", "/channels"))
        data = await server.handle(Request("GET", "/data/x"))
        control = await server.handle(Request("POST", "/control", body=b'{"a": 1}'))
        ping = await server.handle(Request("GET", "/ping"))
    module = server.modules[0]
    assert module.status.error is not None
    assert module.status.error.callback == callback
    assert ping.content == ["pong"]
    if callback == "_get_channels":
        assert channels.status == 200 and channels.content == []
    if callback == "_get_data":
        assert data.status == 404  # nothing knows the channel
    if callback == "_process_command":
        # a raising _process_command counts as handled, with the error
        assert control.status == 400
        assert "ValueError: bad _process_command" in control.content["message"]


async def test_sys_exit_in_user_code_does_not_stop_the_server(make_project: MakeProject) -> None:
    project = make_project({"quitter": "import sys\ndef _initialize(p):\n    sys.exit(3)\n"})
    async with running(project) as server:
        assert (await server.handle(Request("GET", "/ping"))).content == ["pong"]
    assert server.modules[0].status.error is not None
    assert "SystemExit" in server.modules[0].status.error.message


async def test_missing_file_and_syntax_error_are_module_errors(make_project: MakeProject) -> None:
    project = make_project(
        {"broken": "def _initialize(params)\n    pass\n", "good": "X = 1\n"},
        entries={},
    )
    extra = [
        *project.config.module,
        project.config.module[0].model_copy(update={"file": "gone.py"}),
    ]
    project = type(project)(
        directory=project.directory,
        file=project.file,
        config=project.config.model_copy(update={"module": extra}),
        name="p",
        title="p",
    )
    async with running(project) as server:
        broken, good, gone = server.modules
        assert good.status.state == ModuleState.RUNNING
        assert broken.status.state == ModuleState.ERROR
        assert gone.status.state == ModuleState.ERROR
    assert broken.status.error is not None and "SyntaxError" in broken.status.error.message
    assert "line 1" in broken.status.error.traceback
    assert gone.status.error is not None and "no such file" in gone.status.error.message
    assert str(project.directory / "gone.py") in gone.status.error.message


async def test_async_stop_is_immediate(make_project: MakeProject) -> None:
    source = """
    import trio
    async def _loop():
        p = PARAMS
        p["started"].set()
        try:
            await trio.sleep_forever()
        finally:
            p["events"].append("cancelled")
    async def _initialize(params):
        global PARAMS
        PARAMS = params
    def _finalize():
        PARAMS["events"].append("_finalize")
    """
    started = threading.Event()
    events: list[str] = []
    project = make_project(
        {"m": source},
        parameters={"started": started, "events": events},
        system={"module_stop_grace": 60},
    )
    with trio.fail_after(10):  # far below the 60 s grace: the scope stopped it
        async with running(project):
            await wait_for(started)
    assert events == ["cancelled", "_finalize"]


async def test_sync_loop_ignoring_stop_is_reported_and_shutdown_completes(
    make_project: MakeProject,
) -> None:
    source = """
    def _loop():
        PARAMS["started"].set()
        PARAMS["forever"].wait(60)
    def _initialize(params):
        global PARAMS
        PARAMS = params
    def _finalize():
        PARAMS["finalized"].set()
    """
    started, forever, finalized = threading.Event(), threading.Event(), threading.Event()
    project = make_project(
        {"stubborn": source},
        parameters={"started": started, "forever": forever, "finalized": finalized},
        system={"module_stop_grace": 0.2, "module_finalize_timeout": 0.2},
    )
    try:
        with trio.fail_after(20):
            async with running(project) as server:
                await wait_for(started)
        status = server.modules[0].status
        assert status.state == ModuleState.STOPPED
        assert status.error is not None and status.error.callback == "_finalize"
        assert "thread busy in _loop" in status.error.message
        assert status.error_count == 2  # the stop grace, then _finalize
        assert not finalized.is_set()
    finally:
        forever.set()


async def test_async_code_awaiting_asyncio_gets_a_clear_error(make_project: MakeProject) -> None:
    source = """
    import asyncio
    async def _get_data(channel):
        await asyncio.sleep(0.01)
        return 1
    """
    project = make_project({"old": source})
    async with running(project) as server:
        reply = await server.handle(Request("GET", "/data/x"))
    assert reply.status == 404
    error = server.modules[0].status.error
    assert error is not None and error.callback == "_get_data"
    assert "AsyncioInTrio" in error.message
    assert "await trio.sleep(s)" in error.message


async def test_watchdog_names_a_module_whose_async_code_blocks_the_loop(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    source = """
    import time
    async def _get_data(channel):
        time.sleep(0.15)    # blocks the event loop: the watchdog must name us
        return 1
    """
    project = make_project({"hog": source}, system={"watchdog_threshold": 0.05})
    with caplog.at_level(logging.WARNING, logger="slowdash_trio.module"):
        async with running(project) as server:
            reply = await server.handle(Request("GET", "/data/x"))
            assert reply.content["x"]["x"] == 1
    status = server.modules[0].status
    assert status.slow_steps == 1
    assert status.last_slow is not None
    assert status.last_slow["callback"] == "_get_data"
    assert status.last_slow["milliseconds"] >= 150
    assert any(
        "module hog: async _get_data held the event loop" in r.message for r in caplog.records
    )


async def test_stuck_module_is_not_called_again_until_it_returns(make_project: MakeProject) -> None:
    source = """
    calls = 0
    def _get_data(channel):
        global calls
        calls += 1
        PARAMS["entered"].set()
        PARAMS["release"].wait(60)
        return calls
    def _initialize(params):
        global PARAMS
        PARAMS = params
    """
    entered, release = threading.Event(), threading.Event()
    project = make_project(
        {"slow": source},
        parameters={"entered": entered, "release": release},
        entries={"slow": {"call_timeout": 0.3}},
    )
    try:
        async with running(project) as server:
            module = server.modules[0]
            first = await server.handle(Request("GET", "/data/x"))
            assert first.status == 404  # the call passed its deadline: no data
            assert module.status.stuck == "_get_data"
            second = await server.handle(Request("GET", "/data/x"))
            assert second.status == 404
            assert module.module is not None and module.module.calls == 1  # not called again
            release.set()
            await module.wait_idle()
            assert module.status.stuck is None
            third = await server.handle(Request("GET", "/data/x"))
            assert third.content["x"]["x"] == 2
    finally:
        release.set()


async def test_one_request_side_call_in_flight_per_module(make_project: MakeProject) -> None:
    source = """
    import threading
    lock = threading.Lock()
    overlaps = 0
    def _get_data(channel):
        global overlaps
        if not lock.acquire(blocking=False):
            overlaps += 1
            return None
        try:
            import time; time.sleep(0.01)
            return channel
        finally:
            lock.release()
    """
    project = make_project({"serial": source})
    async with running(project) as server:
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(server.handle, Request("GET", "/data/a,b,c"))
        module = server.modules[0].module
        assert module is not None and module.overlaps == 0


async def test_request_side_calls_are_served_in_arrival_order(make_project: MakeProject) -> None:
    source = """
    order = []
    def _initialize(params):
        global PARAMS
        PARAMS = params
    def _get_data(channel):
        order.append(channel)
        if channel == "first":
            PARAMS["entered"].set()
            PARAMS["release"].wait(60)
        return 1
    """
    entered, release = threading.Event(), threading.Event()
    project = make_project({"fifo": source}, parameters={"entered": entered, "release": release})
    try:
        async with running(project) as server:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.handle, Request("GET", "/data/first"))
                await wait_for(entered)
                later = [f"ch{i}" for i in range(8)]
                for name in later:
                    nursery.start_soon(server.handle, Request("GET", f"/data/{name}"))
                    await trio.testing.wait_all_tasks_blocked()  # it is queued at the gate
                release.set()
            module = server.modules[0].module
            assert module is not None and module.order == ["first", *later]
    finally:
        release.set()


async def test_async_request_callback_past_its_deadline_is_cancelled(
    make_project: MakeProject,
) -> None:
    source = """
    import trio
    cancelled = []
    async def _get_data(channel):
        if channel == "hang":
            try:
                await trio.sleep_forever()
            finally:
                cancelled.append(channel)
        return 5
    """
    project = make_project({"hang": source}, entries={"hang": {"call_timeout": 0.2}})
    async with running(project) as server:
        hung = await server.handle(Request("GET", "/data/hang"))
        fine = await server.handle(Request("GET", "/data/other"))  # not stuck: cancelled
    module = server.modules[0]
    assert hung.status == 404
    assert fine.content["other"]["x"] == 5
    assert module.module is not None and module.module.cancelled == ["hang"]
    assert module.status.error is not None
    assert module.status.error.message == "did not return within 0.2 s; cancelled"
    assert module.status.stuck is None


async def test_stop_reaches_a_module_hung_in_sync_initialize(make_project: MakeProject) -> None:
    source = """
    def _initialize(params):
        params["hang"].wait(60)
    def _finalize():
        pass
    """
    hang = threading.Event()
    project = make_project(
        {"hung": source},
        parameters={"hang": hang},
        system={
            "module_startup_timeout": 0.2,
            "module_stop_grace": 0.2,
            "module_finalize_timeout": 0.2,
        },
    )
    try:
        with trio.fail_after(20):  # shutdown completes although _initialize never returns
            async with running(project) as server:
                assert server.modules[0].status.state == ModuleState.ERROR
        status = server.modules[0].status
        assert status.state == ModuleState.STOPPED
        messages = [status.error.message] if status.error else []
        assert status.error_count == 3  # start-up wait, stop grace, _finalize behind it
        assert "_finalize" in (status.error.callback if status.error else "")
        assert "thread busy in _initialize" in messages[0]
    finally:
        hang.set()


async def test_stop_cancels_an_async_setup_at_once(make_project: MakeProject) -> None:
    source = """
    import trio
    async def _setup(app):
        await trio.sleep_forever()
    """
    project = make_project(
        {"hung": source}, system={"module_startup_timeout": 0.2, "module_stop_grace": 60}
    )
    with trio.fail_after(10):  # far below the grace: async code is cancelled at once
        async with running(project) as server:
            pass
    assert server.modules[0].status.state == ModuleState.STOPPED


async def test_stop_during_startup_skips_the_remaining_steps(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    source = """
    def _setup(app, params):
        global PARAMS
        PARAMS = params
        params["entered"].set()
        params["release"].wait(60)
    def _initialize(params):
        params["events"].append("_initialize")
    def _finalize():
        PARAMS["events"].append("_finalize")
    """
    entered, release = threading.Event(), threading.Event()
    events: list[str] = []
    project = make_project(
        {"slow": source},
        parameters={"entered": entered, "release": release, "events": events},
        system={"module_startup_timeout": 0.2, "module_stop_grace": 30},
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="slowdash_trio.module"):
            async with running(project) as server:
                await wait_for(entered)
                server.supervisor.request_stop()  # while _setup runs...
                await trio.testing.wait_all_tasks_blocked()  # ...stop waits out the grace
                release.set()  # _setup returns within it
        assert events == ["_finalize"]  # _initialize skipped, _finalize still runs
        assert server.modules[0].status.state == ModuleState.STOPPED
        assert not any("-> running" in r.getMessage() for r in caplog.records)
    finally:
        release.set()


STOP_AWARE = """
from slowdash_controls import ControlSystem
events = ended = None
ctrl = ControlSystem()

def _setup(app, params):
    global events, ended
    events, ended = params["events"], params["ended"]

def _run():
    events.append("run")
    while not ControlSystem.is_stop_requested():
        ctrl.sleep(3600)          # the control library's sleep wakes on this module's stop
    events.append("run ended")
    ended.set()

def stop_myself():
    ControlSystem.stop()         # the seed's class-level call: means this module
"""

SIBLING = """
from slowdash_controls import ControlSystem
def _get_data(channel):
    return ControlSystem.is_stop_requested()
"""


async def test_control_library_stop_calls_mean_the_module_they_run_in(
    make_project: MakeProject,
) -> None:
    events: list[str] = []
    ended = threading.Event()
    project = make_project(
        modules={"aware": STOP_AWARE, "sibling": SIBLING},
        parameters={"events": events, "ended": ended},
    )
    with trio.fail_after(30):
        async with running(project) as server:
            aware, sibling = server.modules
            assert await sibling.get_data("x") is False
            await aware.call("stop_myself", aware.module.stop_myself)
            assert aware.stop_scope.is_stop_requested()
            assert not sibling.stop_scope.is_stop_requested()
            assert await sibling.get_data("x") is False  # the sibling is not stopped
            await wait_for(ended)  # the module's own _run saw the stop and returned
    assert events == ["run", "run ended"]
