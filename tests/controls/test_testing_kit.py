"""The device-simulation kit (``slowdash_controls.testing``) and its pytest plugin."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from slowdash_controls.testing import (
    GARBAGE,
    BreakingStream,
    FakeLineDevice,
    FakeScpiInstrument,
    FakeSerialDevice,
    SilentStream,
    SimulatedPowerSupply,
    SlowStream,
    open_fake_device,
    open_fake_instrument,
    open_fake_telnet_device,
    run_in_thread,
)


async def exchange(stream: trio.abc.Stream, line: bytes, *, expect: int = 1) -> bytes:
    """Send ``line``, then receive until ``expect`` LF-ended lines (or EOF) have come."""
    await stream.send_all(line)
    data = b""
    while data.count(b"\n") < expect:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


async def receive_all(stream: trio.abc.Stream) -> bytes:
    """Everything until EOF."""
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


@pytest.fixture
async def inst() -> AsyncIterator[FakeScpiInstrument]:
    """A simulated power supply over memory streams only."""
    async with open_fake_instrument(listen=False) as instrument:
        yield instrument


# ================================================================================================
# the fake instrument and its knobs
# ================================================================================================


async def test_fake_instrument_answers_on_a_real_socket(
    fake_instrument: FakeScpiInstrument,
) -> None:
    assert fake_instrument.port > 0
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", fake_instrument.port)
        assert await exchange(stream, b"*IDN?\r\n") == b"slowdash,SimulatedPowerSupply,0,1\n"
        await stream.aclose()
    assert fake_instrument.connections == 1
    assert fake_instrument.received == ["*IDN?"]


async def test_simulated_power_supply_commands(inst: FakeScpiInstrument) -> None:
    stream = await inst.open_stream()
    assert await exchange(stream, b"V0 1.5;VOLT1 2;VOLTAGE2 -3\n*OPC?\n") == b"1\n"
    assert await exchange(stream, b"V0?;MEAS:V1?;:MEASURE:VOLT2?\n") == b"1.5;2.0;-3.0\n"
    assert await exchange(stream, b"V9 1;V0 abc;V0?\n") == b"1.5\n"
    errors = await exchange(stream, b"SYST:ERR?;:SYST:ERR?;:SYST:ERR?\n")
    assert errors.startswith(b'-113,"Undefined header;V9";-200,"Execution error;bad parameter')
    assert errors.endswith(b';0,"No error"\n')
    assert await exchange(stream, b"*RST;V0?\n") == b"0.0\n"
    adapter = inst.adapter
    assert isinstance(adapter, SimulatedPowerSupply)
    assert adapter.writes == [(0, 1.5), (1, 2.0), (2, -3.0)]
    assert adapter.values == [0.0, 0.0, 0.0, 0.0]


async def test_latency_delays_each_reply(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    stream = await inst.open_stream()
    inst.latency = 2.5
    start = trio.current_time()
    assert await exchange(stream, b"V0?\n") == b"0.0\n"
    assert trio.current_time() - start == pytest.approx(2.5)
    seen: list[bytes] = []

    def latency(reply: bytes) -> float:
        seen.append(reply)
        return 0.5 * len(seen)

    inst.latency = latency
    await exchange(stream, b"*OPC?\n")
    await exchange(stream, b"V0?\n")
    assert seen == [b"1\n", b"0.0\n"]
    assert trio.current_time() - start == pytest.approx(2.5 + 0.5 + 1.0)


async def test_drop_after_closes_the_connection_after_n_replies(
    inst: FakeScpiInstrument,
) -> None:
    stream = await inst.open_stream()
    inst.drop_after(2)
    assert await exchange(stream, b"V0?\n") == b"0.0\n"
    assert await exchange(stream, b"V0?\n") == b"0.0\n"
    assert await receive_all(stream) == b""  # closed after the second reply
    other = await inst.open_stream()  # a knob acts once
    assert await exchange(other, b"V0?\n") == b"0.0\n"
    inst.drop_after(0)
    assert await exchange(other, b"V0?\n") == b""  # closed instead of this reply
    assert inst.replies == 3
    with pytest.raises(ValueError, match="negative"):
        inst.drop_after(-1)


async def test_never_reply_garble_and_replace_replies(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    stream = await inst.open_stream()
    inst.never_reply = True
    with trio.move_on_after(60) as waited:
        await exchange(stream, b"V0?\n")
    assert waited.cancelled_caught
    inst.never_reply = False
    inst.garble()
    inst.replace_replies(b"#15hello\n", count=2)
    assert await exchange(stream, b"V0?\n") == GARBAGE
    assert await exchange(stream, b"V0?\n") == b"#15hello\n"
    assert await exchange(stream, b"V0?\n") == b"#15hello\n"
    assert await exchange(stream, b"V0?\n") == b"0.0\n"


async def test_disconnect_closes_every_connection_and_refusal(
    inst: FakeScpiInstrument,
) -> None:
    first, second = await inst.open_stream(), await inst.open_stream()
    assert await exchange(first, b"V0?\n") == b"0.0\n"
    inst.disconnect()
    assert await receive_all(first) == b""
    assert await receive_all(second) == b""
    inst.refuse_connections = True
    with pytest.raises(ConnectionRefusedError):
        await inst.open_stream()
    assert len(inst.connect_times) == 3
    assert inst.connections == 2


async def test_open_stream_needs_a_running_device() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        await FakeScpiInstrument().open_stream()


async def test_custom_handlers_on_the_instrument_server(inst: FakeScpiInstrument) -> None:
    @inst.server.on("CURRent?")
    def current() -> float:
        return 0.25

    stream = await inst.open_stream()
    assert await exchange(stream, b"CURR?\n") == b"0.25\n"


# ================================================================================================
# other fake devices
# ================================================================================================


async def test_fake_serial_device_answers_on_its_pty(
    fake_serial_device: FakeSerialDevice,
) -> None:
    fd = os.open(fake_serial_device.port, os.O_RDWR | os.O_NOCTTY)
    stream = trio.lowlevel.FdStream(fd)
    with trio.fail_after(10):
        assert await exchange(stream, b"V0 2;V0?\r") == b"2.0\r\n"  # CRLF replies
    await stream.aclose()


async def test_fake_telnet_device_negotiates_greets_and_echoes() -> None:
    async with open_fake_telnet_device({"hello": "world"}, listen=False, prompt="$ ") as dev:
        stream = await dev.open_stream()
        greeting = await stream.receive_some(65536)
        while not greeting.endswith(b"$ "):
            greeting += await stream.receive_some(65536)
        assert greeting == b"\xff\xfb\x01\xff\xfd\x18Simulated device\r\n$ "
        await stream.send_all(b"\xff\xfc\x18hello\r\n")
        reply = b""
        while not reply.endswith(b"$ "):
            reply += await stream.receive_some(65536)
        assert reply == b"hello\r\nworld\r\n$ "
        assert bytes(dev.answers) == b"\xff\xfc\x18"
        assert dev.received == ["hello"]


async def test_fake_line_device_answers_text_bytes_or_nothing() -> None:
    def answer(line: str) -> str | bytes | None:
        answers: dict[str, str | bytes] = {"a": "A", "b": b"raw\n"}
        return answers.get(line)

    async with open_fake_device(FakeLineDevice(answer, listen=False)) as device:
        stream = await device.open_stream()
        assert await exchange(stream, b"a\n") == b"A\r\n"
        assert await exchange(stream, b"x\rb\r") == b"raw\n"  # no answer to x
        assert device.received == ["a", "x", "b"]


def test_run_in_thread_serves_sync_code_and_stops() -> None:
    with run_in_thread(FakeScpiInstrument()) as instrument:
        port = instrument.port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"V0 3\nV0?\n")
            assert sock.recv(100) == b"3.0\n"
            instrument.disconnect()  # returns once the connection is closed
            assert sock.recv(100) == b""
    with pytest.raises(ConnectionRefusedError):  # stopped: nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=10).close()


def test_run_in_thread_reports_a_device_that_cannot_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"), run_in_thread(FakeScpiInstrument(port=port)):
            pass


def test_sync_fixture_serves_a_blocking_client(
    fake_instrument_in_thread: FakeScpiInstrument,
) -> None:
    with socket.create_connection(("127.0.0.1", fake_instrument_in_thread.port), 10) as sock:
        sock.sendall(b"*OPC?\n")
        assert sock.recv(100) == b"1\n"


# ================================================================================================
# misbehaving streams
# ================================================================================================


async def test_slow_stream_delays_receives_and_optionally_sends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = trio.testing.memory_stream_pair()
    slow = SlowStream(left, delay=1.5, delay_sends=True)
    start = trio.current_time()
    await slow.send_all(b"x")
    assert trio.current_time() - start == pytest.approx(1.5)
    assert await right.receive_some(10) == b"x"
    await right.send_all(b"y")
    assert await slow.receive_some(10) == b"y"
    assert trio.current_time() - start == pytest.approx(3.0)
    await slow.aclose()
    assert await right.receive_some(10) == b""


async def test_breaking_stream_breaks_after_n_bytes() -> None:
    left, right = trio.testing.memory_stream_pair()
    breaking = BreakingStream(left, after_bytes=3)
    await right.send_all(b"abcdef")
    assert await breaking.receive_some() == b"abc"
    with pytest.raises(trio.BrokenResourceError):
        await breaking.receive_some()
    with pytest.raises(trio.BrokenResourceError):
        await breaking.send_all(b"x")


async def test_silent_stream_takes_everything_and_never_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    silent = SilentStream()
    await silent.send_all(b"MEAS?\n")
    with trio.move_on_after(3600) as waited:
        await silent.receive_some()
    assert waited.cancelled_caught
    assert bytes(silent.sent) == b"MEAS?\n"
    await silent.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await silent.send_all(b"x")


# ================================================================================================
# packaging
# ================================================================================================


def test_the_library_and_the_kit_do_not_import_pytest() -> None:
    code = textwrap.dedent(
        """
        import sys
        import slowdash_controls, slowdash_controls.testing
        assert "pytest" not in sys.modules, "pytest was imported"
        assert "trio.testing" not in sys.modules  # it imports pytest when installed
        import slowdash_controls.pytest_plugin
        assert "pytest" in sys.modules
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
