"""Serial nodes over a pseudo-terminal, against the simulated serial device of the kit.

Real pty I/O: the real clock, bounded by ``fail_after``; nothing asserts elapsed time.
"""

from __future__ import annotations

import os
import termios
from pathlib import Path

import pytest
import trio

from slowdash_controls import (
    ControlSystem,
    DeviceConnectionError,
    DeviceTimeout,
    LinkState,
    RemoteProtocolError,
    WrongThreadError,
)
from slowdash_controls._serial import SerialNode, open_serial_fd
from slowdash_controls.testing import FakeSerialDevice, SimulatedPowerSupply


async def test_scpi_over_a_serial_port(fake_serial_device: FakeSerialDevice) -> None:
    ctrl = ControlSystem()
    port = ctrl.serial(fake_serial_device.port, baudrate=115200)
    v0 = port.scpi().command("V0", set_format="V0 {};*OPC?")
    with trio.fail_after(10):
        assert await v0.aio_set(4.5) == "1"
        assert await v0.aio_get() == "4.5"
        assert await port.scpi().command("MEAS:V0").aio_get() == "4.5"
    assert fake_serial_device.received == ["V0 4.5;*OPC?", "V0?", "MEAS:V0?"]
    adapter = fake_serial_device.adapter
    assert isinstance(adapter, SimulatedPowerSupply)
    assert adapter.values[0] == 4.5
    assert port.link.state is LinkState.UP
    await port.aclose()


async def test_crlf_replies_give_no_extra_empty_lines(
    fake_serial_device: FakeSerialDevice,
) -> None:
    port = SerialNode(fake_serial_device.port, timeout=0.2)
    with trio.fail_after(10):
        await port.aio_set("V0?\n")
        await port.aio_set(b"*IDN?\n")
        assert await port.aio_do_get_line() == "0.0"
        assert await port.aio_do_get_line() == "slowdash,SimulatedPowerSupply,0,1"
        with pytest.raises(DeviceTimeout):
            await port.aio_do_get_line()  # SlowPy's serial node returns '' here (the LF)
    await port.aclose()


async def test_a_missing_port_is_a_connection_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    port = SerialNode(missing)
    with trio.fail_after(10), pytest.raises(DeviceConnectionError, match="ttyUSB9") as caught:
        await port.scpi().command("MEAS:V0").aio_get()
    assert caught.value.address == missing
    assert port.link.state is LinkState.DOWN


def test_bad_settings_fail_when_the_node_is_made() -> None:
    with pytest.raises(ValueError, match="parity"):
        SerialNode("/dev/null", parity="X")
    with pytest.raises(ValueError, match="baud"):
        SerialNode("/dev/null", baudrate=-5)
    with pytest.raises(ValueError, match="no_such_setting"):
        SerialNode("/dev/null", no_such_setting=1)
    SerialNode("/dev/null", polling_interval=1)  # SlowPy's read timeout: accepted, not needed


async def test_the_port_is_opened_with_vmin_1_so_trio_never_sees_a_false_eof(
    fake_serial_device: FakeSerialDevice,
) -> None:
    fd = await trio.to_thread.run_sync(
        open_serial_fd, fake_serial_device.port, 19200, {"stopbits": 2, "xonxoff": True}
    )
    try:
        attributes = termios.tcgetattr(fd)
        assert attributes[6][termios.VMIN] == 1
        assert attributes[6][termios.VTIME] == 0
        # pyserial's settings were applied (a pty keeps these, not parity or byte size)
        assert attributes[4] == attributes[5] == termios.B19200
        assert attributes[2] & termios.CSTOPB
        assert attributes[0] & termios.IXON
        assert not os.get_blocking(fd)
        with pytest.raises(BlockingIOError):
            os.read(fd, 100)  # nothing to read: EAGAIN, not b"" (VMIN=0 would give b"")
    finally:
        os.close(fd)


async def test_timeout_then_the_port_is_reopened_for_the_next_query(
    fake_serial_device: FakeSerialDevice,
) -> None:
    port = SerialNode(fake_serial_device.port, timeout=0.3)
    v0 = port.scpi().command("MEAS:V0")
    with trio.fail_after(10):
        assert await v0.aio_get() == "0.0"
        fake_serial_device.never_reply = True
        with pytest.raises(DeviceTimeout) as caught:
            await v0.aio_get()
        assert caught.value.address == fake_serial_device.port
        assert caught.value.command == "MEAS:V0?"
        fake_serial_device.never_reply = False
        assert await v0.aio_get() == "0.0"
    assert port.link.status.connects == 2  # the stale port was reopened
    await port.aclose()


async def test_a_waiting_read_is_cancellable(fake_serial_device: FakeSerialDevice) -> None:
    port = SerialNode(fake_serial_device.port, timeout=None)
    fake_serial_device.never_reply = True
    with trio.fail_after(10):
        with trio.move_on_after(0.1) as scope:
            await port.scpi().command("MEAS:V0").aio_get()
        assert scope.cancelled_caught
    await port.aclose()


async def test_garbage_from_a_serial_device_is_a_protocol_error(
    fake_serial_device: FakeSerialDevice,
) -> None:
    port = SerialNode(fake_serial_device.port)
    v0 = port.scpi().command("MEAS:V0")
    fake_serial_device.garble()
    with trio.fail_after(10):
        with pytest.raises(RemoteProtocolError):
            await v0.aio_get()
        assert await v0.aio_get() == "0.0"
    await port.aclose()


async def test_an_unplugged_device_breaks_the_link() -> None:
    device = FakeSerialDevice()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(device.run)
            port = SerialNode(path, timeout=2)
            v0 = port.scpi().command("MEAS:V0")
            assert await v0.aio_get() == "0.0"
            device.disconnect()  # closes the pty's master side
            with pytest.raises(DeviceConnectionError):
                await v0.aio_get()
            assert port.link.state is LinkState.DOWN
            nursery.cancel_scope.cancel()
    with trio.fail_after(10), pytest.raises(DeviceConnectionError, match=path):
        await v0.aio_get()  # the port is gone: reopening fails, naming it


async def test_sync_calls_from_a_worker_thread_and_refusal_on_the_trio_thread(
    fake_serial_device: FakeSerialDevice,
) -> None:
    port = ControlSystem().serial(fake_serial_device.port)
    v0 = port.scpi().command("V1", set_format="V1 {};*OPC?")
    with pytest.raises(WrongThreadError):
        v0.get()

    def script() -> tuple[object, object, str | bytes]:
        return v0.set(2), v0.get(), port.scpi().query("*IDN?")

    with trio.fail_after(10):
        assert await trio.to_thread.run_sync(script) == (
            "1",
            "2.0",
            "slowdash,SimulatedPowerSupply,0,1",
        )
    await port.aclose()
