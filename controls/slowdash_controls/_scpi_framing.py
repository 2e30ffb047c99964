"""SCPI byte framing without I/O: lines, block data, and the error codes framing reports.

The command-level half of the SCPI core (parsing, mnemonics, the error queue, client helpers)
is in ``_scpi``, which builds on this module and re-exports every name here.

Wire conventions used throughout:

- Lines end with CR, LF or CRLF (CRLF is one terminator, not an empty line).
- IEEE 488.2 block data ``#<n><len><payload>`` (and the indefinite ``#0<payload>`` that runs to
  the next LF) may hold CR and LF bytes; they do not end the line. A block is recognised where a
  parameter or reply element starts (at the start of the line or after a space, ``,`` or ``;``)
  and outside quoted strings.
- Decoded lines are ``str``. Text is UTF-8; block payloads are decoded byte for byte
  (``ascii`` with ``surrogateescape``), so a block keeps its length in characters and
  ``text.encode("utf-8", "surrogateescape")`` gives the exact bytes back.
  :func:`block_payload` (and ``parse_reply`` in ``_scpi``) turn such text into ``bytes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "ErrorCode",
    "LineBuffer",
    "LineError",
    "block_payload",
    "encode_block",
    "encode_line",
    "format_block",
    "parse_block",
    "strip_terminators",
]

DEFAULT_MAX_LINE_LENGTH = 65536
"""Bytes in one line (block data included) before the rest of it is dropped."""


# ============================================================================================
# error codes
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

    def _past_limit(self, events: list[str | LineError], start: int, pos: int) -> int:
        """The pending line (from ``start``) passes the limit inside block data, which would
        swallow terminators: report it, and drop it from the first byte past the limit (or
        ``pos``, if further) to the next CR or LF, as if the bytes had arrived split there.
        Returns where scanning goes on."""
        events.append(self._too_long())
        self._reset_line()
        self._discard = True
        return max(pos, start + self.max_line_length + 1)

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
                if pos + take - start > self.max_line_length:
                    pos = start = self._past_limit(events, start, pos)
                    continue
                pos += take
                self._block_left -= take
                if self._block_left:
                    break
                self._spans.append((self._span_start, pos))
                continue
            if self._indefinite:
                i = buf.find(b"\n", pos)
                if (n if i < 0 else i) - start > self.max_line_length:
                    pos = start = self._past_limit(events, start, pos)
                    continue
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
# line terminators outside block data
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
