"""The PostgreSQL source's connections: a small pool of psycopg connections used from worker
threads, and calls that the Trio side can cancel (``Connection.cancel_safe`` sent from another
thread; the connection goes back to the pool only if it is healthy)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from slowdash_stores._postgresql import redact

from ._base import SourceUnavailable

logger = logging.getLogger("slowdash_trio.sources.postgresql")
T = TypeVar("T")


class Abandoned(Exception):
    """Internal: the call was cancelled before its thread took a connection."""


class Call:
    """One worker-thread call: the connection it uses, and cancellation from Trio."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self.cancelled = False

    def attach(self, conn: psycopg.Connection[Any]) -> bool:
        with self.lock:
            if self.cancelled:
                return False
            self.conn = conn
            return True

    def detach(self) -> None:
        with self.lock:
            self.conn = None

    def cancel(self) -> None:
        """Ask the server to stop the running statement (blocking: run it in a thread)."""
        with self.lock:
            self.cancelled = True
            if self.conn is not None and not self.conn.closed:
                try:
                    self.conn.cancel_safe(timeout=5)
                except Exception as exc:  # the statement ends anyway, or the link is gone
                    logger.debug("cancel request failed: %s", exc)


class Pool:
    """Idle connections, shared by the worker threads (at most ``size`` in use)."""

    def __init__(self, params: dict[str, Any], address: str, size: int) -> None:
        self.params = params
        self.address = address
        self.size = size
        self.lock = threading.Lock()
        self.idle: list[psycopg.Connection[Any]] = []
        self.calls: weakref.WeakSet[Call] = weakref.WeakSet()
        self.closed = False

    def take(self) -> psycopg.Connection[Any]:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        try:
            return psycopg.connect(autocommit=True, **self.params)
        except psycopg.Error as exc:
            message = redact(str(exc).strip().replace("\n", " "))
            raise SourceUnavailable(f"{self.address}: cannot connect: {message}") from None

    def give(self, conn: psycopg.Connection[Any]) -> None:
        healthy = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        with self.lock:
            if healthy and not self.closed and len(self.idle) < self.size:
                self.idle.append(conn)
                return
        conn.close()

    def drop_idle(self, *, closed: bool) -> None:
        with self.lock:
            self.closed = closed
            idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()

    def work(self, call: Call, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = self.take()
        if not call.attach(conn):
            self.give(conn)
            raise Abandoned  # nobody awaits it
        try:
            return fn(conn)
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                message = redact(str(exc).strip().replace("\n", " "))
                raise SourceUnavailable(f"{self.address}: connection lost: {message}") from None
            raise
        finally:
            call.detach()
            self.give(conn)


# ----------------------------------------------------------------------------------------------
# the source
