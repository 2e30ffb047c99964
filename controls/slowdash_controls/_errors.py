"""Exceptions of the control library: one rooted tree, with builtin mix-ins.

ControlException                 root; scripts catch this (SlowPy's name)
├── DeviceConnectionError        the link to a device cannot be opened or broke (+ ConnectionError)
├── DeviceTimeout                a device operation missed its deadline (+ TimeoutError)
├── ProtocolError                bytes that do not follow the protocol
│   ├── LocalProtocolError       we were asked to send something the protocol cannot carry
│   └── RemoteProtocolError      the peer sent something the protocol does not allow
├── InstrumentError              an instrument reported an error (SCPI error queue: code, text)
├── HttpStatusError              an HTTP server answered with a status other than 2xx
├── ShellCommandError            a shell command failed (exit status, end of stderr)
├── RedisCommandError            the Redis server refused a command (e.g. a module is missing)
├── NodeAccessError              a node refused the operation: read-only, write-only, out of limits,
│                                not numeric (+ ValueError)
├── WrongThreadError             a sync method that does I/O was called on the Trio thread
│                                (+ RuntimeError); the message names the ``aio_`` method to await
└── PluginError                  a control module could not be found or loaded (+ ImportError)

Timeouts never come back as return values, and errors are never logged-and-swallowed: a node
either answers or raises one of these.
"""

from __future__ import annotations


class ControlException(Exception):
    """Root of every exception raised by slowdash_controls."""


ControlError = ControlException


class DeviceConnectionError(ControlException, ConnectionError):
    """The link to a device could not be opened, or it broke during an operation."""

    def __init__(self, message: str, *, address: str | None = None) -> None:
        self.address = address
        super().__init__(f"{address}: {message}" if address else message)


class DeviceTimeout(ControlException, TimeoutError):
    """A device operation did not complete within its deadline."""

    def __init__(
        self,
        message: str,
        *,
        address: str | None = None,
        timeout: float | None = None,
        command: str | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.command = command
        parts = [address] if address else []
        parts.append(message)
        if command is not None:
            parts.append(f"command {command!r}")
        if timeout is not None:
            parts.append(f"after {timeout:g} s")
        super().__init__(": ".join(parts[:2]) + "".join(f", {p}" for p in parts[2:]))


class ProtocolError(ControlException):
    """Data that does not follow the protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol cannot carry (a line too long, say)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow (garbage, an over-long line)."""


class InstrumentError(ControlException):
    """An instrument reported an error, such as the SCPI entry ``-113,"Undefined header"``."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f'{code},"{text}"')


class NodeAccessError(ControlException, ValueError):
    """The node refused the operation: read-only, write-only, out of limits or not numeric."""


class WrongThreadError(ControlException, RuntimeError):
    """A sync node method that does device I/O was called on the Trio thread.

    Blocking there would freeze every task of the server; await the ``aio_`` twin instead.
    """


class PluginError(ControlException, ImportError):
    """A control module (``load_control_module(name)``) could not be found or loaded."""


class HttpStatusError(ControlException):
    """The server answered with a status other than 2xx.

    ``status_code``, ``method`` and ``url`` say what failed; ``message`` is the server's own
    explanation (SlowDash's JSON ``message``, or the start of the body).
    """

    def __init__(self, status_code: int, method: str, url: str, message: str) -> None:
        self.status_code = status_code
        self.method = method
        self.url = url
        self.message = message
        text = f"{method} {url}: HTTP {status_code}"
        super().__init__(f"{text}: {message}" if message else text)


class ShellCommandError(ControlException):
    """A command exited with a non-zero status (``returncode``) or could not be started
    (``returncode`` None). ``stderr`` holds the end of its standard error output."""

    def __init__(self, command: str, returncode: int | None, stderr: str) -> None:
        self.command = command
        self.returncode = returncode
        self.stderr = stderr
        if returncode is None:
            text = f"cannot run {command!r}"
        elif returncode < 0:
            text = f"{command!r} was killed by signal {-returncode}"
        else:
            text = f"{command!r} exited with status {returncode}"
        super().__init__(f"{text}: {stderr}" if stderr else text)


class RedisCommandError(ControlException):
    """The Redis server answered a command with an error (``command``: the command name)."""

    def __init__(self, command: str, message: str, *, address: str | None = None) -> None:
        self.command = command
        self.address = address
        where = f"{address}: " if address else ""
        super().__init__(f"{where}{command}: {message}")
