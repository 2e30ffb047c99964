"""A simulated four-channel power supply: set-points ramp at a given speed.

Loaded as task ``test``: the form's buttons call ``test.set_V0()`` ... ``test.set_all()`` and
``test.stop()``; ``_export()`` makes ``test.V0`` ... ``test.V3`` and the ``test.Status`` table
channels. ``ControlSystem`` needs no import inside a task.
"""

import trio

from slowdash_controls import ControlNode

TICK = 0.1  # seconds between ramping steps

ctrl = ControlSystem()  # noqa: F821 -- every task gets ControlSystem without an import
V = [ctrl.value(0.0) for _ in range(4)]  # the channels' present voltages
V0, V1, V2, V3 = V
ramps = [node.ramping(1.0, tick=TICK) for node in V]


def _initialize(params):
    for ramp in ramps:
        ramp.change_per_sec = float(params.get("default_ramping_speed", 1.0))


def _ramp(channel: int, target: float, ramping: float) -> None:
    ramps[channel].change_per_sec = ramping
    ramps[channel].set(target)  # returns when reached, halted, or the task stops


def set_V0(V0: float, ramping: float):
    _ramp(0, V0, ramping)


def set_V1(V1: float, ramping: float):
    _ramp(1, V1, ramping)


def set_V2(V2: float, ramping: float):
    _ramp(2, V2, ramping)


def set_V3(V3: float, ramping: float):
    _ramp(3, V3, ramping)


async def set_all(V0: float, V1: float, V2: float, V3: float, ramping: float):
    """All four at once: an async function, run in the task's nursery."""
    async with trio.open_nursery() as nursery:
        for ramp, target in zip(ramps, (V0, V1, V2, V3), strict=True):
            ramp.change_per_sec = ramping
            nursery.start_soon(ramp.aio_set, target)


def stop():
    """Halt every ramp where it is."""
    for ramp in ramps:
        ramp.status().set(0)


class StatusNode(ControlNode):
    """The status table; its get() is user code, so the server reads it in a worker thread."""

    def get(self):
        return {
            "columns": ["Channel", "Value", "Ramping"],
            "table": [
                [f"Ch{i}", float(node), "Yes" if ramp.status().get() else "No"]
                for i, (node, ramp) in enumerate(zip(V, ramps, strict=True))
            ],
        }


def _export():
    return [("V0", V0), ("V1", V1), ("V2", V2), ("V3", V3), ("Status", StatusNode())]
