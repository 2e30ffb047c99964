"""SCPI without I/O: command parsing, mnemonics, the error queue, client helpers.

Everything here is plain code over bytes and strings; the Trio server (``_scpi_server``), the
SCPI client nodes and fake instruments in tests all drive these same pieces. Byte framing
(:class:`LineBuffer`, block data, line encoding) and its wire conventions are in
``_scpi_framing``; its names are re-exported here.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._errors import LocalProtocolError, RemoteProtocolError
from ._scpi_framing import (
    DEFAULT_MAX_LINE_LENGTH,
    ErrorCode,
    LineBuffer,
    LineError,
    _block_end,
    block_payload,
    encode_block,
    encode_line,
    format_block,
    parse_block,
    strip_terminators,
)

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "ERROR_MESSAGES",
    "Command",
    "CommandTable",
    "ErrorCode",
    "ErrorQueue",
    "LineBuffer",
    "LineError",
    "block_payload",
    "encode_block",
    "encode_line",
    "error_text",
    "format_block",
    "format_error_entry",
    "format_query",
    "format_replies",
    "format_set",
    "format_value",
    "mnemonic_forms",
    "mnemonic_matches",
    "parse_block",
    "parse_error_entry",
    "parse_line",
    "parse_reply",
    "split_params",
    "strip_terminators",
    "unquote",
]

T = TypeVar("T")


# ============================================================================================
# error codes and the error queue
# ============================================================================================


ERROR_MESSAGES: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
}
"""The standard text of each code in :class:`ErrorCode`."""

MAX_ERROR_TEXT = 255  # SCPI-99 21.8.3: at most 255 characters
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def error_text(code: int, detail: str | None = None) -> str:
    """The queue text for ``code``: its standard text, then ``;detail`` if given.

    Unknown (device-specific) codes use the detail alone. Control characters are replaced and
    the text is cut to 255 characters, so a hostile command cannot corrupt a reply.
    """
    standard = ERROR_MESSAGES.get(int(code))
    if standard is None:
        text = detail if detail else "Device-specific error"
    elif detail and not detail.lower().startswith(standard.lower()):
        text = f"{standard};{detail}"
    else:
        text = detail or standard
    text = _CONTROL_CHARS.sub("?", text)
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    return text


def format_error_entry(code: int, text: str) -> str:
    """``-113,"Undefined header"``: the reply to ``SYSTem:ERRor?``."""
    quoted = text.replace('"', '""')
    return f'{int(code)},"{quoted}"'


def parse_error_entry(reply: str) -> tuple[int, str]:
    """Parse a ``SYSTem:ERRor?`` reply such as ``-113,"Undefined header"`` into (code, text).

    ``0,"No error"`` gives ``(0, "No error")``. Raises RemoteProtocolError on anything else.
    """
    text = reply.strip()
    head, sep, rest = text.partition(",")
    try:
        code = int(head.strip())
    except ValueError:
        raise RemoteProtocolError(f"not an SCPI error entry: {reply!r}") from None
    if not sep:
        return code, ERROR_MESSAGES.get(code, "")
    return code, unquote(rest.strip())


class ErrorQueue:
    """The SCPI error/event queue: first in, first out, bounded.

    When it is full, its last entry becomes ``-350,"Queue overflow"`` and later errors are
    dropped until entries are read (SCPI-99 21.8). Reading an empty queue gives
    ``0,"No error"``. (SlowPy's queue is a list read newest-first that answers ``''`` when
    empty.)
    """

    def __init__(self, maxlen: int = 32) -> None:
        if maxlen < 2:
            raise ValueError("an error queue needs room for at least 2 entries")
        self.maxlen = maxlen
        self._entries: deque[tuple[int, str]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(list(self._entries))

    def __repr__(self) -> str:
        return f"<ErrorQueue {len(self._entries)}/{self.maxlen}>"

    def push(self, code: int, detail: str | None = None) -> None:
        """Queue an error; the text is built by :func:`error_text`."""
        entries = self._entries
        if len(entries) < self.maxlen - 1:
            entries.append((int(code), error_text(code, detail)))
        elif len(entries) == self.maxlen - 1:
            entries.append((ErrorCode.QUEUE_OVERFLOW.value, ERROR_MESSAGES[-350]))
        # else: full, its last entry is already the overflow marker

    def pop(self) -> tuple[int, str]:
        """The oldest entry, removed; ``(0, "No error")`` when empty."""
        if self._entries:
            return self._entries.popleft()
        return 0, ERROR_MESSAGES[0]

    def pop_formatted(self) -> str:
        """The oldest entry as a reply field, ``0,"No error"`` when empty."""
        return format_error_entry(*self.pop())

    def pop_all_formatted(self) -> str:
        """Every entry as one reply field (``SYSTem:ERRor:ALL?``), emptying the queue."""
        if not self._entries:
            return self.pop_formatted()
        entries = list(self._entries)
        self._entries.clear()
        return ",".join(format_error_entry(code, text) for code, text in entries)

    def clear(self) -> None:
        self._entries.clear()


# ============================================================================================
# splitting lines into commands and parameters
# ============================================================================================


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings and block data."""
    if '"' not in text and "'" not in text and "#" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = i = 0
    n = len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c == sep:
            parts.append(text[start:i])
            start = i + 1
        elif c == '"' or c == "'":
            if i == 0 or text[i - 1] in " \t,;":
                quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t,;"):
            end = _block_end(text, i)
            if end is not None:
                i = end
                continue
        i += 1
    parts.append(text[start:])
    return parts


def split_params(text: str) -> list[str]:
    """Split a parameter list on ``,`` (outside quotes and block data); items are stripped.

    An empty text gives ``[]``.
    """
    if not text or text.isspace():
        return []
    return [p.strip() for p in _split_top(text, ",")]


def unquote(text: str) -> str:
    """Strip the quotes of an SCPI string, undoubling inner ones; other text is returned as is.

    Double or single quotes: ``'it''s'`` -> ``it's``.
    """
    if len(text) >= 2 and text[0] in "\"'" and text[-1] == text[0]:
        q = text[0]
        return text[1:-1].replace(q + q, q)
    return text


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a program message, its header made absolute and upper case.

    ``header`` is e.g. ``MEAS:VOLT?`` or ``*IDN?`` (no leading colon); ``params`` are the
    stripped parameter texts (quotes and block data kept as sent).
    """

    header: str
    params: tuple[str, ...] = ()

    @property
    def is_query(self) -> bool:
        return self.header.endswith("?")

    @property
    def path(self) -> list[str]:
        """The header split at ``:``, e.g. ``["MEAS", "VOLT?"]`` (SlowPy's ``cmd_path``)."""
        return self.header.split(":")


def parse_line(line: str) -> list[Command]:
    """Split a program message into commands, resolving SCPI relative paths.

    - commands are separated by ``;`` (outside quotes and block data); empty ones are skipped;
    - the header is the text up to the first whitespace, the parameters follow it, split on
      ``,``;
    - a header with a leading ``:`` is absolute; one without it is relative to the path of the
      previous command (``MEAS:VOLT?;CURR?`` -> ``MEAS:CURR?``), starting at the root for the
      first command of the line;
    - common commands (``*IDN?``) are always absolute and leave the current path alone
      (``MEAS:VOLT?;*IDN?;CURR?`` -> ``MEAS:VOLT?``, ``*IDN?``, ``MEAS:CURR?``).
    """
    commands: list[Command] = []
    base = ""
    for segment in _split_top(line, ";") if ";" in line else (line,):
        parts = segment.split(None, 1)
        if not parts:
            continue
        header = parts[0].upper()
        if header[0] == "*":
            pass
        elif header[0] == ":":
            header = header[1:]
            base = header[: header.rfind(":") + 1]
        else:
            if base:
                header = base + header
            base = header[: header.rfind(":") + 1]
        params = tuple(split_params(parts[1])) if len(parts) > 1 else ()
        commands.append(Command(header, params))
    return commands


# ============================================================================================
# mnemonics
# ============================================================================================

_NODE = re.compile(r"(\*?)([A-Z_]*)([a-z_]*)([0-9]*)")
_MAX_FORMS = 4096


def _node_forms(node: str, pattern: str) -> tuple[str, ...]:
    m = _NODE.fullmatch(node)
    if m is None or not (m.group(2) or m.group(3)):
        raise ValueError(f"bad SCPI mnemonic {node!r} in {pattern!r}")
    star, upper, lower, digits = m.groups()
    if star:
        if digits or "_" in node:
            raise ValueError(f"bad common command {node!r} in {pattern!r}")
        return ("*" + (upper + lower).upper(),)
    if not upper:  # all lower case: one form, as in SlowPy
        return (star + lower.upper() + digits,)
    short = star + upper + digits
    long = star + upper + lower.upper() + digits
    return (short,) if short == long else (short, long)


def mnemonic_forms(pattern: str) -> list[str]:
    """Every header a pattern accepts, upper case, e.g. for ``MEASure:VOLTage?``:
    ``MEAS:VOLT?``, ``MEAS:VOLTAGE?``, ``MEASURE:VOLT?``, ``MEASURE:VOLTAGE?``.

    Each node is its short form (the upper-case part) or its long form (the whole word), in
    any case; a partial long form (``MEASU``) is not accepted. Digits after a node are a
    literal suffix (``V0``, ``CHANnel2``). A node in brackets is optional:
    ``[:SOURce]:VOLTage`` and ``SOURce[:LEVel]`` also accept ``VOLT`` and ``SOUR``. A node
    written all in lower case has one form, upper-cased (as in SlowPy). A trailing ``?``
    makes a query pattern, which matches only queries.
    """
    text = pattern.strip()
    query = text.endswith("?")
    if query:
        text = text[:-1]
    text = text.lstrip(":")
    if not text or "::" in text or text.endswith(":"):
        raise ValueError(f"empty node in SCPI pattern {pattern!r}")
    nodes: list[tuple[tuple[str, ...], bool]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == ":":
            i += 1
            continue
        if c == "[":
            j = text.find("]", i)
            if j < 0 or "[" in text[i + 1 : j]:
                raise ValueError(f"unbalanced [ ] in SCPI pattern {pattern!r}")
            inner = text[i + 1 : j].strip(":")
            nodes.append((_node_forms(inner, pattern), True))
            i = j + 1
            continue
        j = i
        while j < n and text[j] not in ":[":
            j += 1
        nodes.append((_node_forms(text[i:j], pattern), False))
        i = j
    if any(node[0][0].startswith("*") for node in nodes) and len(nodes) != 1:
        raise ValueError(f"a common command stands alone: {pattern!r}")
    if all(optional for _, optional in nodes):
        raise ValueError(f"SCPI pattern {pattern!r} has no required node")
    forms: list[str] = [""]
    for choices, optional in nodes:
        grown = [f"{f}:{c}" if f else c for f in forms for c in choices]
        forms = grown + forms if optional else grown
        if len(forms) > _MAX_FORMS:
            raise ValueError(f"SCPI pattern {pattern!r} accepts too many headers")
    suffix = "?" if query else ""
    return list(dict.fromkeys(f + suffix for f in forms if f))


def mnemonic_matches(pattern: str, header: str) -> bool:
    """Whether a received header (any case, leading ``:`` allowed) matches a pattern."""
    return header.strip().lstrip(":").upper() in mnemonic_forms(pattern)


class CommandTable(Generic[T]):
    """Headers to values, filled from patterns (see :func:`mnemonic_forms`).

    Lookups are one dict access per command. When two patterns accept the same header, the
    one added first wins, as handlers are tried in registration order in SlowPy.
    """

    __slots__ = ("_table",)

    def __init__(self) -> None:
        self._table: dict[str, T] = {}

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, header: object) -> bool:
        return header in self._table

    def add(self, pattern: str, value: T, *, query_and_set: bool = False) -> list[str]:
        """Register ``value`` for every header ``pattern`` accepts; return those headers.

        With ``query_and_set=True`` a pattern without ``?`` also registers its query form.
        """
        forms = mnemonic_forms(pattern)
        if query_and_set and not pattern.rstrip().endswith("?"):
            forms = forms + [f + "?" for f in forms]
        for form in forms:
            self._table.setdefault(form, value)
        return forms

    def get(self, header: str) -> T | None:
        """The value for an absolute, upper-case header (as in :class:`Command`)."""
        return self._table.get(header)

    def headers(self) -> list[str]:
        return list(self._table)


# ============================================================================================
# formatting replies and commands
# ============================================================================================


def format_value(value: object) -> str:
    """Text of one reply field or parameter.

    None -> ``''``, True/False -> ``1``/``0``, bytes -> block data, lists and tuples ->
    comma-separated, anything else -> ``str(value)``.
    """
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return format_block(value)
    if isinstance(value, list | tuple):
        return ",".join(format_value(v) for v in value)
    return str(value)


def format_replies(fields: Iterable[str], terminator: str = "\n") -> bytes:
    """One reply line: the query replies of a line joined with ``;``, then the terminator."""
    return (";".join(fields) + terminator).encode("utf-8", "surrogateescape")


def format_query(command: str) -> str:
    """``MEAS:VOLT`` -> ``MEAS:VOLT?``; a header already ending with ``?`` is kept.

    Parameters stay after the header: ``MEAS:VOLT (@1)`` -> ``MEAS:VOLT? (@1)``.
    """
    text = command.strip()
    parts = text.split(None, 1)
    if not parts:
        raise LocalProtocolError("empty SCPI command")
    header = parts[0]
    if not header.endswith("?"):
        header += "?"
    return header if len(parts) == 1 else f"{header} {parts[1]}"


def format_set(command: str, value: object = None, *, set_format: str | None = None) -> str:
    """The text of a set command, as SlowPy's ``ScpiCommandNode.set()`` builds it.

    Without ``set_format``: ``command`` alone for None, else ``command value`` (the value
    formatted by :func:`format_value`). With it: ``set_format`` for None, else
    ``set_format.format(value)``.
    """
    if set_format is not None:
        return set_format if value is None else set_format.format(value)
    if value is None:
        return command
    return f"{command} {format_value(value)}"


def parse_reply(line: str) -> str | bytes:
    """A reply line as the caller wants it: block data -> ``bytes``, other text stripped."""
    text = line.lstrip()
    if len(text) >= 2 and text[0] == "#" and "0" <= text[1] <= "9":
        return block_payload(text)
    return text.rstrip()
