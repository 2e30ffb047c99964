"""Simulated devices for testing control scripts without hardware.

Fake devices answer on an in-memory stream, on a TCP socket on 127.0.0.1, or (serial) on a
pseudo-terminal, and can be made slow, silent, broken or rude on demand:

- :class:`FakeScpiInstrument`: an SCPI instrument on our own SCPI server core
  (:class:`~slowdash_controls.ScpiServer` with an :class:`~slowdash_controls.ScpiAdapter`; by
  default a :class:`SimulatedPowerSupply`);
- :class:`FakeSerialDevice`: the same behind a pty pair; ``ctrl.serial(device.port)`` talks to it;
- :class:`FakeTelnetDevice`: a Telnet command line with a prompt, echo and option negotiation;
- :class:`FakeLineDevice`: any line-based (non-SCPI) device, answering from a function;
- :class:`SlowStream`, :class:`BreakingStream`, :class:`SilentStream`: stream wrappers for
  cancellation and timeout tests.

Every fake has the same fault knobs (see :class:`FakeDevice`): ``latency`` (seconds before each
reply), ``never_reply``, ``replace_replies()`` / ``garble()`` (garbage or any bytes instead of
the next replies), ``drop_after(n)`` (the connection closes after ``n`` more replies),
``disconnect()`` (close every connection now) and ``refuse_connections`` (memory connections
are refused).

Trio code starts a fake with ``async with open_fake_instrument() as inst:``; sync code (a
plain script, a sync test) with ``with run_in_thread(FakeScpiInstrument()) as inst:``. The
pytest plugin :mod:`slowdash_controls.pytest_plugin` has them as fixtures. See
``docs/testing-with-simulated-devices.md``.

This module imports no test framework.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeVar

import trio

from ._ethernet import EthernetNode
from ._scpi import LineBuffer
from ._scpi_server import ScpiAdapter, ScpiServer

__all__ = [
    "GARBAGE",
    "BreakingStream",
    "FakeDevice",
    "FakeLineDevice",
    "FakeScpiInstrument",
    "FakeSerialDevice",
    "FakeTcpDevice",
    "FakeTelnetDevice",
    "SilentStream",
    "SimulatedPowerSupply",
    "SlowStream",
    "open_fake_device",
    "open_fake_instrument",
    "open_fake_serial_device",
    "open_fake_telnet_device",
    "run_in_thread",
]

D = TypeVar("D", bound="FakeDevice")

RECEIVE_SIZE = 65536

#: what ``garble()`` sends by default: bytes that are not UTF-8, then a line end
GARBAGE = b"\xff\xfe\x80garbage\xc3\x28\n"


# ================================================================================================
# the default instrument
# ================================================================================================


class SimulatedPowerSupply(ScpiAdapter):
    """A power supply with ``channels`` outputs, as an SCPI adapter.

    ===========================  ====================================================
    ``V<n> <value>``             set output ``n`` (also ``VOLTage<n>``)
    ``V<n>?``                    the value set on output ``n``
    ``MEASure:V<n>?``            the measured value of output ``n`` (= the value set)
    ``*OPC?``                    ``1`` (every operation completes at once)
    ``*IDN?``, ``*RST``,         as :class:`ScpiAdapter` answers them (``*RST`` also
    ``*CLS``, ``SYST:ERR?``      sets every output to 0)
    ===========================  ====================================================

    Values are kept as floats and answered with ``repr``-like ``str(float)``. ``writes`` lists
    every ``(channel, value)`` set, in order.
    """

    def __init__(
        self, channels: int = 4, *, idn: str = "slowdash,SimulatedPowerSupply,0,1"
    ) -> None:
        super().__init__(idn=idn)
        self.values = [0.0] * channels
        self.writes: list[tuple[int, float]] = []

    def _channel(self, token: str, prefixes: tuple[str, ...]) -> int | None:
        token = token.rstrip("?")
        for prefix in prefixes:
            if token.startswith(prefix) and token[len(prefix) :].isdigit():
                channel = int(token[len(prefix) :])
                if channel < len(self.values):
                    return channel
        return None

    def do_command(self, cmd_path: list[str], params: list[str]) -> object:
        last = cmd_path[-1]
        if len(cmd_path) == 1:
            channel = self._channel(last, ("VOLTAGE", "VOLT", "V"))
            if channel is None:
                return None
            if last.endswith("?"):
                return str(self.values[channel]) if not params else None
            if len(params) != 1:
                self.push_error(f"bad number of parameters for {last}")
                return ""
            try:
                value = float(params[0])
            except ValueError:
                self.push_error(f"bad parameter value: {params[0]}")
                return ""
            self.values[channel] = value
            self.writes.append((channel, value))
            return ""
        if len(cmd_path) == 2 and cmd_path[0].startswith("MEAS") and last.endswith("?"):
            channel = self._channel(last, ("VOLTAGE", "VOLT", "V"))
            if channel is not None:
                return str(self.values[channel])
        return None

    def do_RST(self) -> object:
        self.values = [0.0] * len(self.values)
        return super().do_RST()


# ================================================================================================
# faults: a stream wrapper between a fake device and its peer
# ================================================================================================


class _FaultyConnection(trio.abc.Stream):
    """One connection of a fake device: applies the device's faults to what it sends."""

    def __init__(self, device: FakeDevice, stream: trio.abc.Stream) -> None:
        self.device = device
        self.stream = stream
        self.scope = trio.CancelScope()
        self._lines = LineBuffer(device.max_line_length)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        device = self.device
        latency = device.latency
        delay = latency(bytes(data)) if callable(latency) else latency
        if delay > 0:
            await trio.sleep(delay)
        if device._drop_countdown == 0:  # drop_after(0): close instead of this reply
            device._drop_countdown = None
            self.scope.cancel()
            await trio.lowlevel.checkpoint()
            return
        if device.never_reply:
            await trio.lowlevel.checkpoint()
            return
        if device._replacements:
            data = device._replacements.pop(0)
        await self.stream.send_all(data)
        device.replies += 1
        if device._drop_countdown is not None:
            device._drop_countdown -= 1
            if device._drop_countdown <= 0:
                device._drop_countdown = None
                self.scope.cancel()

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.stream.receive_some(max_bytes)
        self.device._record(self._lines, data)
        return data

    async def aclose(self) -> None:
        await self.stream.aclose()


# ================================================================================================
# fake devices
# ================================================================================================


class FakeDevice:
    """What every fake device shares: connections and the fault knobs.

    Fault knobs (settable at any time; ``disconnect()`` from any thread):

    - ``latency``: seconds to wait before each reply, or ``f(reply_bytes) -> seconds``;
    - ``never_reply``: take commands, send nothing back;
    - ``replace_replies(data, count)``, ``garble(count)``: send ``data`` (garbage by default)
      instead of the next ``count`` replies;
    - ``drop_after(n)``: close the connection after ``n`` more replies (0: instead of the next);
    - ``disconnect()``: close every open connection now;
    - ``refuse_connections``: :meth:`open_stream` raises ``ConnectionRefusedError``.

    Records: ``received`` (every line received, as text), ``replies`` (count sent),
    ``connections`` (accepted), ``connect_times`` (Trio clock of every attempt, refused ones
    included).

    :meth:`open_stream` makes an in-memory connection (the ``opener=`` of an
    :class:`EthernetNode`; :meth:`ethernet` makes such a node); :meth:`serve_stream` serves
    any stream you opened yourself. :meth:`run` (or :func:`open_fake_device`) must be running.
    """

    def __init__(self, *, max_line_length: int = 1 << 20) -> None:
        self.max_line_length = max_line_length
        self.latency: float | Callable[[bytes], float] = 0.0
        self.never_reply = False
        self.refuse_connections = False
        self.received: list[str] = []
        self.replies = 0
        self.connections = 0
        self.connect_times: list[float] = []
        self._replacements: list[bytes] = []
        self._drop_countdown: int | None = None
        self._open: set[_FaultyConnection] = set()
        self._all_closed = trio.Event()  # set when the last open connection has closed
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    # ---- what a subclass provides ---------------------------------------------------------
    async def handle(self, stream: trio.abc.Stream) -> None:
        """Talk to one peer on ``stream`` until it closes (override)."""
        raise NotImplementedError

    async def _start_serving(self, nursery: trio.Nursery) -> Any:
        """Open what the device serves besides memory connections; returns what ``run``
        reports (override)."""
        await trio.lowlevel.checkpoint()

    def _record(self, lines: LineBuffer, data: bytes | bytearray) -> None:
        """Note the lines received (in ``received``)."""
        for line in lines.feed(data):
            self.received.append(line if isinstance(line, str) else f"<{line.message}>")

    # ---- fault knobs ----------------------------------------------------------------------
    def replace_replies(self, data: bytes, count: int = 1) -> None:
        """Send ``data`` (exactly these bytes) instead of each of the next ``count`` replies."""
        self._replacements.extend([bytes(data)] * count)

    def garble(self, count: int = 1) -> None:
        """Send a line of bytes that are not UTF-8 instead of the next ``count`` replies."""
        self.replace_replies(GARBAGE, count)

    def drop_after(self, n: int) -> None:
        """Close the connection that sends the ``n``-th reply from now, after sending it
        (``drop_after(0)``: close instead of sending the next reply)."""
        if n < 0:
            raise ValueError(f"drop_after(): n must not be negative, not {n}")
        self._drop_countdown = int(n)

    def disconnect(self) -> None:
        """Close every open connection now.

        In the device's own loop the connections are closed before they can answer again;
        from a plain thread (a device run by :func:`run_in_thread`) this returns once they
        are closed.
        """
        token = self._token
        if token is None or _current_token() is token:
            self._disconnect()
            return
        try:
            trio.from_thread.run(self._disconnect_and_wait, trio_token=token)
        except RuntimeError:  # called from another Trio loop: cannot block, do not wait
            token.run_sync_soon(self._disconnect)

    def _disconnect(self) -> None:
        for connection in list(self._open):
            connection.scope.cancel()

    async def _disconnect_and_wait(self) -> None:
        if self._open:
            self._all_closed = trio.Event()
            self._disconnect()
            await self._all_closed.wait()

    # ---- connections ----------------------------------------------------------------------
    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one open stream (with the fault knobs) until the peer closes it or
        :meth:`disconnect` ends it; the stream is closed on return."""
        connection = _FaultyConnection(self, stream)
        self.connections += 1
        self._open.add(connection)
        try:
            with connection.scope:
                try:
                    await self.handle(connection)
                except* (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the peer went away, perhaps while we were still answering
        finally:
            await trio.aclose_forcefully(stream)
            self._open.discard(connection)
            if not self._open:
                self._all_closed.set()

    async def open_stream(self) -> trio.abc.Stream:
        """A new in-memory connection to this device (its client end)."""
        self.connect_times.append(trio.current_time())
        if self.refuse_connections:
            await trio.lowlevel.checkpoint()
            raise ConnectionRefusedError(f"{type(self).__name__} refuses connections")
        if self._nursery is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use open_fake_device()")
        from trio.testing import memory_stream_pair  # here: trio.testing imports pytest

        client, server = memory_stream_pair()
        self._nursery.start_soon(self.serve_stream, server)
        await trio.lowlevel.checkpoint()
        return client

    def ethernet(self, **node_kwargs: Any) -> EthernetNode:
        """An :class:`EthernetNode` connected to this device over memory streams."""
        return EthernetNode("memory", 0, opener=self.open_stream, **node_kwargs)

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports the port (where there is one)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            try:
                task_status.started(await self._start_serving(nursery))
                await trio.sleep_forever()
            finally:
                self._nursery = None


def _current_token() -> trio.lowlevel.TrioToken | None:
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


class FakeTcpDevice(FakeDevice):
    """A fake device that also listens on TCP: ``host`` (127.0.0.1), ``port`` (0: any free
    port; the port taken once running), unless ``listen=False``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        listen: bool = True,
        max_line_length: int = 1 << 20,
    ) -> None:
        super().__init__(max_line_length=max_line_length)
        self.host = host
        self.port = port
        self.listen = listen

    async def _start_serving(self, nursery: trio.Nursery) -> int | None:
        if not self.listen:
            await trio.lowlevel.checkpoint()
            return None
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        await nursery.start(trio.serve_listeners, self._serve_tcp, listeners)
        return self.port

    async def _serve_tcp(self, stream: trio.abc.Stream) -> None:
        self.connect_times.append(trio.current_time())
        await self.serve_stream(stream)

    def ethernet(self, *, memory: bool | None = None, **node_kwargs: Any) -> EthernetNode:
        """An :class:`EthernetNode` connected to this device: over TCP when it listens,
        over memory streams otherwise (or if ``memory``)."""
        if memory is None:
            memory = not self.listen
        if memory:
            return super().ethernet(**node_kwargs)
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not listening (yet)")
        return EthernetNode(self.host, self.port, **node_kwargs)


class FakeScpiInstrument(FakeTcpDevice):
    """An SCPI instrument served by our SCPI server core, with fault knobs.

    ``adapter`` is any :class:`ScpiAdapter` (a :class:`SimulatedPowerSupply` by default);
    ``server`` is the :class:`ScpiServer` answering for it, so ``@inst.server.on(...)``
    handlers can be added. ``line_terminator`` ends each reply (commands may end with CR, LF
    or CRLF).
    """

    def __init__(
        self,
        adapter: ScpiAdapter | None = None,
        *,
        line_terminator: str = "\n",
        host: str = "127.0.0.1",
        port: int = 0,
        listen: bool = True,
        max_line_length: int = 1 << 20,
    ) -> None:
        super().__init__(host=host, port=port, listen=listen, max_line_length=max_line_length)
        self.adapter = adapter if adapter is not None else SimulatedPowerSupply()
        self.server = ScpiServer(self.adapter, host=host, port=0, line_terminator=line_terminator)

    async def handle(self, stream: trio.abc.Stream) -> None:
        await self.server.serve_stream(stream)


class FakeSerialDevice(FakeDevice):
    """An SCPI instrument (as :class:`FakeScpiInstrument`) at the end of a pseudo-terminal:
    ``port`` is the path for ``ctrl.serial(port)``; the device answers on the master side (a
    Trio ``FdStream``). Replies end with CRLF by default.

    The device keeps the slave side open too, so the host may close and reopen the port;
    :meth:`disconnect` closes the master, which is like unplugging the device (the port is
    gone for good).
    """

    def __init__(
        self,
        adapter: ScpiAdapter | None = None,
        *,
        line_terminator: str = "\r\n",
        max_line_length: int = 1 << 20,
    ) -> None:
        super().__init__(max_line_length=max_line_length)
        self.adapter = adapter if adapter is not None else SimulatedPowerSupply()
        self.server = ScpiServer(self.adapter, line_terminator=line_terminator)
        self.port = ""

    async def handle(self, stream: trio.abc.Stream) -> None:
        await self.server.serve_stream(stream)

    async def _start_serving(self, nursery: trio.Nursery) -> str:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # at once: the port starts raw, whatever the host does
            self.port = os.ttyname(slave)
            stream = trio.lowlevel.FdStream(master)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        nursery.start_soon(self.serve_stream, stream)
        nursery.start_soon(_hold_open, slave)
        await trio.lowlevel.checkpoint()
        return self.port


async def _hold_open(fd: int) -> None:
    """Keep ``fd`` open until cancelled (a pty master reads EIO once no slave fd is open)."""
    try:
        await trio.sleep_forever()
    finally:
        os.close(fd)


class FakeLineDevice(FakeTcpDevice):
    """A plain line-based device (not SCPI): ``reply(line)`` answers each line received.

    ``reply`` returns text (sent with ``line_terminator``), bytes (sent exactly as they are)
    or None (no answer). Lines may end with CR, LF or CRLF.
    """

    def __init__(
        self,
        reply: Callable[[str], str | bytes | None],
        *,
        line_terminator: str = "\r\n",
        host: str = "127.0.0.1",
        port: int = 0,
        listen: bool = True,
        max_line_length: int = 1 << 20,
    ) -> None:
        super().__init__(host=host, port=port, listen=listen, max_line_length=max_line_length)
        self.reply = reply
        self.line_terminator = line_terminator

    async def handle(self, stream: trio.abc.Stream) -> None:
        lines = LineBuffer(self.max_line_length, block_data=False)
        while True:
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                return
            for line in lines.feed(data):
                answer = self.reply(line if isinstance(line, str) else "")
                if answer is None:
                    continue
                if isinstance(answer, str):
                    answer = (answer + self.line_terminator).encode()
                await stream.send_all(answer)


class FakeTelnetDevice(FakeTcpDevice):
    """A Telnet command line: a banner, a prompt, echo, and commands answered from a table.

    ``commands`` maps a command word to its output: a string, or ``f(arguments) -> str``
    (arguments: the rest of the line, stripped). Unknown commands answer
    ``unknown command: WORD``. With ``negotiate``, a connection starts with
    ``IAC WILL ECHO, IAC DO TERMINAL-TYPE`` (which a client should refuse); ``answers`` lists
    the negotiation bytes received back.
    """

    def __init__(
        self,
        commands: Mapping[str, str | Callable[[str], str]],
        *,
        prompt: str = "> ",
        banner: str = "Simulated device\r\n",
        echo: bool = True,
        negotiate: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        listen: bool = True,
    ) -> None:
        super().__init__(host=host, port=port, listen=listen)
        self.commands = dict(commands)
        self.prompt = prompt
        self.banner = banner
        self.echo = echo
        self.negotiate = negotiate
        self.answers = bytearray()

    def _record(self, lines: LineBuffer, data: bytes | bytearray) -> None:
        text, commands = _split_iac(data)
        self.answers += commands
        super()._record(lines, text)

    async def handle(self, stream: trio.abc.Stream) -> None:
        greeting = b"\xff\xfb\x01\xff\xfd\x18" if self.negotiate else b""  # WILL ECHO, DO TTYPE
        await stream.send_all(greeting + self.banner.encode() + self.prompt.encode())
        lines = LineBuffer(self.max_line_length, block_data=False)
        while True:
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                return
            data, _ = _split_iac(data)
            for line in lines.feed(data):
                text = line if isinstance(line, str) else ""
                word, _, arguments = text.strip().partition(" ")
                out = self.commands.get(word)
                if out is None:
                    output = f"unknown command: {word}" if word else ""
                else:
                    output = out(arguments.strip()) if callable(out) else out
                reply = (text + "\r\n") if self.echo else ""
                if output:
                    reply += output.replace("\n", "\r\n") + "\r\n"
                await stream.send_all(reply.encode() + self.prompt.encode())


def _split_iac(data: bytes | bytearray) -> tuple[bytes, bytes]:
    """Telnet negotiation (``IAC`` + verb + option) taken out of ``data``: (text, commands)."""
    text, commands = bytearray(data), bytearray()
    while (i := text.find(b"\xff")) >= 0:
        commands += text[i : i + 3]
        del text[i : i + 3]
    return bytes(text), bytes(commands)


# ================================================================================================
# running fakes
# ================================================================================================


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested one-member groups, or the group itself."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextlib.asynccontextmanager
async def open_fake_device(device: D) -> AsyncIterator[D]:
    """Run ``device`` in the background for the ``async with`` block.

    A single error (from the block or the device) comes out as itself, not in an
    exception group.
    """
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(device.run)
            try:
                yield device
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        single = _single(group)
        if single is group:
            raise
        raise single from None


@contextlib.asynccontextmanager
async def open_fake_instrument(
    adapter: ScpiAdapter | None = None, **kwargs: Any
) -> AsyncIterator[FakeScpiInstrument]:
    """``async with open_fake_instrument() as inst:`` a :class:`FakeScpiInstrument`,
    listening on 127.0.0.1 (``inst.port``) unless ``listen=False``."""
    async with open_fake_device(FakeScpiInstrument(adapter, **kwargs)) as instrument:
        yield instrument


@contextlib.asynccontextmanager
async def open_fake_serial_device(
    adapter: ScpiAdapter | None = None, **kwargs: Any
) -> AsyncIterator[FakeSerialDevice]:
    """``async with open_fake_serial_device() as dev:`` a :class:`FakeSerialDevice` on a pty
    (``dev.port``)."""
    async with open_fake_device(FakeSerialDevice(adapter, **kwargs)) as device:
        yield device


@contextlib.asynccontextmanager
async def open_fake_telnet_device(
    commands: Mapping[str, str | Callable[[str], str]], **kwargs: Any
) -> AsyncIterator[FakeTelnetDevice]:
    """``async with open_fake_telnet_device({"status": "ok"}) as dev:`` a
    :class:`FakeTelnetDevice`."""
    async with open_fake_device(FakeTelnetDevice(commands, **kwargs)) as device:
        yield device


@contextlib.contextmanager
def run_in_thread(device: D) -> Iterator[D]:
    """Run ``device`` in a Trio loop of its own thread, for sync code and sync tests.

    ``with run_in_thread(FakeScpiInstrument()) as inst:`` then ``ctrl.ethernet("127.0.0.1",
    inst.port)``. The fault knobs work from the calling thread.
    """
    started = threading.Event()
    stop: list[Callable[[], None]] = []
    failure: list[BaseException] = []

    async def main() -> None:
        token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            stop.append(lambda: token.run_sync_soon(nursery.cancel_scope.cancel))
            await nursery.start(device.run)
            started.set()

    def target() -> None:
        try:
            trio.run(main)
        except BaseExceptionGroup as group:  # handed to the caller's thread below
            failure.append(_single(group))
        except Exception as exc:
            failure.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=target, name=f"fake-{type(device).__name__}", daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise failure[0]
    if not thread.is_alive():
        raise RuntimeError(f"{type(device).__name__} did not start")
    try:
        yield device
    finally:
        with contextlib.suppress(trio.RunFinishedError):
            stop[0]()
        thread.join(10)


# ================================================================================================
# misbehaving streams
# ================================================================================================


class SlowStream(trio.abc.Stream):
    """Wraps ``stream``; every receive first sleeps ``delay`` seconds (``sends`` too if
    ``delay_sends``)."""

    def __init__(self, stream: trio.abc.Stream, delay: float, *, delay_sends: bool = False) -> None:
        self.stream = stream
        self.delay = delay
        self.delay_sends = delay_sends

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.delay_sends:
            await trio.sleep(self.delay)
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        await trio.sleep(self.delay)
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


class BreakingStream(trio.abc.Stream):
    """Wraps ``stream``; after ``after_bytes`` bytes have been received through it, every
    receive and send raises ``trio.BrokenResourceError`` (a link that dies mid-reply)."""

    def __init__(self, stream: trio.abc.Stream, after_bytes: int) -> None:
        self.stream = stream
        self.remaining = after_bytes

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.remaining <= 0:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("the link broke")
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.remaining <= 0:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("the link broke")
        data = await self.stream.receive_some(
            self.remaining if max_bytes is None else min(max_bytes, self.remaining)
        )
        self.remaining -= len(data)
        return data

    async def aclose(self) -> None:
        await self.stream.aclose()


class SilentStream(trio.abc.Stream):
    """A stream to a device that takes everything and never answers: sends succeed (and are
    kept in ``sent``), receives wait forever."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise trio.ClosedResourceError("the stream was closed")
        await trio.lowlevel.checkpoint()
        self.sent += data

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.closed:
            raise trio.ClosedResourceError("the stream was closed")
        await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()
