"""Hypothesis against the SCPI server core over a real socket on 127.0.0.1: lines of known
and unknown commands joined with ``;`` (NUL and odd Unicode included, queries with odd
suffixes, bad parameters), lines that are not UTF-8, lines longer than the limit, and raw
bytes with block data, quotes and stray terminators. Every line gets its reply fields and
its SCPI errors, in order; the server keeps serving the connection and new ones."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import trio
from fuzz.fuzzing import fuzz_settings, off_trio, on_trio
from hypothesis import example, given
from hypothesis import strategies as st

from slowdash_controls._scpi import LineBuffer, parse_error_entry
from slowdash_controls._scpi_server import ScpiAdapter, ScpiServer

MAX_LINE = 2048
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
IDN = "Fuzz,SCPI,1"


class LineClient:
    """Lines over a TCP stream, read with the package's own framing."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = LineBuffer(1 << 20)
        self.lines: deque[str] = deque()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def readline(self) -> str:
        while not self.lines:
            data = await self.stream.receive_some(65536)
            assert data, "the server closed the connection"
            for event in self.buffer.feed(data):
                assert isinstance(event, str), event  # replies are UTF-8 lines
                self.lines.append(event)
        return self.lines.popleft()

    async def sync(self, marker: str) -> tuple[list[str], list[tuple[int, str]]]:
        """After what was sent: the reply lines it produced, and the errors it queued (the
        queue is left empty)."""
        await self.send(f":SYNC? {marker};:SYST:ERR:COUN?\n".encode())
        replies = []
        while not (line := await self.readline()).startswith(f"{marker};"):
            replies.append(line)
        count = int(line.removeprefix(f"{marker};"))
        await self.send(b"SYST:ERR?\n" * count)
        errors = [parse_error_entry(await self.readline()) for _ in range(count)]
        return replies, errors


def fuzz_server() -> ScpiServer:
    adapter = ScpiAdapter(IDN, error_queue_size=4096)
    server = ScpiServer(adapter, port=0, max_line_length=MAX_LINE)
    state: dict[str, float] = {}
    server.on("MEASure:VOLTage?")(lambda: 1.5)

    @server.on("VOLTage")
    def set_volt(value: float) -> None:
        state["volt"] = value

    @server.on("SYNChronize?")
    def sync(token: str) -> str:
        return token

    return server


# ---------------------------------------------------------------------------------------------
# commands with what they must produce


@dataclass(frozen=True)
class Cmd:
    text: str
    reply: str | None  # its reply field (a query), or None
    error: int | None  # the error it queues, or None


# text that neither ends a command nor starts a string or block: any character but
# whitespace, ';', quotes, '#' and terminators (NUL and other control characters included)
PLAIN = st.text(
    alphabet=st.one_of(
        st.characters(
            exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"], exclude_characters=";'\"#,"
        ),
        st.sampled_from(["\x00", "\x01", "\x07", "\x1b", "\x7f", "?", ":", "*", "ß", "ﬃ"]),
    ),
    max_size=12,
)
SPACE = st.sampled_from(["", " ", "  ", "\t"])
CASES = st.sampled_from([str.upper, str.lower, str.title])

COMMANDS = st.one_of(
    st.builds(lambda c: Cmd(c(":meas:volt?"), "1.5", None), CASES),
    st.builds(lambda c: Cmd(c(":measure:voltage?"), "1.5", None), CASES),
    st.just(Cmd("*IDN?", IDN, None)),
    st.just(Cmd("*OPC?", "1", None)),
    st.builds(lambda x: Cmd(f":VOLT {x!r}", None, None), st.floats(allow_nan=False)),
    st.builds(lambda junk: Cmd(f":VOLT Z{junk}", None, -224), PLAIN),
    st.just(Cmd(":VOLT", None, -109)),
    st.builds(lambda a, b: Cmd(f":VOLT 1{a},2{b}", None, -108), PLAIN, PLAIN),
    # a query with parameters it does not take, or with an odd suffix
    st.builds(lambda junk: Cmd(f":MEAS:VOLT? Z{junk}", "", -108), PLAIN),
    st.builds(
        lambda s: Cmd(f":MEAS:VOLT?{s}", "" if s.endswith("?") else None, -113), PLAIN.filter(bool)
    ),
    # unknown headers (absolute, relative, common), queries or not
    st.builds(
        lambda prefix, name, query, params: Cmd(
            f"{prefix}Z{name}{query}{params}",
            "" if (name + query).endswith("?") else None,
            -113,
        ),
        st.sampled_from(["", ":", "*"]),
        PLAIN,
        st.sampled_from(["", "?", "??"]),
        st.one_of(st.just(""), PLAIN.map(lambda p: " " + p)),
    ),
    st.just(Cmd("", None, None)),  # an empty command between two ';'
)
LINES = st.lists(st.tuples(SPACE, COMMANDS), min_size=1, max_size=80)


def expected(commands: list[tuple[str, Cmd]]) -> tuple[bytes, list[str], list[int]]:
    line = ";".join(space + cmd.text for space, cmd in commands).encode()
    if len(line) > MAX_LINE:
        return line, [], [-363]
    fields = [cmd.reply for _, cmd in commands if cmd.reply is not None]
    errors = [cmd.error for _, cmd in commands if cmd.error is not None]
    return line, [";".join(fields)] if fields else [], errors


# ---------------------------------------------------------------------------------------------
# tests


async def test_lines_get_their_replies_and_errors(nursery: trio.Nursery) -> None:
    server = fuzz_server()
    port = await nursery.start(server.run)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    client = LineClient(stream)
    counter = iter(range(1, 1_000_000))

    async def exchange(
        line: bytes, terminator: bytes = b"\n"
    ) -> tuple[list[str], list[tuple[int, str]]]:
        await client.send(line + terminator)
        return await client.sync(f"sync-{next(counter)}")

    @fuzz_settings(max_examples=200)
    @given(commands=LINES, terminator=st.sampled_from([b"\n", b"\r", b"\r\n"]))
    @example(commands=[("", Cmd("*IDN?", IDN, None))] * 80, terminator=b"\n")
    @example(
        commands=[("", Cmd("Z\x00?", "", -113)), ("", Cmd("*OPC?", "1", None))], terminator=b"\r\n"
    )
    def lines(commands: list[tuple[str, Cmd]], terminator: bytes) -> None:
        line, replies, errors = expected(commands)
        got_replies, got_errors = on_trio(exchange, line, terminator)
        assert got_replies == replies, (line, got_replies)
        assert [code for code, _ in got_errors] == errors, (line, got_errors)
        for code, text in got_errors:  # an error entry is one line of at most 255 characters
            assert len(text) <= 255 and not CONTROL.search(text), (code, text)

    @fuzz_settings(max_examples=60)
    @given(
        commands=LINES,
        cut=st.integers(min_value=0),
        bad=st.sampled_from(
            [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]
        ),
    )
    def not_utf8(commands: list[tuple[str, Cmd]], cut: int, bad: bytes) -> None:
        line, _, _ = expected(commands)
        at = cut % (len(line) + 1)
        broken = line[:at] + bad + line[at:]
        got_replies, got_errors = on_trio(exchange, broken)
        assert got_replies == []
        assert [code for code, _ in got_errors] == [-363 if len(broken) > MAX_LINE else -101]

    async with stream:
        await off_trio(lines)
        await off_trio(not_utf8)
        assert server.statistics().clients == 1


async def test_raw_bytes_then_the_connection_resynchronises(nursery: trio.Nursery) -> None:
    """Whatever bytes come (a block header that swallows what follows, an open quote, a lone
    CR), a line longer than the limit ends it all; then the connection answers again."""
    server = fuzz_server()
    port = await nursery.start(server.run)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    client = LineClient(stream)
    counter = iter(range(1, 1_000_000))
    resync = b"\n" + b"x" * (MAX_LINE + 1) + b"\n"

    async def exchange(data: bytes) -> tuple[list[str], list[tuple[int, str]]]:
        await client.send(data + resync)
        return await client.sync(f"sync-{next(counter)}")

    pieces = st.one_of(
        st.binary(max_size=30),
        st.sampled_from(
            [
                b"#",
                b"#0",
                b"#9999999999",
                b"#15ab",
                b'"',
                b"'",
                b"\r",
                b"\n",
                b";",
                b",",
                b"\x00",
                b"\xff",
                b"*IDN?",
                b":MEAS:VOLT?",
                b" ",
            ]
        ),
    )

    @fuzz_settings(max_examples=120)
    @given(data=st.lists(pieces, max_size=12).map(b"".join))
    @example(data=b"#9999999999")
    @example(data=b'*IDN? "open quote')
    @example(data=b"#0 indefinite")
    @example(data=b"\r")
    def raw(data: bytes) -> None:
        _, errors = on_trio(exchange, data)
        assert -363 in [code for code, _ in errors], errors

    async with stream:
        await off_trio(raw)
        # this connection and a new one are served
        with trio.fail_after(20):
            await client.send(b"*IDN?\n")
            assert await client.readline() == IDN
            async with await trio.open_tcp_stream("127.0.0.1", port) as other_stream:
                other = LineClient(other_stream)
                await other.send(b"*OPC?\n")
                assert await other.readline() == "1"
    assert server.statistics().connections == 2


async def test_the_line_length_limit_is_exact(nursery: trio.Nursery) -> None:
    server = fuzz_server()
    port = await nursery.start(server.run)
    with trio.fail_after(20):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = LineClient(stream)
        for size, terminator in [(MAX_LINE, b"\n"), (MAX_LINE, b"\r\n"), (MAX_LINE + 1, b"\n")]:
            line = b":SYNC? " + b"7" * (size - len(b":SYNC? "))
            await client.send(line + terminator)
            replies, errors = await client.sync(f"s{size}")
            if size <= MAX_LINE:
                assert replies == [line[len(b":SYNC? ") :].decode()] and errors == []
            else:
                assert replies == [] and [code for code, _ in errors] == [-363]
        await stream.aclose()


# ---------------------------------------------------------------------------------------------
# the framing alone (no I/O)

FRAMING_PIECES = st.one_of(
    st.binary(max_size=20),
    st.sampled_from(
        [b"#", b"#0", b"#9999999999", b"#15ab", b"#210", b'"', b"'", b"\r", b"\n", b"\r\n"]
    ),
    st.sampled_from([b";", b" ", b"x" * 40, b"\xff", b"\x00"]),
)


@fuzz_settings(max_examples=300)
@given(
    data=st.lists(FRAMING_PIECES, max_size=15).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=5),
    limit=st.sampled_from([1, 7, 32]),
)
@example(data=b"#235" + b"\x00" * 35 + b"\n\r", cuts=[31], limit=32)
@example(data=b"#0" + b"\x00" * 6 + b"\r" + b"\x00" * 8, cuts=[8], limit=7)
def test_framing_does_not_depend_on_how_the_bytes_arrive(
    data: bytes, cuts: list[int], limit: int
) -> None:
    """The same bytes give the same lines and errors however TCP splits them (a line that
    passed the limit inside block data used to be dropped up to a terminator that depended
    on where the bytes were split)."""
    whole = LineBuffer(limit).feed(data)
    buffer = LineBuffer(limit)
    pieces = []
    start = 0
    for cut in sorted({cut % (len(data) + 1) for cut in cuts}):
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    split = [event for piece in pieces for event in buffer.feed(piece)]
    assert split == whole, pieces


def test_a_block_past_the_limit_does_not_swallow_the_next_line() -> None:
    """A block header that announces more than the limit: the line is dropped from the first
    byte past the limit to the next LF (not to the end of the announced block)."""
    events = LineBuffer(32).feed(b"#9999999999\n" + b"x" * 33 + b"\n*IDN?\n")
    assert [getattr(event, "code", event) for event in events] == [-363, "*IDN?"]
