"""SCPI without I/O: line framing, block data, mnemonics, command parsing, the error queue.

Everything here is plain code over bytes and strings; the Trio server (``_scpi_server``), the
SCPI client nodes and fake instruments in tests all drive these same pieces.

Wire conventions used throughout:

- Lines end with CR, LF or CRLF (CRLF is one terminator, not an empty line).
- IEEE 488.2 block data ``#<n><len><payload>`` (and the indefinite ``#0<payload>`` that runs to
  the next LF) may hold CR and LF bytes; they do not end the line. A block is recognised where a
  parameter or reply element starts (at the start of the line or after a space, ``,`` or ``;``)
  and outside quoted strings.
- Decoded lines are ``str``. Text is UTF-8; block payloads are decoded byte for byte
  (``ascii`` with ``surrogateescape``), so a block keeps its length in characters and
  ``text.encode("utf-8", "surrogateescape")`` gives the exact bytes back.
  :func:`block_payload` and :func:`parse_reply` turn such text into ``bytes``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, TypeVar

from ._errors import LocalProtocolError, RemoteProtocolError

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

DEFAULT_MAX_LINE_LENGTH = 65536
"""Bytes in one line (block data included) before the rest of it is dropped."""


# ============================================================================================
# error codes and the error queue
# ============================================================================================


class ErrorCode(IntEnum):
    """Standard SCPI error codes used by this package (SCPI-99, chapter 21)."""

    NO_ERROR = 0
    COMMAND_ERROR = -100
    INVALID_CHARACTER = -101
    SYNTAX_ERROR = -102
    PARAMETER_NOT_ALLOWED = -108
    MISSING_PARAMETER = -109
    UNDEFINED_HEADER = -113
    EXECUTION_ERROR = -200
    SETTINGS_CONFLICT = -221
    DATA_OUT_OF_RANGE = -222
    ILLEGAL_PARAMETER_VALUE = -224
    QUEUE_OVERFLOW = -350
    INPUT_BUFFER_OVERRUN = -363


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
# line framing
# ============================================================================================


@dataclass(frozen=True, slots=True)
class LineError:
    """A line :class:`LineBuffer` could not deliver: too long (-363) or not UTF-8 (-101)."""

    code: int
    message: str

    def to_exception(self) -> RemoteProtocolError:
        return RemoteProtocolError(self.message)


_SPECIAL = re.compile(rb"[\r\n#\"']")
_TERMINATOR = re.compile(rb"[\r\n]")
_SPLIT_TERMINATORS = re.compile(rb"\r\n|\r|\n")
_ELEMENT_START_BYTES = frozenset(b" \t,;")
_CR, _LF, _HASH, _ZERO, _NINE = 13, 10, 35, 48, 57


class LineBuffer:
    """Reassemble lines from received bytes: ``feed(data)`` returns the lines it completed.

    Accepts CR, LF and CRLF as terminators and keeps block data whole (see the module
    docstring). Each event is a ``str`` (a line, without its terminator) or a
    :class:`LineError`:

    - a line longer than ``max_line_length`` bytes gives ``LineError(-363, ...)`` once; the
      rest of it is dropped up to the next CR or LF, where reading starts afresh;
    - a line that is not UTF-8 gives ``LineError(-101, ...)``.

    A server turns these into SCPI errors and keeps going; a client raises
    ``event.to_exception()`` (a :class:`RemoteProtocolError`). With ``block_data=False``
    ``#`` is an ordinary character.
    """

    __slots__ = (
        "_block_left",
        "_blocks",
        "_buf",
        "_discard",
        "_indefinite",
        "_pos",
        "_quote",
        "_skip_lf",
        "_slow",
        "_span_start",
        "_spans",
        "max_line_length",
    )

    def __init__(
        self, max_line_length: int = DEFAULT_MAX_LINE_LENGTH, *, block_data: bool = True
    ) -> None:
        if max_line_length < 1:
            raise ValueError("max_line_length must be at least 1")
        self.max_line_length = max_line_length
        self._blocks = block_data
        self._buf = bytearray()
        self._skip_lf = False  # the last terminator was a CR at the end of the data
        self._discard = False  # dropping the rest of an over-long line
        # scanning state of the pending line, used when block data may be in it
        self._slow = False
        self._pos = 0
        self._quote = 0
        self._block_left = 0
        self._indefinite = False
        self._span_start = 0
        self._spans: list[tuple[int, int]] = []

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line held back."""
        return len(self._buf)

    def pending_bytes(self) -> bytes:
        """The incomplete line held back, as received (empty while dropping an over-long
        line)."""
        return bytes(self._buf)

    def clear(self) -> None:
        """Forget any incomplete line."""
        self._buf.clear()
        self._skip_lf = self._discard = False
        self._reset_line()

    def feed(self, data: bytes | bytearray | memoryview) -> list[str | LineError]:
        """Add received bytes; return the lines (and line errors) completed by them."""
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return []
        data = bytes(data)
        if self._slow or (self._blocks and b"#" in data):
            return self._feed_scanning(data)
        # fast path: no block data anywhere in the pending line
        if b"\r" in data:
            parts = _SPLIT_TERMINATORS.split(data) if b"\n" in data else data.split(b"\r")
            if data[-1] == _CR:
                self._skip_lf = True
        else:
            parts = data.split(b"\n")
        tail = parts.pop()
        events: list[str | LineError] = []
        if parts:
            if self._discard:
                self._discard = False
                del parts[0]
            elif self._buf:
                self._buf += parts[0]
                parts[0] = bytes(self._buf)
                self._buf.clear()
            limit = self.max_line_length
            for raw in parts:
                if len(raw) > limit:
                    events.append(self._too_long())
                    continue
                try:
                    events.append(raw.decode())
                except UnicodeDecodeError as exc:
                    events.append(_not_utf8(raw, exc))
        elif self._discard:
            return events
        if tail:
            self._buf += tail
            if len(self._buf) > self.max_line_length:
                self._overflow(events)
        return events

    # -- internals ------------------------------------------------------------------------

    def _too_long(self) -> LineError:
        return LineError(
            ErrorCode.INPUT_BUFFER_OVERRUN.value,
            f"Input buffer overrun;line longer than {self.max_line_length} bytes",
        )

    def _overflow(self, events: list[str | LineError]) -> None:
        events.append(self._too_long())
        self._buf.clear()
        self._reset_line()
        self._discard = True

    def _reset_line(self) -> None:
        self._slow = False
        self._pos = self._quote = self._block_left = self._span_start = 0
        self._indefinite = False
        self._spans = []

    def _finish_line(self, start: int, end: int) -> str | LineError:
        buf = self._buf
        spans = self._spans
        self._quote = self._block_left = 0
        self._indefinite = False
        self._spans = []
        if end - start > self.max_line_length:
            return self._too_long()
        raw = bytes(buf[start:end])
        try:
            if not spans:
                return raw.decode()
            pieces: list[str] = []
            at = 0
            for s, e in spans:
                pieces.append(raw[at : s - start].decode())
                pieces.append(raw[s - start : e - start].decode("ascii", "surrogateescape"))
                at = e - start
            pieces.append(raw[at:].decode())
            return "".join(pieces)
        except UnicodeDecodeError as exc:
            return _not_utf8(raw, exc)

    def _after_terminator(self, i: int) -> int:
        buf = self._buf
        if buf[i] == _CR:
            if i + 1 < len(buf):
                return i + 2 if buf[i + 1] == _LF else i + 1
            self._skip_lf = True
        return i + 1

    def _feed_scanning(self, data: bytes) -> list[str | LineError]:
        """The careful path: walk the pending line looking for block data and quotes."""
        buf = self._buf
        buf += data
        n = len(buf)
        pos = self._pos
        start = 0
        events: list[str | LineError] = []
        while pos < n:
            if self._discard:
                m = _TERMINATOR.search(buf, pos)
                if m is None:
                    pos = start = n
                    break
                self._discard = False
                pos = start = self._after_terminator(m.start())
                continue
            if self._block_left:
                take = min(self._block_left, n - pos)
                pos += take
                self._block_left -= take
                if self._block_left:
                    break
                self._spans.append((self._span_start, pos))
                continue
            if self._indefinite:
                i = buf.find(b"\n", pos)
                if i < 0:
                    pos = n
                    break
                self._spans.append((self._span_start, i))
                events.append(self._finish_line(start, i))
                pos = start = i + 1
                continue
            m = _SPECIAL.search(buf, pos)
            if m is None:
                pos = n
                break
            i = m.start()
            c = buf[i]
            if c in (_LF, _CR):
                events.append(self._finish_line(start, i))
                pos = start = self._after_terminator(i)
            elif self._quote:
                if c == self._quote:
                    self._quote = 0
                pos = i + 1
            elif c == _HASH:
                if i > start and buf[i - 1] not in _ELEMENT_START_BYTES:
                    pos = i + 1
                    continue
                if i + 1 >= n:
                    pos = i  # wait for the byte after '#'
                    break
                d = buf[i + 1]
                if d == _ZERO:
                    self._indefinite = True
                    self._span_start = pos = i + 2
                elif _ZERO < d <= _NINE:
                    k = d - _ZERO
                    digits = buf[i + 2 : i + 2 + k]
                    if digits and not digits.isdigit():
                        pos = i + 1  # not a block after all
                    elif len(digits) < k:
                        pos = i  # wait for the whole length field
                        break
                    else:
                        self._block_left = int(digits)
                        self._span_start = pos = i + 2 + k
                else:
                    pos = i + 1
            else:  # a quote character
                if i == start or buf[i - 1] in _ELEMENT_START_BYTES:
                    self._quote = c
                pos = i + 1
        # keep only the pending line, positions made relative to it
        if start:
            del buf[:start]
            pos -= start
            self._span_start = max(0, self._span_start - start)
            self._spans = [(s - start, e - start) for s, e in self._spans]
        self._pos = pos
        if self._discard:
            buf.clear()
            self._reset_line()
            self._discard = True
        elif len(buf) > self.max_line_length:
            self._overflow(events)
        self._slow = bool(buf)
        if not buf:
            self._reset_line()
        return events


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> LineError:
    return LineError(
        ErrorCode.INVALID_CHARACTER.value,
        f"Invalid character;not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        if exc.start < len(raw)
        else "Invalid character;not UTF-8",
    )


# ============================================================================================
# block data
# ============================================================================================


def encode_block(data: bytes | bytearray | memoryview) -> bytes:
    """``#<n><len><data>``: IEEE 488.2 definite-length block."""
    payload = bytes(data)
    length = str(len(payload))
    if len(length) > 9:
        raise LocalProtocolError("block data longer than 999,999,999 bytes")
    return b"#" + str(len(length)).encode() + length.encode() + payload


def format_block(data: bytes | bytearray | memoryview) -> str:
    """:func:`encode_block` as text, to put in a reply or a command (see the module docstring)."""
    return encode_block(data).decode("ascii", "surrogateescape")


def parse_block(
    data: bytes | bytearray | memoryview, start: int = 0, *, final: bool = False
) -> tuple[bytes, int] | None:
    """Parse a block starting at ``data[start]``: ``(payload, end)``, or None if incomplete.

    ``end`` is the index just after the block (after the LF ending an indefinite ``#0``
    block). With ``final=True`` the data is complete, so an indefinite block without an LF
    runs to the end and a short definite block is an error. Raises RemoteProtocolError if
    the bytes at ``start`` are not a block header.
    """
    raw = bytes(data)
    n = len(raw)
    if n - start < 2:
        if final or (n > start and raw[start] != _HASH):
            raise RemoteProtocolError("block data expected (#<n><length><data>)")
        return None
    if raw[start] != _HASH:
        raise RemoteProtocolError(f"block data expected, got {raw[start : start + 10]!r}")
    d = raw[start + 1]
    if d == _ZERO:
        end = raw.find(b"\n", start + 2)
        if end >= 0:
            return raw[start + 2 : end], end + 1
        return (raw[start + 2 :], n) if final else None
    if not _ZERO < d <= _NINE:
        raise RemoteProtocolError(f"bad block data header {raw[start : start + 11]!r}")
    k = d - _ZERO
    if n < start + 2 + k:
        if final:
            raise RemoteProtocolError("block data header cut short")
        return None
    digits = raw[start + 2 : start + 2 + k]
    if not digits.isdigit():
        raise RemoteProtocolError(f"bad block data length {digits!r}")
    begin = start + 2 + k
    end = begin + int(digits)
    if end > n:
        if final:
            raise RemoteProtocolError(f"block data cut short: {n - begin} of {end - begin} bytes")
        return None
    return raw[begin:end], end


def block_payload(text: str) -> bytes:
    """The payload of a block given as text (a reply or parameter holding only a block).

    Whitespace around the block is allowed; anything else is a RemoteProtocolError.
    """
    raw = text.lstrip().encode("utf-8", "surrogateescape")
    parsed = parse_block(raw, final=True)
    assert parsed is not None  # final=True never returns None
    payload, end = parsed
    if raw[end:].strip():
        raise RemoteProtocolError("unexpected data after block data")
    return payload


# ============================================================================================
# splitting lines into commands and parameters
# ============================================================================================


def _block_end(text: str, i: int) -> int | None:
    """The index after a block starting at ``text[i] == '#'``, or None if it is not one."""
    n = len(text)
    if i + 1 >= n:
        return None
    d = text[i + 1]
    if d == "0":
        return n
    if "1" <= d <= "9":
        k = ord(d) - _ZERO
        digits = text[i + 2 : i + 2 + k]
        if len(digits) == k and digits.isascii() and digits.isdigit():
            return min(n, i + 2 + k + int(digits))
    return None


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


def _has_terminator(text: str) -> bool:
    return "\r" in text or "\n" in text


def strip_terminators(text: str) -> str:
    """Replace CR and LF outside block data with spaces, so a reply field stays one line."""
    if not _has_terminator(text):
        return text
    out = list(text)
    for start, end in _text_spans(text):
        for i in range(start, end):
            if out[i] in "\r\n":
                out[i] = " "
    return "".join(out)


def encode_line(text: str, terminator: str = "\n") -> bytes:
    """Encode one command line for the wire: UTF-8 (block data byte for byte), terminated.

    Raises LocalProtocolError if the text holds CR or LF outside block data, since the
    device would read it as the end of the line.
    """
    if _has_terminator(text) and any(
        _has_terminator(text[start:end]) for start, end in _text_spans(text)
    ):
        raise LocalProtocolError(f"line terminator inside an SCPI command: {text!r}")
    return (text + terminator).encode("utf-8", "surrogateescape")


def _text_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of ``text`` outside block data (quotes protect nothing here)."""
    spans: list[tuple[int, int]] = []
    start = i = 0
    n = len(text)
    while i < n:
        if text[i] == "#" and (i == 0 or text[i - 1] in " \t,;"):
            end = _block_end(text, i)
            if end is not None:
                spans.append((start, i))
                i = start = end
                continue
        i += 1
    spans.append((start, n))
    return spans


def parse_reply(line: str) -> str | bytes:
    """A reply line as the caller wants it: block data -> ``bytes``, other text stripped."""
    text = line.lstrip()
    if len(text) >= 2 and text[0] == "#" and "0" <= text[1] <= "9":
        return block_payload(text)
    return text.rstrip()
