"""``DataStore_PostgreSQL``: psycopg 3 (sync), a queue of uncommitted rows, reconnection.

The rows of each call join a queue that is written in order, one transaction per call, and
leave it only when a transaction holding them has committed. A lost connection is reopened with
capped back-off; whether a transaction whose ``COMMIT`` got no answer did commit is asked of the
server (``txid_status``), so rows are neither lost nor written twice. psycopg is imported on
first use: installing it is needed only for PostgreSQL (``slowdash-trio[postgresql]``).
"""

from __future__ import annotations

import collections
import math
import re
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._errors import (
    DuplicateRowError,
    InvalidURLError,
    StoreClosedError,
    StoreConnectionError,
    StoreError,
    StoreWriteError,
)
from ._sql import (
    POSTGRESQL,
    LongTableFormat_DateTime_PostgreSQL,
    SQLStore,
    TableFormat,
    check_seconds,
    check_url,
    columns_ready,
)
from ._store import Row, check_trio_cancelled, ensure_not_trio_thread

if TYPE_CHECKING:
    import psycopg

_FIRST_DELAY: Final = 0.05
_MAX_DELAY: Final = 5.0
_SLEEP_SLICE: Final = 0.05
# connection failures that waiting does not cure
_FATAL_CONNECT: Final = (
    "does not exist",
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "password is required",
    "invalid connection option",
    "invalid port",
    "invalid integer value",
)
_CONNECT_DEFAULTS: Final = {
    "application_name": "slowdash_stores",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}


_SECRETS: Final = (
    (re.compile(r"((?:^|://)[^/@:\s]*:)[^/@\s]*@"), r"\1***@"),
    (re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE), r"\1***"),
)


def redact(text: str) -> str:
    """``text`` with the passwords of URLs and of ``password=`` keywords replaced by ``***``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ImportError(
            "DataStore_PostgreSQL needs psycopg 3: pip install 'slowdash-trio[postgresql]'"
        ) from exc
    return psycopg


@dataclass(eq=False)
class _Batch:
    rows: list[Row]
    update: bool


@dataclass
class _InDoubt:
    """A transaction whose link broke before its outcome was known."""

    xid: int
    backend_pid: int
    terminated: bool = False


def _link_lost(conn: psycopg.Connection[Any], exc: Exception) -> bool:
    """Whether ``exc`` means the link is gone rather than that the server refused the rows.

    psycopg can report a dead socket ("connection socket closed") before libpq marks the
    connection bad, so ``conn.closed`` alone misses it: an operational error the client raised
    itself (no SQLSTATE), a connection exception (class 08) or an administrator's shutdown or
    termination of the session (57P01-57P03) all count as a broken link.
    """
    if conn.closed:
        return True
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return isinstance(exc, _psycopg().OperationalError)
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


class _LinkBroken(Exception):
    """Internal: the link broke or could not be made (``fatal``: retrying will not help)."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        self.fatal = fatal
        super().__init__(message)


class _PostgreSQLWriter:
    """The connection of one PostgreSQL store and the queue of rows not yet committed."""

    def __init__(
        self,
        params: dict[str, Any],
        address: str,
        fmt: TableFormat,
        *,
        connect_timeout: float,
        retry_timeout: float,
        max_pending: int,
    ) -> None:
        self.params = params
        self.address = address
        self.fmt = fmt
        self.connect_timeout = connect_timeout
        self.retry_timeout = retry_timeout
        self.max_pending = max_pending
        self.lock = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self.pending: collections.deque[_Batch] = collections.deque()
        self.pending_rows = 0
        self.in_doubt: _InDoubt | None = None
        self.closed = False
        self.table_ready = False
        self.connects = 0
        self.backend_pid = 0

    # -- entry points (under the lock) -----------------------------------------------------------

    def write(self, rows: list[Row], update: bool) -> None:
        with self.lock:
            if self.closed:
                raise StoreClosedError(f"the store of {self.address} is closed")
            deadline = time.monotonic() + self.retry_timeout
            if self.pending and self.pending_rows + len(rows) > self.max_pending:
                try:  # the queue is full: it has to go first
                    self._flush(None, deadline)
                except StoreConnectionError as exc:
                    raise StoreConnectionError(
                        f"{self.pending_rows} rows are waiting for the database, the most "
                        f"max_pending={self.max_pending} allows, so the rows of this call were "
                        f"not queued; {exc}",
                        address=None,
                        pending_rows=self.pending_rows,
                    ) from exc
            batch = _Batch(rows, update)
            self.pending.append(batch)
            self.pending_rows += len(rows)
            self._flush(batch, deadline)

    def flush(self, timeout: float) -> None:
        with self.lock:
            if self.closed:
                raise StoreClosedError(f"the store of {self.address} is closed")
            self._flush(None, time.monotonic() + timeout)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                if self.pending:
                    self._flush(None, time.monotonic() + self.retry_timeout)
            except StoreConnectionError as exc:
                raise StoreConnectionError(
                    f"closed with {self.pending_rows} queued rows unwritten: {exc}",
                    address=self.address,
                    pending_rows=self.pending_rows,
                ) from exc
            finally:
                self.closed = True
                self._drop_connection()

    # -- the queue -------------------------------------------------------------------------------

    def _flush(self, current: _Batch | None, deadline: float) -> None:
        current_error: Exception | None = None
        rejected: list[tuple[int, Exception]] = []
        delay = _FIRST_DELAY
        while self.pending:
            batch = self.pending[0]
            try:
                conn = self._connection(deadline)
                if self.in_doubt is not None:
                    outcome = self._resolve_in_doubt(conn)
                    if outcome == "committed":
                        self._pop()
                        continue
                    if outcome == "wait":
                        self._back_off(delay, deadline, "the interrupted transaction is still open")
                        delay = min(delay * 2, _MAX_DELAY)
                        continue
                try:
                    self._write_batch(conn, batch)
                except _LinkBroken:
                    raise
                except Exception as exc:  # the server (or the format) refused it for good
                    self._pop()
                    if batch is current:
                        current_error = exc
                    else:
                        rejected.append((len(batch.rows), exc))
                    continue
            except _LinkBroken as broken:
                self._drop_connection()
                if broken.fatal:
                    raise self._connection_error(str(broken)) from broken.__cause__
                self._back_off(delay, deadline, str(broken))
                delay = min(delay * 2, _MAX_DELAY)
                continue
            self._pop()
            delay = _FIRST_DELAY
        if current_error is not None:
            raise current_error
        if rejected:
            lost = sum(n for n, _ in rejected)
            raise StoreWriteError(
                f"{lost} rows queued during a database outage were refused when they were "
                f"finally written ({rejected[0][1]}); the other queued rows"
                + (" and this call's rows" if current is not None else "")
                + " were written",
                table=self.fmt.table,
            )

    def _pop(self) -> None:
        batch = self.pending.popleft()
        self.pending_rows -= len(batch.rows)

    def _back_off(self, delay: float, deadline: float, reason: str) -> None:
        if time.monotonic() + delay > deadline:
            raise self._connection_error(reason)
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            check_trio_cancelled()
            time.sleep(min(left, _SLEEP_SLICE))
        check_trio_cancelled()

    def _connection_error(self, reason: str) -> StoreConnectionError:
        return StoreConnectionError(
            f"{reason}; {self.pending_rows} rows are kept queued and written by the next call "
            "that reaches the database, by flush() or by close()",
            address=self.address,
            pending_rows=self.pending_rows,
        )

    # -- the link --------------------------------------------------------------------------------

    def _connection(self, deadline: float) -> psycopg.Connection[Any]:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        pg = _psycopg()
        params = dict(self.params)
        left = deadline - time.monotonic()
        wanted = float(params.get("connect_timeout", self.connect_timeout))
        params["connect_timeout"] = str(max(2, math.ceil(min(wanted, max(left, 0.0)))))
        try:
            conn: psycopg.Connection[Any] = pg.connect(autocommit=False, **params)
        except pg.Error as exc:
            message = str(exc).strip().replace("\n", " ")
            fatal = any(marker in message for marker in _FATAL_CONNECT)
            raise _LinkBroken(f"cannot connect: {message}", fatal=fatal) from exc
        self.conn = conn
        self.backend_pid = conn.info.backend_pid
        self.connects += 1
        return conn

    def _drop_connection(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()

    def _resolve_in_doubt(self, conn: psycopg.Connection[Any]) -> str:
        """Ask the server what became of the interrupted transaction: committed/retry/wait."""
        pg = _psycopg()
        doubt = self.in_doubt
        assert doubt is not None
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT txid_status(%s)", (doubt.xid,))
                row = cur.fetchone()
                status = None if row is None else row[0]
                if status == "in progress" and not doubt.terminated:
                    # a half-open session the server has not noticed yet: end it (our own role
                    # may), so that its locks go and its outcome is settled; only the session
                    # that still holds that transaction
                    cur.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid = %s AND backend_xid::text = %s",
                        (doubt.backend_pid, str(doubt.xid % 2**32)),
                    )
                    doubt.terminated = True
            conn.rollback()
        except pg.Error as exc:
            # the rows stay queued (their fate is unknown): retried like a broken link
            raise _LinkBroken(
                f"cannot learn the outcome of an interrupted transaction: {exc}"
            ) from exc
        if status == "in progress":
            return "wait"
        self.in_doubt = None
        return "committed" if status == "committed" else "retry"

    def _write_batch(self, conn: psycopg.Connection[Any], batch: _Batch) -> None:
        pg = _psycopg()
        xid: int | None = None
        committing = False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT txid_current()")
                row = cur.fetchone()
                xid = None if row is None else int(row[0])
                if not self.table_ready:
                    self._prepare_table(cur, batch.rows[0][2])
                self.fmt.write_rows(cur, batch.rows, batch.update)
            committing = True
            conn.commit()
        except pg.Error as exc:
            if _link_lost(conn, exc):
                self._doubt(xid)
                raise _LinkBroken(f"the connection broke: {exc}") from exc
            self._rollback(conn, xid)
            if isinstance(exc, pg.errors.TransactionRollback):  # deadlock, ...
                raise _LinkBroken(f"the transaction was rolled back: {exc}") from exc
            raise self._error(exc) from exc
        except BaseException:
            # KeyboardInterrupt, trio.Cancelled or a format's own error, mid-transaction; one
            # that interrupted COMMIT leaves its outcome to be asked of the server
            if conn.closed or committing:
                self._doubt(xid)
                self._drop_connection()
            else:
                self._rollback(conn, xid)
            raise
        self.table_ready = True

    def _doubt(self, xid: int | None) -> None:
        if xid is not None:
            self.in_doubt = _InDoubt(xid, self.backend_pid)

    def _rollback(self, conn: psycopg.Connection[Any], xid: int | None) -> None:
        pg = _psycopg()
        try:
            conn.rollback()
        except pg.Error:
            self._doubt(xid)
            self._drop_connection()

    def _prepare_table(self, cur: psycopg.Cursor[Any], first: object) -> None:
        if not columns_ready(self.fmt, self._columns(cur), cur, first):
            self.fmt.prepare(self._columns(cur))

    def _columns(self, cur: psycopg.Cursor[Any]) -> dict[str, str]:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (self.fmt.table,),
        )
        return {str(name).lower(): str(kind) for name, kind in cur.fetchall()}

    def _error(self, exc: Exception) -> StoreError:
        errors = _psycopg().errors
        message = str(exc).strip().replace("\n", " ")
        table = self.fmt.table
        if isinstance(exc, errors.UniqueViolation):
            return DuplicateRowError(
                "a row with the same timestamp (to the millisecond) and channel is already "
                f"stored; nothing of this call was written ({message})",
                table=table,
            )
        if isinstance(exc, errors.UndefinedTable):
            self.table_ready = False
        return StoreWriteError(f"{message}; nothing of this call was written", table=table)


def _pg_params(db_url: str) -> tuple[dict[str, Any], str]:
    """Connection parameters (ours as defaults; the URL's win) and an address without secrets."""
    pg = _psycopg()
    try:
        params: dict[str, Any] = pg.conninfo.conninfo_to_dict(db_url)
    except pg.ProgrammingError as exc:
        raise InvalidURLError(f"bad PostgreSQL URL: {redact(str(exc))}", url=None) from None
    for key, value in _CONNECT_DEFAULTS.items():
        params.setdefault(key, value)
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    address = f"postgresql://{host}:{port}/{params.get('dbname', '')}"
    return params, address


class DataStore_PostgreSQL(SQLStore):
    """A table in PostgreSQL: ``DataStore_PostgreSQL('postgresql://USER:PASS@HOST/DB', 'data')``.

    - ``db_url``: a ``postgresql://`` URL (``USER:PASS@HOST/DB`` without the scheme is taken as
      one, as SlowPy does) or a libpq keyword string (``"host=... dbname=..."``).
    - ``table_format``: default ``LongTableFormat_DateTime_PostgreSQL()``.
    - ``append`` returns once the call's rows are committed. If the link breaks, it reconnects
      with capped back-off (0.05 s doubling to 5 s) for up to ``retry_timeout`` seconds; then it
      raises ``StoreConnectionError`` and keeps the rows queued (up to ``max_pending`` rows):
      the next call that gets through, ``flush()`` or ``close()`` writes them first, in order.
    - ``connect_timeout``: seconds for one connection attempt (libpq's; at least 2).

    Needs ``psycopg`` 3 (``pip install 'slowdash-trio[postgresql]'``).
    """

    dialect = POSTGRESQL
    placeholder = "%s"

    def __init__(
        self,
        db_url: str,
        table: str,
        table_format: TableFormat | None = None,
        *,
        connect_timeout: float = 10.0,
        retry_timeout: float = 30.0,
        max_pending: int = 100_000,
    ) -> None:
        if "://" not in check_url(db_url) and "=" not in db_url:
            db_url = "postgresql://" + db_url  # as SlowPy does
        schemes = ("postgresql://", "postgres://")
        if "://" in db_url and not db_url.startswith(schemes):
            raise InvalidURLError(f"not a PostgreSQL URL: {redact(db_url)!r}", url=None)
        check_seconds("connect_timeout", connect_timeout)
        check_seconds("retry_timeout", retry_timeout)
        if not isinstance(max_pending, int) or isinstance(max_pending, bool) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive int, not {max_pending!r}")
        params, address = _pg_params(db_url)  # all checks before the format is bound
        super().__init__(db_url, table, table_format)
        self.address = address
        self.retry_timeout = float(retry_timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_pending = max_pending
        self._writer = _PostgreSQLWriter(
            params,
            self.address,
            self.table_format,
            connect_timeout=self.connect_timeout,
            retry_timeout=self.retry_timeout,
            max_pending=max_pending,
        )
        self._finalizer = weakref.finalize(self, self._writer.close)

    @staticmethod
    def _default_format() -> TableFormat:
        return LongTableFormat_DateTime_PostgreSQL()

    def another(self, table: str, table_format: TableFormat | None = None) -> DataStore_PostgreSQL:
        """A store for another table of the same database, with the same options."""
        if table_format is None:
            table_format = self.table_format.unbound_copy()
        return DataStore_PostgreSQL(
            self.db_url,
            table,
            table_format,
            connect_timeout=self.connect_timeout,
            retry_timeout=self.retry_timeout,
            max_pending=self.max_pending,
        )

    @property
    def pending_rows(self) -> int:
        """Rows of failed calls still waiting for the database."""
        return self._writer.pending_rows

    @property
    def connects(self) -> int:
        """How many connections this store has opened (1 + reconnects)."""
        return self._writer.connects

    def flush(self, timeout: float | None = None) -> None:
        """Write the queued rows now (retrying up to ``timeout``, default ``retry_timeout``)."""
        ensure_not_trio_thread("flush")
        self._writer.flush(self.retry_timeout if timeout is None else timeout)

    async def aio_flush(self, timeout: float | None = None) -> None:
        """``flush`` from async code, in a worker thread."""
        await self._in_thread(
            self._writer.flush, self.retry_timeout if timeout is None else timeout
        )

    def _write_rows(self, rows: list[Row], update: bool) -> None:
        self._writer.write(rows, update)

    def _close(self) -> None:
        self._finalizer()

    def __repr__(self) -> str:
        return f"DataStore_PostgreSQL({self.address!r}, table={self.table!r})"
