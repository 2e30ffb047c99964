"""The Trio -> asyncio bridge on its own: results, errors, cancellation, shutdown, inboxes."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from slowdash_controls._aiobridge import AsyncioBridge, Inbox, call_soon_in_trio, get_bridge

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bridge() -> Iterator[AsyncioBridge]:
    """A private bridge, shut down (from this sync fixture, off the Trio thread) afterwards."""
    b = AsyncioBridge("test-asyncio", cancel_grace=5.0, shutdown_grace=2.0)
    yield b
    b.shutdown()
    assert not b.running


class Boom(Exception):
    pass


# ---- results and errors ----------------------------------------------------------------------
async def test_run_returns_the_result_computed_on_the_asyncio_thread(bridge: AsyncioBridge) -> None:
    async def where(x: int, y: int) -> tuple[int, str, bool]:
        await asyncio.sleep(0)
        running = asyncio.get_running_loop() is bridge.loop()
        return x + y, threading.current_thread().name, running

    total, thread_name, in_loop = await bridge.run(where, 2, 3)
    assert total == 5
    assert thread_name == "test-asyncio"
    assert in_loop
    assert bridge.statistics()["calls_in_flight"] == 0


async def test_exceptions_cross_over_with_their_type_and_message(bridge: AsyncioBridge) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise Boom("from asyncio")

    with pytest.raises(Boom, match="from asyncio") as info:
        await bridge.run(fail)
    # the traceback still shows where it was raised
    assert any(entry.name == "fail" for entry in info.traceback)


async def test_a_non_coroutine_callable_error_also_crosses(bridge: AsyncioBridge) -> None:
    def not_async() -> None:
        raise Boom("raised while starting")

    with pytest.raises(Boom, match="while starting"):
        await bridge.run(not_async)  # type: ignore[arg-type]


async def test_trio_context_does_not_leak_into_asyncio(bridge: AsyncioBridge) -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    marker.set("trio side")

    async def read() -> str:
        return marker.get()

    assert await bridge.run(read) == "unset"


async def test_a_task_cancelled_by_the_library_is_a_broken_resource(
    bridge: AsyncioBridge,
) -> None:
    async def cancelled_from_inside() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)

    with pytest.raises(trio.BrokenResourceError, match="cancelled by the library"):
        await bridge.run(cancelled_from_inside)


async def test_many_concurrent_calls_block_no_worker_thread(bridge: AsyncioBridge) -> None:
    release = asyncio.Event()
    started = 0
    all_started = trio.Event()
    token = trio.lowlevel.current_trio_token()
    n = 50

    async def wait_for_release(i: int) -> int:
        nonlocal started
        started += 1
        if started == n:
            call_soon_in_trio(token, all_started.set)
        await release.wait()
        return i

    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await bridge.run(wait_for_release, i))

    threads_before = threading.active_count()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
            await all_started.wait()
            # 50 calls in flight, and no thread per call: only the bridge's own loop thread
            assert threading.active_count() <= threads_before + 1
            assert bridge.statistics()["calls_in_flight"] == n
            bridge.call_soon(release.set)
    assert sorted(results) == list(range(n))


# ---- cancellation ----------------------------------------------------------------------------
async def test_cancelling_trio_cancels_the_task_and_waits_for_its_cleanup(
    bridge: AsyncioBridge,
) -> None:
    token = trio.lowlevel.current_trio_token()
    started = trio.Event()
    events: list[str] = []

    async def slow() -> None:
        call_soon_in_trio(token, started.set)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("cancelled")
            await asyncio.sleep(0.05)  # cleanup that takes a moment
            events.append("cleaned up")
            raise

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bridge.run, slow)
            await started.wait()
            nursery.cancel_scope.cancel()
    # structured: when the Trio side is done, so is the asyncio side
    assert events == ["cancelled", "cleaned up"]
    assert bridge.statistics()["calls_in_flight"] == 0


async def test_a_deadline_reaches_the_asyncio_task(bridge: AsyncioBridge) -> None:
    seen: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            seen.append("finally ran")

    with pytest.raises(trio.TooSlowError):
        with trio.fail_after(0.2):
            await bridge.run(forever)
    assert seen == ["finally ran"]


async def test_an_already_cancelled_caller_starts_nothing(bridge: AsyncioBridge) -> None:
    ran: list[bool] = []

    async def record() -> None:
        ran.append(True)

    with trio.CancelScope() as scope:
        scope.cancel()
        await bridge.run(record)
    assert scope.cancelled_caught

    async def after() -> str:
        return "after"

    # a later call goes through the same (FIFO) loop, so the first would have run by now
    assert await bridge.run(after) == "after"
    assert ran == []


async def test_a_task_that_ignores_cancellation_is_abandoned_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stubborn_bridge = AsyncioBridge("stubborn", cancel_grace=0.2, shutdown_grace=1.0)
    let_go = threading.Event()
    token = trio.lowlevel.current_trio_token()
    started = trio.Event()

    async def stubborn() -> None:
        call_soon_in_trio(token, started.set)
        while not let_go.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue  # ignores cancellation, as a badly written library might

    try:
        with caplog.at_level(logging.WARNING, logger="slowdash_controls"):
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stubborn_bridge.run, stubborn)
                    await started.wait()
                    nursery.cancel_scope.cancel()
        assert stubborn_bridge.statistics()["calls_abandoned"] == 1
        assert "did not finish within 0.2 s" in caplog.text
    finally:
        let_go.set()
        await trio.to_thread.run_sync(stubborn_bridge.shutdown)


# ---- shutdown --------------------------------------------------------------------------------
async def test_shutdown_fails_pending_calls_and_later_ones(bridge: AsyncioBridge) -> None:
    token = trio.lowlevel.current_trio_token()
    started = trio.Event()
    hook_saw_task_alive: list[bool] = []
    pending_task: list[asyncio.Task[object]] = []

    async def forever() -> None:
        task = asyncio.current_task()
        assert task is not None
        pending_task.append(task)
        call_soon_in_trio(token, started.set)
        await asyncio.sleep(3600)

    async def hook() -> None:
        hook_saw_task_alive.append(not pending_task[0].done())

    bridge.at_shutdown(hook)
    failures: list[BaseException] = []

    async def call() -> None:
        try:
            await bridge.run(forever)
        except trio.ClosedResourceError as exc:
            failures.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await started.wait()
            await trio.to_thread.run_sync(bridge.shutdown)
    assert len(failures) == 1
    assert "shut down" in str(failures[0])
    assert hook_saw_task_alive == [True]  # hooks run before the tasks are cancelled
    assert not bridge.running
    with pytest.raises(trio.ClosedResourceError, match="shut down"):
        await bridge.run(asyncio.sleep, 0)


async def test_shutdown_refuses_to_block_the_trio_thread(bridge: AsyncioBridge) -> None:
    await bridge.run(asyncio.sleep, 0)
    with pytest.raises(RuntimeError, match="to_thread"):
        bridge.shutdown()


def test_the_shared_bridge_shuts_down_at_interpreter_exit(tmp_path: Path) -> None:
    script = tmp_path / "exit_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            import trio
            from slowdash_controls._aiobridge import get_bridge

            bridge = get_bridge()

            async def hook():
                print("hook ran", flush=True)

            async def lingering():
                try:
                    await asyncio.sleep(3600)
                finally:
                    print("lingering task cleaned up", flush=True)

            async def start_lingering():
                asyncio.get_running_loop().create_task(lingering())
                await asyncio.sleep(0)

            async def main():
                bridge.at_shutdown(hook)
                assert await bridge.run(asyncio.sleep, 0, 42) == 42
                await bridge.run(start_lingering)

            trio.run(main)
            print("main done", flush=True)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "controls")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["main done", "hook ran", "lingering task cleaned up"]
    assert "Task was destroyed" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_shared_bridge_is_one_per_process() -> None:
    assert get_bridge() is get_bridge()


# ---- inboxes ---------------------------------------------------------------------------------
async def test_inbox_delivers_in_order_from_another_thread() -> None:
    inbox: Inbox[int] = Inbox(trio.lowlevel.current_trio_token(), maxlen=1000)

    def produce() -> None:
        for i in range(500):
            inbox.put(i)
        inbox.close()

    thread = threading.Thread(target=produce)
    thread.start()
    received = [item async for item in inbox]
    await trio.to_thread.run_sync(thread.join)
    assert received == list(range(500))
    assert inbox.dropped == 0
    assert inbox.received == 500


async def test_inbox_drops_the_oldest_when_full_and_never_blocks_the_producer() -> None:
    inbox: Inbox[int] = Inbox(trio.lowlevel.current_trio_token(), maxlen=3)

    def produce() -> None:
        for i in range(10):
            inbox.put(i)  # nobody receives meanwhile: must not block

    await trio.to_thread.run_sync(produce)
    inbox.close()
    inbox.put(99)  # after close: ignored
    received = [item async for item in inbox]
    assert received == [7, 8, 9]
    assert inbox.dropped == 7


async def test_inbox_get_waits_and_can_be_cancelled_without_losing_items() -> None:
    inbox: Inbox[str] = Inbox(trio.lowlevel.current_trio_token(), maxlen=10)
    with trio.move_on_after(0.05) as scope:
        await inbox.get()
    assert scope.cancelled_caught
    inbox.put("kept")
    with trio.fail_after(5):
        assert await inbox.get() == "kept"
    inbox.close()
    with pytest.raises(trio.EndOfChannel):
        await inbox.get()


def test_inbox_put_after_the_loop_finished_does_not_raise() -> None:
    holder: list[Inbox[int]] = []

    async def main() -> None:
        holder.append(Inbox(trio.lowlevel.current_trio_token(), maxlen=2))

    trio.run(main)
    inbox = holder[0]
    inbox.put(1)  # the loop is gone: the inbox closes itself instead of raising
    assert inbox.closed


def test_inbox_needs_room_for_one() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="at least one"):
            Inbox(trio.lowlevel.current_trio_token(), maxlen=0)

    trio.run(main)


def test_call_soon_in_trio_after_the_run_reports_false() -> None:
    tokens: list[trio.lowlevel.TrioToken] = []

    async def main() -> None:
        tokens.append(trio.lowlevel.current_trio_token())

    trio.run(main)
    assert call_soon_in_trio(tokens[0], lambda: None) is False
