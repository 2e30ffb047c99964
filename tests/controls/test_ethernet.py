"""TCP transport, SCPI and Telnet nodes, against the simulated devices of the testing kit.

Most tests talk to a fake instrument over memory streams (``listen=False``), where
``autojump_clock`` makes timeouts and back-off run in virtual time; a few use a real socket on
127.0.0.1 (the real clock, bounded by ``fail_after``).
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.testing

from slowdash_controls import (
    ControlSystem,
    DeviceConnectionError,
    DeviceTimeout,
    LinkState,
    LocalProtocolError,
    NodeAccessError,
    RemoteProtocolError,
    WrongThreadError,
)
from slowdash_controls._ethernet import EthernetNode, TelnetFilter
from slowdash_controls.testing import (
    GARBAGE,
    BreakingStream,
    FakeLineDevice,
    FakeScpiInstrument,
    SilentStream,
    SimulatedPowerSupply,
    SlowStream,
    open_fake_device,
    open_fake_instrument,
    open_fake_telnet_device,
)


@pytest.fixture
async def inst() -> AsyncIterator[FakeScpiInstrument]:
    """A simulated power supply reached over memory streams only (autojump-safe)."""
    async with open_fake_instrument(listen=False) as instrument:
        yield instrument


def supply(inst: FakeScpiInstrument) -> SimulatedPowerSupply:
    assert isinstance(inst.adapter, SimulatedPowerSupply)
    return inst.adapter


def state(node: EthernetNode) -> LinkState:
    """The link state, read afresh (a function, so type checkers do not pin it down)."""
    return node.link.state


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ================================================================================================
# SCPI commands
# ================================================================================================


async def test_command_get_sends_the_query_and_returns_the_reply_text(
    inst: FakeScpiInstrument,
) -> None:
    scpi = inst.ethernet().scpi()
    assert await scpi.command("V1").aio_set(2.5) is None  # no query in "V1 2.5": nothing read
    reply = await scpi.command("MEAS:V1").aio_get()
    assert reply == "2.5"
    assert await scpi.command("V1?").aio_get() == "2.5"  # a trailing ? is kept, not doubled
    assert inst.received == ["V1 2.5", "MEAS:V1?", "V1?"]
    assert supply(inst).writes == [(1, 2.5)]


async def test_set_format_with_opc_waits_for_the_reply_and_keeps_reads_in_step(
    inst: FakeScpiInstrument,
) -> None:
    scpi = inst.ethernet().scpi()
    v0 = scpi.command("MEAS:V0", set_format="V0 {};*OPC?")
    assert await v0.aio_set(10) == "1"  # the *OPC? reply is read by the write itself
    assert inst.received == ["V0 10;*OPC?"]
    # SlowPy leaves the "1" unread, so this read would get it instead of the value
    assert await v0.aio_get() == "10.0"
    assert await v0.aio_get() == "10.0"


async def test_append_opc_adds_opc_to_every_write_and_waits(inst: FakeScpiInstrument) -> None:
    scpi = inst.ethernet().scpi(append_opc=True)
    assert await scpi.command("V2").aio_set(3) == "1"
    assert inst.received == ["V2 3;*OPC?"]
    assert await scpi.command("V2").aio_get() == "3.0"  # queries get no *OPC?
    assert inst.received[-1] == "V2?"


async def test_set_without_a_value_sends_the_bare_command(inst: FakeScpiInstrument) -> None:
    scpi = inst.ethernet().scpi()
    await scpi.command("V0").aio_set(4)
    assert await scpi.command("*RST").aio_set() is None
    assert await scpi.command("V0").aio_get() == "0.0"
    assert inst.received == ["V0 4", "*RST", "V0?"]


async def test_scpi_node_set_reads_a_reply_only_for_queries(inst: FakeScpiInstrument) -> None:
    scpi = inst.ethernet().scpi()
    assert await scpi.aio_set("V3 7") is None
    assert await scpi.aio_set("V3?") == "7.0"
    assert await scpi.aio_query("*IDN?") == "slowdash,SimulatedPowerSupply,0,1"
    # a "?" inside a quoted parameter is no query: nothing is waited for
    assert await scpi.aio_set('V3 1;DISP:TEXT "why?"') is None
    assert await scpi.aio_query("SYST:ERR?") == '-113,"Undefined header;DISP:TEXT"'


async def test_sync_option_waits_for_a_reply_to_every_command() -> None:
    async with open_fake_device(FakeLineDevice(lambda line: "OK", listen=False)) as device:
        scpi = device.ethernet().scpi(sync=True)
        assert await scpi.aio_set("OUTP ON") == "OK"
        assert await scpi.command("VOLT").aio_set(5) == "OK"
        assert device.received == ["OUTP ON", "VOLT 5"]


async def test_float_int_and_format_of_a_command_node_in_a_worker_thread(
    inst: FakeScpiInstrument,
) -> None:
    v0 = inst.ethernet().scpi().command("V0")
    await v0.aio_set(12.5)

    def read() -> tuple[float, str]:
        return float(v0), f"{v0}"

    assert await trio.to_thread.run_sync(read) == (12.5, "12.5")


async def test_setpoint_checks_limits_before_anything_is_sent(inst: FakeScpiInstrument) -> None:
    v0 = inst.ethernet().scpi().command("V0", set_format="V0 {};*OPC?")
    setpoint = v0.setpoint(limits=(0, 10))
    assert await setpoint.aio_set(5) == "1"
    with pytest.raises(NodeAccessError, match="above the limit"):
        await setpoint.aio_set(11)
    with pytest.raises(NodeAccessError, match="numeric"):
        await setpoint.aio_set("high")
    assert inst.received == ["V0 5.0;*OPC?"]
    assert supply(inst).values[0] == 5.0


async def test_ramping_steps_the_device_in_virtual_time(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    v0 = inst.ethernet().scpi().command("V0", set_format="V0 {};*OPC?")
    start = trio.current_time()
    assert await v0.ramping(2.0).aio_set(5) is True
    assert trio.current_time() - start == pytest.approx(3.0)
    assert supply(inst).writes == [(0, 2.0), (0, 4.0), (0, 5.0)]
    assert await v0.aio_get() == "5.0"


async def test_block_data_reply_comes_back_as_bytes(inst: FakeScpiInstrument) -> None:
    waveform = bytes(range(256)) * 3  # holds CR and LF bytes

    @inst.server.on("WAVeform:DATA?")
    def data() -> bytes:
        return waveform

    scpi = inst.ethernet().scpi()
    assert await scpi.command("WAV:DATA").aio_get() == waveform
    assert await scpi.command("MEAS:V0").aio_get() == "0.0"  # still in step after the block


async def test_command_with_a_line_break_is_refused_before_sending(
    inst: FakeScpiInstrument,
) -> None:
    scpi = inst.ethernet().scpi()
    with pytest.raises(LocalProtocolError):
        await scpi.command("V0").aio_set("1\nV1 2")
    with pytest.raises(LocalProtocolError):
        scpi.command("MEAS:V0\rV1")
    assert inst.received == []


async def test_bad_node_settings_are_refused_when_the_node_is_made(
    inst: FakeScpiInstrument,
) -> None:
    with pytest.raises(ValueError, match="max_line_length"):
        inst.ethernet(max_line_length=0)
    eth = inst.ethernet()
    with pytest.raises(ValueError, match="line_terminator"):
        eth.scpi(line_terminator="")
    with pytest.raises(LocalProtocolError):
        await eth.telnet().command("a\nb").aio_get()
    assert inst.connections == 0  # nothing was sent, nothing connected


async def test_replies_ending_with_cr_lf_or_crlf_are_read_alike() -> None:
    for terminator in ("\r", "\n", "\r\n"):
        async with open_fake_instrument(listen=False, line_terminator=terminator) as inst:
            v0 = inst.ethernet().scpi(line_terminator="\r").command("MEAS:V0")
            assert [await v0.aio_get() for _ in range(3)] == ["0.0"] * 3


# ================================================================================================
# concurrency
# ================================================================================================


async def test_concurrent_queries_from_many_tasks_never_interleave(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    @inst.server.on("ECHO?")
    def echo(text: str) -> str:
        return text

    inst.latency = lambda reply: 0.01 * (len(reply) % 7)  # replies come at different times
    scpi = inst.ethernet().scpi()
    results: dict[int, list[str | bytes]] = {}

    async def worker(i: int) -> None:
        results[i] = [await scpi.aio_query(f"ECHO? task{i}-{n}") for n in range(5)]

    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(worker, i)
    assert results == {i: [f"task{i}-{n}" for n in range(5)] for i in range(8)}
    assert inst.connections == 1


async def test_concurrent_sync_queries_from_worker_threads_never_interleave(
    inst: FakeScpiInstrument,
) -> None:
    @inst.server.on("ECHO?")
    def echo(text: str) -> str:
        return text

    scpi = inst.ethernet().scpi()
    results: dict[int, list[str | bytes]] = {}

    def worker(i: int) -> None:
        results[i] = [scpi.query(f"ECHO? t{i}-{n}") for n in range(20)]

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(trio.to_thread.run_sync, worker, i)
    assert results == {i: [f"t{i}-{n}" for n in range(20)] for i in range(4)}


# ================================================================================================
# timeouts, late replies, broken links, reconnects
# ================================================================================================


async def test_timeout_raises_device_timeout_naming_address_and_command(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    inst.never_reply = True
    v0 = inst.ethernet(timeout=2.0).scpi().command("MEAS:V0")
    start = trio.current_time()
    with pytest.raises(DeviceTimeout) as caught:
        await v0.aio_get()
    assert trio.current_time() - start == pytest.approx(2.0)
    assert caught.value.address == "memory:0"
    assert caught.value.command == "MEAS:V0?"
    assert caught.value.timeout == 2.0
    assert isinstance(caught.value, TimeoutError)


async def test_a_late_reply_is_never_taken_for_the_next_answer(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    count = 0

    @inst.server.on("COUNT?")
    def counter() -> int:
        nonlocal count
        count += 1
        return count

    delays = [5.0]  # the first reply comes after 5 s, the others at once
    inst.latency = lambda reply: delays.pop() if delays else 0.0
    eth = inst.ethernet(timeout=1.0)
    node = eth.scpi().command("COUNT")
    with pytest.raises(DeviceTimeout):
        await node.aio_get()  # "1" is on its way
    await trio.sleep(10)  # ... and has arrived by now (on the old connection)
    assert await node.aio_get() == "2"
    assert await node.aio_get() == "3"
    assert eth.link.status.connects == 2  # the stale connection was replaced


async def test_a_cancelled_exchange_does_not_desynchronise_the_next_one(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    v0 = inst.ethernet().scpi().command("V0", set_format="V0 {};*OPC?")
    inst.latency = 1.0
    with trio.move_on_after(0.5):
        await v0.aio_set(3)  # cancelled by the caller while waiting for "1"
    inst.latency = 0.0
    assert await v0.aio_get() == "3.0"
    assert await v0.aio_set(4) == "1"


async def test_link_goes_down_and_up_again_after_the_device_drops_it(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    eth = inst.ethernet()
    v0 = eth.scpi().command("MEAS:V0")
    assert state(eth) is LinkState.IDLE
    assert await v0.aio_get() == "0.0"
    assert state(eth) is LinkState.UP
    inst.disconnect()
    with pytest.raises(DeviceConnectionError) as caught:
        await v0.aio_get()
    assert caught.value.address == "memory:0"
    assert isinstance(caught.value, ConnectionError)
    assert state(eth) is LinkState.DOWN
    assert eth.link.status.last_error is not None
    assert await v0.aio_get() == "0.0"  # the next operation reconnects at once
    assert state(eth) is LinkState.UP
    assert eth.link.status.connects == 2
    assert inst.connections == 2


async def test_drop_after_a_reply_then_reconnect(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    eth = inst.ethernet()
    scpi = eth.scpi()
    inst.drop_after(2)
    assert await scpi.aio_query("*IDN?") != ""
    assert await scpi.aio_query("V0?") == "0.0"  # the connection closes after this one
    with pytest.raises(DeviceConnectionError):
        await scpi.aio_query("V0?")
    assert await scpi.aio_query("V0?") == "0.0"
    assert eth.link.status.connects == 2


async def test_reconnect_back_off_doubles_up_to_its_cap(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    eth = inst.ethernet(backoff_initial=0.5, backoff_max=4.0)
    v0 = eth.scpi().command("MEAS:V0")
    await v0.aio_get()
    inst.refuse_connections = True
    inst.disconnect()
    with pytest.raises(DeviceConnectionError):
        await v0.aio_get()  # finds the connection closed
    attempts_before = len(inst.connect_times)
    for _ in range(7):
        with pytest.raises(DeviceConnectionError):
            await v0.aio_get()  # an attempt, refused
        # during the back-off an operation fails at once, without an attempt
        attempts = len(inst.connect_times)
        with pytest.raises(DeviceConnectionError, match="next attempt in"):
            await v0.aio_get()
        assert len(inst.connect_times) == attempts
        retry_in = eth.link.status.retry_in
        assert retry_in is not None
        await trio.sleep(retry_in)
    times = inst.connect_times[attempts_before:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
    assert state(eth) is LinkState.DOWN
    inst.refuse_connections = False
    assert await v0.aio_get() == "0.0"
    assert state(eth) is LinkState.UP
    assert eth.link.status.failures == 0


async def test_connect_timeout_is_a_device_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def never_connects() -> trio.abc.Stream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    eth = EthernetNode("device", 5025, opener=never_connects, connect_timeout=3.0)
    start = trio.current_time()
    with pytest.raises(DeviceTimeout, match="connect"):
        await eth.scpi().command("MEAS:V0").aio_get()
    assert trio.current_time() - start == pytest.approx(3.0)
    assert state(eth) is LinkState.DOWN


async def test_refused_tcp_connection_is_a_connection_error_naming_the_address() -> None:
    port = free_port()
    node = ControlSystem().ethernet("127.0.0.1", port).scpi().command("MEAS:V0")
    with trio.fail_after(10), pytest.raises(DeviceConnectionError, match=f"127.0.0.1:{port}"):
        await node.aio_get()


async def test_a_link_that_breaks_mid_reply_is_a_connection_error(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    async def opener() -> trio.abc.Stream:
        return BreakingStream(await inst.open_stream(), after_bytes=2)

    node = EthernetNode("breaking", 1, opener=opener).scpi().command("MEAS:V0")
    with pytest.raises(DeviceConnectionError, match="link broken"):
        await node.aio_get()  # "0.0\n" is cut after two bytes


async def test_a_slow_stream_and_a_silent_one_end_in_timeouts(
    inst: FakeScpiInstrument, autojump_clock: trio.testing.MockClock
) -> None:
    async def slow() -> trio.abc.Stream:
        return SlowStream(await inst.open_stream(), delay=2.0)

    node = EthernetNode("slow", 1, opener=slow, timeout=5.0).scpi().command("MEAS:V0")
    assert await node.aio_get() == "0.0"  # 2 s: within the deadline
    node.scpi.timeout = 1.0
    with pytest.raises(DeviceTimeout):
        await node.aio_get()

    silent = SilentStream()

    async def quiet() -> trio.abc.Stream:
        return silent

    node = EthernetNode("silent", 1, opener=quiet, timeout=4.0).scpi().command("MEAS:V0")
    with pytest.raises(DeviceTimeout):
        await node.aio_get()
    assert bytes(silent.sent) == b"MEAS:V0?\n"


async def test_close_ends_the_link_for_good(inst: FakeScpiInstrument) -> None:
    eth = inst.ethernet()
    v0 = eth.scpi().command("MEAS:V0")
    await v0.aio_get()
    await eth.aclose()
    assert state(eth) is LinkState.CLOSED
    with pytest.raises(DeviceConnectionError, match="closed"):
        await v0.aio_get()


# ================================================================================================
# bad data from the device
# ================================================================================================


async def test_garbage_from_the_device_is_a_protocol_error_not_a_crash(
    inst: FakeScpiInstrument,
) -> None:
    v0 = inst.ethernet().scpi().command("MEAS:V0")
    inst.garble()
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        await v0.aio_get()
    assert await v0.aio_get() == "0.0"  # and the node goes on


async def test_an_over_long_line_from_the_device_is_a_protocol_error(
    inst: FakeScpiInstrument,
) -> None:
    eth = inst.ethernet(max_line_length=100)
    v0 = eth.scpi().command("MEAS:V0")
    inst.replace_replies(b"9" * 1000 + b"\n")
    with pytest.raises(RemoteProtocolError, match="100 bytes"):
        await v0.aio_get()
    assert await v0.aio_get() == "0.0"


async def test_raw_reads_of_garbage_raise_too(inst: FakeScpiInstrument) -> None:
    eth = inst.ethernet()
    inst.replace_replies(GARBAGE)
    await eth.aio_set("*IDN?\n")
    with pytest.raises(RemoteProtocolError):
        await eth.aio_do_get_line()


# ================================================================================================
# the raw transport
# ================================================================================================


async def test_raw_lines_split_at_cr_lf_and_crlf_without_empty_lines() -> None:
    def answer(line: str) -> bytes:
        return b"one\r\ntwo\rthree\nfour\r\n"

    async with open_fake_device(FakeLineDevice(answer, listen=False)) as device:
        eth = device.ethernet()
        await eth.aio_set("go\n")
        assert [await eth.aio_do_get_line() for _ in range(4)] == ["one", "two", "three", "four"]
        await eth.aio_set(b"go\n")
        assert await eth.aio_do_get_line() == "one"
        assert await eth.aio_do_get_chunk() == "two\nthree\nfour\n"
        assert device.received == ["go", "go"]


async def test_raw_get_returns_chunks_as_received_and_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_device(FakeLineDevice(lambda line: line.upper(), listen=False)) as dev:
        eth = dev.ethernet(timeout=1.0)
        await eth.aio_set("hello\n")
        assert await eth.aio_get() == "HELLO\r\n"
        with pytest.raises(DeviceTimeout):
            await eth.aio_do_get_line()  # nothing more comes: a timeout, not None
        with pytest.raises(DeviceTimeout):
            await eth.aio_do_get_chunk(timeout=0.5)
        dev.reply = lambda line: "é".encode()[:1] if line == "1" else "é".encode()[1:] + b"!"
        await eth.aio_set("1\n")
        await eth.aio_set("2\n")
        chunks = [await eth.aio_get()]
        while "".join(chunks) != "é!":  # a character split between two receives
            chunks.append(await eth.aio_get())


async def test_has_data_and_flush_input_on_a_socket(
    fake_instrument: FakeScpiInstrument,
) -> None:
    eth = fake_instrument.ethernet()
    assert await eth.aio_has_data() is False  # not connected: no data, and no connect
    assert state(eth) is LinkState.IDLE
    with trio.fail_after(10):
        await eth.aio_set("*IDN?;*OPC?;V0?\n")  # one reply line, sent in one write
        assert await eth.aio_wait(polling_interval=0.01) is True  # has_data() became true
        reply = "slowdash,SimulatedPowerSupply,0,1;1;0.0\n"
        assert await eth.aio_do_flush_input() == len(reply)
        assert await eth.aio_has_data() is False
        assert await eth.scpi().command("V0").aio_get() == "0.0"


async def test_an_incomplete_line_stays_buffered_after_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_device(FakeLineDevice(lambda line: b"par", listen=False)) as device:
        eth = device.ethernet(timeout=1.0)
        await eth.aio_set("x\n")
        with pytest.raises(DeviceTimeout):
            await eth.aio_do_get_line()
        device.reply = lambda line: b"tial\n"
        await eth.aio_set("y\n")
        assert await eth.aio_do_get_line() == "partial"


# ================================================================================================
# Telnet
# ================================================================================================


async def test_telnet_commands_skip_greeting_echo_and_negotiation() -> None:
    commands: dict[str, str | Callable[[str], str]] = {
        "status": "all good\nno alarms",
        "temp": lambda args: f"{20 + len(args)} C",
    }
    async with open_fake_telnet_device(commands, listen=False) as device:
        telnet = device.ethernet().telnet(prompt="> ")
        assert await telnet.command("status").aio_get() == "all good\nno alarms"
        assert await telnet.command("temp").aio_get() == "20 C"
        await telnet.command("temp").aio_set("xyz")  # consumes its output up to the prompt
        assert await telnet.command("temp").aio_get() == "20 C"  # still in step
        assert device.received[:2] == ["status", "temp"]
        # the device's WILL ECHO and DO TERMINAL-TYPE were refused
        assert bytes(device.answers) == b"\xff\xfe\x01\xff\xfc\x18"


async def test_telnet_without_prompt_reads_one_line() -> None:
    async with open_fake_telnet_device(
        {"ping": "pong"}, listen=False, prompt="", banner="", negotiate=False
    ) as device:
        telnet = device.ethernet().telnet(prompt=None)
        assert await telnet.command("ping").aio_get() == "pong"
        assert await telnet.command("ping").aio_get() == "pong"


async def test_telnet_node_set_and_get() -> None:
    async with open_fake_telnet_device({"echo": lambda args: args}, listen=False) as device:
        telnet = device.ethernet().telnet(prompt="> ")
        await telnet.aio_set("echo one")  # output consumed up to the prompt
        await telnet.aio_set("echo two")
        assert device.received == ["echo one", "echo two"]
        with pytest.raises(ValueError, match="prompt"):
            device.ethernet().telnet(prompt="")


def test_telnet_filter_strips_commands_and_refuses_options() -> None:
    f = TelnetFilter()
    assert f.feed(b"plain text\r\n") == (b"plain text\r\n", b"")
    # DO ECHO, WILL SGA, WONT x, a sub-negotiation, NOP, IAC IAC, CR NUL
    data = (
        b"a\xff\xfd\x01b\xff\xfb\x03c\xff\xfc\x05"
        b"\xff\xfa\x18\x01\xff\xff\xff\xf0d\xff\xf1\xff\xffe\r\x00f"
    )
    text, answer = f.feed(data)
    assert text == b"abcd\xffe\rf"
    assert answer == b"\xff\xfc\x01\xff\xfe\x03"
    # a command split between two receives
    assert f.feed(b"x\xff") == (b"x", b"")
    assert f.feed(b"\xfd") == (b"", b"")
    assert f.feed(b"\x18y") == (b"y", b"\xff\xfc\x18")


# ================================================================================================
# the control system, the sync facade
# ================================================================================================


async def test_ethernet_accepts_host_address_or_positional_arguments(
    fake_instrument: FakeScpiInstrument,
) -> None:
    ctrl = ControlSystem()
    port = fake_instrument.port
    nodes = [
        ctrl.ethernet(host="127.0.0.1", port=port),
        ctrl.ethernet("127.0.0.1", port),
        ctrl.ethernet(address="127.0.0.1", port=port),
    ]
    with trio.fail_after(10):
        for eth in nodes:
            assert await eth.scpi().command("MEAS:V0").aio_get() == "0.0"
    assert fake_instrument.connections == 3
    with pytest.raises(TypeError):
        ctrl.ethernet("127.0.0.1")
    with pytest.raises(ValueError, match="port"):
        ctrl.ethernet("127.0.0.1", 70000)


async def test_sync_get_on_the_trio_thread_raises_wrong_thread_error(
    inst: FakeScpiInstrument,
) -> None:
    eth = inst.ethernet()
    v0 = eth.scpi().command("MEAS:V0")
    with pytest.raises(WrongThreadError, match=r"aio_get"):
        v0.get()
    with pytest.raises(WrongThreadError, match=r"aio_do_get_line"):
        eth.do_get_line()
    with pytest.raises(WrongThreadError):
        float(v0)
    assert inst.received == []


async def test_sync_calls_from_a_worker_thread_reach_the_device(
    inst: FakeScpiInstrument,
) -> None:
    eth = inst.ethernet()
    scpi = eth.scpi()
    v0 = scpi.command("V0", set_format="V0 {};*OPC?")

    def script() -> list[Any]:
        return [v0.set(7), v0.get(), float(v0), scpi.query("*OPC?"), v0.setpoint().get()]

    with trio.fail_after(10):
        assert await trio.to_thread.run_sync(script) == ["1", "7.0", 7.0, "1", None]


def test_sync_calls_from_a_plain_thread_use_the_background_loop(
    fake_instrument_in_thread: FakeScpiInstrument,
) -> None:
    ctrl = ControlSystem()
    eth = ctrl.ethernet("127.0.0.1", fake_instrument_in_thread.port, timeout=10)
    v0 = eth.scpi().command("V0", set_format="V0 {};*OPC?")
    assert v0.set(1.5) == "1"
    assert v0.get() == "1.5"
    results: list[float] = []
    thread = threading.Thread(target=lambda: results.append(float(v0)))
    thread.start()
    thread.join(10)
    assert results == [1.5]
    eth.set("V0?\n")
    assert eth.do_get_line() == "1.5"
    fake_instrument_in_thread.disconnect()  # from this thread
    with pytest.raises(DeviceConnectionError):
        v0.get()
    assert v0.get() == "1.5"
    eth.close()
    assert state(eth) is LinkState.CLOSED
