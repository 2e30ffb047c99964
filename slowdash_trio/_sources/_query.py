"""A data request, its bucket geometry, the reducers and the reply shapes.

Every data source answers a `DataQuery` with ``{channel: reply}``; the reply shapes are the
data model's (docs/data-model.md): times relative to ``start``.

Bucket geometry (as SlowDash has it): ``n = floor(length / interval)`` buckets end at ``to``;
when ``length`` is not a multiple of ``interval``, one more bucket is put in front. Bucket
``k`` holds the rows with ``start + k*interval <= t < start + (k+1)*interval`` and is
reported at its centre, ``t[k] = (k + 0.5) * interval``.

Reducers act on the finite numbers of a bucket (other values are skipped). An empty bucket
gives ``null``, except for ``count`` (0). ``std`` is the population standard deviation
(``ddof=0``, as NumPy has it); ``sem`` is the sample standard deviation over ``sqrt(n)``
(``null`` below two values).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np

REDUCER_ALIASES: Final = {
    "first": "first",
    "last": "last",
    "mean": "mean",
    "median": "median",
    "sum": "sum",
    "min": "min",
    "max": "max",
    "count": "count",
    "std": "std",
    "sd": "std",
    "stdev": "std",
    "rms": "std",
    "sigma": "std",
    "sem": "sem",
    "err": "sem",
}
"""Every reducer name the API takes, and the reducer it means."""

MAX_LENGTH: Final = 100 * 366 * 86400.0
"""The longest window a request may ask for (100 years)."""
MAX_BUCKETS: Final = 100_000
"""The most buckets one resampled channel may have."""
MAX_RAW_POINTS: Final = 2_000_000
"""The most raw points one reply may carry in all by default (``system.max_points``); beyond
it, the client must resample."""
TOO_MANY_POINTS: Final = (
    "more raw points requested than one reply may carry (system.max_points); ask for fewer "
    "channels, a shorter length or resample=SECONDS"
)

_FINITE_MAX: Final = 1.7976931348623157e308


class QueryError(ValueError):
    """A data request that cannot be answered as asked (a bad parameter); HTTP 400."""


@dataclass(frozen=True, slots=True)
class Grid:
    """Resampling buckets: ``count`` buckets of ``interval`` seconds from ``start``."""

    start: float
    interval: float
    count: int

    @property
    def end(self) -> float:
        return self.start + self.count * self.interval

    def edges(self) -> list[float]:
        return [self.start + k * self.interval for k in range(self.count + 1)]

    def centres(self) -> list[float]:
        half = 0.5 * self.interval
        return [k * self.interval + half for k in range(self.count)]

    def index(self, t: float) -> int:
        """The bucket of time ``t`` (may be out of range)."""
        return math.floor((t - self.start) / self.interval)


@dataclass(frozen=True, slots=True)
class DataQuery:
    """What ``/api/data/{channels}`` asks, with ``to`` resolved to an absolute UNIX time."""

    channels: tuple[str, ...]
    length: float = 3600.0
    to: float = 0.0
    resample: float | None = None
    """None: raw points; 0: automatic (from the data's spacing); > 0: bucket width."""
    reducer: str = "last"
    envelope: int = 0
    prior_data: int = 0
    max_points: int = MAX_RAW_POINTS
    """The most raw points the whole reply may carry."""

    @property
    def begin(self) -> float:
        return self.to - self.length

    def with_channels(self, channels: Iterable[str]) -> DataQuery:
        return replace(self, channels=tuple(channels))

    def grid(self, interval: float | None = None) -> Grid:
        """The buckets for ``interval`` (default: the requested width)."""
        width = interval if interval is not None else self.resample
        if width is None or width <= 0:
            raise QueryError("no bucket width")
        return make_grid(self.length, self.to, width)


def make_grid(length: float, to: float, interval: float) -> Grid:
    ratio = length / interval
    if not math.isfinite(ratio):
        raise QueryError(
            f"resample={interval:g} over length={length:g} makes too many buckets; "
            f"at most {MAX_BUCKETS} are answered (use a wider resample)"
        )
    count = math.floor(ratio + 1e-9)
    start = to - count * interval
    if abs(ratio - count) > 1e-9 * max(1.0, ratio):
        count += 1
        start -= interval
    if count > MAX_BUCKETS:
        raise QueryError(
            f"resample={interval:g} over length={length:g} makes {count} buckets; "
            f"at most {MAX_BUCKETS} are answered (use a wider resample)"
        )
    return Grid(start, interval, max(count, 0))


def parse_query(
    channels: Sequence[str],
    *,
    length: float = 3600.0,
    to: float = 0.0,
    resample: float = -1.0,
    reducer: str = "last",
    filler: str = "fillna",
    envelope: int = 0,
    prior_data: int = 0,
    align: int = 0,
    now: float,
    max_points: int = MAX_RAW_POINTS,
) -> DataQuery:
    """Check the API parameters and resolve ``to``; `QueryError` says what is wrong.

    ``align=1`` (ours, not SlowDash's) moves ``to`` up to a multiple of ``resample``, so that
    a live window's buckets stay put from one request to the next and the downsampling tiers
    can answer it.
    """
    for name, value in (("length", length), ("to", to), ("resample", resample)):
        if not math.isfinite(value):
            raise QueryError(f"query parameter {name!r}: must be a finite number, not {value}")
    if not 0 < length <= MAX_LENGTH:
        raise QueryError(
            f"query parameter 'length': must be positive and at most {MAX_LENGTH:.0f} s "
            f"(100 years), not {length:g}"
        )
    canonical = REDUCER_ALIASES.get(reducer)
    if canonical is None:
        raise QueryError(
            f"query parameter 'reducer': unknown reducer {reducer!r} "
            f"(one of {', '.join(sorted(REDUCER_ALIASES))})"
        )
    if filler not in ("fillna", ""):
        raise QueryError(f"query parameter 'filler': only 'fillna' is implemented, not {filler!r}")
    if envelope not in (0, 1, 2):
        raise QueryError(f"query parameter 'envelope': 0, 1 or 2, not {envelope}")
    if prior_data not in (0, 1, 2):
        raise QueryError(f"query parameter 'prior_data': 0, 1 or 2, not {prior_data}")
    if align not in (0, 1):
        raise QueryError(f"query parameter 'align': 0 or 1, not {align}")
    end = to if to > 0 else now + to
    width: float | None = None if resample < 0 else resample
    if align and width:
        steps = end / width - 1e-9
        if not math.isfinite(steps):  # a huge end over a tiny width
            raise QueryError(
                f"query parameter 'align': to={end:g} is not a multiple of resample={width:g} "
                "that can be computed"
            )
        end = math.ceil(steps) * width
    if width is not None and width > 0:
        make_grid(length, end, width)  # checks the bucket count
    return DataQuery(
        tuple(channels), length, end, width, canonical, envelope, prior_data, max_points
    )


# ----------------------------------------------------------------------------------------------
# values


def is_finite_number(value: object) -> bool:
    kind = type(value)
    if kind is float:
        return -_FINITE_MAX <= value <= _FINITE_MAX  # type: ignore[operator]
    return kind is int


def auto_interval(times: Sequence[float], length: float) -> float:
    """Automatic bucket width: the median spacing of ``times``, else ``length / 100``."""
    if len(times) >= 2:
        gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
        if gaps:
            spacing = gaps[len(gaps) // 2]
            if spacing > 0 and length / spacing <= MAX_BUCKETS:
                return spacing
    return length / 100


def reduce_values(values: Sequence[Any], reducer: str) -> Any:
    """One bucket's value: ``values`` are that bucket's values in time order."""
    if reducer in ("first", "last"):
        seq = values if reducer == "first" else reversed(values)
        for value in seq:
            if is_finite_number(value):
                return value
        return None
    numbers = [float(v) for v in values if is_finite_number(v)]
    n = len(numbers)
    if reducer == "count":
        return n
    if n == 0:
        return None
    if reducer == "sum":
        return math.fsum(numbers)
    if reducer == "mean":
        return math.fsum(numbers) / n
    if reducer == "min":
        return min(numbers)
    if reducer == "max":
        return max(numbers)
    if reducer == "median":
        return statistics.median(numbers)
    if reducer == "std":
        return statistics.pstdev(numbers)
    if reducer == "sem":
        return statistics.stdev(numbers) / math.sqrt(n) if n >= 2 else None
    raise QueryError(f"unknown reducer {reducer!r}")


def _envelope(values: Sequence[Any], query: DataQuery) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if query.envelope >= 1 and query.reducer in ("first", "last", "mean", "median"):
        out["x_min"] = reduce_values(values, "min")
        out["x_max"] = reduce_values(values, "max")
    if query.envelope >= 2:
        if query.reducer != "count":
            out["x_n"] = reduce_values(values, "count")
        if query.reducer == "mean":
            out["x_err"] = reduce_values(values, "sem")
    return out


def envelope_keys(query: DataQuery) -> list[str]:
    """The envelope arrays a resampled reply carries for ``query``."""
    keys = []
    if query.envelope >= 1 and query.reducer in ("first", "last", "mean", "median"):
        keys += ["x_min", "x_max"]
    if query.envelope >= 2:
        if query.reducer != "count":
            keys.append("x_n")
        if query.reducer == "mean":
            keys.append("x_err")
    return keys


# ----------------------------------------------------------------------------------------------
# replies


def raw_reply(
    query: DataQuery, times: Sequence[float] | np.ndarray[Any, Any], values: Sequence[Any]
) -> dict[str, Any]:
    """Raw points (absolute ``times``, sorted) as a time-series reply: ``start`` is
    ``int(to - length)`` and ``t`` is relative to it, in milliseconds' precision."""
    start = int(query.begin)
    relative = np.round(np.asarray(times, dtype=np.float64) - start, 3)
    return {
        "start": start,
        "length": int(query.length),
        "t": relative.tolist(),
        "x": values if isinstance(values, list) else list(values),
    }


def resample_points(
    query: DataQuery,
    times: Sequence[float],
    values: Sequence[Any],
    prior: tuple[float, Any] | None = None,
) -> dict[str, Any]:
    """Resample sorted points of one channel in one pass (the reference computation that
    sources without SQL use, and that tests compare the SQL answers against)."""
    width = query.resample
    if width is None:
        raise QueryError("not a resampled query")
    if width == 0:
        lo = bisect.bisect_left(times, query.begin)
        hi = bisect.bisect_left(times, query.to)
        width = auto_interval(times[lo:hi], query.length)
    grid = make_grid(query.length, query.to, width)
    buckets: list[list[Any]] = [[] for _ in range(grid.count)]
    first = bisect.bisect_left(times, grid.start)
    last = bisect.bisect_left(times, grid.end)
    for i in range(first, last):
        k = grid.index(times[i])
        if 0 <= k < grid.count:
            buckets[k].append(values[i])
    return grid_reply(query, grid, buckets, prior)


def grid_reply(
    query: DataQuery,
    grid: Grid,
    buckets: Sequence[Sequence[Any]],
    prior: tuple[float, Any] | None = None,
) -> dict[str, Any]:
    """A resampled reply from each bucket's values (time order)."""
    x = [reduce_values(b, query.reducer) for b in buckets]
    reply: dict[str, Any] = {
        "start": grid.start,
        "length": grid.count * grid.interval,
        "t": grid.centres(),
        "x": x,
    }
    keys = envelope_keys(query)
    if keys:
        columns: dict[str, list[Any]] = {key: [] for key in keys}
        for bucket in buckets:
            env = _envelope(bucket, query)
            for key in keys:
                columns[key].append(env.get(key))
        reply.update(columns)
    if prior is not None and query.envelope == 0:
        prepend_prior(reply, prior)
    return reply


def prepend_prior(reply: dict[str, Any], prior: tuple[float, Any]) -> None:
    """Put one earlier point in front of a reply (negative ``t``)."""
    t, x = prior
    reply["t"] = [round(t - reply["start"], 3), *reply["t"]]
    reply["x"] = [x, *reply["x"]]


def wants_prior(query: DataQuery, reply: dict[str, Any] | None) -> bool:
    """Whether a prior point goes in front of this channel's reply."""
    if query.prior_data == 2:
        return True
    if query.prior_data == 1:
        return reply is None or not _has_value(reply)
    return False


def _has_value(reply: dict[str, Any]) -> bool:
    x = reply.get("x")
    if not isinstance(x, list):
        return True
    return any(v is not None for v in x)
