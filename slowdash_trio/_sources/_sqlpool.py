"""Read-only SQLite connections used from worker threads, interruptible from Trio.

A query runs in a Trio worker thread on a pooled connection. If the waiting Trio task is
cancelled (the client went away, a deadline passed), the connection is interrupted
(``sqlite3.Connection.interrupt``), so the statement stops within milliseconds and the thread
and the connection come back; nobody waits for a query nobody wants.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import trio

from ._base import SourceUnavailable

T = TypeVar("T")


class SQLitePool:
    """Up to ``size`` read-only connections to one database file."""

    def __init__(self, path: Path, *, size: int = 4) -> None:
        self.path = path
        self.size = size
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(size)
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise SourceUnavailable(f"no database file {self.path}")
        try:
            conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            raise SourceUnavailable(f"cannot open {self.path}: {exc}") from None
        return conn

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(conn)`` in a worker thread; interrupted if this task is cancelled."""
        async with self._limiter:
            holder: list[sqlite3.Connection] = []
            # ``state`` (under ``guard``): "waiting", "running", "done" or "cancelled"; an
            # interrupt reaches the connection only while this call's statement runs, never
            # after the connection went back to the pool (another call may hold it then)
            guard = threading.Lock()
            state = ["waiting"]

            def work() -> T:
                conn = self._take()
                with guard:
                    if state[0] == "cancelled":  # nobody waits for the answer
                        self._give(conn)
                        raise RuntimeError("cancelled before it started")
                    holder.append(conn)
                    state[0] = "running"
                healthy = True
                try:
                    return fn(conn)
                except sqlite3.DatabaseError as exc:
                    if not _unreachable(exc):
                        raise  # a cancelled call, or a bad statement (view, tags.sql)
                    healthy = False
                    raise SourceUnavailable(f"{self.path}: {exc}") from exc
                finally:
                    with guard:
                        state[0] = "done"
                    if conn.in_transaction:
                        conn.rollback()
                    if healthy:
                        self._give(conn)
                    else:
                        conn.close()

            try:
                return await trio.to_thread.run_sync(work, abandon_on_cancel=True)
            except trio.Cancelled:
                with guard:
                    if state[0] == "running" and holder:
                        holder[0].interrupt()
                    elif state[0] == "waiting":
                        state[0] = "cancelled"
                raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


_UNREACHABLE: Final = (
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_NOTADB",
    "SQLITE_CORRUPT",
    "SQLITE_PERM",
)


def _unreachable(exc: sqlite3.Error) -> bool:
    """Whether an error means the database file cannot be read (not a bad statement)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_UNREACHABLE)
