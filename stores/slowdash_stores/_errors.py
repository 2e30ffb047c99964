"""Exceptions of the data stores: one rooted tree, with builtin mix-ins.

StoreError                       root; scripts catch this
├── InvalidDataError             a value or a call the store cannot write (+ ValueError): nothing
│   │                            to write (a scalar with no tag), a non-numeric value for a numeric
│   │                            table, a TimeSeries with a timestamp, bytes, ...
│   └── InvalidNameError         a table or channel name outside the allowed characters
├── InvalidURLError              a store URL with an unknown scheme or a bad form (+ ValueError)
├── StoreClosedError             a write to a store that has been closed
├── StoreConnectionError         the database cannot be reached, or the link broke and did not
│                                come back within the retry time (+ ConnectionError)
├── StoreTimeout                 the database stayed locked (SQLite busy) past the timeout
│                                (+ TimeoutError)
├── WrongThreadError             a sync write called on the Trio thread (+ RuntimeError); the
│                                message names the ``aio_`` method to await
└── StoreWriteError              the database refused the write (a bad user schema, disk full,
    │                            a table of another layout)
    └── DuplicateRowError        a row with the same (timestamp, channel) is already stored

A write either returns (its rows are stored, see docs/stores.md for what survives what) or raises
one of these; the rows of a call that raised are not stored, except where a store says otherwise
(PostgreSQL keeps the rows of a call that failed on a lost connection queued; see
``DataStore_PostgreSQL``). Errors are never logged and swallowed.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every exception raised by slowdash_stores."""


class InvalidDataError(StoreError, ValueError):
    """The values or arguments of a write cannot be stored; nothing of the call was written."""


class InvalidNameError(InvalidDataError):
    """A table or channel name does not follow the naming rules (docs/stores.md)."""

    def __init__(self, message: str, *, name: object = None) -> None:
        self.name = name
        super().__init__(message)


class InvalidURLError(StoreError, ValueError):
    """A store URL that names no store we have, or that is malformed."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class StoreClosedError(StoreError):
    """The store has been closed; it writes nothing more."""


class StoreConnectionError(StoreError, ConnectionError):
    """The database could not be reached, or the link broke and did not come back in time."""

    def __init__(self, message: str, *, address: str | None = None, pending_rows: int = 0) -> None:
        self.address = address
        self.pending_rows = pending_rows
        super().__init__(f"{address}: {message}" if address else message)


class StoreTimeout(StoreError, TimeoutError):
    """The database stayed busy (locked by another writer) past the store's timeout."""

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        self.timeout = timeout
        super().__init__(f"{message} (after {timeout:g} s)" if timeout is not None else message)


class WrongThreadError(StoreError, RuntimeError):
    """A sync write was called on the Trio thread, where it would block every task."""


class StoreWriteError(StoreError):
    """The database refused the write; the transaction of the call was rolled back."""

    def __init__(self, message: str, *, table: str | None = None) -> None:
        self.table = table
        super().__init__(f"table {table!r}: {message}" if table else message)


class DuplicateRowError(StoreWriteError):
    """A row with the same timestamp (to the millisecond) and channel is already stored."""
