"""Schema descriptors: ``TABLE[TAG]@TIME(TIME_TYPE)=FIELD1(default),FIELD2(type=T),...``.

Every part is optional; spaces outside quotes are ignored; a name may be quoted with ``'``
or ``"`` (then it may hold any character but that quote). Unquoted names are SQL
identifiers (letters, digits, ``_``, not starting with a digit). Time types (spaces and
case ignored): ``unix``; ``with time zone``, ``utc``, ``gmt``, ``aware``; ``without time zone``,
``local``, ``naive``; ``unspecified utc``. When the time type is not given, a source infers it
from the column's type or first value.

With one field, it is the default field; with several, the one marked ``default`` (else the
first). A long table (with a tag) gives a channel per tag value for the default field and
``TAG:FIELD`` for the others; a wide table (no tag) gives a channel per field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ._query import QueryError

TIME_TYPES: Final = {
    "unix": "unix",
    "withtimezone": "aware",
    "utc": "aware",
    "gmt": "aware",
    "aware": "aware",
    "withouttimezone": "naive",
    "local": "naive",
    "naive": "naive",
    "unspecifiedutc": "unspecified_utc",
}
"""Descriptor spellings and the time type they mean."""

_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHANNEL: Final = re.compile(r"[A-Za-z0-9._:\-]+")
MAX_CHANNEL: Final = 200


class SchemaError(ValueError):
    """A malformed schema descriptor; the message quotes it and says where it breaks."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    default: bool = False
    type: str | None = None


@dataclass(frozen=True, slots=True)
class TableSchema:
    """One parsed descriptor."""

    text: str
    table: str | None
    tag: str | None
    flags: tuple[str, ...]
    time: str | None
    time_type: str | None
    fields: tuple[Field, ...]

    @property
    def default_field(self) -> str | None:
        for f in self.fields:
            if f.default:
                return f.name
        return self.fields[0].name if self.fields else None

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


def parse_schema(text: str) -> TableSchema:
    """Parse a descriptor; `SchemaError` names what is wrong and where."""
    if not isinstance(text, str):
        raise SchemaError(f"a schema descriptor is a string, not {type(text).__name__}")
    return _Parser(text).parse()


def check_channel_name(name: str) -> str:
    """``name`` if it may travel to a database; else `QueryError` (never SQL text)."""
    if len(name) > MAX_CHANNEL or not _CHANNEL.fullmatch(name):
        raise QueryError(
            f"bad channel name {name[:60]!r}: channel names are ASCII letters, digits and "
            f"'. _ - :' (at most {MAX_CHANNEL} characters)"
        )
    return name


def quote_ident(name: str) -> str:
    """An SQL identifier in double quotes (any character allowed; ``"`` doubled)."""
    if "\x00" in name:
        raise SchemaError(f"NUL in identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> SchemaError:
        return SchemaError(f"schema {self.text!r}: {message} (at character {self.pos + 1})")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_spaces()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected {char!r}, found {found}")
        self.pos += 1

    def name(self, what: str) -> str:
        char = self.peek()
        if char in ("'", '"'):
            end = self.text.find(char, self.pos + 1)
            if end < 0:
                raise self.fail(f"unclosed quote in {what}")
            value = self.text[self.pos + 1 : end]
            if not value:
                raise self.fail(f"empty {what}")
            self.pos = end + 1
            return value
        match = _IDENT.match(self.text, self.pos)
        if not match:
            found = repr(char) if char else "the end"
            raise self.fail(f"expected a {what} (a name), found {found}")
        self.pos = match.end()
        return match.group()

    def parse(self) -> TableSchema:
        table = tag = time = time_type = None
        flags: list[str] = []
        fields: list[Field] = []
        if self.peek() not in ("[", "@", "=", ""):
            table = self.name("table name")
        if self.peek() == "[":
            self.pos += 1
            tag = self.name("tag column")
            while self.peek() == ",":
                self.pos += 1
                flags.append(self.name("flag column"))
            self.expect("]")
        if self.peek() == "@":
            self.pos += 1
            time = self.name("time column")
            if self.peek() == "(":
                self.pos += 1
                end = self.text.find(")", self.pos)
                if end < 0:
                    raise self.fail("unclosed '(' after the time column")
                spelled = self.text[self.pos : end]
                key = re.sub(r"\s+", "", spelled).lower()
                if key not in TIME_TYPES:
                    raise self.fail(
                        f"unknown time type {spelled.strip()!r} (unix, with time zone, "
                        "without time zone, unspecified utc)"
                    )
                time_type = TIME_TYPES[key]
                self.pos = end + 1
        if self.peek() == "=":
            self.pos += 1
            fields.append(self.field())
            while self.peek() == ",":
                self.pos += 1
                fields.append(self.field())
        if self.peek():
            raise self.fail(f"unexpected {self.peek()!r}")
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise self.fail("a field is listed twice")
        if sum(f.default for f in fields) > 1:
            raise self.fail("more than one field is marked default")
        if (tag is not None and tag in names) or (time is not None and time in names):
            raise self.fail("the tag and time columns cannot also be fields")
        return TableSchema(self.text, table, tag, tuple(flags), time, time_type, tuple(fields))

    def field(self) -> Field:
        name = self.name("field name")
        default = False
        kind: str | None = None
        if self.peek() == "(":
            self.pos += 1
            while True:
                option = self.name("field option")
                if option.lower() == "default":
                    default = True
                elif option.lower() == "type":
                    self.expect("=")
                    kind = self.name("field type").lower()
                else:
                    raise self.fail(f"unknown field option {option!r} (default, type=T)")
                if self.peek() == ",":
                    self.pos += 1
                    continue
                self.expect(")")
                break
        return Field(name, default, kind)
