"""Resampling from the downsampling tiers that ``slowdash_stores`` keeps (``tiers`` there).

A tier of width ``W`` answers a request exactly when its buckets tile the request's: the
bucket width is a multiple of ``W`` and the first bucket starts on a multiple of ``W``
(``align=1`` in the API asks for such a window). Buckets before the tier's ``done_until`` come
from the tier; the rest (the live edge) from the raw rows, with the same SQL as without tiers.
Only count, sum, mean, min and max are answered this way.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from slowdash_stores import tiers as layout

from ._query import Grid

TIERED: Final = frozenset({"count", "sum", "mean", "min", "max"})
_FINITE: Final = layout.FINITE


def tier_for(conn: sqlite3.Connection, table: str, grid: Grid) -> tuple[int, float] | None:
    """The widest usable tier ``(width, done_until)`` for ``grid``, if any."""
    best = None
    for width, until in layout.state(conn, table).items():
        if until is None:
            continue
        if not _multiple(grid.interval, width) or not _multiple(grid.start, width):
            continue
        if best is None or width > best[0]:
            best = (width, until)
    return best


def _multiple(value: float, width: int) -> bool:
    """Whether ``value`` (seconds) is a multiple of ``width`` to within a microsecond (far
    below the millisecond resolution of stored times)."""
    return abs(value - round(value / width) * width) <= 1e-6


def read(
    conn: sqlite3.Connection,
    table: str,
    channel: str,
    grid: Grid,
    width: int,
    until: float,
    *,
    time_sql: str,
    value_sql: str,
    table_sql: str,
    tag_sql: str,
) -> dict[int, tuple[Any, ...]]:
    """``{bucket: (n, sum, min, max, None, None, None)}`` from the tier before ``until`` and
    the raw rows after it."""
    out: dict[int, tuple[Any, ...]] = {}
    split = min(max(until, grid.start), grid.end)
    if split > grid.start:
        rows = conn.execute(
            f"SELECT CAST((bucket - ?) / ? AS INTEGER) AS k, sum(n), sum(sum), min(min), "
            f'max(max) FROM "{layout.tier_table(table, width)}" '
            "WHERE channel = ? AND bucket >= ? AND bucket < ? GROUP BY k",
            (grid.start, grid.interval, channel, grid.start, split),
        ).fetchall()
        for k, n, total, lo, hi in rows:
            if 0 <= k < grid.count and n:
                out[int(k)] = (n, total, lo, hi, None, None, None)
    if split < grid.end:
        v = value_sql
        rows = conn.execute(
            f"SELECT CAST(({time_sql} - ?) / ? AS INTEGER) AS k, count({v}), sum({v}), "
            f"min({v}), max({v}) FROM {table_sql} WHERE {tag_sql} = ? AND {time_sql} >= ? "
            f"AND {time_sql} < ? AND {_FINITE.format(v=v)} GROUP BY k",
            (grid.start, grid.interval, channel, split, grid.end),
        ).fetchall()
        for k, n, total, lo, hi in rows:
            if 0 <= k < grid.count and n:
                old = out.get(int(k))
                if old is not None:  # a bucket split between the tier and the raw rows
                    n, total = n + old[0], total + old[1]
                    lo, hi = min(lo, old[2]), max(hi, old[3])
                out[int(k)] = (n, total, lo, hi, None, None, None)
    return out
