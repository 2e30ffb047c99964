"""An SCPI server on Trio: give a device, a few functions or a node tree an SCPI face.

Three ways to say what the device answers, tried in this order for every command:

1. handlers registered with ``@server.on('MEASure:VOLTage?')`` (or ``adapter.add_handler``);
2. ``ScpiAdapter.do_command(cmd_path, params)`` overridden in a subclass (SlowPy's class style);
3. the built-in common commands (``*IDN?``, ``*RST``, ``SYSTem:ERRor?``...);
4. nodes bound with ``adapter.bind_nodes([(path, node), ...])``.

Anything else queues ``-113,"Undefined header;..."``. The wire protocol, the error queue and
the differences from SlowPy are described in ``docs/scpi-server.md``; the parsing is in
``_scpi`` and has no I/O.

Threading: sync handlers (and a sync ``do_command``) run inline on the Trio thread, one at a
time; that keeps the server fast, so they must return quickly. ``ScpiServer(threaded=True)``
or ``@server.on(..., thread=True)`` runs them in worker threads instead, one at a time per
adapter. Async handlers and bound nodes (through ``aio_get``/``aio_set``) always run on the
Trio thread, and may interleave between clients while they await.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import os
import signal
import threading
import time
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, Union

import trio

from ._errors import InstrumentError, NodeAccessError
from ._scpi import (
    DEFAULT_MAX_LINE_LENGTH,
    Command,
    CommandTable,
    ErrorCode,
    ErrorQueue,
    LineBuffer,
    block_payload,
    format_value,
    parse_line,
    strip_terminators,
    unquote,
)
from ._stop import current_stop_scope

__all__ = ["AsyncNode", "ScpiAdapter", "ScpiServer", "ScpiServerStatistics"]

logger = logging.getLogger("slowdash_controls.scpi")

F = TypeVar("F", bound=Callable[..., Any])

RECEIVE_SIZE = 65536
YIELD_INTERVAL = 0.0005  # s: longest a busy connection runs without letting other tasks in

_PARSE_CACHE_SIZE = 512  # lines
_PARSE_CACHE_LINE = 200  # characters: longer lines (block data...) are not kept

# how a handler runs
_INLINE, _ASYNC, _THREAD, _DEFAULT = 0, 1, 2, 3


class AsyncNode(Protocol):
    """What ``bind_nodes`` needs of a node: the async get and set of a ControlNode."""

    async def aio_get(self) -> Any: ...

    async def aio_set(self, value: Any) -> Any: ...


# ============================================================================================
# parameter conversion for decorated handlers
# ============================================================================================

_TRUE = frozenset({"1", "ON", "TRUE"})
_FALSE = frozenset({"0", "OFF", "FALSE"})


def _to_bool(text: str) -> bool:
    word = unquote(text).strip().upper()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"expected 1/0/ON/OFF/TRUE/FALSE, got {text!r}")


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


_RADIX = {"H": 16, "Q": 8, "B": 2}


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    if len(text) > 2 and text[0] == "#" and text[1].upper() in _RADIX:
        try:
            return int(text[2:], _RADIX[text[1].upper()])
        except ValueError:
            pass
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number.is_integer():
        return int(number)
    raise ValueError(f"expected an integer, got {text!r}")


def _to_bytes(text: str) -> bytes:
    if len(text) >= 2 and text[0] == "#" and "0" <= text[1] <= "9":
        return block_payload(text)
    return unquote(text).encode("utf-8", "surrogateescape")


def _raw(text: str) -> str:
    return text


def _converter_for(annotation: Any) -> Callable[[str], Any]:
    """The converter from parameter text to the annotated type."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return _raw
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _converter_for(args[0]) if len(args) == 1 else _raw
    if annotation is bool:
        return _to_bool
    if annotation is int:
        return _to_int
    if annotation is float:
        return _to_float
    if annotation is str:
        return unquote
    if annotation is bytes:
        return _to_bytes
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return functools.partial(_to_enum, annotation)
    if callable(annotation):
        return typing.cast(Callable[[str], Any], annotation)
    return _raw


def _to_enum(cls: type[enum.Enum], text: str) -> enum.Enum:
    word = unquote(text).strip()
    for member in cls:
        if member.name.upper() == word.upper() or str(member.value) == word:
            return member
    names = "/".join(m.name for m in cls)
    raise ValueError(f"expected one of {names}, got {text!r}")


def _plural(n: int) -> str:
    return f"{n} parameter" if n == 1 else f"{n} parameters"


class _Handler:
    """A registered function with its parameter converters."""

    __slots__ = ("converters", "func", "maximum", "mode", "names", "required", "variadic")

    def __init__(self, func: Callable[..., Any], thread: bool | None) -> None:
        if not callable(func):
            raise TypeError(f"an SCPI handler must be callable, not {func!r}")
        self.func = func
        is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004
        )
        if is_async and thread:
            raise TypeError(f"{func!r} is async: it runs on the Trio thread, thread=True is wrong")
        if is_async:
            self.mode = _ASYNC
        elif thread is None:
            self.mode = _DEFAULT
        else:
            self.mode = _THREAD if thread else _INLINE
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # annotations that cannot be resolved: take the text as it is
            hints = {}
        self.converters: list[Callable[[str], Any]] = []
        self.names: list[str] = []
        self.required = 0
        self.variadic: Callable[[str], Any] | None = None
        for p in signature.parameters.values():
            annotation = hints.get(p.name, p.annotation)
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                self.converters.append(_converter_for(annotation))
                self.names.append(p.name)
                if p.default is p.empty:
                    self.required = len(self.converters)
            elif p.kind is p.VAR_POSITIONAL:
                self.variadic = _converter_for(annotation)
                self.names.append(p.name)
            elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
                raise TypeError(f"SCPI handler {func!r}: keyword-only {p.name!r} needs a default")
        self.maximum = None if self.variadic else len(self.converters)

    def convert(self, header: str, params: tuple[str, ...]) -> list[Any]:
        n = len(params)
        if n < self.required:
            raise InstrumentError(
                ErrorCode.MISSING_PARAMETER,
                f"{header} expects {_plural(self.required)} "
                f"({', '.join(self.names[: self.required])}), got {n}",
            )
        if self.maximum is not None and n > self.maximum:
            raise InstrumentError(
                ErrorCode.PARAMETER_NOT_ALLOWED,
                f"{header} takes at most {_plural(self.maximum)}, got {n}",
            )
        if not n:
            return []
        converters = self.converters
        args: list[Any] = []
        for i, text in enumerate(params):
            if i < len(converters):
                convert, name = converters[i], self.names[i]
            else:
                convert, name = typing.cast(Callable[[str], Any], self.variadic), self.names[-1]
            try:
                args.append(convert(text))
            except Exception as exc:
                raise InstrumentError(
                    ErrorCode.ILLEGAL_PARAMETER_VALUE,
                    f"{header} parameter {i + 1} ({name}): {exc}",
                ) from None
        return args


@dataclass(frozen=True, slots=True)
class _NodeBinding:
    node: AsyncNode


# ============================================================================================
# the adapter: what the device answers
# ============================================================================================


class ScpiAdapter:
    """The device behind an SCPI server: its commands, error queue and status registers.

    Subclass it and override ``do_command(cmd_path, params)`` (and ``do_RST``, ``do_CLS``,
    ``do_OPC`` if needed), register functions with :meth:`add_handler`, or bind control nodes
    with :meth:`bind_nodes`. One adapter is one device: its error queue is shared by all
    clients, as SlowPy's is.
    """

    def __init__(
        self, idn: str = "Slow SCPI Device", *, error_queue_size: int = 32, **kwargs: Any
    ) -> None:
        self.idn = idn
        self.is_running = False
        self._errors = ErrorQueue(error_queue_size)
        self.esr = 0  # standard event status register
        self.ese = 0  # its enable mask
        self._handlers: CommandTable[_Handler] = CommandTable()
        self._nodes: CommandTable[_NodeBinding] = CommandTable()
        self._builtins: CommandTable[Callable[[Command, bool], Awaitable[object]]] = CommandTable()
        self._limiter: trio.CapacityLimiter | None = None
        self._parsed: dict[str, list[Command]] = {}  # instruments are asked the same lines
        cls = type(self)
        self._has_do_command = cls.do_command is not ScpiAdapter.do_command
        self._do_command_async = inspect.iscoroutinefunction(cls.do_command)
        builtins: list[tuple[str, Callable[[Command, bool], Awaitable[object]]]] = [
            ("*IDN?", self._idn),
            ("*RST", self._rst),
            ("*CLS", self._cls),
            ("*OPC?", self._opc_query),
            ("*OPC", self._opc),
            ("*WAI", self._nothing),
            ("*TST?", self._tst),
            ("*ESR?", self._esr),
            ("*ESE", self._ese),
            ("*ESE?", self._ese_query),
            ("*STB?", self._stb),
            ("SYSTem:ERRor[:NEXT]?", self._error_next),
            ("SYSTem:ERRor:COUNt?", self._error_count),
            ("SYSTem:ERRor:ALL?", self._error_all),
        ]
        for pattern, method in builtins:
            self._builtins.add(pattern, method)

    # -- the error queue ------------------------------------------------------------------

    @property
    def errors(self) -> ErrorQueue:
        """The error queue (``SYSTem:ERRor?`` reads it oldest first)."""
        return self._errors

    @errors.setter
    def errors(self, value: ErrorQueue | Iterable[str | tuple[int, str]]) -> None:
        # SlowPy's subclasses reset it with ``self.errors = []``
        if isinstance(value, ErrorQueue):
            self._errors = value
            return
        self._errors.clear()
        for entry in value:
            if isinstance(entry, str):
                self.push_error(entry)
            else:
                self.push_error(*entry)

    def push_error(self, code_or_message: int | str, message: str | None = None) -> None:
        """Queue an SCPI error: ``push_error(-222, 'voltage above 10 V')`` or, as in SlowPy,
        ``push_error('text')``, which queues it as -200 (execution error)."""
        detail: str | None
        if isinstance(code_or_message, str):
            code, detail = int(ErrorCode.EXECUTION_ERROR), code_or_message
        else:
            code, detail = int(code_or_message), message
        self._errors.push(code, detail)
        if -199 <= code <= -100:
            self.esr |= 32  # command error
        elif -299 <= code <= -200:
            self.esr |= 16  # execution error
        elif -499 <= code <= -400:
            self.esr |= 4  # query error
        elif code:
            self.esr |= 8  # device-dependent error

    # -- registration ---------------------------------------------------------------------

    def add_handler(
        self, cmd: str, func: Callable[..., Any], *, thread: bool | None = None
    ) -> None:
        """Answer the commands ``cmd`` matches with ``func`` (see ``ScpiServer.on``)."""
        self._handlers.add(cmd, _Handler(func, thread))

    def bind_nodes(self, nodelist: Iterable[tuple[str, AsyncNode]]) -> None:
        """Map SCPI paths to control nodes: ``[('CONFIGure:WALK', node), ...]``.

        ``PATH?`` awaits ``node.aio_get()``; ``PATH value`` awaits ``node.aio_set('value')``
        (several parameters are joined with spaces, as in SlowPy). A path ending with ``?``
        binds the query only.
        """
        for path, node in nodelist:
            if not (
                callable(getattr(node, "aio_get", None))
                and callable(getattr(node, "aio_set", None))
            ):
                raise TypeError(f"{path}: {node!r} is not a control node (no aio_get/aio_set)")
            self._nodes.add(path, _NodeBinding(node), query_and_set=True)

    # -- override points (SlowPy's names) -------------------------------------------------

    def do_command(self, cmd_path: list[str], params: list[str]) -> object:
        """Answer a device-specific command; return None if it is not one of yours.

        ``cmd_path`` is the header split at ``:``, upper case, the last part keeping its
        ``?``; ``params`` are the parameter texts (empty list for none). The return value of a
        query is its reply (None -> not recognised, ``''`` -> an empty reply). May be
        ``async def``.
        """
        return None

    def do_RST(self) -> object:
        """``*RST``: by default clears ``is_running`` and the error queue, as SlowPy does."""
        self.is_running = False
        self._errors.clear()
        return None

    def do_CLS(self) -> object:
        """``*CLS``: clears the error queue and the event status register."""
        self._errors.clear()
        self.esr = 0
        return None

    def do_OPC(self) -> object:
        """``*OPC?``: ``1``. Commands of a connection run in order, so by the time this is
        answered everything sent before it has completed. (SlowPy answers 0 by default.)"""
        return "1"

    # -- running commands -----------------------------------------------------------------

    async def process_line(self, line: str, *, threaded: bool = False) -> str | None:
        """Run the commands of one line in order; return the reply line (without
        terminator), or None if the line held no query. ``threaded`` runs sync handlers
        in worker threads (what ``ScpiServer(threaded=True)`` passes)."""
        commands = self._parsed.get(line)
        if commands is None:
            commands = parse_line(line)
            if len(line) <= _PARSE_CACHE_LINE:
                if len(self._parsed) >= _PARSE_CACHE_SIZE:
                    self._parsed.clear()
                self._parsed[line] = commands
        replies: list[str] | None = None
        for cmd in commands:
            result: object = None
            try:
                result = await self._dispatch(cmd, threaded)
            except InstrumentError as exc:
                self.push_error(exc.code, exc.text)
                logger.debug("SCPI %s: %s", cmd.header, exc)
            except NodeAccessError as exc:
                code = (
                    ErrorCode.EXECUTION_ERROR if cmd.is_query else ErrorCode.ILLEGAL_PARAMETER_VALUE
                )
                self.push_error(code, f"{cmd.header}: {exc}")
                logger.debug("SCPI %s: %s", cmd.header, exc)
            except Exception as exc:
                self.push_error(
                    ErrorCode.EXECUTION_ERROR, f"{cmd.header}: {type(exc).__name__}: {exc}"
                )
                logger.warning("SCPI %s failed", cmd.header, exc_info=True)
            if cmd.header.endswith("?"):
                if replies is None:
                    replies = []
                replies.append(strip_terminators(format_value(result)))
        return None if replies is None else ";".join(replies)

    async def _dispatch(self, cmd: Command, threaded: bool) -> object:
        header = cmd.header
        handler = self._handlers.get(header)
        if handler is not None:
            args = handler.convert(header, cmd.params)
            mode = handler.mode
            if mode == _DEFAULT:
                mode = _THREAD if threaded else _INLINE
            if mode == _INLINE:
                result = handler.func(*args)
                if result.__class__ is types.CoroutineType:  # a lambda around an async call
                    result = await typing.cast(Awaitable[object], result)
                return result
            if mode == _ASYNC:
                return await handler.func(*args)
            return await self._in_thread(handler.func, *args)
        if self._has_do_command:
            path, params = header.split(":"), list(cmd.params)
            if self._do_command_async:
                result = await typing.cast(Awaitable[object], self.do_command(path, params))
            elif threaded:
                result = await self._in_thread(self.do_command, path, params)
            else:
                result = self.do_command(path, params)
                if result.__class__ is types.CoroutineType:
                    result = await typing.cast(Awaitable[object], result)
            if result is not None:
                return result
        builtin = self._builtins.get(header)
        if builtin is not None:
            return await builtin(cmd, threaded)
        binding = self._nodes.get(header)
        if binding is not None:
            if header.endswith("?"):
                return await binding.node.aio_get()
            if not cmd.params:
                raise InstrumentError(ErrorCode.MISSING_PARAMETER, f"{header} expects a value")
            await binding.node.aio_set(" ".join(cmd.params))
            return None
        self.push_error(ErrorCode.UNDEFINED_HEADER, header)
        logger.debug("SCPI undefined header %s", header)
        return None

    @property
    def thread_limiter(self) -> trio.CapacityLimiter:
        """The limiter (capacity 1) that runs this adapter's threaded handlers one at a time."""
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(1)
        return self._limiter

    async def _in_thread(self, func: Callable[..., object], *args: Any) -> object:
        return await trio.to_thread.run_sync(
            functools.partial(func, *args), limiter=self.thread_limiter
        )

    async def _user(self, method: Callable[[], object], threaded: bool) -> object:
        if inspect.iscoroutinefunction(method):
            return await typing.cast(Awaitable[object], method())
        if threaded:
            return await self._in_thread(method)
        return method()

    # -- built-in commands ----------------------------------------------------------------

    async def _idn(self, cmd: Command, threaded: bool) -> object:
        return self.idn

    async def _rst(self, cmd: Command, threaded: bool) -> object:
        await self._user(self.do_RST, threaded)
        return None

    async def _cls(self, cmd: Command, threaded: bool) -> object:
        await self._user(self.do_CLS, threaded)
        return None

    async def _opc_query(self, cmd: Command, threaded: bool) -> object:
        return await self._user(self.do_OPC, threaded)

    async def _opc(self, cmd: Command, threaded: bool) -> object:
        self.esr |= 1  # operation complete: everything before it has run
        return None

    async def _nothing(self, cmd: Command, threaded: bool) -> object:
        return None

    async def _tst(self, cmd: Command, threaded: bool) -> object:
        return "0"

    async def _esr(self, cmd: Command, threaded: bool) -> object:
        value, self.esr = self.esr, 0
        return str(value)

    async def _ese(self, cmd: Command, threaded: bool) -> object:
        if len(cmd.params) != 1:
            raise InstrumentError(ErrorCode.MISSING_PARAMETER, "*ESE expects a mask 0..255")
        try:
            mask = _to_int(cmd.params[0])
        except ValueError as exc:
            raise InstrumentError(ErrorCode.ILLEGAL_PARAMETER_VALUE, f"*ESE: {exc}") from None
        if not 0 <= mask <= 255:
            raise InstrumentError(ErrorCode.DATA_OUT_OF_RANGE, f"*ESE {mask}: 0..255")
        self.ese = mask
        return None

    async def _ese_query(self, cmd: Command, threaded: bool) -> object:
        return str(self.ese)

    async def _stb(self, cmd: Command, threaded: bool) -> object:
        status = (4 if len(self._errors) else 0) | (32 if self.esr & self.ese else 0)
        return str(status)

    async def _error_next(self, cmd: Command, threaded: bool) -> object:
        return self._errors.pop_formatted()

    async def _error_count(self, cmd: Command, threaded: bool) -> object:
        return str(len(self._errors))

    async def _error_all(self, cmd: Command, threaded: bool) -> object:
        return self._errors.pop_all_formatted()


# ============================================================================================
# the server: streams and sockets
# ============================================================================================


@dataclass(frozen=True, slots=True)
class ScpiServerStatistics:
    """Counters of a running server."""

    clients: int  # connected now
    connections: int  # served since the start
    refused: int  # turned away because of max_clients
    dropped: int  # closed because they did not read their replies
    lines: int  # command lines processed


def _peer(stream: trio.abc.Stream) -> str:
    if isinstance(stream, trio.SocketStream):
        try:
            host, port, *_ = stream.socket.getpeername()
            return f"{host}:{port}"
        except (OSError, ValueError, TypeError):
            return "socket"
    return type(stream).__name__


def _encode_reply(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a handler answered with lone surrogates
        return text.encode("utf-8", "replace")


def _socket_fd(stream: trio.abc.Stream) -> int:
    """The fd of a TCP stream we may read and write directly, or -1."""
    if os.name == "posix" and isinstance(stream, trio.SocketStream):
        return stream.socket.fileno()
    return -1


class ScpiServer:
    """Serve an :class:`ScpiAdapter` over TCP (or over any Trio stream).

    ``ScpiServer(adapter=None, *, port=5025, host='127.0.0.1', line_terminator='\\n',
    max_line_length=65536, max_clients=100, send_timeout=10.0, threaded=False)``

    Lines may end with CR, LF or CRLF; replies end with ``line_terminator``. A client that
    does not read its replies for ``send_timeout`` seconds is dropped; beyond
    ``max_clients`` new connections are closed at once. ``host='0.0.0.0'`` (or ``''``)
    listens on every interface. See :class:`ScpiAdapter` for ``threaded``.

    Run it with ``await nursery.start(server.run)`` in Trio code (the port is returned), or
    ``server.start()`` as the last line of a script.
    """

    def __init__(
        self,
        adapter: ScpiAdapter | None = None,
        *,
        port: int = 5025,
        host: str | None = "127.0.0.1",
        line_terminator: str = "\n",
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_clients: int = 100,
        send_timeout: float = 10.0,
        threaded: bool = False,
    ) -> None:
        if line_terminator not in ("\n", "\r", "\r\n"):
            raise ValueError(r"line_terminator must be '\n', '\r' or '\r\n'")
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.adapter = adapter if adapter is not None else ScpiAdapter()
        self.port = port
        self.host = host
        self.line_terminator = line_terminator
        self.max_line_length = max_line_length
        self.max_clients = max_clients
        self.send_timeout = send_timeout
        self.threaded = threaded
        self.listening_port: int | None = None
        self._clients = self._connections = self._refused = self._dropped = self._lines = 0

    def __repr__(self) -> str:
        where = f"{self.host or '*'}:{self.listening_port or self.port}"
        return f"<ScpiServer {self.adapter.idn!r} {where}>"

    def on(self, pattern: str, *, thread: bool | None = None) -> Callable[[F], F]:
        """Decorator: answer the commands ``pattern`` matches with the decorated function.

        ``@server.on('MEASure:VOLTage?')`` for a query (its return value is the reply),
        ``@server.on('VOLTage')`` for a set command. Parameters are converted from the
        annotations (float, int, bool, str, bytes, an Enum). ``thread=True`` runs a sync
        function in a worker thread, ``thread=False`` inline, None follows the server.
        """

        def register(func: F) -> F:
            self.adapter.add_handler(pattern, func, thread=thread)
            return func

        return register

    def bind_nodes(self, nodelist: Iterable[tuple[str, AsyncNode]]) -> None:
        """Same as ``server.adapter.bind_nodes(nodelist)``."""
        self.adapter.bind_nodes(nodelist)

    def statistics(self) -> ScpiServerStatistics:
        return ScpiServerStatistics(
            self._clients, self._connections, self._refused, self._dropped, self._lines
        )

    # -- running --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; ``task_status.started(port)`` gives the real port
        (``port=0`` picks a free one)."""
        host = self.host if self.host not in ("", "*", "0.0.0.0") else None
        listeners = await trio.open_tcp_listeners(self.port, host=host)
        port = int(listeners[0].socket.getsockname()[1])
        self.listening_port = port
        logger.info("SCPI server %r listening on %s:%d", self.adapter.idn, host or "*", port)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    functools.partial(trio.serve_listeners, self._serve_tcp, listeners)
                )
                task_status.started(port)
        finally:
            self.listening_port = None

    def start(self, *, port: int | None = None, host: str | None = None) -> None:
        """Serve until SIGINT or SIGTERM (blocking); for the main thread of a script."""
        if port is not None:
            self.port = port
        if host is not None:
            self.host = host
        if trio.lowlevel.in_trio_run():
            raise RuntimeError(
                "ScpiServer.start() runs its own Trio loop; in Trio code use "
                "`await nursery.start(server.run)`"
            )
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "ScpiServer.start() handles SIGINT/SIGTERM, so it must be called from the "
                "main thread; elsewhere run `trio.run(server.run)` and cancel it to stop"
            )
        trio.run(self._run_until_signal)

    async def _run_until_signal(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.run)
                async for signum in signals:
                    logger.info("SCPI server stopping (%s)", signal.Signals(signum).name)
                    # the script's other code (a ControlThreadNode, say) sees the stop too
                    current_stop_scope().task_scope().request_stop(
                        f"signal {signal.Signals(signum).name}"
                    )
                    break
                nursery.cancel_scope.cancel()

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        if self._clients >= self.max_clients:
            self._refused += 1
            logger.warning(
                "SCPI client %s refused: %d clients connected (max_clients)",
                _peer(stream),
                self._clients,
            )
            await trio.aclose_forcefully(stream)
            return
        await self.serve_stream(stream)

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one client on an open stream until it closes (then close the stream).

        Any Trio stream works: a TCP connection, a serial port, or one end of
        ``trio.testing.memory_stream_pair()`` for a fake instrument in tests.
        """
        self._clients += 1
        self._connections += 1
        peer = _peer(stream)
        logger.debug("SCPI client %s connected", peer)
        try:
            await self._serve(stream, peer)
        finally:
            self._clients -= 1
            await trio.aclose_forcefully(stream)
            logger.debug("SCPI client %s closed", peer)

    async def _serve(self, stream: trio.abc.Stream, peer: str) -> None:
        buffer = LineBuffer(self.max_line_length)
        adapter = self.adapter
        terminator = self.line_terminator
        threaded = self.threaded
        fd = _socket_fd(stream)
        read, write, clock = os.read, os.write, time.perf_counter
        yield_at = 0.0
        data: bytes | bytearray
        while True:
            # On a TCP socket, read the fd directly and go through the scheduler only when it
            # is empty or this task has run for YIELD_INTERVAL without yielding: a client
            # waiting for each reply then costs one scheduler pass per line at most, often
            # none. (Other streams take the plain Trio path.)
            if fd >= 0:
                try:
                    data = read(fd, RECEIVE_SIZE)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(fd)
                    yield_at = clock() + YIELD_INTERVAL
                    continue
                except OSError:
                    break
                if clock() >= yield_at:
                    await trio.lowlevel.checkpoint()
                    yield_at = clock() + YIELD_INTERVAL
            else:
                try:
                    data = await stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
            if not data:
                break
            events = buffer.feed(data)
            if not events:
                continue
            out: list[str] = []
            for event in events:
                if isinstance(event, str):
                    self._lines += 1
                    reply = await adapter.process_line(event, threaded=threaded)
                    if reply is not None:
                        out.append(reply)
                        out.append(terminator)
                else:
                    adapter.push_error(event.code, event.message)
                    logger.debug("SCPI client %s: %s", peer, event.message)
            if not out:
                continue
            payload = _encode_reply("".join(out))
            sent = 0
            if fd >= 0:
                try:
                    sent = write(fd, payload)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    break
            if sent < len(payload) and not await self._send_rest(stream, payload, sent, peer):
                break
        if buffer.pending:
            logger.debug("SCPI client %s left in mid-line (%d bytes dropped)", peer, buffer.pending)

    async def _send_rest(
        self, stream: trio.abc.Stream, payload: bytes, sent: int, peer: str
    ) -> bool:
        with trio.move_on_after(self.send_timeout):
            try:
                await stream.send_all(memoryview(payload)[sent:])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
            return True
        self._dropped += 1
        logger.warning(
            "SCPI client %s dropped: it did not read its replies for %g s", peer, self.send_timeout
        )
        return False
