"""Trends: a value (or a count) binned in time over a sliding window, kept in a ring buffer."""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Mapping
from typing import Any

from ._element import DataElement, finite, plain_number, real
from ._timeseries import TimeSeries

__all__ = ["RateTrend", "Trend"]

_METRICS: Mapping[str, tuple[str, ...]] = {
    "count": ("count", "counts", "n", "entries", "events"),
    "rate": ("rate", "rates", "cps"),
    "sum": ("sum",),
    "min": ("min",),
    "max": ("max",),
    "mean": ("mean", "average"),
    "sd": ("rms", "sd", "std", "stdev"),
}

_Column = list[float | None]


class Trend(DataElement):
    """``Trend(length=3600, tick=1, metric='mean', start=None)``: values binned in time.

    Time is cut into bins of ``tick`` seconds from ``start`` (UNIX time; default: now, in
    whole seconds). ``fill(t=None, value=None, weight=1)`` adds an entry at time ``t``
    (default now) to its bin; ``value=None`` only counts (enough for ``count``/``rate``).
    The window holds the last ``length / tick`` *completed* bins: the bin being filled (the
    one of the latest ``fill``/``evolve``) is left out until time moves past it.

    Metrics (the y of the graph; ``metric`` is matched case-insensitively):

    - ``count``/``counts``/``n``/``entries``/``events``: sum of weights, ``y_err`` = its root;
    - ``rate``/``rates``/``cps``: the same divided by ``tick``;
    - ``sum``: sum of ``weight * value``; ``min``, ``max``: of the values;
    - ``mean``/``average``: weighted mean, ``y_err`` = standard error of the mean (weights
      count as repeated entries), plus ``y_min`` and ``y_max``;
    - ``rms``/``sd``/``std``/``stdev``: weighted standard deviation.

    A bin without values has ``null`` for the value metrics (0 for counts, rates and sums).

    Entries that cannot be recorded are counted in ``dropped`` and change nothing: times
    before ``start``, bins that have left the window or were cleared or flushed, non-finite
    weights. A NaN value is counted (for the counting metrics) but left out of the values.
    """

    def __init__(
        self,
        length: float = 3600,
        tick: float = 1,
        metric: str = "mean",
        start: float | None = None,
    ) -> None:
        super().__init__()
        self.tick = plain_number(tick, "tick")
        window = finite(length, "length")
        if self.tick <= 0 or window <= 0:
            raise ValueError(f"length and tick must be positive, not {length} and {tick}")
        if not isinstance(metric, str):
            raise TypeError(f"metric must be a string, not {type(metric).__name__}")
        kind = next((k for k, names in _METRICS.items() if metric.lower() in names), None)
        if kind is None:
            accepted = ", ".join(n for names in _METRICS.values() for n in names)
            raise ValueError(f"unknown metric {metric!r} (accepted: {accepted})")
        self.metric = metric
        self._kind = kind
        self.start: float = int(time.time()) if start is None else plain_number(start, "start")
        self.nbins = max(1, math.floor(window / self.tick + 1e-9))
        self._ring = self.nbins + 1  # the window's bins plus the one being filled
        self._counts = array("d", bytes(8 * self._ring))
        self._weights = array("d", bytes(8 * self._ring))  # of the entries with a value
        self._sums = array("d", bytes(8 * self._ring))
        self._means = array("d", bytes(8 * self._ring))
        self._m2 = array("d", bytes(8 * self._ring))  # sum of w * (v - mean)^2, kept stably
        self._mins = array("d", [math.nan]) * self._ring
        self._maxs = array("d", [math.nan]) * self._ring
        self._head = 0  # the bin being filled (bins count from `start`)
        self._first = 0  # bins before this one were cleared or flushed
        self._stored = 0  # time_series() has returned the bins before this one
        self.dropped = 0

    # -- filling ------------------------------------------------------------------------------

    def _bin(self, t: float | None) -> int:
        moment = time.time() if t is None else finite(t, "t")
        return math.floor((moment - self.start) / self.tick)

    def _reset(self, slot: int) -> None:
        for column in (self._counts, self._weights, self._sums, self._means, self._m2):
            column[slot] = 0.0
        self._mins[slot] = math.nan
        self._maxs[slot] = math.nan

    def _advance(self, index: int) -> None:
        if index <= self._head:
            return
        for k in range(max(self._head + 1, index - self._ring + 1), index + 1):
            self._reset(k % self._ring)
        self._head = index

    def evolve(self, t: float | None = None, complete: bool = False) -> None:
        """Move the trend's time to ``t`` (default now) without filling anything.

        Call it before ``to_json()``/``time_series()`` when entries are rare, so that quiet
        bins show up as zeros instead of waiting for the next ``fill``. ``complete=True`` also
        counts the bin of ``t`` as completed.
        """
        index = self._bin(t)
        if index >= 0:
            self._advance(index + 1 if complete else index)

    def fill(self, t: float | None = None, value: float | None = None, weight: float = 1) -> None:
        """Add an entry at time ``t`` (default now), with ``value`` (None: only count it)."""
        index = self._bin(t)
        w = real(weight, "weight")
        v = None if value is None else real(value, "value")
        if not math.isfinite(w) or index < max(self._first, self._head - self.nbins, 0):
            self.dropped += 1
            return
        self._advance(index)
        slot = index % self._ring
        self._counts[slot] += w
        if v is None or math.isnan(v):
            return
        self._sums[slot] += w * v
        total = self._weights[slot] + w
        if total != 0:
            delta = v - self._means[slot]
            self._means[slot] += delta * w / total
            self._m2[slot] += w * delta * (v - self._means[slot])
        self._weights[slot] = total
        if not v >= self._mins[slot]:  # also replaces the initial NaN
            self._mins[slot] = v
        if not v <= self._maxs[slot]:
            self._maxs[slot] = v

    def clear(self) -> None:
        """Empty all bins; the window starts again at the bin being filled."""
        super().clear()
        for slot in range(self._ring):
            self._reset(slot)
        self._first = self._head
        self.dropped = 0

    def flush(self) -> None:
        """Leave the completed bins out from now on (the bin being filled stays), as SlowPy."""
        self._first = self._head

    # -- output -------------------------------------------------------------------------------

    def _window_start(self) -> int:
        return max(self._first, self._head - self.nbins, 0)

    def _columns(self, first: int) -> dict[str, _Column]:
        """y, y_err, y_min, y_max (as the metric has them) for the bins first..head-1."""
        slots = [k % self._ring for k in range(first, self._head)]
        counts = [self._counts[s] for s in slots]
        if self._kind in ("count", "rate"):
            per = 1 if self._kind == "count" else self.tick
            return {
                "y": [c / per for c in counts],
                "y_err": [math.sqrt(max(c, 0.0)) / per for c in counts],
            }
        if self._kind == "sum":
            return {"y": [self._sums[s] for s in slots]}
        stats: dict[str, _Column] = {"mean": [], "sem": [], "sd": [], "min": [], "max": []}
        for s in slots:
            w = self._weights[s]
            row: tuple[float | None, ...]
            if w > 0:
                m2 = max(self._m2[s], 0.0)
                values = (self._means[s], math.sqrt(m2) / w, math.sqrt(m2 / w))
                row = (*values, self._mins[s], self._maxs[s])
            else:
                row = (None,) * 5
            for column, value in zip(stats.values(), row, strict=True):
                column.append(value)
        if self._kind == "mean":
            return {
                "y": stats["mean"],
                "y_err": stats["sem"],
                "y_min": stats["min"],
                "y_max": stats["max"],
            }
        return {"y": stats[self._kind]}

    def _attributes(self) -> dict[str, Any]:
        return {**self._attr_values, "start_timestamp": self.start}

    def _content(self) -> dict[str, Any]:
        first = self._window_start()
        return {
            "labels": ["lapse", self.metric],
            "x": [self.tick * (k + 0.5) for k in range(first, self._head)],
            **self._columns(first),
        }

    def _series(self, first: int, field: str, name: str | None) -> TimeSeries:
        columns = self._columns(first)
        fields = {field + key[1:]: column for key, column in columns.items()}  # y_err→x_err
        ts = TimeSeries(
            fields=list(fields),
            start=self.start + first * self.tick,
            length=(self._head - first) * self.tick,
            name=name,
        )
        ts.t = [self.tick * (k + 0.5) for k in range(self._head - first)]
        ts.fields = fields
        return ts

    def timeseries(self, field: str = "x", flush: bool = False) -> TimeSeries:
        """The completed bins as a `TimeSeries` (times = bin centres).

        Fields: ``field`` and, as the metric has them, ``field_err``, ``field_min``,
        ``field_max``. ``flush=True`` then leaves these bins out from now on (`flush()`).
        """
        ts = self._series(self._window_start(), field, None)
        if flush:
            self.flush()
        return ts

    def time_series(self, name: str, *, field: str = "x", new_only: bool = True) -> TimeSeries:
        """The completed bins as a `TimeSeries` named ``name``, for a store.

        ``data_store.append(trend.time_series('rate'))`` writes channel ``rate`` (a store
        writes a named series under its name when no tag is given). With ``new_only`` (the
        default) only bins not returned by an earlier ``time_series()`` call are included, so
        appending it on every loop writes each bin once; the trend's own window (``to_json()``)
        is not affected. ``new_only=False``: the whole window.
        """
        first = self._window_start()
        if new_only:
            first = max(first, self._stored)
            self._stored = self._head
        return self._series(first, field, name)

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> DataElement:
        raise NotImplementedError(
            "a Trend cannot be rebuilt from JSON; its JSON is a graph (use Graph.from_json)"
        )


class RateTrend(Trend):
    """``RateTrend(length=3600, tick=1, start=None)``: a `Trend` of the entry rate (``cps``)."""

    def __init__(self, length: float = 3600, tick: float = 1, start: float | None = None) -> None:
        super().__init__(length=length, tick=tick, metric="cps", start=start)
