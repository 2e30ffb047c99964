"""The node model: values, set-points, ramping, views, waiting and the Python protocol."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

from slowdash_controls import (
    ControlNode,
    ControlSystem,
    ControlValueNode,
    ControlVariableNode,
    NodeAccessError,
    StopScope,
    ValueNode,
    stop_scope,
)


class Recorder(ControlValueNode):
    """An I/O-style node (async only) that records what was written."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.writes: list[tuple[float, Any]] = []

    async def aio_get(self) -> Any:
        await trio.lowlevel.checkpoint()
        return self.value

    async def aio_set(self, value: Any) -> Any:
        await trio.lowlevel.checkpoint()
        self.writes.append((trio.current_time(), value))
        self.value = value
        return None


def test_value_node_converts_to_the_type_it_first_held() -> None:
    x = ValueNode(initial_value=0)
    x.set("3")
    assert x.get() == 3 and isinstance(x.get(), int)
    x.set("not a number")  # conversion fails: the raw value is kept, as SlowPy does
    assert x.get() == "not a number"
    y = ValueNode()
    assert not y.has_data()
    y.set(1.5)
    y.set("2")
    assert y.get() == 2.0 and isinstance(y.get(), float)
    assert y.has_data()


def test_call_float_int_str_and_format_read_the_node() -> None:
    x = ValueNode(initial_value=2.5)
    assert x() == 2.5
    x(4.25)
    assert float(x) == 4.25
    assert int(x) == 4
    assert str(x) == "4.25"
    assert f"{x:.1f}" == "4.2"
    x(ValueNode(initial_value=7.0))  # a node argument is read first
    assert x.get() == 7.0
    assert "ValueNode" in repr(x)


def test_float_of_a_non_number_is_nan_and_int_is_a_clear_error() -> None:
    text = ValueNode(initial_value="abc")
    assert math.isnan(float(text))
    with pytest.raises(NodeAccessError, match="not a number"):
        int(text)


def test_a_node_without_get_or_set_refuses_clearly() -> None:
    node = ControlNode()
    with pytest.raises(NodeAccessError, match="cannot be read"):
        node.get()
    with pytest.raises(NodeAccessError, match="cannot be written"):
        node.set(1)
    with pytest.raises(NodeAccessError, match="has no has_data"):
        node.has_data()


def test_readonly_and_writeonly_views() -> None:
    x = ValueNode(initial_value=1)
    ro, wo = x.readonly(), x.writeonly()
    assert ro.get() == 1
    with pytest.raises(NodeAccessError, match="read-only"):
        ro.set(2)
    wo.set(3)
    assert x.get() == 3
    with pytest.raises(NodeAccessError, match="write-only"):
        wo.get()


def test_setpoint_checks_number_and_limits_before_writing() -> None:
    x = ValueNode(initial_value=0.0)
    sp = x.setpoint(limits=(0, 10))
    assert sp.get() is None
    sp.set(5)
    assert sp.get() == 5.0 and x.get() == 5.0
    with pytest.raises(NodeAccessError, match="above the limit"):
        sp.set(10.5)
    with pytest.raises(NodeAccessError, match="below the limit"):
        sp.set(-1)
    with pytest.raises(NodeAccessError, match="numeric value is expected"):
        sp.set("hot")
    assert x.get() == 5.0 and sp.get() == 5.0  # refused writes changed nothing
    assert x.setpoint() is sp  # cached; limits kept
    with pytest.raises(NodeAccessError):
        x.setpoint().set(11)


def test_control_variable_node_is_the_seed_name() -> None:
    assert ControlVariableNode is ControlValueNode


async def test_ramping_steps_every_tick_to_the_target(
    autojump_clock: trio.testing.MockClock,
) -> None:
    device = Recorder(0.0)
    ramp = device.ramping(0.25)
    start = trio.current_time()
    assert await ramp.aio_set(1.0) is True
    times = [round(t - start, 9) for t, _ in device.writes]
    values = [v for _, v in device.writes]
    assert times == [1.0, 2.0, 3.0, 4.0]
    assert values == [0.25, 0.5, 0.75, 1.0]
    assert device.setpoint().get() == 1.0
    assert await ramp.status().aio_get() is False


async def test_ramping_down_and_a_last_partial_step(autojump_clock: trio.testing.MockClock) -> None:
    device = Recorder(1.0)
    start = trio.current_time()
    await device.ramping(0.4, tick=0.5).aio_set(0.5)  # steps of 0.2 every 0.5 s
    assert [round(t - start, 9) for t, _ in device.writes] == [0.5, 1.0, 1.5]
    assert [round(v, 9) for _, v in device.writes] == [0.8, 0.6, 0.5]


async def test_ramping_status_reports_and_halts(autojump_clock: trio.testing.MockClock) -> None:
    device = Recorder(0.0)
    ramp = device.ramping(1.0)
    result: list[Any] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            result.append(await ramp.aio_set(10.0))

        nursery.start_soon(run)
        await trio.sleep(2.5)
        assert await ramp.status().aio_get() is True
        ramp.status().set(0)  # no I/O: fine on the Trio thread
    assert result == [False]
    assert device.value == 2.0  # halted where it was
    assert await ramp.status().aio_get() is False


async def test_ramping_refuses_bad_targets_before_moving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    device = Recorder(0.0)
    device.setpoint(limits=(None, 5))
    with pytest.raises(NodeAccessError, match="above the limit"):
        await device.ramping(1.0).aio_set(6)
    with pytest.raises(NodeAccessError, match="numeric"):
        await device.ramping(1.0).aio_set("x")
    with pytest.raises(NodeAccessError, match="positive ramping speed"):
        await Recorder().ramping().aio_set(1)
    assert device.writes == []


async def test_ramping_ends_on_a_stop_request(autojump_clock: trio.testing.MockClock) -> None:
    device = Recorder(0.0)
    scope = StopScope("task")
    with stop_scope(scope):
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def run() -> None:
                results.append(await device.ramping(1.0).aio_set(100))

            nursery.start_soon(run)
            await trio.sleep(3.5)
            scope.request_stop("test")
    assert results == [False]
    assert device.value == 3.0


async def test_aio_sleep_returns_false_at_once_on_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = ValueNode()
    scope = StopScope("task")
    with stop_scope(scope):
        assert await node.aio_sleep(1.0) is True
        async with trio.open_nursery() as nursery:
            outcome: list[tuple[bool, float]] = []

            async def sleeper() -> None:
                t0 = trio.current_time()
                done = await node.aio_sleep(3600)
                outcome.append((done, trio.current_time() - t0))

            nursery.start_soon(sleeper)
            await trio.sleep(5)
            scope.request_stop()
        assert outcome == [(False, 5.0)]
        assert await node.aio_sleep(1) is False  # stays stopped
        assert node.is_stop_requested()
        assert ControlSystem.is_stop_requested()


async def test_aio_wait_condition_timeout_and_stop(autojump_clock: trio.testing.MockClock) -> None:
    x = ValueNode(initial_value=0)
    scope = StopScope("task")
    with stop_scope(scope):
        t0 = trio.current_time()
        assert await x.aio_wait(lambda v: v > 5, polling_interval=1, timeout=3.5) is None
        assert trio.current_time() - t0 == 3.5

        async with trio.open_nursery() as nursery:
            got: list[Any] = []

            async def waiter() -> None:
                got.append(await x.aio_wait(lambda v: v > 5, poll_interval=0.5))

            nursery.start_soon(waiter)
            await trio.sleep(2.2)
            x.set(6)
        assert got == [True]
        assert trio.current_time() - t0 == pytest.approx(3.5 + 2.5)

        # without a condition it waits for has_data(); a zero-argument lambda is called bare
        empty = ValueNode()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: empty.aio_wait(timeout=10))
            await trio.sleep(1)
            empty.set(1)
        assert await empty.aio_wait() is True
        assert await x.aio_wait(lambda: True) is True

        scope.request_stop()
        assert await x.aio_wait(lambda v: False) is False


async def test_a_stop_of_one_task_does_not_stop_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = ValueNode()
    task_a, task_b = StopScope("a"), StopScope("b")
    finished: dict[str, tuple[bool, float]] = {}

    async def task(scope: StopScope, name: str, stop_after: float | None) -> None:
        with stop_scope(scope):
            t0 = trio.current_time()
            if stop_after is not None:
                await trio.sleep(stop_after)
                ControlSystem.stop()  # the seed's class-level call: means "this task"
            ok = await node.aio_sleep(10)
            finished[name] = (ok, trio.current_time() - t0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task, task_a, "a", 1.0)
        nursery.start_soon(task, task_b, "b", None)
    assert finished == {"a": (False, 1.0), "b": (True, 10.0)}
    assert task_a.is_stop_requested() and not task_b.is_stop_requested()


def test_stop_scopes_nest() -> None:
    process = StopScope("p", kind="process")
    task = StopScope("t", parent=process)
    thread = StopScope("th", parent=task, kind="thread")
    assert thread.task_scope() is task
    thread.request_stop("node stop")
    assert thread.is_stop_requested() and not task.is_stop_requested()
    sibling = StopScope("th2", parent=task, kind="thread")
    process.request_stop("sigint")
    assert sibling.is_stop_requested() and sibling.reason == "sigint"
