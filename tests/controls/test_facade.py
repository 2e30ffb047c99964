"""The sync facade: which loop runs a sync call, the Trio-thread refusal, the deliver hook,
thread nodes and control modules."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
from support import interrupt_plain_script

from slowdash_controls import (
    ControlNode,
    ControlSystem,
    ControlThreadNode,
    PluginError,
    StopScope,
    ValueNode,
    WrongThreadError,
    deliver_hook,
    get_deliver_hook,
    stop_scope,
)


class LoopReporter(ControlNode):
    """An I/O node whose get() says which thread and loop ran it."""

    async def aio_get(self) -> Any:
        await trio.lowlevel.checkpoint()
        return threading.current_thread().name, trio.lowlevel.current_trio_token()

    async def aio_set(self, value: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return value * 2


async def test_sync_io_on_the_trio_thread_names_the_aio_method() -> None:
    node = LoopReporter()
    with pytest.raises(WrongThreadError, match=r"await node\.aio_get"):
        node.get()
    with pytest.raises(WrongThreadError, match=r"await node\.aio_set"):
        node.set(1)
    with pytest.raises(WrongThreadError, match=r"aio_sleep"):
        node.sleep(0)
    with pytest.raises(WrongThreadError):
        float(node)
    assert isinstance(WrongThreadError("x"), RuntimeError)


async def test_nodes_without_io_answer_on_the_trio_thread() -> None:
    x = ValueNode(initial_value=0)
    x.set(5)  # the seed's `x.set(v); await x.deliver()` in an async _loop
    assert x.get() == 5 and float(x) == 5.0
    sp = x.setpoint(limits=(0, 10))
    sp.set(3)
    assert sp.get() == 3.0


async def test_a_value_node_set_from_an_io_node_reads_it_through_the_portal() -> None:
    x = ValueNode(initial_value=0)
    await trio.to_thread.run_sync(x.set, LoopReporter())  # the I/O node is read on the loop
    assert x.get()[1] is trio.lowlevel.current_trio_token()
    with pytest.raises(WrongThreadError):
        x.set(LoopReporter())  # on the Trio thread: the read is refused, clearly
    await x.aio_set(ValueNode(initial_value=5))
    assert x.get() == 5


async def test_sync_call_from_a_worker_thread_runs_on_the_owning_loop() -> None:
    node = LoopReporter()
    here = trio.lowlevel.current_trio_token()
    _thread_name, token = await trio.to_thread.run_sync(node.get)
    assert token is here
    assert await trio.to_thread.run_sync(node.set, 21) == 42


async def test_cancelling_the_host_task_reaches_a_sync_sleep_in_its_thread() -> None:
    node = ValueNode()
    entered = threading.Event()
    outcome: list[str] = []

    def worker() -> None:
        entered.set()
        try:
            node.sleep(3600)
        except trio.Cancelled:
            outcome.append("cancelled")
            raise

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, worker)
            await trio.to_thread.run_sync(entered.wait)
            # whether the sleep has reached the loop yet or not, the cancellation reaches it
            nursery.cancel_scope.cancel()
    assert outcome == ["cancelled"]


def test_plain_thread_uses_the_shared_background_loop() -> None:
    node = LoopReporter()
    first = node.get()
    second = node.get()
    assert first[0] == "slowdash-controls-portal"  # not this thread: the background loop's
    assert first[1] is second[1]  # one loop shared by all calls
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(node.get()))
    thread.start()
    thread.join(10)
    assert results and results[0][1] is first[1]


def test_sync_sleep_in_a_plain_thread_wakes_on_its_stop() -> None:
    node = ValueNode()
    scope = StopScope("script")
    results: list[bool] = []

    def body() -> None:
        with stop_scope(scope):
            results.append(node.sleep(0.01))
            started.set()
            results.append(node.sleep(3600))

    started = threading.Event()
    thread = threading.Thread(target=body)
    thread.start()
    assert started.wait(10)
    scope.request_stop()
    thread.join(10)
    assert not thread.is_alive()
    assert results == [True, False]


async def test_deliver_does_nothing_without_a_hook_and_reaches_an_installed_one() -> None:
    assert get_deliver_hook() is None
    x = ValueNode(initial_value=1.5)
    assert await x.deliver() == 1.5  # plain script: reads, publishes nowhere
    received: list[tuple[Any, Any, Any]] = []

    async def hook(node: ControlNode | None, value: Any, name: str | None) -> None:
        received.append((node, value, name))

    with deliver_hook(hook):
        x.set(2.5)
        await x.deliver()
        await ControlSystem.aio_publish(7, "seven")
        await ControlSystem.aio_publish(x, "x")
    assert received == [(x, 2.5, None), (None, 7, "seven"), (x, 2.5, "x")]
    assert get_deliver_hook() is None
    await x.deliver()
    assert len(received) == 3


class Counter(ControlThreadNode):
    def __init__(self) -> None:
        self.runs = 0
        self.loops = 0
        self.looping = threading.Event()

    def run(self) -> None:
        self.runs += 1

    def loop(self) -> None:
        self.loops += 1
        self.looping.set()
        self.sleep(3600)


def test_thread_node_runs_run_then_loop_and_stops_alone() -> None:
    task = StopScope("task")
    with stop_scope(task):
        a, b = Counter(), Counter()
        a.start()
        b.start()
        a.start()  # no-op while running
        assert a.looping.wait(10) and b.looping.wait(10)
        a.stop()
        assert not a.is_running()
        assert b.is_running() and not task.is_stop_requested()
        assert a.runs == 1 and a.loops == 1
        task.request_stop()  # the task's stop ends its nodes' threads too
        assert b._thread is not None
        b._thread.join(10)
        assert not b.is_running()


def test_thread_node_without_run_or_loop_is_refused() -> None:
    with pytest.raises(Exception, match="neither run"):
        ControlThreadNode().start()


async def test_thread_node_started_in_trio_code_calls_back_into_that_loop() -> None:
    here = trio.lowlevel.current_trio_token()
    seen: list[Any] = []
    done = threading.Event()

    class Probe(ControlThreadNode):
        def run(self) -> None:
            seen.append(LoopReporter().get()[1])
            done.set()

    node = Probe()
    node.start()
    assert await trio.to_thread.run_sync(done.wait, 10)
    node.stop()
    assert seen == [here]


def test_builtin_control_modules_load_and_unknown_ones_fail_clearly(tmp_path: Path) -> None:
    ctrl = ControlSystem()
    assert ControlSystem.import_control_module("DummyDevice") is ControlSystem
    assert ctrl.load_control_module("dummydevice") is ctrl  # names match without case
    assert ctrl.load_control_module("Ethernet") is ctrl
    with pytest.raises(PluginError, match=r"control_Nope\.py"):
        ctrl.load_control_module("Nope", search_dirs=[tmp_path])


def test_a_user_control_module_adds_a_branch_to_the_node_that_loaded_it(tmp_path: Path) -> None:
    (tmp_path / "control_Doubler.py").write_text(
        textwrap.dedent(
            """
            from slowdash_controls import ControlNode

            class DoublerNode(ControlNode):
                def __init__(self, parent, factor=2):
                    self.parent, self.factor = parent, factor
                def get(self):                       # SlowPy-style sync override
                    return self.parent.get() * self.factor

                @classmethod
                def _node_creator_method(cls):
                    def doubler(self, factor=2):
                        return DoublerNode(self, factor)
                    return doubler
            """
        )
    )
    x = ValueNode(initial_value=21)
    assert not hasattr(ValueNode, "doubler")
    try:
        x.load_control_module("Doubler", search_dirs=[tmp_path])
        assert x.doubler().get() == 42  # type: ignore[attr-defined]
        assert not hasattr(ControlSystem, "doubler")  # only the loading node's class
    finally:
        if hasattr(ValueNode, "doubler"):
            delattr(ValueNode, "doubler")


def test_a_control_module_that_raises_is_a_plugin_error(tmp_path: Path) -> None:
    (tmp_path / "control_Broken.py").write_text("raise RuntimeError('no hardware here')\n")
    with pytest.raises(PluginError, match="no hardware here"):
        ControlSystem().load_control_module("Broken", search_dirs=[tmp_path])


def test_ethernet_accepts_host_address_and_positional() -> None:
    ctrl = ControlSystem()
    for node in (
        ctrl.ethernet("127.0.0.1", 5025),
        ctrl.ethernet(host="127.0.0.1", port=5025),
        ctrl.ethernet(address="127.0.0.1", port=5025),
    ):
        assert "127.0.0.1:5025" in node.link.address
    with pytest.raises(TypeError, match="host"):
        ctrl.ethernet(port=5025)


SCRIPT = """
import sys, time
from slowdash_controls import ControlSystem, ValueNode
ControlSystem.stop_by_signal()
x = ValueNode(initial_value=0)
print("ready", flush=True)
n = 0
while not ControlSystem.is_stop_requested():
    x.set(n); n += 1
    ControlSystem().sleep(3600)
print("stopped cleanly", x.get(), flush=True)
"""


def test_a_plain_script_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    returncode, out, err = interrupt_plain_script(script, wait_for="ready")
    assert returncode == 0, err
    assert "stopped cleanly 0" in out


async def test_a_plugin_loaded_onto_an_ethernet_node_builds_on_its_scpi(tmp_path: Path) -> None:
    from slowdash_controls import EthernetNode
    from slowdash_controls.testing import open_fake_instrument

    (tmp_path / "control_Psu.py").write_text(
        textwrap.dedent(
            """
            from slowdash_controls import ControlValueNode

            class OutputNode(ControlValueNode):
                def __init__(self, ethernet, channel):
                    self.scpi, self.channel = ethernet.scpi(), channel

                async def aio_get(self):
                    return float(await self.scpi.command(f"MEAS:V{self.channel}").aio_get())

                async def aio_set(self, value):
                    fmt = f"V{self.channel} {{}};*OPC?"
                    return await self.scpi.command("V", set_format=fmt).aio_set(value)

                @classmethod
                def _node_creator_method(cls):
                    def output(self, channel):
                        return OutputNode(self, channel)
                    return output
            """
        )
    )
    async with open_fake_instrument() as instrument:
        ethernet = ControlSystem().ethernet("127.0.0.1", instrument.port)
        try:
            assert ethernet.load_control_module("Psu", search_dirs=[tmp_path]) is ethernet
            output = ethernet.output(2)  # type: ignore[attr-defined]
            assert await output.aio_set(7.5) == "1"  # the *OPC? reply
            assert await output.aio_get() == 7.5
            await output.setpoint(limits=(0, 10)).aio_set(3)
            assert await output.aio_get() == 3.0
            assert not hasattr(ControlSystem, "output")
        finally:
            if hasattr(EthernetNode, "output"):
                delattr(EthernetNode, "output")
            await ethernet.aclose()
