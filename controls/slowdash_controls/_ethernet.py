"""Stream transports (TCP here, serial in ``_serial``) and the SCPI and Telnet nodes on them.

::

    eth = ctrl.ethernet("127.0.0.1", 5025)          # or host=..., or SlowPy's address=...
    eth.set("*RST\\n")                                # raw text out
    eth.do_get_line()                                 # one line in (CR, LF or CRLF)
    v0 = eth.scpi().command("MEAS:V0")                # SCPI: get() sends "MEAS:V0?"
    v0.get()                                          # -> '1.25' (text; float(v0) converts)
    hv = eth.scpi().command("V0", set_format="V0 {};*OPC?")
    hv.set(10)                                        # sends "V0 10;*OPC?", waits for "1"
    shell = eth.telnet(prompt="> ").command("status") # Telnet: get() returns the output

A transport node keeps its connection in a :class:`Link` (lazy connect, capped back-off
reconnect, ``node.link.status``). Lines are framed by the SCPI core's ``LineBuffer``, one per
connection, so lines, SCPI replies and chunks can be mixed: a line ends at CR, LF or CRLF (a
CRLF never yields an extra empty line), block data inside an SCPI reply is kept whole, and a
line longer than ``max_line_length`` bytes, or one that is not UTF-8, is a
:class:`RemoteProtocolError`. Text is UTF-8 both ways (SCPI is ASCII); other encodings can be
sent as bytes.

Exchanges and the unread reply
------------------------------
Each SCPI query (send a command, read its reply) and each Telnet command is one
``Link.transaction``: it holds the connection exclusively, so queries from several tasks or
threads never interleave, and it runs under the node's ``timeout``, mapped to
:class:`DeviceTimeout`. When an exchange does not complete (a timeout, a cancellation, garbage
in the reply), its reply may still arrive later and would be taken for the answer to the next
query. So the connection is marked *stale*, and the next operation on the node drops it and
reconnects first (the late reply dies with the old connection). A serial port is reopened,
which discards what the kernel has buffered; a reply still on the wire after that cannot be
told apart from the next one (serial lines carry no sequence numbers).

Raw reads (``get()``, ``do_get_line()``, ``do_get_chunk()``) that time out leave the
connection as it is, so a script can keep waiting for a slow device's answer; a raw ``set()``
interrupted in the middle of sending marks it stale (part of a line went out). Nothing is
ever sent twice: the operation that finds the link broken raises, the next one reconnects.

Differences from SlowPy, on purpose: errors raise (:class:`DeviceTimeout`,
:class:`DeviceConnectionError`, :class:`RemoteProtocolError`) instead of returning ``None`` or
``''``; a command that contains a query (``V0 10;*OPC?``, or any command with
``append_opc=True``) reads its reply inside the same exchange and returns it, where SlowPy
leaves it unread unless ``sync=True`` and later reads get out of step; SCPI lines are sent with
LF by default (SlowPy: CR); replies are stripped of surrounding blanks, and block data
(``#<n><len><bytes>``) is returned as ``bytes``; ``scpi()`` and ``telnet()`` use the
transport's ``timeout`` unless given their own.

The Telnet filter and nodes live in ``_telnet`` and are re-exported here.
"""

from __future__ import annotations

import os
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ._errors import LocalProtocolError, RemoteProtocolError
from ._link import Link, LinkState
from ._node import ControlNode, ControlValueNode
from ._scpi import (
    LineBuffer,
    LineError,
    encode_line,
    format_query,
    format_set,
    parse_line,
    parse_reply,
)
from ._telnet import TelnetCommandNode, TelnetFilter, TelnetNode

__all__ = [
    "EthernetNode",
    "ScpiCommandNode",
    "ScpiNode",
    "StreamNode",
    "StreamOpener",
    "TelnetCommandNode",
    "TelnetFilter",
    "TelnetNode",
]

#: an async callable opening the byte stream of a transport (a socket, a serial port, a test
#: double from :mod:`slowdash_controls.testing`)
StreamOpener = Callable[[], Awaitable[trio.abc.Stream]]

RECEIVE_SIZE = 65536
MAX_LINE_LENGTH = 1 << 24  # 16 MiB: a received line, block data included (waveforms)
FLUSH_QUIET = 0.05  # do_flush_input(): input is flushed once nothing came for this long


# ================================================================================================
# helpers (pure, no I/O); SCPI framing and formatting come from ``_scpi``
# ================================================================================================


def _pending(framer: LineBuffer) -> bytes:
    """The incomplete last line held by ``framer``, as received."""
    return framer.pending_bytes()


def _expects_reply(command: str) -> bool:
    """True when an SCPI command line holds a query (``V0 10;*OPC?``)."""
    return "?" in command and any(c.is_query for c in parse_line(command))


# ================================================================================================
# one open connection: a stream and what was received on it
# ================================================================================================


def _direct_fd(stream: trio.abc.Stream) -> int:
    """The descriptor of a TCP or fd stream, to read and write directly; -1 for others."""
    if os.name != "posix":
        return -1
    if isinstance(stream, trio.SocketStream):
        return stream.socket.fileno()
    fd_stream = getattr(trio.lowlevel, "FdStream", None)
    if fd_stream is not None and isinstance(stream, fd_stream):
        return int(stream.fileno())
    return -1


def _close_quietly(sock: trio.socket.SocketType) -> None:
    if sock.fileno() != -1:
        os.close(sock.detach())


class _Connection:
    """An open stream, its line framer, and whether an exchange on it was cut short.

    On a socket or a serial port the descriptor is read and written directly (it is
    non-blocking), and Trio is asked to wait only when there is nothing to read, so a
    query costs one pass through the scheduler instead of three. Other streams (memory
    streams in tests) go through ``send_all`` / ``receive_some``.
    """

    __slots__ = (
        "__weakref__",
        "address",
        "fd",
        "framer",
        "greeted",
        "lines",
        "stale",
        "stream",
        "telnet",
    )

    def __init__(
        self, stream: trio.abc.Stream, address: str, max_line_length: int, *, blocks: bool
    ) -> None:
        self.stream = stream
        self.fd = _direct_fd(stream)
        self.address = address
        self.framer = LineBuffer(max_line_length, block_data=blocks)
        self.lines: deque[str | LineError] = deque()  # complete lines not read yet
        self.stale = False
        self.telnet: TelnetFilter | None = None
        self.greeted = False
        if isinstance(stream, trio.SocketStream):
            # a node dropped without aclose() (as scripts do) closes its socket quietly, as
            # SlowPy's nodes do (an fd stream closes its descriptor by itself)
            weakref.finalize(self, _close_quietly, stream.socket)

    async def send(self, payload: bytes) -> None:
        fd = self.fd
        if fd >= 0:
            try:
                sent = os.write(fd, payload)
            except BlockingIOError:
                sent = 0
            if sent == len(payload):
                return
            await self.stream.send_all(memoryview(payload)[sent:])
        else:
            await self.stream.send_all(payload)

    async def _receive(self) -> bytes | bytearray:
        fd = self.fd
        if fd < 0:
            return await self.stream.receive_some(RECEIVE_SIZE)
        waited = False
        while True:
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                waited = True
                continue
            if not waited:  # a checkpoint that cannot lose the data just read
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    async def fill(self) -> None:
        """Receive once and frame what came; EOF means the device closed the connection."""
        data = await self._receive()
        if not data:
            raise EOFError("the device closed the connection")
        if self.telnet is not None:
            data, answer = self.telnet.feed(data)
            if answer:
                await self.send(answer)
        events = self.framer.feed(data)
        if events:
            self.lines.extend(events)

    def next_line(self) -> str | None:
        """The next complete line, if one was received (RemoteProtocolError for a line that
        was too long or not UTF-8)."""
        if not self.lines:
            return None
        line = self.lines.popleft()
        if isinstance(line, LineError):
            raise RemoteProtocolError(f"{self.address}: {line.message}")
        return line

    async def read_line(self) -> str:
        while not self.lines:
            await self.fill()
        line = self.lines.popleft()
        if isinstance(line, LineError):
            raise RemoteProtocolError(f"{self.address}: {line.message}")
        return line

    async def read_chunk(self) -> str:
        """What was received and not read yet (lines already split end with LF), or else the
        next bytes to arrive, as they came."""
        while True:
            if self.lines or self.framer.pending:
                text = self.take_all()
                if text:
                    return text
            held = _pending(self.framer)  # the start of a character cut in two, if any
            self.framer.clear()
            data = await self._receive()
            if not data:
                raise EOFError("the device closed the connection")
            if self.telnet is not None:
                data, answer = self.telnet.feed(data)
                if answer:
                    await self.send(answer)
            text = self._decode_chunk(held + data)
            if text:
                return text

    def take_all(self) -> str:
        """Everything received and not read, as text (lines already split end with LF)."""
        parts: list[str] = []
        while (line := self.next_line()) is not None:
            parts.append(line + "\n")
        pending = _pending(self.framer)
        self.framer.clear()
        parts.append(self._decode_chunk(pending))
        return "".join(parts)

    def _decode_chunk(self, data: bytes) -> str:
        """UTF-8 text of raw bytes; a character cut at the end waits in the framer."""
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data" or exc.end != len(data):
                raise RemoteProtocolError(
                    f"{self.address}: received bytes that are not UTF-8 text: {data[:60]!r}"
                ) from exc
            self.framer.feed(data[exc.start :])
            return data[: exc.start].decode()


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


# ================================================================================================
# transports
# ================================================================================================


class StreamNode(ControlNode):
    """A node over a byte stream kept in a :class:`Link` (base of Ethernet and serial nodes).

    ``set(value)`` sends text (UTF-8) or ``bytes`` as they are; ``get()`` receives a chunk.
    ``timeout`` bounds every operation (None: no bound); ``max_line_length`` bounds a received
    line, block data included.
    """

    def __init__(
        self,
        address: str,
        opener: StreamOpener,
        *,
        timeout: float | None = 10.0,
        connect_timeout: float = 5.0,
        max_line_length: int = MAX_LINE_LENGTH,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        if max_line_length < 1:
            raise ValueError(f"max_line_length must be positive, not {max_line_length}")
        self.address = address
        self.timeout = timeout
        self.max_line_length = max_line_length
        self._opener = opener
        self._telnet = False  # filter Telnet commands (a telnet() node was made)
        self._blocks = False  # frame SCPI block data (an scpi() node was made)
        self.link: Link[_Connection] = Link(
            address,
            self._open,
            self._close,
            connect_timeout=connect_timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )

    # ---- the connection -------------------------------------------------------------------
    async def _open(self) -> _Connection:
        stream = await self._opener()
        connection = _Connection(stream, self.address, self.max_line_length, blocks=self._blocks)
        if self._telnet:
            connection.telnet = TelnetFilter()
        return connection

    @staticmethod
    async def _close(connection: _Connection) -> None:
        await connection.stream.aclose()

    async def _fresh(self, connection: _Connection) -> _Connection:
        """The connection, or a new one if an earlier exchange on it was cut short."""
        if not connection.stale:
            return connection
        await self.link.mark_broken("an exchange was cut short and its reply left unread")
        return await self.link.connect()

    async def exchange(
        self, payload: bytes, *, reply: bool, timeout: float | None, command: str
    ) -> str | bytes | None:
        """Send ``payload`` and, if ``reply``, read one SCPI reply, as one transaction.

        The reply is text (stripped), or bytes when it is block data.
        """
        async with self.link.transaction(timeout, command=command) as connection:
            if connection.stale:
                connection = await self._fresh(connection)
            connection.stale = True
            await connection.send(payload)
            if not reply:
                connection.stale = False
                return None
            lines = connection.lines
            while not lines:
                await connection.fill()
            line = lines.popleft()
            if isinstance(line, LineError):
                raise RemoteProtocolError(f"{self.address}: {line.message}")
            result = parse_reply(line)
            connection.stale = False
            return result

    # ---- the node API ---------------------------------------------------------------------
    async def aio_set(self, value: Any) -> None:
        """Send ``value`` (text as UTF-8, bytes as they are; no terminator is added)."""
        payload = _encode(value)
        async with self.link.transaction(self.timeout, command=repr(value)) as connection:
            connection = await self._fresh(connection)
            connection.stale = True
            await connection.send(payload)
            connection.stale = False

    async def aio_get(self) -> str:
        """The next chunk of text received (see ``aio_do_get_chunk``)."""
        return await self.aio_do_get_chunk()

    async def aio_do_get_chunk(self, timeout: float | None = None) -> str:
        """Text received and not read yet, or else the next text to arrive.

        Waits up to ``timeout`` (the node's by default). Lines already taken apart by a line
        read come back with LF line ends.
        """
        async with self.link.transaction(_or(timeout, self.timeout)) as connection:
            connection = await self._fresh(connection)
            return await connection.read_chunk()

    async def aio_do_get_line(self, timeout: float | None = None) -> str:
        """The next line received, without its terminator.

        Waits up to ``timeout`` (the node's by default); an incomplete line stays buffered
        when the time is up.
        """
        async with self.link.transaction(_or(timeout, self.timeout)) as connection:
            connection = await self._fresh(connection)
            return await connection.read_line()

    async def aio_do_flush_input(self) -> int:
        """Discard what was received and not read, and what arrives until the input has been
        quiet for a moment; returns the number of characters discarded. Does not connect."""
        if self.link.state is not LinkState.UP:
            return 0
        async with self.link.transaction(self.timeout, command="flush input") as connection:
            discarded = len(connection.take_all())
            while True:
                with trio.move_on_after(FLUSH_QUIET) as quiet:
                    await connection.fill()
                discarded += len(connection.take_all())
                if quiet.cancelled_caught:
                    return discarded

    async def aio_has_data(self) -> bool:
        """True when received data is waiting to be read (never connects, never waits for
        data; on a stream without a descriptor, such as a memory stream, only data already
        taken in counts)."""
        if self.link.state is not LinkState.UP:
            return False
        async with self.link.transaction(self.timeout, command="has data") as connection:
            if connection.stale:
                return False  # what is there is a late reply, to be dropped with the connection
            if not (connection.lines or connection.framer.pending):
                with trio.move_on_after(0):
                    await connection.fill()
            return bool(connection.lines or connection.framer.pending)

    async def aclose(self) -> None:
        """Close the connection for good; later operations raise DeviceConnectionError."""
        await self.link.aclose()

    # ---- sync twins -----------------------------------------------------------------------
    def do_get_chunk(self, timeout: float | None = None) -> str:
        """Sync ``aio_do_get_chunk``."""
        text: str = self._sync(
            self.aio_do_get_chunk, timeout, local=False, aio_name="aio_do_get_chunk"
        )
        return text

    def do_get_line(self, timeout: float | None = None) -> str:
        """Sync ``aio_do_get_line``."""
        line: str = self._sync(
            self.aio_do_get_line, timeout, local=False, aio_name="aio_do_get_line"
        )
        return line

    def do_flush_input(self) -> int:
        """Sync ``aio_do_flush_input``."""
        count: int = self._sync(self.aio_do_flush_input, local=False, aio_name="aio_do_flush_input")
        return count

    def close(self) -> None:
        """Sync ``aclose``."""
        self._sync(self.aclose, local=False, aio_name="aclose")

    # ---- sub-nodes ------------------------------------------------------------------------
    def scpi(
        self,
        timeout: float | None = None,
        line_terminator: str = "\n",
        sync: bool = False,
        append_opc: bool = False,
    ) -> ScpiNode:
        """An SCPI instrument on this connection (see :class:`ScpiNode`); ``timeout`` bounds
        each exchange (None: the transport's)."""
        return ScpiNode(
            self, timeout=timeout, line_terminator=line_terminator, sync=sync, append_opc=append_opc
        )

    def telnet(
        self,
        prompt: str | None = None,
        line_terminator: str = "\r\n",
        timeout: float | None = None,
        has_echo: bool = True,
    ) -> TelnetNode:
        """A Telnet command line on this connection (see :class:`TelnetNode`); ``timeout``
        bounds each command (None: the transport's)."""
        return TelnetNode(
            self, prompt=prompt, line_terminator=line_terminator, timeout=timeout, has_echo=has_echo
        )

    def _label(self) -> str:
        return f"{type(self).__name__}({self.address})"


def _or(timeout: float | None, default: float | None) -> float | None:
    return default if timeout is None else timeout


class EthernetNode(StreamNode):
    """A TCP connection (``ctrl.ethernet(host, port)``), opened on first use.

    ``opener``, if given, replaces ``trio.open_tcp_stream(host, port)``: an async callable
    returning any ``trio.abc.Stream`` (tests hand in a memory stream to a fake instrument; see
    :mod:`slowdash_controls.testing`); ``host`` and ``port`` then only name the link.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None = 10.0,
        connect_timeout: float = 5.0,
        max_line_length: int = MAX_LINE_LENGTH,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        opener: StreamOpener | None = None,
    ) -> None:
        port = int(port)
        if opener is None:
            if not 0 < port < 65536:
                raise ValueError(f"ethernet(): port must be within 1..65535, not {port}")
            opener = self._open_tcp
        self.host = host
        self.port = port
        super().__init__(
            f"{host}:{port}",
            opener,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_line_length=max_line_length,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )

    async def _open_tcp(self) -> trio.abc.Stream:
        return await trio.open_tcp_stream(self.host, self.port)


# ================================================================================================
# SCPI
# ================================================================================================


class ScpiNode(ControlNode):
    """An SCPI instrument on a stream transport (``eth.scpi()``, ``serial.scpi()``).

    ``set(cmd)`` sends a command line; if it contains a query (or ``sync`` is true) the reply is
    read in the same exchange and returned. ``get()`` reads the next reply.
    ``query(cmd)`` sends and returns the reply. ``command(cmd)`` makes a value node.

    Replies are text with surrounding blanks stripped, or ``bytes`` for block data
    (``#<n><len><bytes>``, ``#0...``). ``line_terminator`` ends each line sent (LF by
    default; replies may end with CR, LF or CRLF). ``sync=True`` makes every write wait for one
    reply, for devices that answer every command; ``append_opc=True`` adds ``;*OPC?`` to every
    write of a ``command()`` node and waits for the reply, so the write returns once the device
    has completed it.
    """

    def __init__(
        self,
        transport: StreamNode,
        *,
        timeout: float | None = None,
        line_terminator: str = "\n",
        sync: bool = False,
        append_opc: bool = False,
    ) -> None:
        if not line_terminator:
            raise ValueError("scpi(): line_terminator must not be empty")
        self.transport = transport
        self.timeout = _or(timeout, transport.timeout)
        self.line_terminator = line_terminator
        self.sync = sync
        self.append_opc = append_opc
        transport._blocks = True  # connections opened from now on keep block data whole

    def encode(self, command: str) -> bytes:
        """The bytes sent for ``command`` (LocalProtocolError if it holds a line break)."""
        return encode_line(command, self.line_terminator)

    async def aio_query(self, command: str) -> str | bytes:
        """Send ``command`` and return its reply."""
        reply = await self.transport.exchange(
            self.encode(command), reply=True, timeout=self.timeout, command=command
        )
        assert reply is not None
        return reply

    async def aio_set(self, value: Any) -> str | bytes | None:
        """Send a command line; returns its reply when it contains a query (or ``sync``)."""
        command = str(value)
        return await self.transport.exchange(
            self.encode(command),
            reply=self.sync or _expects_reply(command),
            timeout=self.timeout,
            command=command,
        )

    async def aio_get(self) -> str | bytes:
        """The next reply received (for a command sent as raw text)."""
        transport = self.transport
        async with transport.link.transaction(self.timeout, command="read reply") as connection:
            connection = await transport._fresh(connection)
            return parse_reply(await connection.read_line())

    def query(self, command: str) -> str | bytes:
        """Sync ``aio_query``."""
        reply: str | bytes = self._sync(self.aio_query, command, local=False, aio_name="aio_query")
        return reply

    def command(self, cmd: str, set_format: str | None = None) -> ScpiCommandNode:
        """A value node for SCPI command ``cmd`` (see :class:`ScpiCommandNode`)."""
        return ScpiCommandNode(self, cmd, set_format=set_format)

    def _label(self) -> str:
        return f"{self.transport._label()}.scpi()"


class ScpiCommandNode(ControlValueNode):
    """One SCPI command as a value (``scpi.command("MEAS:V0")``).

    ``get()`` sends ``cmd?`` (``cmd`` itself if it ends with ``?``) and returns the reply as
    text (``float(node)`` converts; block data comes as bytes). ``set(v)`` sends ``cmd v``, or
    ``set_format.format(v)`` when a format is given, or the bare command for ``set()``; when
    the command contains a query (``set_format="V0 {};*OPC?"``), or with ``append_opc`` or
    ``sync`` on the SCPI node, it waits for the reply and returns it, else it returns None.
    ``setpoint()`` and ``ramping()`` work on it.
    """

    def __init__(self, scpi: ScpiNode, cmd: str, *, set_format: str | None = None) -> None:
        if "\n" in cmd or "\r" in cmd:
            raise LocalProtocolError(f"SCPI command {cmd!r} contains a line break")
        self.scpi = scpi
        self.cmd = cmd.strip()
        self.set_format = set_format
        self.query_command = format_query(self.cmd)
        self._query = scpi.encode(self.query_command)

    def format_set(self, value: Any = None) -> str:
        """The command line ``set(value)`` sends."""
        command = format_set(self.cmd, value, set_format=self.set_format)
        return command + ";*OPC?" if self.scpi.append_opc else command

    async def aio_get(self) -> str | bytes:
        scpi = self.scpi
        reply = await scpi.transport.exchange(
            self._query, reply=True, timeout=scpi.timeout, command=self.query_command
        )
        assert reply is not None
        return reply

    async def aio_set(self, value: Any = None) -> str | bytes | None:
        command = self.format_set(value)
        scpi = self.scpi
        return await scpi.transport.exchange(
            scpi.encode(command),
            reply=scpi.sync or scpi.append_opc or _expects_reply(command),
            timeout=scpi.timeout,
            command=command,
        )

    def set(self, value: Any = None) -> Any:
        """Sync ``aio_set``; ``set()`` without a value sends the bare command."""
        return super().set(value)

    def _label(self) -> str:
        return f"{self.scpi._label()}.command({self.cmd!r})"
