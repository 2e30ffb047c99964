"""CSV files as a data source: ``url: csv:///DIR`` (or ``type: CSV``).

DIR is relative to the project directory (``csv:////abs/dir`` is absolute). A schema's table
``TABLE`` is the file ``DIR/TABLE.csv``, whose first line names the columns: the long format
that ``DataStore_CSV`` writes (``timestamp,channel,value``, read with
``TABLE[channel]@timestamp(unix)=value``) or a wide one (``timestamp,a,b``, read with
``TABLE@timestamp(unix)``: channels ``a`` and ``b``). Every ``NAME.csv`` of DIR is also a
``table`` channel ``NAME.csv`` (its first 128 rows), unless ``table:`` entries
``{name, file, head, tail}`` say which files, and which rows, to show.

A field may be quoted as RFC 4180 has it (``DataStore_CSV`` writes that) or have its commas
escaped as ``\\,`` (SlowPy writes that); outside quotes, ``\\,`` is a comma. Numbers are read
as floats, other text as strings; text starting with ``{`` or ``[`` is decoded as JSON when
it is answered. An ``object`` channel answers its last value before ``to`` (the last row
of the file if it has no time column). Malformed lines (a wrong number of fields, a bad
time) are skipped, logged (the first few of a file) and counted (`CSVSource.file_stats`).

Memory: the files are logs that only grow, so each one is parsed once, incrementally: a
request reads only the bytes appended since the one before (complete lines only), and every
channel's points stay in memory (about 40 bytes a point). A CSV source is therefore meant for
small and medium logs; for large data, write to SQLite (``DataStore_SQLite``) and read that.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import re
import stat
import threading
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final, TypeVar

import trio

from ._base import DataSource, SourceConfigError, SourceUnavailable, TableEntry, table_entries
from ._query import (
    DataQuery,
    QueryError,
    auto_interval,
    is_finite_number,
    make_grid,
    prepend_prior,
    raw_reply,
    resample_points,
    wants_prior,
)
from ._schema import check_channel_name
from ._values import decode_value as decode
from ._values import value_type

logger = logging.getLogger("slowdash_trio.sources")
T = TypeVar("T")

DEFAULT_HEAD: Final = 128
MAX_TABLE_ROWS: Final = 100_000
CHUNK: Final = 4 << 20
"""Bytes read at a time."""
MAX_RECORD: Final = 1 << 20
"""A quoted field left open longer than this is a malformed line, not a record to wait for."""
MAX_LINE: Final = 16 << 20
"""A line longer than this is skipped without being held in memory."""
MAX_WARNINGS: Final = 10
"""Malformed lines logged per file; later ones are only counted."""

# possessive quantifiers: an unclosed quote fails in linear time, without backtracking
_QUOTED: Final = re.compile(rb'"((?:[^"]++|"")*+)"([^,\n]*+)')
_PLAIN: Final = re.compile(rb"(?:[^,\n\\]++|\\,?)*+")
_NUMERIC_START: Final = frozenset("0123456789+-.nNiI")
_BOM: Final = b"\xef\xbb\xbf"

Key = tuple[str | None, str]
"""A series: (tag value or None for a wide file, field)."""


# ----------------------------------------------------------------------------------------------
# values


def parse_value(text: str) -> Any:
    """A cell's value: a float if it reads as a number, else the text itself."""
    if text[0] in _NUMERIC_START or text[0].isspace():
        stripped = text.strip()
        if stripped and stripped[0] in _NUMERIC_START and "_" not in stripped:
            try:
                return float(stripped)
            except ValueError:
                pass
    return text


def parse_time(text: str, time_type: str | None) -> float | None:
    """UNIX time of a time cell, or None if it is not a time of ``time_type``."""
    if time_type in (None, "unix"):
        try:
            value = float(text)
        except ValueError:
            if time_type == "unix":
                return None
        else:
            return value if math.isfinite(value) else None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None and time_type != "naive":
        moment = moment.replace(tzinfo=UTC)  # unspecified: UTC; "naive" means local time
    return moment.timestamp()


def next_record(data: bytes, pos: int) -> tuple[list[str], int] | None:
    """The record at ``pos`` of ``data`` (which ends with a newline) and where the next one
    starts; None if a quoted field is not closed within ``data``."""
    end = data.find(b"\n", pos)
    line = data[pos:end]
    if b'"' not in line and b"\\" not in line:
        return line.removesuffix(b"\r").decode("utf-8", "replace").split(","), end + 1
    fields: list[bytes] = []
    while True:
        if data.startswith(b'"', pos):
            quoted = _QUOTED.match(data, pos)
            if quoted is None:
                return None
            fields.append(quoted[1].replace(b'""', b'"') + quoted[2])
            pos = quoted.end()
        else:
            plain = _PLAIN.match(data, pos)
            assert plain is not None  # matches the empty string at least
            fields.append(plain[0].replace(b"\\,", b","))
            pos = plain.end()
        if pos >= len(data) or data[pos] != 0x2C:  # not a comma: the newline
            break
        pos += 1
    fields[-1] = fields[-1].removesuffix(b"\r")
    return [f.decode("utf-8", "replace") for f in fields], pos + 1


# ----------------------------------------------------------------------------------------------
# one file, parsed incrementally


class _Series:
    __slots__ = ("times", "values")

    def __init__(self) -> None:
        self.times: array[float] = array("d")
        self.values: list[Any] = []

    def insert(self, t: float, value: Any) -> None:
        index = bisect.bisect_right(self.times, t)
        self.times.insert(index, t)
        self.values.insert(index, value)


LayoutKey = tuple[str | None, str | None, str | None, tuple[str, ...]]
"""(time column, time type, tag column, flag columns)."""


def layout_key(entry: TableEntry) -> LayoutKey:
    s = entry.schema
    return (s.time, s.time_type, s.tag, s.flags)


class _Layout:
    """A file's rows read one way: time column, tag column, the other columns as fields."""

    def __init__(self, key: LayoutKey) -> None:
        self.time, self.time_type, self.tag, self.flags = key
        self.clear()

    def clear(self) -> None:
        self.error: str | None = None
        self.time_col: int | None = None
        self.tag_col: int | None = None
        self.value_cols: list[tuple[int, str]] = []
        self.tags: dict[str, None] = {}
        self.series: dict[Key, _Series] = {}
        self.latest: dict[Key, Any] = {}

    def bind(self, columns: list[str]) -> None:
        where = {name: i for i, name in reversed(list(enumerate(columns)))}
        for role, name in (("time", self.time), ("tag", self.tag)):
            if name is not None and name not in where and self.error is None:
                self.error = f"no {role} column {name!r} in the header {columns}"
        self.time_col = where.get(self.time) if self.time is not None else None
        self.tag_col = where.get(self.tag) if self.tag is not None else None
        skip = {self.time, self.tag, *self.flags}
        self.value_cols = [
            (i, name)
            for i, name in enumerate(columns)
            if name and name not in skip and where[name] == i
        ]

    @property
    def fields(self) -> list[str]:
        return [name for _, name in self.value_cols]

    def add(self, fields: list[str], t: float | None) -> None:
        tag = None
        if self.tag_col is not None:
            tag = fields[self.tag_col].strip()
            if tag not in self.tags:
                self.tags[tag] = None
        for col, name in self.value_cols:
            text = fields[col]
            if not text:
                continue
            value = parse_value(text)
            key = (tag, name)
            if t is None:
                self.latest[key] = value
                continue
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series()
            times = series.times
            if times and t < times[-1]:
                series.insert(t, value)  # a late row
            else:
                times.append(t)
                series.values.append(value)

    def first_value(self, key: Key) -> Any:
        if key in self.latest:
            return self.latest[key]
        series = self.series.get(key)
        return series.values[0] if series is not None and series.values else None


class _CSVFile:
    """A CSV file and what has been parsed of it: up to ``offset`` bytes."""

    def __init__(self, path: Path, layouts: list[LayoutKey], keep_head: int, keep_tail: int):
        self.path = path
        self.layouts = {key: _Layout(key) for key in layouts}
        self.keep_head = keep_head
        self.keep_tail = keep_tail
        self.warned = 0
        self.reset()

    def reset(self) -> None:
        self.stamp: tuple[int, int, int, int] | None = None
        self.offset = 0
        self.mark = b""  # the bytes just before offset, to notice a file rewritten in place
        self.skipping = False  # inside an over-long line
        self.line = 0
        self.columns: list[str] | None = None
        self.active: list[_Layout] = []  # the layouts that fit the header
        self.rows = 0
        self.skipped = 0
        self.head: list[list[str]] = []
        self.tail: deque[tuple[int, list[str]]] = deque(maxlen=self.keep_tail or 1)
        for layout in self.layouts.values():
            layout.clear()

    def refresh(self, cancel: threading.Event) -> bool:
        """Parse what was appended since the last call; False if the file is not there."""
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            if self.stamp is not None:
                self.reset()
            return False
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self.stamp:
            return True
        try:
            with open(self.path, "rb") as file:
                old = self.stamp
                if old is not None and (
                    old[:2] != stamp[:2] or st.st_size < self.offset or not self._same_mark(file)
                ):
                    logger.info("%s: replaced or truncated; reading it again", self.path)
                    self.reset()
                done = self._read(file, cancel)
        except OSError as exc:
            logger.warning("%s: cannot read: %s", self.path, exc)
            return self.columns is not None
        self.stamp = stamp if done else (stamp[0], stamp[1], -1, -1)
        return True

    def _same_mark(self, file: IO[bytes]) -> bool:
        if not self.mark:
            return True
        file.seek(self.offset - len(self.mark))
        return file.read(len(self.mark)) == self.mark

    def _read(self, file: IO[bytes], cancel: threading.Event) -> bool:
        file.seek(self.offset)
        carry = b""
        while not cancel.is_set():
            block = file.read(CHUNK)
            if not block:
                return True
            data = carry + block
            if self.skipping:
                cut = data.find(b"\n")
                if cut < 0:
                    self.offset += len(data)
                    carry = b""
                    continue
                self.skipping = False
                self.offset += cut + 1
                self.mark = data[max(0, cut - 31) : cut + 1]
                data = data[cut + 1 :]
            cut = data.rfind(b"\n") + 1
            used = self._parse(data[:cut]) if cut else 0
            if used:
                self.offset += used
                self.mark = data[max(0, used - 32) : used]
            carry = data[used:]
            if len(carry) > MAX_LINE and b"\n" not in carry:
                self.line += 1
                self._bad(f"a line longer than {MAX_LINE} bytes")
                self.offset += len(carry)
                self.mark = carry[-32:]
                self.skipping, carry = True, b""
        return False

    def _parse(self, data: bytes) -> int:
        """Take in the complete records of ``data``; the number of bytes used."""
        pos = len(_BOM) if self.offset == 0 and data.startswith(_BOM) else 0
        if b'"' not in data and b"\\" not in data:  # plain lines: the common case
            lines = data[pos:].decode("utf-8", "replace").split("\n")
            lines.pop()  # what follows the last newline
            for line in lines:
                self.line += 1
                self._take(line.removesuffix("\r").split(","))
            return len(data)
        while pos < len(data):
            found = next_record(data, pos)
            if found is None:
                if len(data) - pos <= MAX_RECORD:
                    break  # wait for the quote to be closed
                end = data.index(b"\n", pos) + 1
                self.line += 1
                self._bad("a quoted field that is never closed")
                pos = end
                continue
            fields, end = found
            self.line += data.count(b"\n", pos, end)
            pos = end
            self._take(fields)
        return pos

    def _take(self, fields: list[str]) -> None:
        if len(fields) == 1 and not fields[0].strip():
            return  # an empty line
        if self.columns is None:
            self.columns = [name.strip() for name in fields]
            for layout in self.layouts.values():
                layout.bind(self.columns)
                if layout.error:
                    logger.error("%s: %s", self.path, layout.error)
            self.active = [layout for layout in self.layouts.values() if layout.error is None]
            return
        if len(fields) != len(self.columns):
            self._bad(f"{len(fields)} fields where the header has {len(self.columns)}")
            return
        times: list[float | None] = []
        for layout in self.active:
            t = None
            if layout.time_col is not None:
                t = parse_time(fields[layout.time_col], layout.time_type)
                if t is None:
                    self._bad(f"bad time {fields[layout.time_col][:40]!r}")
                    return
            times.append(t)
        for layout, t in zip(self.active, times, strict=True):
            layout.add(fields, t)
        self.rows += 1
        if len(self.head) < self.keep_head:
            self.head.append(fields)
        if self.keep_tail:
            self.tail.append((self.rows, fields))

    def _bad(self, reason: str) -> None:
        self.skipped += 1
        if self.warned < MAX_WARNINGS:
            logger.warning("%s: line %d: %s; skipped", self.path, self.line, reason)
        elif self.warned == MAX_WARNINGS:
            logger.warning("%s: more malformed lines; counted, not logged", self.path)
        self.warned += 1


# ----------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, slots=True)
class _Table:
    """A ``table`` channel: a file shown as a table (``head`` first and ``tail`` last rows)."""

    name: str
    path: Path
    head: int
    tail: int


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a requested channel's data is."""

    file: _CSVFile
    entry: TableEntry | None = None
    layout: _Layout | None = None
    key: Key | None = None
    table: _Table | None = None


@dataclass
class _Resolved:
    targets: dict[str, _Target] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _directory(params: Mapping[str, Any], project_dir: Path) -> tuple[str, Path]:
    url, directory = params.get("url"), params.get("directory")
    if directory is not None:
        if not isinstance(directory, str):
            raise SourceConfigError(f"directory: a path, not {directory!r}")
        text = label = directory
    elif url is not None:
        if not isinstance(url, str) or not url.lower().startswith("csv://"):
            raise SourceConfigError(
                f"url: {url!r}: a CSV source reads csv:///DIR (DIR relative to the project "
                "directory) or csv:////ABSOLUTE/DIR"
            )
        label, text = url, url[len("csv://") :]
        text = text.removeprefix("/")
    else:
        text = label = "."
    if not text or "\x00" in text:
        raise SourceConfigError(f"no usable directory in {label!r} (use url: csv:///DIR)")
    return label, project_dir / text


def _inside(text: object, where: str, directory: Path) -> Path:
    """``text`` as a file inside ``directory``; `SourceConfigError` for any way out."""
    if not isinstance(text, str) or not text or "\x00" in text or "\\" in text:
        raise SourceConfigError(f"{where}: {text!r}: a file name inside the CSV directory")
    relative = PurePosixPath(text)
    if relative.is_absolute() or ".." in relative.parts:
        raise SourceConfigError(
            f"{where}: {text!r}: must name a file inside the CSV directory "
            "(no absolute path, no '..')"
        )
    return directory / relative


def _row_count(item: Mapping[str, Any], key: str, where: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TABLE_ROWS:
        raise SourceConfigError(f"{where}.{key}: a row count from 0 to {MAX_TABLE_ROWS}")
    return value


def _tables(value: Any, directory: Path) -> list[_Table] | None:
    if value is None:
        return None
    tables = []
    for index, item in enumerate(value if isinstance(value, list) else [value]):
        where = f"table[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise SourceConfigError(f"{where}: needs 'name:' (a channel) and 'file:' (a CSV file)")
        try:
            name = check_channel_name(item["name"])
        except QueryError as exc:
            raise SourceConfigError(f"{where}.name: {exc}") from None
        path = _inside(item.get("file"), f"{where}.file", directory)
        head, tail = _row_count(item, "head", where), _row_count(item, "tail", where)
        if head is None:
            head = DEFAULT_HEAD if tail is None else 0
        tables.append(_Table(name, path, head, tail or 0))
    return tables


# ----------------------------------------------------------------------------------------------
# the source


class CSVSource(DataSource):
    """The CSV files of a directory (see the module's description)."""

    kind = "CSV"

    def __init__(self, params: Mapping[str, Any], *, project_dir: Path) -> None:
        super().__init__(params, project_dir=project_dir)
        self._label, self.directory = _directory(self.params, project_dir)
        self.entries = table_entries(self.params)
        for entry in self.entries:
            if entry.tags_sql is not None:
                raise SourceConfigError(
                    f"{entry.kind}: tags.sql: a CSV source has no SQL; give tags.list or "
                    "leave the tags to be found in the file"
                )
            assert entry.schema.table is not None
            _inside(f"{entry.schema.table}.csv", f"{entry.kind}: table", self.directory)
            if "/" in entry.schema.table:
                raise SourceConfigError(f"{entry.kind}: table {entry.schema.table!r}: a file name")
        self.tables = _tables(self.params.get("table"), self.directory)
        self._found: list[_Table] = []
        self._files: dict[Path, _CSVFile] = {}
        self._bad_names: set[str] = set()
        self._limiter = trio.CapacityLimiter(1)

    @property
    def label(self) -> str:
        return f"CSV {self._label}"

    def file_stats(self) -> dict[str, dict[str, int]]:
        """Per file read so far: rows taken, malformed lines skipped, bytes parsed."""
        return {
            path.name: {"rows": f.rows, "skipped": f.skipped, "offset": f.offset}
            for path, f in list(self._files.items())
        }

    # the Trio side: one worker thread at a time; cancelling stops it at the next check

    async def _run(self, fn: Callable[[threading.Event], T]) -> T:
        cancel = threading.Event()
        try:
            return await trio.to_thread.run_sync(
                fn, cancel, limiter=self._limiter, abandon_on_cancel=True
            )
        finally:
            cancel.set()

    async def open(self) -> None:
        await self._run(self._open)

    async def aclose(self) -> None:
        async with self._limiter:  # after any thread still running
            self._files.clear()

    async def channels(self, *, force_rescan: bool = False) -> list[dict[str, Any]]:
        return await self._run(self._channels)

    async def data(self, query: DataQuery) -> dict[str, Any]:
        for name in query.channels:
            check_channel_name(name)
        return await self._run(lambda cancel: self._data(query, cancel))

    # the worker-thread side

    def _open(self, cancel: threading.Event) -> None:
        self._check_directory()
        self._scan()

    def _check_directory(self) -> None:
        if not self.directory.is_dir():
            raise SourceUnavailable(f"CSV directory {str(self.directory)!r} does not exist")
        if not os.access(self.directory, os.R_OK | os.X_OK):
            raise SourceUnavailable(f"CSV directory {str(self.directory)!r} is not readable")

    def _scan(self) -> None:
        """Find the directory's ``*.csv`` files (the table channels without ``table:``)."""
        if self.tables is not None:
            return
        try:
            names = sorted(entry.name for entry in os.scandir(self.directory) if entry.is_file())
        except OSError as exc:
            raise SourceUnavailable(f"CSV directory {str(self.directory)!r}: {exc}") from None
        found = []
        for name in names:
            if name.endswith(".csv") and not name.startswith("."):
                if not _usable(name):
                    self._warn_name(name)
                    continue
                found.append(_Table(name, self.directory / name, DEFAULT_HEAD, 0))
        self._found = found
        known = {t.path for t in found} | {self._entry_path(e) for e in self.entries}
        for path in [p for p in self._files if p not in known]:
            del self._files[path]

    def _entry_path(self, entry: TableEntry) -> Path:
        return self.directory / f"{entry.schema.table}.csv"

    def _file(self, path: Path) -> _CSVFile:
        found = self._files.get(path)
        if found is None:
            layouts = [layout_key(e) for e in self.entries if self._entry_path(e) == path]
            if self.tables is None:
                head, tail = DEFAULT_HEAD, 0
            else:
                mine = [t for t in self.tables if t.path == path]
                head = max((t.head for t in mine), default=0)
                tail = max((t.tail for t in mine), default=0)
            found = self._files[path] = _CSVFile(path, layouts, head, tail)
        return found

    def _warn_name(self, name: str) -> None:
        if name not in self._bad_names:
            self._bad_names.add(name)
            logger.warning(
                "%s: %r is not a usable channel name (letters, digits, '. _ - :'); left out",
                self.label,
                name,
            )

    def _entry_files(self, cancel: threading.Event) -> list[tuple[TableEntry, _CSVFile]]:
        out = []
        for entry in self.entries:
            csv_file = self._file(self._entry_path(entry))
            if cancel.is_set():
                break
            if csv_file.refresh(cancel) and csv_file.columns is not None:
                out.append((entry, csv_file))
        return out

    @staticmethod
    def _layout(entry: TableEntry, csv_file: _CSVFile) -> _Layout | None:
        layout = csv_file.layouts[layout_key(entry)]
        return layout if layout.error is None else None

    @staticmethod
    def _fields(entry: TableEntry, layout: _Layout) -> tuple[list[str], str | None]:
        present = layout.fields
        if entry.schema.fields:
            fields = [f.name for f in entry.schema.fields if f.name in present]
        else:
            fields = present
        default = entry.schema.default_field
        if default not in fields:
            default = fields[0] if fields else None
        return fields, default

    def _channels(self, cancel: threading.Event) -> list[dict[str, Any]]:
        self._check_directory()
        self._scan()
        out: list[dict[str, Any]] = []
        for entry, csv_file in self._entry_files(cancel):
            layout = self._layout(entry, csv_file)
            if layout is None:
                continue
            fields, default = self._fields(entry, layout)
            if layout.tag is None:
                keys: list[tuple[str, Key]] = [(f, (None, f)) for f in fields]
            else:
                tags = entry.tags if entry.tags is not None else sorted(layout.tags)
                keys = [
                    (tag if f == default else f"{tag}:{f}", (tag, f))
                    for tag in tags
                    for f in fields
                ]
            for name, key in keys:
                name += entry.suffix
                if not _usable(name):
                    self._warn_name(name)
                    continue
                doc: dict[str, Any] = {"name": name}
                if entry.kind != "time_series" or layout.tag is None:
                    first = layout.first_value(key)
                    kind = value_type(first) if first is not None else None
                    if kind is not None:
                        doc["type"] = kind
                out.append(doc)
        tables = self.tables if self.tables is not None else self._found
        out.extend({"name": t.name, "type": "table"} for t in tables)
        return out

    def _resolve(self, names: list[str], files: list[tuple[TableEntry, _CSVFile]]) -> _Resolved:
        resolved = _Resolved()
        tables = self.tables if self.tables is not None else self._found
        for name in names:
            target = self._resolve_one(name, files)
            if target is None:
                table = next((t for t in tables if t.name == name), None)
                if table is not None:
                    target = _Target(self._file(table.path), table=table)
            if target is None:
                resolved.missing.append(name)
            else:
                resolved.targets[name] = target
        return resolved

    def _resolve_one(self, name: str, files: list[tuple[TableEntry, _CSVFile]]) -> _Target | None:
        for entry, csv_file in files:
            if not name.endswith(entry.suffix):
                continue
            base = name[: len(name) - len(entry.suffix)]
            layout = self._layout(entry, csv_file)
            if layout is None:
                continue
            fields, default = self._fields(entry, layout)
            key: Key | None = None
            if layout.tag is None:
                if base in fields:
                    key = (None, base)
            else:
                known = entry.tags if entry.tags is not None else layout.tags
                if base in known and default is not None:
                    key = (base, default)  # a tag value, even with ':' in it
                elif ":" in base:
                    tag, _, f = base.rpartition(":")
                    if tag in known and f in fields and f != default:
                        key = (tag, f)
            if key is not None:
                return _Target(csv_file, entry, layout, key)
        return None

    def _data(self, query: DataQuery, cancel: threading.Event) -> dict[str, Any]:
        self._check_directory()
        files = self._entry_files(cancel)
        resolved = self._resolve(list(query.channels), files)
        if resolved.missing:
            self._scan()  # a file may have appeared
            again = self._resolve(resolved.missing, files)
            resolved.targets.update(again.targets)
        raw_points = 0
        for target in resolved.targets.values():
            if (
                target.entry is not None
                and target.entry.kind != "object"
                and query.resample is None
            ):
                series = self._series(target)
                if series is not None:
                    times = series.times
                    lo = bisect.bisect_left(times, query.begin)
                    raw_points += bisect.bisect_left(times, query.to) - lo
        if raw_points > query.max_points:
            raise QueryError(
                f"the raw answer would hold {raw_points} points (at most {query.max_points}: "
                "system.max_points); ask for resampled data (resample=SECONDS)"
            )
        reply: dict[str, Any] = {}
        for name, target in resolved.targets.items():
            if cancel.is_set():
                break
            if target.table is not None:
                answer = self._table_reply(query, target.file, target.table, cancel)
            elif target.entry is not None and target.entry.kind == "object":
                answer = self._object_reply(query, target)
            else:
                answer = self._series_reply(query, target)
            if answer is not None:
                reply[name] = answer
        return reply

    @staticmethod
    def _series(target: _Target) -> _Series | None:
        assert target.layout is not None
        assert target.key is not None
        return target.layout.series.get(target.key)

    def _series_reply(self, query: DataQuery, target: _Target) -> dict[str, Any] | None:
        series = self._series(target)
        if series is None:
            return None
        times, values = series.times, series.values
        begin = query.begin
        if query.resample is not None:  # the window is the buckets' span
            width = query.resample or auto_interval(
                times[bisect.bisect_left(times, begin) : bisect.bisect_left(times, query.to)],
                query.length,
            )
            query = replace(query, resample=width)
            begin = make_grid(query.length, query.to, width).start
        lo = bisect.bisect_left(times, begin)
        hi = bisect.bisect_left(times, query.to)
        prior = (times[lo - 1], decode(values[lo - 1])) if lo > 0 and query.prior_data else None
        reply: dict[str, Any] | None = None
        if query.resample is None:
            if hi > lo:
                reply = raw_reply(query, times[lo:hi], [decode(v) for v in values[lo:hi]])
            if prior is not None and wants_prior(query, reply):
                if reply is None:
                    reply = raw_reply(query, [], [])
                prepend_prior(reply, prior)
            return reply
        if hi == lo and (prior is None or query.envelope != 0):
            return None
        assert target.entry is not None
        if target.entry.kind == "object_time_series" or _objects_only(values, lo, hi):
            if query.reducer not in ("first", "last"):
                return None  # objects have no mean, sum...
            reply = _resample_objects(query, times, values)
        else:
            reply = resample_points(query, times, values)
        if prior is not None and query.envelope == 0 and wants_prior(query, reply):
            prepend_prior(reply, prior)
        return reply

    def _object_reply(self, query: DataQuery, target: _Target) -> dict[str, Any] | None:
        assert target.layout is not None
        assert target.key is not None
        begin = query.begin
        if target.layout.time_col is None:
            if target.key not in target.layout.latest:
                return None
            t, value = query.length, target.layout.latest[target.key]
        else:
            series = target.layout.series.get(target.key)
            if series is None:
                return None
            hi = bisect.bisect_left(series.times, query.to)
            if hi == 0:
                return None  # the object as it was at `to`: nothing yet
            t, value = round(series.times[hi - 1] - begin, 3), series.values[hi - 1]
        return {"start": begin, "length": query.length, "t": t, "x": decode(value)}

    def _table_reply(
        self, query: DataQuery, csv_file: _CSVFile, table: _Table, cancel: threading.Event
    ) -> dict[str, Any] | None:
        if not csv_file.refresh(cancel) or csv_file.columns is None:
            return None
        rows = csv_file.head[: table.head]
        if table.tail:
            rows = rows + [row for n, row in csv_file.tail if n > len(rows)][-table.tail :]
        content = {"columns": list(csv_file.columns), "table": [list(row) for row in rows]}
        return {"start": query.begin, "length": query.length, "t": query.length, "x": content}


def _usable(name: str) -> bool:
    try:
        check_channel_name(name)
    except QueryError:
        return False
    return True


def _objects_only(values: list[Any], lo: int, hi: int) -> bool:
    """Whether a window holds objects (JSON text) and no numbers."""
    objects = False
    for value in islice(values, lo, hi):
        if is_finite_number(value):
            return False
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            objects = True
    return objects


def _resample_objects(query: DataQuery, times: array[float], values: list[Any]) -> dict[str, Any]:
    """Objects per bucket: the first or the last of each (reducer first / last)."""
    assert query.resample is not None
    grid = make_grid(query.length, query.to, query.resample)
    x: list[Any] = [None] * grid.count
    for i in range(bisect.bisect_left(times, grid.start), bisect.bisect_left(times, grid.end)):
        k = grid.index(times[i])
        if 0 <= k < grid.count and (query.reducer == "last" or x[k] is None):
            x[k] = values[i]
    return {
        "start": grid.start,
        "length": grid.count * grid.interval,
        "t": grid.centres(),
        "x": [decode(v) for v in x],
    }
