"""Downsampling tiers of a long SQLite table: per channel, count/sum/min/max of the finite
values in fixed buckets of ``W`` seconds (``W`` a whole number: 60, 600 and 3600 by default).

Layout (in the same database file as the table ``T``):

=================================  ===========================================================
``T__tier{W}``                     ``(channel TEXT, bucket REAL, n INTEGER, sum REAL, min REAL,
                                   max REAL, PRIMARY KEY(channel, bucket)) WITHOUT ROWID``;
                                   ``bucket`` is the bucket's start, a multiple of ``W``
``slowdash_tiers``                 ``(tbl TEXT, width REAL, done_until REAL,
                                   PRIMARY KEY(tbl, width))``: the tier of ``tbl`` holds every
                                   bucket before ``done_until``; later rows are only raw
=================================  ===========================================================

The writer (`DataStore_SQLite`) keeps them in its write transactions: when a call's rows
reach a new bucket, the buckets that closed are aggregated from the raw rows in SQL and
``done_until`` moves on; a row that arrives for a bucket already closed (late, out of order)
is added to its tier bucket in the same transaction. So a tier never disagrees with the raw
rows it summarises, whoever wrote them and whenever the writer was killed.

`build_tiers` makes the tiers for an existing table (written by SlowPy, say); a table that
keeps being written by a writer that does not know the tiers needs `build_tiers` run again
(the server's ``tiers: rebuild_every`` does that).

Sums are added in an order SQL chooses: for values whose sums are exact in binary floating
point (integers, or multiples of a power of two) tier answers are bit-identical to the raw
ones, otherwise they agree to the rounding of double-precision addition.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final

from ._store import validate_table_name

DEFAULT_WIDTHS: Final = (60, 600, 3600)
STATE_TABLE: Final = "slowdash_tiers"
FINITE: Final = "typeof({v}) IN ('integer','real') AND abs({v}) <= 1.7976931348623157e308"
_FINITE_MAX: Final = 1.7976931348623157e308


def tier_table(table: str, width: float) -> str:
    return f"{table}__tier{int(width)}"


def check_widths(widths: Iterable[object]) -> tuple[int, ...]:
    out = []
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int | float) or w != int(w) or w < 1:
            raise ValueError(f"a tier width is a whole number of seconds >= 1, not {w!r}")
        out.append(int(w))
    return tuple(sorted(set(out)))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create(cur: Any, table: str, widths: Sequence[int]) -> None:
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE}"
        "(tbl TEXT, width REAL, done_until REAL, PRIMARY KEY(tbl, width))"
    )
    for w in widths:
        validate_table_name(tier_table(table, w))
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {_q(tier_table(table, w))}(channel TEXT, bucket REAL, "
            "n INTEGER, sum REAL, min REAL, max REAL, PRIMARY KEY(channel, bucket)) "
            "WITHOUT ROWID"
        )


def state(conn: Any, table: str) -> dict[int, float | None]:
    """``{width: done_until}`` of a table's tiers; empty if it has none."""
    try:
        rows = conn.execute(
            f"SELECT width, done_until FROM {STATE_TABLE} WHERE tbl = ?", (table,)
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    return {int(w): d for w, d in rows}


def _aggregate_into(
    cur: Any, table: str, width: int, lo: float | None, hi: float, *, time: str, value: str
) -> None:
    """(Re)compute the tier buckets in ``[lo, hi)`` from the raw rows. Every channel gets its
    buckets, ``n = 0`` where it has no finite value (channel scans read the tier)."""
    where = f"{_q(time)} < ?"
    params: list[Any] = [hi]
    if lo is not None:
        where = f"{_q(time)} >= ? AND {where}"
        params.insert(0, lo)
    v = f"(CASE WHEN {FINITE.format(v=_q(value))} THEN {_q(value)} END)"
    cur.execute(
        f"INSERT OR REPLACE INTO {_q(tier_table(table, width))}(channel, bucket, n, sum, min, max) "
        f"SELECT channel, CAST({_q(time)} / {width} AS INTEGER) * {width}.0 AS b, count({v}), "
        f"sum({v}), min({v}), max({v}) FROM {_q(table)} WHERE {where} AND channel IS NOT NULL "
        "GROUP BY channel, b",
        params,
    )


class TierWriter:
    """Keeps the tiers of one long table inside its writer's transactions."""

    def __init__(self, table: str, widths: Sequence[int], *, time: str = "timestamp") -> None:
        self.table = table
        self.widths = check_widths(widths)
        self.time = time
        self.ready = False

    def write(self, cur: Any, rows: Sequence[tuple[float, str, object]], update: bool) -> None:
        """Called in the transaction that inserted ``rows`` (after the insert)."""
        if not self.widths or not rows:
            return
        if not self.ready:
            create(cur, self.table, self.widths)
            self.ready = True
        done = state(cur, self.table)
        if update:  # the channels' old rows are gone: so are their tier buckets
            channels = {channel for _, channel, _ in rows}
            for w in self.widths:
                cur.executemany(
                    f"DELETE FROM {_q(tier_table(self.table, w))} WHERE channel = ?",
                    [(c,) for c in channels],
                )
        newest = max(t for t, _, _ in rows)
        oldest = min(t for t, _, _ in rows)
        for w in self.widths:
            known = done.get(w)
            first = known is None  # rows written before (by SlowPy, say) go into the tier now
            if known is None:
                until = float(math.floor(oldest / w) * w)
                cur.execute(
                    f"INSERT OR REPLACE INTO {STATE_TABLE}(tbl, width, done_until) VALUES(?,?,?)",
                    (self.table, w, until),
                )
            else:
                until = known
                if oldest < until:
                    self._late(cur, w, until, rows)
            edge = math.floor(newest / w) * w
            if edge > until or first:
                lo = None if first else until
                _aggregate_into(cur, self.table, w, lo, edge, time=self.time, value="value")
                cur.execute(
                    f"UPDATE {STATE_TABLE} SET done_until = ? WHERE tbl = ? AND width = ?",
                    (float(edge), self.table, w),
                )

    def _late(
        self, cur: Any, width: int, until: float, rows: Sequence[tuple[float, str, object]]
    ) -> None:
        """Add rows of buckets already closed, with the values as stored (a bool is 1.0, a
        numeric string a number, an object JSON text); a row not found under its key (a
        table format of its own) has its bucket recomputed from the raw rows."""
        sums: dict[tuple[str, float], list[Any]] = {}
        redo: set[float] = set()
        seen: set[tuple[float, str]] = set()
        for t, channel, _ in rows:
            t = round(t, 3)  # as stored
            if t >= until:
                continue
            bucket = math.floor(t / width) * float(width)
            stored = cur.execute(
                f"SELECT value FROM {_q(self.table)} WHERE {_q(self.time)} = ? AND channel = ?",
                (t, channel),
            ).fetchall()
            if len(stored) != 1 or (t, channel) in seen:
                redo.add(bucket)
                continue
            seen.add((t, channel))
            acc = sums.setdefault((channel, bucket), [0, None, None, None])
            v = stored[0][0]
            if type(v) not in (float, int) or not -_FINITE_MAX <= v <= _FINITE_MAX:
                continue  # the channel is in the bucket, with no number (n = 0)
            v = float(v)
            if acc[0] == 0:
                acc[:] = [1, v, v, v]
            else:
                acc[0] += 1
                acc[1] += v
                acc[2] = min(acc[2], v)
                acc[3] = max(acc[3], v)
        for bucket in redo:
            _aggregate_into(
                cur, self.table, width, bucket, bucket + width, time=self.time, value="value"
            )
        values = [(c, b, a[0], a[1], a[2], a[3]) for (c, b), a in sums.items() if b not in redo]
        if values:
            cur.executemany(
                f"INSERT INTO {_q(tier_table(self.table, width))}"
                "(channel, bucket, n, sum, min, max) VALUES(?,?,?,?,?,?) "
                "ON CONFLICT(channel, bucket) DO UPDATE SET n = n + excluded.n, "
                "sum = CASE WHEN n = 0 THEN excluded.sum WHEN excluded.n = 0 THEN sum "
                "ELSE sum + excluded.sum END, "
                "min = CASE WHEN n = 0 THEN excluded.min WHEN excluded.n = 0 THEN min "
                "ELSE min(min, excluded.min) END, "
                "max = CASE WHEN n = 0 THEN excluded.max WHEN excluded.n = 0 THEN max "
                "ELSE max(max, excluded.max) END",
                values,
            )


def build_tiers(
    path: str, table: str, widths: Sequence[int] = DEFAULT_WIDTHS, *, time: str = "timestamp"
) -> dict[int, float | None]:
    """Make (or remake) the tiers of an existing long table in the SQLite file ``path``;
    returns ``{width: done_until}``. Safe while a store writes the table (one transaction)."""
    validate_table_name(table)
    widths = check_widths(widths)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            create(cur, table, widths)
            (newest,) = cur.execute(f"SELECT max({_q(time)}) FROM {_q(table)}").fetchone()
            out: dict[int, float | None] = {}
            for w in widths:
                cur.execute(f"DELETE FROM {_q(tier_table(table, w))}")
                edge = None if newest is None else float(math.floor(newest / w) * w)
                if edge is not None:
                    _aggregate_into(cur, table, w, None, edge, time=time, value="value")
                cur.execute(
                    f"INSERT OR REPLACE INTO {STATE_TABLE}(tbl, width, done_until) VALUES(?,?,?)",
                    (table, w, edge),
                )
                out[w] = edge
            cur.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        return out
    finally:
        conn.close()


def distinct_channels(conn: Any, table: str, tag: str) -> list[tuple[Any]]:
    """The distinct values of the tag column; from the coarsest tier and the rows after it
    when the table has tiers (a full scan otherwise)."""
    done = state(conn, table) if tag == "channel" else {}
    usable = [(w, d) for w, d in done.items() if d is not None]
    if usable:
        w, until = max(usable)
        try:
            return list(
                conn.execute(
                    f"SELECT DISTINCT channel FROM {_q(tier_table(table, w))} UNION "
                    f"SELECT DISTINCT channel FROM {_q(table)} WHERE timestamp >= ?",
                    (until,),
                )
            )
        except sqlite3.OperationalError:  # tiers built on another time column: scan
            pass
    return list(conn.execute(f"SELECT DISTINCT {_q(tag)} FROM {_q(table)}"))
