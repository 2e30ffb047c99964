"""One control script, unchanged, runs standalone (``python script.py``) and inside the server."""

from __future__ import annotations

import os
from pathlib import Path

import trio
from support import build_project, interrupt_plain_script, running

from slowdash_controls.testing import FakeScpiInstrument, open_fake_instrument, run_in_thread

# The shape of a SlowTask script: nodes at top level, hooks, and a __main__ block that runs the
# hooks by hand when started as a plain script.
SCRIPT = """
import os
from slowdash_controls import ControlSystem, ValueNode

ctrl = ControlSystem()
device = ctrl.ethernet(host="127.0.0.1", port=int(os.environ["FAKE_PORT"])).scpi()
V0 = device.command("V0", set_format="V0 {};*OPC?")
reading = ValueNode(initial_value=0.0)
loops = 0

def _initialize(params):
    V0.setpoint(limits=(0, 100)).set(12.5)

def _loop():
    global loops
    reading.set(float(V0))
    loops += 1
    if loops == 2:
        print("looped", reading.get(), flush=True)
    ctrl.sleep(0.05)          # returns at once when the task (or the script) is stopped

def _get_data(channel):
    return reading.get() if channel == "V0" else None

def _finalize():
    V0.set(0)
    print("finalized", flush=True)

if __name__ == "__main__":
    ControlSystem.stop_by_signal()   # Ctrl-C (SIGINT) becomes a stop request
    _initialize({})
    while not ControlSystem.is_stop_requested():
        _loop()
    _finalize()
"""


def test_the_script_runs_standalone_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    script = tmp_path / "slowtask-psu.py"
    script.write_text(SCRIPT)
    with run_in_thread(FakeScpiInstrument()) as instrument:
        returncode, out, err = interrupt_plain_script(
            script, wait_for="looped 12.5", env={"FAKE_PORT": str(instrument.port)}
        )
        writes = list(instrument.adapter.writes)  # type: ignore[attr-defined]
    assert returncode == 0, err
    assert out.strip() == "finalized"
    assert writes == [(0, 12.5), (0, 0.0)]


async def test_the_same_script_runs_inside_the_server(tmp_path: Path) -> None:
    async with open_fake_instrument() as instrument:
        os.environ["FAKE_PORT"] = str(instrument.port)
        try:
            project = build_project(tmp_path, {"psu": SCRIPT})
            with trio.fail_after(60):
                async with running(project) as server:
                    (module,) = server.modules
                    assert module.status.error is None, module.status.to_json()
                    reading = module.module.reading
                    assert await reading.aio_wait(lambda v: v == 12.5, 0.01, timeout=30)
                    assert await module.get_data("V0") == 12.5
        finally:
            del os.environ["FAKE_PORT"]
        writes = list(instrument.adapter.writes)  # type: ignore[attr-defined]
    # stopping the module ended its loop, and _finalize ran its I/O on the server's loop
    assert module.status.error is None, module.status.to_json()
    assert writes == [(0, 12.5), (0, 0.0)]
