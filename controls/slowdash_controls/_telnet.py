"""Telnet on a stream transport: the option-refusing filter and the Telnet nodes.

``eth.telnet(prompt="> ")`` (see ``_ethernet``) makes a :class:`TelnetNode`; the transport
strips Telnet commands from what it receives with a :class:`TelnetFilter`. All are re-exported
by ``_ethernet``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ._node import ControlNode, ControlValueNode
from ._scpi import encode_line

if TYPE_CHECKING:
    from ._ethernet import StreamNode, _Connection

__all__ = ["TelnetCommandNode", "TelnetFilter", "TelnetNode"]

TELNET_GREETING_QUIET = 0.1  # a new Telnet connection's banner ends when this long quiet


# ================================================================================================
# Telnet commands (pure, no I/O)
# ================================================================================================

# telnet (RFC 854) command bytes
_IAC, _DONT, _DO, _WONT, _WILL, _SB, _SE = 255, 254, 253, 252, 251, 250, 240
_CR = 0x0D


class TelnetFilter:
    """Removes Telnet commands from received bytes and refuses every option.

    ``feed(data)`` returns ``(text, answer)``: the data without commands (``IAC IAC`` becomes
    one 255 byte, the NUL of a ``CR NUL`` is dropped), and the bytes to send back: ``IAC WONT x``
    for each ``DO x``, ``IAC DONT x`` for each ``WILL x``. Sub-negotiations are skipped. State is
    kept across calls, so a command split between two receives is understood.
    """

    __slots__ = ("_after_cr", "_state", "_verb")

    _DATA, _COMMAND, _OPTION, _SUB, _SUB_IAC = range(5)

    def __init__(self) -> None:
        self._state = self._DATA
        self._verb = 0
        self._after_cr = False

    def feed(self, data: bytes | bytearray) -> tuple[bytes, bytes]:
        if self._state == self._DATA and _IAC not in data and 0 not in data:
            self._after_cr = data.endswith(b"\r")
            return bytes(data), b""
        text = bytearray()
        answer = bytearray()
        for byte in data:
            state = self._state
            if state == self._DATA:
                if byte == _IAC:
                    self._state = self._COMMAND
                elif not (byte == 0 and self._after_cr):
                    text.append(byte)
                self._after_cr = byte == _CR
            elif state == self._COMMAND:
                if byte == _IAC:
                    text.append(_IAC)
                    self._state = self._DATA
                elif byte in (_WILL, _WONT, _DO, _DONT):
                    self._verb = byte
                    self._state = self._OPTION
                elif byte == _SB:
                    self._state = self._SUB
                else:  # a two-byte command (NOP, GA, ...)
                    self._state = self._DATA
            elif state == self._OPTION:
                if self._verb == _DO:
                    answer += bytes((_IAC, _WONT, byte))
                elif self._verb == _WILL:
                    answer += bytes((_IAC, _DONT, byte))
                self._state = self._DATA
            elif state == self._SUB:
                if byte == _IAC:
                    self._state = self._SUB_IAC
            else:  # _SUB_IAC
                self._state = self._DATA if byte == _SE else self._SUB
        return bytes(text), bytes(answer)


# ================================================================================================
# Telnet
# ================================================================================================


class TelnetNode(ControlNode):
    """A Telnet command line on a stream transport (``eth.telnet(prompt="> ")``).

    Telnet option negotiation is refused (``WONT``/``DONT``) and never shows up in the text.
    On a new connection the greeting is skipped: everything up to the first prompt (or,
    without a prompt, until the input is quiet for a moment).

    ``set(v)`` sends ``v`` and the terminator, consumes the echo (``has_echo``) and, with a
    prompt, the output up to the next prompt, so the next command starts in step. ``get()``
    returns the output up to the next prompt: lines stripped and joined with ``\\n`` (without
    a prompt: one line). ``command(cmd)`` makes a node that runs ``cmd``.
    """

    def __init__(
        self,
        transport: StreamNode,
        *,
        prompt: str | None = None,
        line_terminator: str = "\r\n",
        timeout: float | None = None,
        has_echo: bool = True,
    ) -> None:
        from ._ethernet import _or  # here: _ethernet imports this module

        if prompt is not None and not prompt:
            raise ValueError("telnet(): an empty prompt would match every line; use None")
        self.transport = transport
        self.prompt = prompt
        self._prompt = None if prompt is None else prompt.encode()
        self.line_terminator = line_terminator
        self.timeout = _or(timeout, transport.timeout)
        self.has_echo = has_echo
        transport._telnet = True  # connections opened from now on filter Telnet commands

    def _scan(self, connection: _Connection, keep: list[str] | None) -> bool:
        """Consume received lines up to and including a prompt; True if one was found.

        The prompt is a line starting with it, or the incomplete last line when it starts
        with it (prompts usually come without a line end). Lines before it go to ``keep``.
        """
        prompt = self.prompt
        assert prompt is not None
        assert self._prompt is not None
        while (line := connection.next_line()) is not None:
            if line.startswith(prompt):
                return True
            if keep is not None:
                keep.append(line.strip())
        if connection.framer.pending_bytes().startswith(self._prompt):
            connection.framer.clear()
            return True
        return False

    async def _greet(self, connection: _Connection) -> None:
        """Skip a new connection's greeting: up to the first prompt, or until quiet."""
        if connection.telnet is None:  # opened before telnet() was called
            connection.telnet = TelnetFilter()
        while not (self._prompt is not None and self._scan(connection, None)):
            with trio.move_on_after(TELNET_GREETING_QUIET) as quiet:
                await connection.fill()
            if quiet.cancelled_caught:
                connection.take_all()
                break
        connection.greeted = True

    async def _output(self, connection: _Connection) -> str:
        """The lines up to the next prompt (one line without a prompt), stripped and joined."""
        if self._prompt is None:
            return (await connection.read_line()).strip()
        lines: list[str] = []
        while not self._scan(connection, lines):
            await connection.fill()
        return "\n".join(lines)

    async def run(self, text: str, *, output: bool) -> str | None:
        """Send ``text`` as a command line, consume its echo, and read its output (with a
        prompt: always, so the next command starts in step; returned only if ``output``)."""
        payload = encode_line(text, self.line_terminator)
        transport = self.transport
        async with transport.link.transaction(self.timeout, command=text) as connection:
            connection = await transport._fresh(connection)
            connection.stale = True
            if not connection.greeted:
                await self._greet(connection)
            await connection.send(payload)
            if self.has_echo:
                await connection.read_line()
            result = await self._output(connection) if output or self._prompt else None
            connection.stale = False
        return result if output else None

    async def aio_set(self, value: Any) -> None:
        await self.run(str(value), output=False)

    async def aio_get(self) -> str:
        """The output up to the next prompt (one line without a prompt); nothing is sent."""
        transport = self.transport
        async with transport.link.transaction(self.timeout, command="read output") as connection:
            connection = await transport._fresh(connection)
            if not connection.greeted:
                await self._greet(connection)
            return await self._output(connection)

    def command(self, cmd: str) -> TelnetCommandNode:
        """A node running ``cmd``: ``get()`` returns its output, ``set(v)`` runs ``cmd v``."""
        return TelnetCommandNode(self, cmd)

    def _label(self) -> str:
        return f"{self.transport._label()}.telnet()"


class TelnetCommandNode(ControlValueNode):
    """One Telnet command: ``get()`` runs ``cmd`` and returns its output; ``set(v)`` runs
    ``cmd v`` (``set()``: the bare command) and returns None."""

    def __init__(self, telnet: TelnetNode, cmd: str) -> None:
        self.telnet = telnet
        self.cmd = cmd

    async def aio_get(self) -> str:
        output = await self.telnet.run(self.cmd, output=True)
        assert output is not None
        return output

    async def aio_set(self, value: Any = None) -> None:
        await self.telnet.run(self.cmd if value is None else f"{self.cmd} {value}", output=False)

    def set(self, value: Any = None) -> Any:
        """Sync ``aio_set``; ``set()`` without a value runs the bare command."""
        return super().set(value)

    def _label(self) -> str:
        return f"{self.telnet._label()}.command({self.cmd!r})"
