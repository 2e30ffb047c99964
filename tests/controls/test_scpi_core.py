"""The SCPI core without I/O: framing, block data, parsing, mnemonics, the error queue."""

from __future__ import annotations

import pytest

from slowdash_controls._errors import LocalProtocolError, RemoteProtocolError
from slowdash_controls._scpi import (
    Command,
    CommandTable,
    ErrorQueue,
    LineBuffer,
    LineError,
    block_payload,
    encode_block,
    encode_line,
    error_text,
    format_block,
    format_error_entry,
    format_query,
    format_replies,
    format_set,
    format_value,
    mnemonic_forms,
    mnemonic_matches,
    parse_block,
    parse_error_entry,
    parse_line,
    parse_reply,
    split_params,
    strip_terminators,
    unquote,
)


def feed_all(buffer: LineBuffer, chunks: list[bytes]) -> list[str | LineError]:
    events: list[str | LineError] = []
    for chunk in chunks:
        events.extend(buffer.feed(chunk))
    return events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ============================================================================================
# LineBuffer
# ============================================================================================


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"A\nB\n", ["A", "B"]),
        (b"A\rB\r", ["A", "B"]),
        (b"A\r\nB\r\n", ["A", "B"]),
        (b"A\r\nB\nC\rD\r\n", ["A", "B", "C", "D"]),
        (b"A\n\nB\n", ["A", "", "B"]),  # an empty line is a line (an empty reply)
        (b"A\r\r\nB\n", ["A", "", "B"]),
        (b"\n", [""]),
        (b"no terminator yet", []),
    ],
)
def test_terminators(data: bytes, lines: list[str]) -> None:
    assert LineBuffer().feed(data) == lines
    assert feed_all(LineBuffer(), bytewise(data)) == lines


def test_crlf_split_between_feeds_is_one_terminator() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"MEAS:V0?\r") == ["MEAS:V0?"]
    assert buffer.feed(b"\n*IDN?\r") == ["*IDN?"]
    assert buffer.feed(b"\nX") == []
    assert buffer.pending == 1
    assert buffer.feed(b"Y\n") == ["XY"]
    assert buffer.pending == 0


def test_over_long_line_is_reported_once_then_reading_resumes() -> None:
    buffer = LineBuffer(max_line_length=10)
    events = feed_all(buffer, [b"0123456789", b"abcdef", b"ghij" * 10, b"\r\nOK\n"])
    assert len(events) == 2
    error, line = events
    assert isinstance(error, LineError) and error.code == -363
    assert "10 bytes" in error.message
    assert line == "OK"
    assert isinstance(error.to_exception(), RemoteProtocolError)


def test_over_long_line_arriving_whole() -> None:
    buffer = LineBuffer(max_line_length=4)
    events = buffer.feed(b"abcdefgh\nabcd\n")
    assert [getattr(e, "code", e) for e in events] == [-363, "abcd"]


def test_over_long_line_in_the_block_scanner() -> None:
    buffer = LineBuffer(max_line_length=16)
    events = feed_all(buffer, [b"DATA #9999999999", b"x" * 20, b"\nOK #13abc\n"])
    assert [getattr(e, "code", e) for e in events] == [-363, "OK #13abc"]


def test_invalid_utf8_is_an_event_not_a_crash() -> None:
    buffer = LineBuffer()
    events = buffer.feed(b"\xff\xfeBAD\nGOOD \xc3\xa9\n")
    assert len(events) == 2
    assert isinstance(events[0], LineError) and events[0].code == -101
    assert "0xff" in events[0].message
    assert events[1] == "GOOD é"


def test_invalid_utf8_split_across_feeds() -> None:
    buffer = LineBuffer()
    assert feed_all(buffer, [b"A \xc3", b"\xa9\n"]) == ["A é"]
    (event,) = feed_all(buffer, [b"A \xc3", b"\n"])
    assert isinstance(event, LineError) and event.code == -101


BLOCK = encode_block(b"a\r\nb\n\xff\x00")


@pytest.mark.parametrize("chunked", [False, True])
def test_block_data_keeps_cr_and_lf(chunked: bool) -> None:
    data = b"DATA " + BLOCK + b";*IDN?\r\nNEXT\n"
    buffer = LineBuffer()
    events = feed_all(buffer, bytewise(data)) if chunked else buffer.feed(data)
    assert len(events) == 2
    line, following = events
    assert isinstance(line, str) and following == "NEXT"
    (data_cmd, idn) = parse_line(line)
    assert idn == Command("*IDN?")
    assert block_payload(data_cmd.params[0]) == b"a\r\nb\n\xff\x00"
    # the decoded line gives back the exact bytes
    assert line.encode("utf-8", "surrogateescape") == b"DATA " + BLOCK + b";*IDN?"


def test_block_length_field_split_across_feeds() -> None:
    buffer = LineBuffer()
    assert feed_all(buffer, [b"A #2", b"1", b"0123456789\n", b"\nB\n"]) == [
        "A #210123456789\n",
        "B",
    ]


def test_hash_that_is_not_block_data() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"Model#12 x\nA #3\nB #x1\n") == ["Model#12 x", "A #3", "B #x1"]
    # inside a quoted string a '#' starts nothing
    assert buffer.feed(b'SYST "a;#15hel\nX\n') == ['SYST "a;#15hel', "X"]


def test_indefinite_block_runs_to_lf() -> None:
    buffer = LineBuffer()
    assert feed_all(buffer, [b"DATA #0ab\rc", b"d\r\nE\n"]) == ["DATA #0ab\rcd\r", "E"]


def test_block_data_can_be_switched_off() -> None:
    buffer = LineBuffer(block_data=False)
    assert buffer.feed(b"X #15a\nbcd\n") == ["X #15a", "bcd"]


def test_clear_forgets_the_pending_line() -> None:
    buffer = LineBuffer()
    buffer.feed(b"DATA #15ab")
    assert buffer.pending == 10
    assert buffer.pending_bytes() == b"DATA #15ab"
    buffer.clear()
    assert buffer.pending == 0
    assert buffer.feed(b"X\n") == ["X"]


def test_max_line_length_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line_length"):
        LineBuffer(0)


# ============================================================================================
# block data
# ============================================================================================


@pytest.mark.parametrize("payload", [b"", b"x", b"\r\n\x00\xff" * 100, bytes(range(256)) * 50])
def test_block_round_trip(payload: bytes) -> None:
    encoded = encode_block(payload)
    assert encoded.startswith(b"#" + str(len(str(len(payload)))).encode())
    assert parse_block(encoded) == (payload, len(encoded))
    assert parse_block(b"junk" + encoded + b"rest", 4) == (payload, 4 + len(encoded))
    assert block_payload(format_block(payload)) == payload


def test_parse_block_incremental() -> None:
    encoded = encode_block(b"hello world")
    for cut in range(len(encoded)):
        assert parse_block(encoded[:cut]) is None
    assert parse_block(b"#0abc\ndef") == (b"abc", 6)
    assert parse_block(b"#0abc") is None
    assert parse_block(b"#0abc", final=True) == (b"abc", 5)


@pytest.mark.parametrize("bad", [b"x12", b"#x", b"#2a1hello", b"#"])
def test_parse_block_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_block(bad, final=True)


def test_parse_block_final_and_short() -> None:
    with pytest.raises(RemoteProtocolError, match="cut short"):
        parse_block(b"#15abc", final=True)
    with pytest.raises(RemoteProtocolError, match="after block"):
        block_payload("#13abcdef")


# ============================================================================================
# splitting and relative paths
# ============================================================================================


def test_relative_paths() -> None:
    assert parse_line("MEAS:VOLT?;CURR?") == [Command("MEAS:VOLT?"), Command("MEAS:CURR?")]
    assert parse_line("SOUR:VOLT:LEV 1;CURR 2") == [
        Command("SOUR:VOLT:LEV", ("1",)),
        Command("SOUR:VOLT:CURR", ("2",)),
    ]
    assert parse_line("MEAS:VOLT?;:CURR?") == [Command("MEAS:VOLT?"), Command("CURR?")]


def test_common_commands_are_not_relative() -> None:
    assert [c.header for c in parse_line("MEAS:VOLT?;*IDN?;CURR?;*OPC?")] == [
        "MEAS:VOLT?",
        "*IDN?",
        "MEAS:CURR?",
        "*OPC?",
    ]


def test_headers_are_upper_cased_parameters_are_not() -> None:
    (cmd,) = parse_line("  syst:comm:name  Hello World , 'a,b' ,\"x;y\",#12ab  ")
    assert cmd.header == "SYST:COMM:NAME"
    assert cmd.params == ("Hello World", "'a,b'", '"x;y"', "#12ab")
    assert cmd.path == ["SYST", "COMM", "NAME"]
    assert not cmd.is_query


def test_empty_commands_are_skipped() -> None:
    assert parse_line("") == []
    assert parse_line(" ; ;*IDN?;") == [Command("*IDN?")]


def test_semicolons_in_blocks_and_quotes_do_not_split() -> None:
    line = 'A "x;y";B ' + format_block(b";;\xff;") + ";C?"
    headers = [c.header for c in parse_line(line)]
    assert headers == ["A", "B", "C?"]


def test_split_params_and_unquote() -> None:
    assert split_params("") == []
    assert split_params("  ") == []
    assert split_params("1, 2 ,3") == ["1", "2", "3"]
    assert split_params("1,,2") == ["1", "", "2"]
    assert unquote('"a ""b"""') == 'a "b"'
    assert unquote("'it''s'") == "it's"
    assert unquote("plain") == "plain"
    assert unquote('"unbalanced') == '"unbalanced'


# ============================================================================================
# mnemonics
# ============================================================================================


@pytest.mark.parametrize(
    "header", ["MEAS:VOLT?", "meas:volt?", "MEASURE:VOLT?", "Measure:Voltage?", ":MEAS:VOLTAGE?"]
)
def test_mnemonic_short_and_long_forms(header: str) -> None:
    assert mnemonic_matches("MEASure:VOLTage?", header)


@pytest.mark.parametrize(
    "header", ["MEASU:VOLT?", "MEA:VOLT?", "MEAS:VOLT", "MEAS:VOLTAGES?", "MEAS?", "VOLT?"]
)
def test_mnemonic_rejects_partial_forms_and_the_wrong_kind(header: str) -> None:
    assert not mnemonic_matches("MEASure:VOLTage?", header)


def test_optional_nodes_and_suffixes() -> None:
    forms = mnemonic_forms("[:SOURce]:VOLTage[:LEVel]")
    assert {"VOLT", "SOUR:VOLT", "SOURCE:VOLTAGE:LEVEL", "VOLT:LEV"} <= set(forms)
    assert "SOUR" not in forms
    assert mnemonic_forms("MEASure:V0?") == ["MEAS:V0?", "MEASURE:V0?"]
    assert mnemonic_forms("CHANnel2") == ["CHAN2", "CHANNEL2"]
    assert mnemonic_forms("walk") == ["WALK"]
    assert mnemonic_forms("*idn?") == ["*IDN?"]


@pytest.mark.parametrize("bad", ["", "?", "MEAS::VOLT", "mEAS", "A:*IDN?", "[VOLT", "*IDN2", "[A]"])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(ValueError, match=r"SCPI|common|mnemonic"):
        mnemonic_forms(bad)


def test_pattern_expansion_is_bounded() -> None:
    with pytest.raises(ValueError, match="too many"):
        mnemonic_forms("A" + "".join(f"[:OPTion{i}]" for i in range(12)))


def test_command_table_first_registration_wins() -> None:
    table: CommandTable[str] = CommandTable()
    table.add("VOLTage", "first")
    table.add("VOLT", "second")
    table.add("MEASure:VOLTage?", "query")
    table.add("CONFigure:WALK", "node", query_and_set=True)
    assert table.get("VOLT") == "first"
    assert table.get("VOLTAGE") == "first"
    assert table.get("VOLT?") is None  # a setter does not answer the query
    assert table.get("MEAS:VOLT?") == "query"
    assert table.get("CONF:WALK") == table.get("CONFIGURE:WALK?") == "node"
    assert "MEASURE:VOLTAGE?" in table
    assert len(table) == len(table.headers())


# ============================================================================================
# the error queue
# ============================================================================================


def test_error_queue_is_fifo_and_empty_means_no_error() -> None:
    queue = ErrorQueue()
    assert queue.pop_formatted() == '0,"No error"'
    queue.push(-113, "FOO?")
    queue.push(-222, "too high")
    assert len(queue) == 2
    assert queue.pop_formatted() == '-113,"Undefined header;FOO?"'
    assert queue.pop() == (-222, "Data out of range;too high")
    assert queue.pop() == (0, "No error")


def test_error_queue_overflow() -> None:
    queue = ErrorQueue(maxlen=4)
    for i in range(10):
        queue.push(-200, f"e{i}")
    entries = list(queue)
    assert [code for code, _ in entries] == [-200, -200, -200, -350]
    assert entries[0][1].endswith("e0")  # the oldest are kept
    assert entries[-1] == (-350, "Queue overflow")
    assert queue.pop_all_formatted().count(",") == 7
    assert len(queue) == 0
    with pytest.raises(ValueError, match="at least 2"):
        ErrorQueue(1)


def test_error_texts_are_safe() -> None:
    assert error_text(-113) == "Undefined header"
    assert error_text(-222, "Data out of range") == "Data out of range"
    assert error_text(42, "device is on fire") == "device is on fire"
    nasty = error_text(-113, 'A"B\r\nC' + "x" * 500)
    assert "\r" not in nasty and "\n" not in nasty
    assert len(nasty) == 255
    assert format_error_entry(-113, 'say "hi"') == '-113,"say ""hi"""'
    assert parse_error_entry(format_error_entry(-113, 'say "hi"')) == (-113, 'say "hi"')
    assert parse_error_entry('+0,"No error"') == (0, "No error")
    assert parse_error_entry("0") == (0, "No error")
    with pytest.raises(RemoteProtocolError):
        parse_error_entry("garbage")


# ============================================================================================
# formatting for servers and clients
# ============================================================================================


def test_format_value() -> None:
    assert format_value(None) == ""
    assert format_value(True) == "1"
    assert format_value(False) == "0"
    assert format_value(1.25) == "1.25"
    assert format_value(7) == "7"
    assert format_value([1, 2.5, "x"]) == "1,2.5,x"
    assert format_value(b"ab") == "#12ab"
    assert format_replies(["1", "", "x"], "\r\n") == b"1;;x\r\n"
    assert format_replies([format_value(b"\xff")], "\n") == b"#11\xff\n"


def test_client_side_helpers() -> None:
    assert format_query("MEAS:VOLT") == "MEAS:VOLT?"
    assert format_query("MEAS:VOLT?") == "MEAS:VOLT?"
    assert format_query(" MEAS:VOLT (@1) ") == "MEAS:VOLT? (@1)"
    with pytest.raises(LocalProtocolError):
        format_query("  ")
    assert format_set("VOLT") == "VOLT"
    assert format_set("VOLT", 1.5) == "VOLT 1.5"
    assert format_set("OUTP", True) == "OUTP 1"
    assert format_set("VOLT", 2, set_format="SOUR:VOLT {:.3f}") == "SOUR:VOLT 2.000"
    assert format_set("VOLT", None, set_format="SOUR:VOLT:DEF") == "SOUR:VOLT:DEF"
    assert parse_reply(" 1.25 \r") == "1.25"
    assert parse_reply("") == ""
    assert parse_reply("#15he\nl ") == b"he\nl "
    assert parse_reply("#0 a b") == b" a b"


def test_encode_line() -> None:
    assert encode_line("*IDN?") == b"*IDN?\n"
    assert encode_line("*IDN?", "\r") == b"*IDN?\r"
    assert encode_line("DATA " + format_block(b"\r\n\xff")) == b"DATA #13\r\n\xff\n"
    with pytest.raises(LocalProtocolError, match="terminator"):
        encode_line("VOLT 1\n*RST")
    with pytest.raises(LocalProtocolError):
        encode_line('SYST:NAME "a\rb"')  # quotes do not protect a terminator


def test_strip_terminators_keeps_block_data() -> None:
    assert strip_terminators("plain") == "plain"
    assert strip_terminators("a\r\nb") == "a  b"
    block = format_block(b"\r\n")
    assert strip_terminators(f"x\n,{block},\ny") == f"x ,{block}, y"
