"""The Trio SCPI server: real sockets on 127.0.0.1 (port 0) and memory streams."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from slowdash_controls._errors import InstrumentError
from slowdash_controls._scpi import LineBuffer, block_payload, format_block, parse_error_entry
from slowdash_controls._scpi_server import ScpiAdapter, ScpiServer

TIMEOUT = 20  # generous bound for anything on the real clock


class Client:
    """A minimal line client for tests."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = LineBuffer(1 << 22)
        self.lines: deque[str] = deque()

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        await self.stream.send_all(data)

    async def readline(self) -> str:
        while not self.lines:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("the server closed the connection")
            for event in self.buffer.feed(data):
                assert isinstance(event, str), event
                self.lines.append(event)
        return self.lines.popleft()

    async def query(self, line: str) -> str:
        await self.send(line + "\n")
        return await self.readline()

    async def errors(self) -> list[tuple[int, str]]:
        """Drain the server's error queue."""
        found: list[tuple[int, str]] = []
        while True:
            code, text = parse_error_entry(await self.query("SYST:ERR?"))
            if code == 0:
                return found
            found.append((code, text))

    async def aclose(self) -> None:
        await self.stream.aclose()


Connect = Callable[[int], Awaitable[Client]]
Start = Callable[[ScpiServer], Awaitable[Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(port)``: a client on 127.0.0.1, closed at the end of the test."""
    opened: list[Client] = []

    async def open_client(port: int) -> Client:
        client = Client(await trio.open_tcp_stream("127.0.0.1", port))
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await trio.aclose_forcefully(client.stream)


@pytest.fixture
async def start(nursery: trio.Nursery, connect: Connect) -> Start:
    """``await start(server)``: run the server in the test's nursery, return a client."""

    async def start_server(server: ScpiServer) -> Client:
        port = await nursery.start(server.run)
        assert isinstance(port, int) and port > 0
        return await connect(port)

    return start_server


def make_server(**kwargs: Any) -> ScpiServer:
    return ScpiServer(port=0, **kwargs)


# ============================================================================================
# decorator style
# ============================================================================================


async def test_decorator_queries_and_sets(start: Start) -> None:
    server = make_server()
    state: dict[str, Any] = {"volt": 0.0}

    @server.on("MEASure:VOLTage?")
    def measure() -> float:
        return float(state["volt"]) * 2

    @server.on("VOLTage")
    def set_volt(value: float) -> None:
        state["volt"] = value

    @server.on("OUTPut")
    async def output(on: bool) -> None:
        await trio.lowlevel.checkpoint()
        state["out"] = on

    @server.on("OUTPut?")
    async def output_query() -> bool:
        return bool(state.get("out"))

    @server.on("SYSTem:NAME")
    def name(text: str, count: int = 1) -> None:
        state["name"] = text * count

    client = await start(server)
    with trio.fail_after(TIMEOUT):
        await client.send("volt 1.5\n")
        assert await client.query("MEAS:VOLT?") == "3.0"
        assert await client.query("MEASURE:VOLTAGE?") == "3.0"
        await client.send("OUTP ON\n")
        assert await client.query("OUTP?") == "1"
        await client.send("OUTPUT false\n")
        assert await client.query("OUTPUT?") == "0"
        await client.send('SYST:NAME "a, ""b""" , #H2\n')
        assert await client.query("*OPC?") == "1"
        assert state["name"] == 'a, "b"a, "b"'
        assert await client.errors() == []


async def test_partial_long_form_is_undefined(start: Start) -> None:
    server = make_server()
    server.on("MEASure:VOLTage?")(lambda: 1)
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("MEASU:VOLT?") == ""
        assert await client.errors() == [(-113, "Undefined header;MEASU:VOLT?")]


async def test_relative_paths_and_common_commands(start: Start) -> None:
    server = make_server()
    server.adapter.idn = "Test,1"
    server.on("MEASure:VOLTage?")(lambda: 1.5)
    server.on("MEASure:CURRent?")(lambda: 0.25)
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("MEAS:VOLT?;CURR?") == "1.5;0.25"
        # SlowPy turns the *IDN? into MEAS:*IDN? here; it is a common command
        assert await client.query("MEAS:VOLT?;*IDN?;CURR?") == "1.5;Test,1;0.25"
        assert await client.query(":MEAS:CURR?;:MEAS:VOLT?") == "0.25;1.5"
        assert await client.errors() == []


async def test_arity_and_conversion_errors_name_command_and_parameter(start: Start) -> None:
    server = make_server()
    calls: list[Any] = []

    @server.on("VOLTage")
    def set_volt(value: float) -> None:
        calls.append(value)

    @server.on("COUNt")
    def set_count(n: int, enable: bool = True) -> None:
        calls.append((n, enable))

    client = await start(server)
    with trio.fail_after(TIMEOUT):
        await client.send("VOLT\nVOLT 1,2\nVOLT abc\nCOUNT 2.5\nCOUNT 3,maybe\nCOUNT 4,OFF\n")
        errors = await client.errors()
    assert calls == [(4, False)]
    codes = [code for code, _ in errors]
    assert codes == [-109, -108, -224, -224, -224]
    assert "VOLT expects 1 parameter (value), got 0" in errors[0][1]
    assert "VOLT takes at most 1 parameter, got 2" in errors[1][1]
    assert "VOLT parameter 1 (value)" in errors[2][1] and "'abc'" in errors[2][1]
    assert "COUNT parameter 1 (n)" in errors[3][1]
    assert "COUNT parameter 2 (enable)" in errors[4][1]


async def test_handler_exception_is_an_execution_error(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server()

    @server.on("BOOM?")
    def boom() -> str:
        raise RuntimeError("the device is on fire")

    @server.on("LIMIT")
    async def limit(value: float) -> None:
        raise InstrumentError(-222, "above 10 V")

    server.on("OK?")(lambda: "ok")
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("BOOM?;OK?") == ";ok"
        await client.send("LIMIT 11\n")
        assert await client.errors() == [
            (-200, "Execution error;BOOM?: RuntimeError: the device is on fire"),
            (-222, "Data out of range;above 10 V"),
        ]
        assert await client.query("OK?") == "ok"
    assert "SCPI BOOM? failed" in caplog.text


async def test_replies_stay_on_one_line(start: Start) -> None:
    server = make_server()
    server.on("LINES?")(lambda: "first\nsecond\r")
    server.on("SURROGATE?")(lambda: "\ud800")

    class Answer:
        async def __call__(self) -> str:
            await trio.lowlevel.checkpoint()
            return "awaited"

    server.on("OBJECT?")(Answer())
    server.on("LAMBDA?")(lambda: Answer()())
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("LINES?;*OPC?") == "first second ;1"
        assert await client.query("SURROGATE?") == "?"
        assert await client.query("OBJECT?;LAMBDA?") == "awaited;awaited"


async def test_bytes_parameters_and_replies_are_block_data(start: Start) -> None:
    server = make_server()
    received: list[bytes] = []

    @server.on("DATA")
    def data(payload: bytes) -> None:
        received.append(payload)

    @server.on("DATA?")
    def data_query() -> bytes:
        return received[-1][::-1]

    client = await start(server)
    payload = b"\r\n;,\x00\xff" * 1000
    with trio.fail_after(TIMEOUT):
        await client.send("DATA " + format_block(payload) + ";DATA?\r\n")
        reply = await client.readline()
        assert block_payload(reply) == payload[::-1]
        assert received == [payload]
        assert await client.query("*OPC?") == "1"


async def test_cancelled_is_never_caught(connect: Connect) -> None:
    server = make_server()
    entered = trio.Event()

    @server.on("HANG?")
    async def hang() -> None:
        entered.set()
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as inner:
            client = await connect(await inner.start(server.run))
            await client.send("HANG?\n")
            await entered.wait()
            inner.cancel_scope.cancel()
    assert server.adapter.errors.pop() == (0, "No error")


# ============================================================================================
# class style and dispatch order
# ============================================================================================


class Device(ScpiAdapter):
    def __init__(self) -> None:
        super().__init__(idn="Device,0")
        self.values = [0.0, 0.0]
        self.resets = 0

    def do_command(self, cmd_path: list[str], params: list[str]) -> object:
        if len(params) == 1 and cmd_path[0] in ("V0", "V1"):
            try:
                self.values[int(cmd_path[0][1])] = float(params[0])
            except ValueError:
                self.push_error(f"bad parameter value: {params[0]}")
            return ""
        if len(cmd_path) == 2 and cmd_path[0].startswith("MEAS") and cmd_path[1] in ("V0?", "V1?"):
            return self.values[int(cmd_path[1][1])]
        if cmd_path == ["*IDN?"] and self.resets:
            return "Device,reset"
        if cmd_path == ["PATH?"]:
            return ":".join(cmd_path) + "|" + ",".join(params)
        return None

    def do_RST(self) -> object:
        self.resets += 1
        return super().do_RST()


async def test_class_style_do_command(start: Start) -> None:
    device = Device()
    client = await start(ScpiServer(device, port=0))
    with trio.fail_after(TIMEOUT):
        await client.send("V0 1.5;V1 2.5\r")
        assert await client.query("MEASURE:V0?;V1?") == "1.5;2.5"
        assert await client.query("path? a , 'b,c'") == "PATH?|a,'b,c'"
        await client.send("V0 abc\n")
        assert await client.errors() == [(-200, "Execution error;bad parameter value: abc")]
        assert await client.query("*IDN?") == "Device,0"
        await client.send("*RST\n")
        assert await client.query("*IDN?") == "Device,reset"  # do_command comes first


async def test_dispatch_order(start: Start) -> None:
    device = Device()
    server = ScpiServer(device, port=0)
    server.on("MEASure:V0?")(lambda: "decorator")  # before do_command
    node = FakeNode("node")
    server.bind_nodes([("*IDN", node), ("MEASure:V1", node), ("EXTRa", node)])
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("MEAS:V0?") == "decorator"
        assert await client.query("MEAS:V1?") == "0.0"  # do_command before nodes
        assert await client.query("*IDN?") == "Device,0"  # built-ins before nodes
        assert await client.query("EXTRA?") == "node"
        assert await client.errors() == []


# ============================================================================================
# bound nodes
# ============================================================================================


class FakeNode:
    """Duck-typed node: the two async methods ``bind_nodes`` uses."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.sets: list[Any] = []

    async def aio_get(self) -> Any:
        await trio.lowlevel.checkpoint()
        return self.value

    async def aio_set(self, value: Any) -> Any:
        await trio.lowlevel.checkpoint()
        self.sets.append(value)
        self.value = value
        return None


async def test_bind_nodes(start: Start) -> None:
    from slowdash_controls._node import ValueNode

    walk = FakeNode(1.0)
    voltage = ValueNode(0.5)
    adapter = ScpiAdapter(idn="RandomWalk")
    adapter.bind_nodes(
        [
            ("CONFIGure:WALK", walk),
            ("VOLTage", voltage.setpoint(limits=(0, 10))),
            ("MEASure:VOLTage", voltage.readonly()),
        ]
    )
    client = await start(ScpiServer(adapter, port=0))
    with trio.fail_after(TIMEOUT):
        assert await client.query("CONFIG:WALK?") == "1.0"
        await client.send("CONFIGURE:WALK 2.5\n")
        assert await client.query("CONFIG:WALK?") == "2.5"
        assert walk.sets == ["2.5"]  # the text, as SlowPy passes it
        await client.send("VOLT 3.25\n")
        assert await client.query("MEAS:VOLT?") == "3.25"
        assert await voltage.aio_get() == 3.25
        await client.send("VOLT 11\nMEAS:VOLT 1\nVOLT\n")
        errors = await client.errors()
        assert [code for code, _ in errors] == [-224, -224, -109]
        assert "above the limit" in errors[0][1]
        assert "read-only" in errors[1][1]
        assert await voltage.aio_get() == 3.25


def test_bind_nodes_rejects_non_nodes() -> None:
    with pytest.raises(TypeError, match="not a control node"):
        ScpiAdapter().bind_nodes([("X", object())])  # type: ignore[list-item]


# ============================================================================================
# common commands and the error queue
# ============================================================================================


async def test_common_commands_and_status(start: Start) -> None:
    server = make_server()
    client = await start(server)
    adapter = server.adapter
    with trio.fail_after(TIMEOUT):
        assert await client.query("*IDN?") == "Slow SCPI Device"
        assert await client.query("*OPC?") == "1"
        assert await client.query("*STB?;*ESR?") == "0;0"
        adapter.push_error("something went wrong")
        adapter.push_error(-113, "NOPE")
        await client.send("*ESE 48;*OPC;*WAI\n")
        assert await client.query("*STB?;*ESE?;SYST:ERR:COUN?") == "36;48;2"
        assert await client.query("*ESR?;*ESR?") == "49;0"
        assert await client.query("SYSTem:ERRor:NEXT?") == (
            '-200,"Execution error;something went wrong"'
        )
        assert await client.query("SYST:ERR:ALL?") == '-113,"Undefined header;NOPE"'
        assert await client.query("SYST:ERR:ALL?") == '0,"No error"'
        await client.send("NOPE\n*CLS\n")
        assert await client.query("SYST:ERR?;*TST?") == '0,"No error";0'
        await client.send("*ESE 300\n*ESE\n")
        assert [code for code, _ in await client.errors()] == [-222, -109]


async def test_unknown_commands(start: Start) -> None:
    client = await start(make_server())
    with trio.fail_after(TIMEOUT):
        await client.send("FOO\n")  # no query: no reply at all
        assert await client.query("FOO?") == ""  # a query gets an empty reply
        assert await client.query("BAR?;*OPC?") == ";1"
        assert await client.errors() == [
            (-113, "Undefined header;FOO"),
            (-113, "Undefined header;FOO?"),
            (-113, "Undefined header;BAR?"),
        ]


async def test_error_queue_overflow_over_the_wire(start: Start) -> None:
    client = await start(ScpiServer(ScpiAdapter(error_queue_size=5), port=0))
    with trio.fail_after(TIMEOUT):
        await client.send("".join(f"BAD{i}\n" for i in range(20)))
        errors = await client.errors()
    assert [code for code, _ in errors] == [-113, -113, -113, -113, -350]
    assert errors[0][1].endswith("BAD0")


def test_push_error_and_errors_reset_as_in_slowpy() -> None:
    adapter = ScpiAdapter()
    adapter.push_error("plain")
    adapter.push_error(-224, "bad value")
    adapter.push_error(17, "device specific")
    assert list(adapter.errors) == [
        (-200, "Execution error;plain"),
        (-224, "Illegal parameter value;bad value"),
        (17, "device specific"),
    ]
    assert adapter.esr == 16 | 8
    adapter.errors = []  # what SlowPy subclasses do
    assert len(adapter.errors) == 0


# ============================================================================================
# bad input and misbehaving clients
# ============================================================================================


async def test_over_long_line_then_the_client_is_still_served(start: Start) -> None:
    client = await start(make_server(max_line_length=64))
    with trio.fail_after(TIMEOUT):
        await client.send("A" * 10_000)
        await client.send("B" * 10_000 + "\n")
        assert await client.query("*OPC?") == "1"
        assert [code for code, _ in await client.errors()] == [-363]


async def test_invalid_utf8_then_the_client_is_still_served(start: Start) -> None:
    client = await start(make_server())
    with trio.fail_after(TIMEOUT):
        await client.send(b"\xff\xfe*IDN?\n")
        assert await client.query("*OPC?") == "1"
        errors = await client.errors()
    assert [code for code, _ in errors] == [-101]


async def test_terminators_in_and_out(start: Start) -> None:
    server = make_server(line_terminator="\r")
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        await client.send("*OPC?\r*OPC?\n*OPC?\r\n*OPC?\r")
        await client.send("\n*OPC?\n")
        replies = [await client.readline() for _ in range(5)]
    assert replies == ["1"] * 5
    assert client.buffer.pending == 0
    with pytest.raises(ValueError, match="line_terminator"):
        ScpiServer(line_terminator=";")


async def test_pipelined_queries_answered_in_order(start: Start) -> None:
    server = make_server()
    server.on("ECHO?")(lambda text: text)
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        await client.send("".join(f"ECHO? {i}\n" for i in range(2000)))
        replies = [await client.readline() for _ in range(2000)]
    assert replies == [str(i) for i in range(2000)]


async def test_client_that_never_reads_is_dropped(
    nursery: trio.Nursery, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(send_timeout=0.5)
    server.on("BIG?")(lambda: "x" * 65536)
    server.on("SMALL?")(lambda: "small")
    port = await nursery.start(server.run)
    hog = await connect(port)
    polite = await connect(port)
    with trio.fail_after(TIMEOUT):
        assert await polite.query("SMALL?") == "small"
        with pytest.raises(trio.BrokenResourceError):  # noqa: PT012
            while True:  # the hog sends and never reads, until the server drops it
                await hog.send("BIG?\n" * 100)
        assert await polite.query("SMALL?") == "small"
    assert server.statistics().dropped == 1
    assert "did not read its replies" in caplog.text
    await hog.aclose()


async def test_fifty_clients_at_once(nursery: trio.Nursery, connect: Connect) -> None:
    server = make_server()
    server.on("ECHO?")(lambda text: text)
    port = await nursery.start(server.run)
    clients = [await connect(port) for _ in range(50)]
    results: dict[int, list[str]] = {}

    async def talk(i: int, client: Client) -> None:
        results[i] = [await client.query(f"ECHO? {i}-{k}") for k in range(20)]

    with trio.fail_after(TIMEOUT):
        for client in clients:  # everyone connected and served once
            assert await client.query("*OPC?") == "1"
        assert server.statistics().clients == 50
        async with trio.open_nursery() as inner:
            for i, client in enumerate(clients):
                inner.start_soon(talk, i, client)
    assert results == {i: [f"{i}-{k}" for k in range(20)] for i in range(50)}
    assert server.statistics().lines == 50 * 21


async def test_max_clients_refuses_politely(nursery: trio.Nursery, connect: Connect) -> None:
    server = make_server(max_clients=2)
    port = await nursery.start(server.run)
    first, second = await connect(port), await connect(port)
    with trio.fail_after(TIMEOUT):
        assert await first.query("*OPC?") == "1"
        assert await second.query("*OPC?") == "1"
        third = await connect(port)
        assert await third.stream.receive_some(100) == b""  # closed at once
        assert server.statistics().refused == 1
        assert await first.query("*OPC?") == "1"
        await second.aclose()
        # a place is free again once the server has seen the close
        while True:
            again = await connect(port)
            try:
                assert await again.query("*OPC?") == "1"
                break
            except (EOFError, trio.BrokenResourceError):
                await again.aclose()
                await trio.testing.wait_all_tasks_blocked()


# ============================================================================================
# serve_stream: fake instruments over memory streams
# ============================================================================================


async def serve_in_memory(
    nursery: trio.Nursery, server: ScpiServer
) -> tuple[Client, Callable[[], Awaitable[None]]]:
    """Serve one memory stream; return the client side and a wait for the server side's end."""
    client_end, server_end = trio.testing.memory_stream_pair()
    done = trio.Event()

    async def serve() -> None:
        try:
            await server.serve_stream(server_end)
        finally:
            done.set()

    nursery.start_soon(serve)
    return Client(client_end), done.wait


async def test_serve_stream_over_memory_streams(nursery: trio.Nursery) -> None:
    server = ScpiServer(Device())
    client, finished = await serve_in_memory(nursery, server)
    with trio.fail_after(TIMEOUT):
        await client.send("V1 4.5\n")
        assert await client.query("MEAS:V1?;*IDN?") == "4.5;Device,0"
        assert server.statistics().clients == 1
        await client.aclose()
        await finished()
    assert server.statistics().clients == 0


async def test_disconnect_mid_line(nursery: trio.Nursery, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="slowdash_controls.scpi")
    calls: list[str] = []
    server = ScpiServer()
    server.on("VOLTage")(calls.append)
    client, finished = await serve_in_memory(nursery, server)
    with trio.fail_after(TIMEOUT):
        await client.send("VOLT 1\nVOLT 2")  # the second line never ends
        await client.aclose()
        await finished()
    assert calls == ["1"]
    assert "left in mid-line (6 bytes dropped)" in caplog.text


# ============================================================================================
# threads
# ============================================================================================


async def test_sync_handlers_run_inline_by_default(start: Start) -> None:
    server = make_server()
    server.on("WHERE?")(lambda: "trio" if trio.lowlevel.in_trio_run() else "thread")
    server.on("THREAD?", thread=True)(lambda: threading.current_thread() is threading.main_thread())
    client = await start(server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("WHERE?;THREAD?") == "trio;0"


async def test_threaded_server_serialises_handlers(nursery: trio.Nursery, connect: Connect) -> None:
    device = Device()
    server = ScpiServer(device, port=0, threaded=True)
    lock = threading.Lock()
    release = threading.Event()
    entered = trio.Event()
    token = trio.lowlevel.current_trio_token()
    inside = 0
    most = 0

    @server.on("WORK?")
    def work() -> str:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        trio.from_thread.run_sync(entered.set, trio_token=token)
        release.wait(TIMEOUT)
        with lock:
            inside -= 1
        return "main" if threading.current_thread() is threading.main_thread() else "worker"

    port = await nursery.start(server.run)
    first, second = await connect(port), await connect(port)
    replies: list[str] = []

    async def ask(client: Client) -> None:
        replies.append(await client.query("WORK?"))

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as inner:
            inner.start_soon(ask, first)
            await entered.wait()
            inner.start_soon(ask, second)
            while device.thread_limiter.statistics().tasks_waiting < 1:
                await trio.testing.wait_all_tasks_blocked()
            release.set()
        # do_command runs in a worker thread too when the server is threaded
        assert await first.query("MEAS:V0?") == "0.0"
    assert replies == ["worker", "worker"]
    assert most == 1


def test_async_handler_cannot_ask_for_a_thread() -> None:
    async def handler() -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        ScpiServer().on("X?", thread=True)(handler)


def test_keyword_only_parameter_needs_default() -> None:
    def handler(*, value: float) -> None:
        pass

    with pytest.raises(TypeError, match="keyword-only"):
        ScpiServer().on("X")(handler)


# ============================================================================================
# start(): the blocking call of a script
# ============================================================================================


def test_start_needs_the_main_thread() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ScpiServer(port=0).start()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(TIMEOUT)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError) and "main thread" in str(errors[0])


async def test_start_inside_trio_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"nursery\.start\(server\.run\)"):
        ScpiServer(port=0).start()


SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from slowdash_controls._scpi_server import ScpiServer
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    server = ScpiServer(port=0)
    server.adapter.idn = "Script"
    server.start()
    print("clean exit", flush=True)
    """
)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGTERM")
async def test_start_stops_cleanly_on_sigterm(connect: Connect, tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    process = await trio.lowlevel.open_process(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stderr is not None and process.stdout is not None
    try:
        with trio.fail_after(TIMEOUT):
            log = LineBuffer()
            port = 0
            while not port:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, "the script ended before listening"
                for line in log.feed(chunk):
                    if isinstance(line, str) and "listening on" in line:
                        port = int(line.rsplit(":", 1)[1])
            client = await connect(port)
            assert await client.query("*IDN?") == "Script"
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
            out = await process.stdout.receive_some(4096)
            assert b"clean exit" in out
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# ============================================================================================
# the examples in examples/scpi-device
# ============================================================================================

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scpi-device"


async def test_example_class_style(nursery: trio.Nursery) -> None:
    import runpy

    module = runpy.run_path(str(EXAMPLES / "randomwalk_scpi_device.py"))
    server = ScpiServer(module["RandomWalkScpiDevice"]())
    client, _ = await serve_in_memory(nursery, server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("*IDN?") == "RandomWalk"
        await client.send("V0 100;V1 -100\n")
        v0, v1 = map(float, (await client.query("MEAS:V0?;V1?")).split(";"))
        assert v0 > 50 and v1 < -50
        await client.send("V0 abc\n")
        assert await client.query("MEAS:V2?") == ""  # do_command answered it: no -113
        assert await client.errors() == [
            (-200, "Execution error;bad parameter value: abc"),
            (-200, "Execution error;invalid command V2?"),
        ]


async def test_example_bind_nodes(nursery: trio.Nursery) -> None:
    import runpy

    module = runpy.run_path(str(EXAMPLES / "bind_nodes_device.py"))
    server = ScpiServer(module["adapter"])
    client, _ = await serve_in_memory(nursery, server)
    with trio.fail_after(TIMEOUT):
        assert await client.query("*IDN?") == "RandomWalk"
        await client.send("V0 100\nCONFIG:WALK 0.5\n")
        assert float(await client.query("MEAS:V0?")) > 50
        assert await client.query("CONFIGURE:WALK?;:V0?") == "0.5;100.0"
        await client.send("CONFIG:DECAY 2\nMEAS:V0 1\n")
        assert [code for code, _ in await client.errors()] == [-224, -224]
