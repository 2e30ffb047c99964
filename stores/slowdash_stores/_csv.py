"""CSV files (``DataStore_CSV``) and a text dump (``DataStore_TextDump``).

A CSV store appends ``timestamp,channel,value`` rows to ``DIR/TABLE.csv`` (header written when
the file is new), the long format the SlowDash CSV source reads. Fields are quoted as RFC 4180
has it (the ``csv`` module: a field holding a comma, a quote or a line break is enclosed in
double quotes, quotes doubled), where SlowPy wrote ``\\,`` for a comma and nothing else.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import TextIO

from ._errors import InvalidURLError, StoreClosedError, StoreWriteError
from ._store import DataStore, Row, validate_table_name, value_text

HEADER = ("timestamp", "channel", "value")


def csv_directory(db_url: str) -> str:
    """The directory of ``csv:///DIR``: relative to the working directory; ``csv:////abs`` is
    absolute (as the SlowDash CSV source reads it); a URL without a scheme is the directory."""
    if db_url.startswith("csv:///"):
        directory = db_url[len("csv:///") :]
    elif "://" in db_url:
        raise InvalidURLError(f"not a CSV URL: {db_url!r} (use csv:///DIR)", url=db_url)
    else:
        directory = db_url
    if not directory:
        raise InvalidURLError(f"no directory in {db_url!r} (use csv:///DIR)", url=db_url)
    return os.path.abspath(directory)


def _format_time(t: float, decimals: int) -> str:
    return str(int(t)) if decimals == 0 else f"{t:.{decimals}f}"


def _csv_text(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _CSVWriter:
    def __init__(self, path: str, *, recreate: bool, durable: bool, decimals: int) -> None:
        self.path = path
        self.durable = durable
        self.decimals = decimals
        self.lock = threading.Lock()
        self.closed = False
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if recreate else 0)
        try:
            self.fd: int | None = os.open(path, flags, 0o666)
            if os.fstat(self.fd).st_size == 0:
                _write_all(self.fd, _csv_text([HEADER]).encode())
        except OSError as exc:
            raise StoreWriteError(f"cannot open the CSV file {path!r}: {exc}") from exc

    def write(self, rows: list[Row], update: bool) -> None:
        lines = [(_format_time(t, self.decimals), channel, value_text(v)) for t, channel, v in rows]
        data = _csv_text(lines).encode()
        with self.lock:
            if self.closed or self.fd is None:
                raise StoreClosedError(f"the store of {self.path!r} is closed")
            try:
                if update:
                    self._rewrite({channel for _, channel, _ in rows}, data)
                else:
                    _write_all(self.fd, data)  # one write(2) for the call, so no torn rows
                    if self.durable:
                        os.fsync(self.fd)
            except OSError as exc:
                raise StoreWriteError(f"cannot write {self.path!r}: {exc}") from exc

    def _rewrite(self, channels: set[str], data: bytes) -> None:
        """``update``: the file without the channels' old rows, plus the new ones, replaced
        atomically (a crash leaves the old file or the new one, never a mix)."""
        with open(self.path, newline="", encoding="utf-8") as old:
            kept = [row for row in csv.reader(old) if len(row) < 2 or row[1] not in channels]
        directory = os.path.dirname(self.path)
        fd, temp = tempfile.mkstemp(prefix=".update-", suffix=".csv", dir=directory)
        try:
            _write_all(fd, _csv_text(kept).encode() + data)
            if self.durable:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(temp, self.path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            os.unlink(temp)
            raise
        if self.durable:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        assert self.fd is not None
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class DataStore_CSV(DataStore):
    """Rows appended to ``DIR/TABLE.csv``: ``DataStore_CSV('csv:///DIR', 'data')``.

    - the directory is created if needed; ``recreate=True`` empties the file first;
    - ``update`` rewrites the file without the channels' old rows (atomically; it costs a read
      and a write of the whole file, so keep files that are updated small);
    - ``durable``: False: each call's rows reach the OS in one write (they survive the process
      being killed); True: plus an fsync per call (they survive a power loss);
    - ``time_decimals``: 0 (default) writes whole seconds, as SlowPy does; 3 gives milliseconds.
    """

    def __init__(
        self,
        db_url: str,
        table: str,
        recreate: bool = False,
        *,
        durable: bool = False,
        time_decimals: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(db_url, str):
            raise InvalidURLError(f"a CSV URL is a string, not {db_url!r}")
        if not isinstance(time_decimals, int) or not 0 <= time_decimals <= 9:
            raise ValueError(f"time_decimals must be an int from 0 to 9, not {time_decimals!r}")
        self.db_url = db_url
        self.table = validate_table_name(table)
        self.directory = csv_directory(db_url)
        self.path = os.path.join(self.directory, self.table + ".csv")
        self.recreate = bool(recreate)
        self.durable = bool(durable)
        self.time_decimals = time_decimals
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise StoreWriteError(f"cannot create the directory {self.directory!r}: {exc}") from exc
        self._writer = _CSVWriter(
            self.path, recreate=self.recreate, durable=self.durable, decimals=time_decimals
        )
        self._finalizer = weakref.finalize(self, self._writer.close)

    def another(self, table: str, recreate: bool | None = None) -> DataStore_CSV:
        """A store for another file of the same directory, with the same options."""
        return DataStore_CSV(
            self.db_url,
            table,
            self.recreate if recreate is None else recreate,
            durable=self.durable,
            time_decimals=self.time_decimals,
        )

    def _write_rows(self, rows: list[Row], update: bool) -> None:
        self._writer.write(rows, update)

    def _close(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"DataStore_CSV({self.db_url!r}, table={self.table!r})"


class DataStore_TextDump(DataStore):
    """Rows printed as CSV lines to a text stream (``sys.stdout`` at the time of each write
    unless ``output`` is given), for looking at what a script would store. ``update`` prints
    like ``append``; closing does not close the stream."""

    def __init__(self, output: TextIO | None = None, *, time_decimals: int = 3) -> None:
        super().__init__()
        if not isinstance(time_decimals, int) or not 0 <= time_decimals <= 9:
            raise ValueError(f"time_decimals must be an int from 0 to 9, not {time_decimals!r}")
        self.output = output
        self.time_decimals = time_decimals
        self._lock = threading.Lock()

    def _write_rows(self, rows: list[Row], update: bool) -> None:
        text = _csv_text(
            (_format_time(t, self.time_decimals), channel, value_text(v)) for t, channel, v in rows
        )
        with self._lock:
            if self._closed:
                raise StoreClosedError("the text dump is closed")
            stream = sys.stdout if self.output is None else self.output
            stream.write(text)
            stream.flush()

    def __repr__(self) -> str:
        return "DataStore_TextDump()"
