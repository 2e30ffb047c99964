"""Histograms (1-D and 2-D) and their statistics functors.

JSON shapes (the data model's)::

    {"bins": {"min": 0, "max": 4}, "counts": [1, 2, 0, 0]}
    {"xbins": {"min": 0, "max": 2}, "ybins": {"min": 0, "max": 3},
     "counts": [[0, 1], [2, 0], [0, 0]]}            # counts[y][x]

Counts stay integers while every weight is an integer and become floats otherwise.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._element import DataElement, is_sequence, plain_number, real

__all__ = [
    "Histogram",
    "Histogram2d",
    "Histogram2dBasicStat",
    "HistogramBasicStat",
    "HistogramCountStat",
]


class _Axis:
    """Equal-width bins over ``[lo, hi)``."""

    __slots__ = ("hi", "lo", "nbins")

    def __init__(self, nbins: Any, lo: Any, hi: Any, what: str = "") -> None:
        if isinstance(nbins, bool) or not isinstance(nbins, numbers.Integral):
            raise TypeError(f"{what}nbins must be an integer, not {type(nbins).__name__}")
        if nbins < 1:
            raise ValueError(f"{what}nbins must be at least 1, not {nbins}")
        low = plain_number(lo, f"{what}range_min")
        high = plain_number(hi, f"{what}range_max")
        if low > high:
            low, high = high, low
        if low == high:
            raise ValueError(f"empty {what}range: range_min and range_max are both {low}")
        self.nbins = int(nbins)
        self.lo = low
        self.hi = high

    def bin(self, x: float) -> int | None:
        """The bin of ``x``; None below ``lo``, at or above ``hi``, or for NaN."""
        if not (self.lo <= x < self.hi):
            return None
        # multiplying first puts a value written as an edge (0.3 of 0..1 in 10 bins) on it
        k = int((x - self.lo) * self.nbins / (self.hi - self.lo))
        return min(k, self.nbins - 1)

    def edge(self, k: int) -> float:
        return self.lo + (self.hi - self.lo) * k / self.nbins

    def center(self, k: int) -> float:
        return self.lo + (self.hi - self.lo) * (k + 0.5) / self.nbins

    def to_json(self) -> dict[str, float]:
        return {"min": self.lo, "max": self.hi}


def _axis_from_json(obj: Mapping[str, Any], key: str, nbins: int) -> _Axis:
    bins = obj.get(key)
    if not isinstance(bins, Mapping) or "min" not in bins or "max" not in bins:
        raise ValueError(f'{key} must be {{"min": MIN, "max": MAX}}, not {bins!r}')
    if not real(bins["min"], f"{key}.min") < real(bins["max"], f"{key}.max"):
        raise ValueError(f"{key}.min must be below {key}.max: {bins!r}")
    return _Axis(nbins, bins["min"], bins["max"], f"{key}: ")


def _weight(value: Any) -> float:
    """A weight as given: integers stay integers so that counts stay integers."""
    if not isinstance(value, bool) and isinstance(value, numbers.Integral):
        return int(value)
    return real(value, "weight")


def _weights(weight: Any, n: int) -> list[float]:
    if is_sequence(weight):
        weights = [_weight(w) for w in weight]
        if len(weights) != n:
            raise ValueError(f"{len(weights)} weights for {n} values")
        return weights
    return [_weight(weight)] * n


def _bad(x: float, w: float) -> bool:
    return math.isnan(x) or not math.isfinite(w)


def _count(value: Any, what: str) -> float:
    if not isinstance(value, bool) and isinstance(value, numbers.Integral):
        return int(value)
    number = real(value, what)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, not {number}")
    return number


def _counts(value: Any, nbins: int | None, what: str) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be a non-empty list, not {value!r}")
    if nbins is not None and len(value) != nbins:
        raise ValueError(f"{what} has {len(value)} bins, expected {nbins}")
    return [_count(c, what) for c in value]


class Histogram(DataElement):
    """``Histogram(nbins, range_min, range_max)``: counts in equal bins over ``[min, max)``.

    ``fill(value, weight=1)`` takes a number or a sequence of numbers (and then a weight or a
    sequence of weights of the same length). A value below ``range_min`` adds its weight to
    ``underflow``, one at or above ``range_max`` to ``overflow`` (infinities included). NaN
    values and non-finite weights are counted in ``nan_count`` and fill nothing. A reversed
    range is swapped, as in SlowPy; an empty one (``min == max``) raises `ValueError`.
    """

    def __init__(self, nbins: int, range_min: float, range_max: float) -> None:
        super().__init__()
        self._axis = _Axis(nbins, range_min, range_max)
        self.counts: list[float] = [0] * self._axis.nbins
        self.underflow: float = 0
        self.overflow: float = 0
        self.nan_count = 0

    @property
    def nbins(self) -> int:
        return self._axis.nbins

    @property
    def range_min(self) -> float:
        return self._axis.lo

    @property
    def range_max(self) -> float:
        return self._axis.hi

    @property
    def bin_width(self) -> float:
        return (self._axis.hi - self._axis.lo) / self._axis.nbins

    def bin_of(self, value: float) -> int | None:
        """The bin index ``value`` falls in (None if it is out of range or NaN)."""
        return self._axis.bin(real(value, "value"))

    def edges(self) -> list[float]:
        """The ``nbins + 1`` bin edges."""
        return [self._axis.edge(k) for k in range(self.nbins + 1)]

    def centers(self) -> list[float]:
        """The ``nbins`` bin centres."""
        return [self._axis.center(k) for k in range(self.nbins)]

    def fill(self, value: float | Sequence[float], weight: float | Sequence[float] = 1) -> None:
        """Add ``weight`` to the bin of ``value`` (or of every value of a sequence)."""
        if is_sequence(value):
            values = [real(v, "value") for v in value]
            pairs = list(zip(values, _weights(weight, len(values)), strict=True))
        else:
            pairs = [(real(value, "value"), _weight(weight))]
        for x, w in pairs:
            self._fill_one(x, w)

    def _fill_one(self, x: float, w: float) -> None:
        if _bad(x, w):
            self.nan_count += 1
            return
        k = self._axis.bin(x)
        if k is not None:
            self.counts[k] += w
        elif x < self._axis.lo:
            self.underflow += w
        else:
            self.overflow += w

    def clear(self) -> None:
        super().clear()
        self.counts = [0] * self.nbins
        self.underflow = 0
        self.overflow = 0
        self.nan_count = 0

    def rebin(
        self, nbins: int, range_min: float | None = None, range_max: float | None = None
    ) -> None:
        """Change the binning, sharing each old bin's count in proportion to the overlap.

        Without a range the present one is kept (so ``rebin(n // 2)`` merges pairs of bins
        exactly). Counts that fall outside a new, narrower range move to underflow/overflow.
        (SlowPy redistributes by random sampling instead.)
        """
        old = self._axis
        new = _Axis(
            nbins,
            old.lo if range_min is None else range_min,
            old.hi if range_max is None else range_max,
        )
        counts: list[float] = [0] * new.nbins
        for k, c in enumerate(self.counts):
            if c == 0:
                continue
            a, b = old.edge(k), old.edge(k + 1)
            if a < new.lo:
                self.underflow += _share(c, (min(b, new.lo) - a) / (b - a))
            if b > new.hi:
                self.overflow += _share(c, (b - max(a, new.hi)) / (b - a))
            low, high = max(a, new.lo), min(b, new.hi)
            if low >= high:
                continue
            first = int((low - new.lo) * new.nbins / (new.hi - new.lo))
            for j in range(max(first, 0), new.nbins):
                left, right = new.edge(j), new.edge(j + 1)
                if left >= high:
                    break
                overlap = min(high, right) - max(low, left)
                if overlap > 0:
                    counts[j] += _share(c, overlap / (b - a))
        self._axis = new
        self.counts = counts

    def _content(self) -> dict[str, Any]:
        return {"bins": self._axis.to_json(), "counts": list(self.counts)}

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> Histogram:
        """A histogram from ``{"bins": {"min", "max"}, "counts": [...]}``."""
        counts = _counts(record.get("counts"), None, "counts")
        axis = _axis_from_json(record, "bins", len(counts))
        hist = cls(axis.nbins, axis.lo, axis.hi)
        hist.counts = counts
        return hist


def _share(count: float, fraction: float) -> float:
    if math.isclose(fraction, 1.0, rel_tol=1e-9):
        return count  # a whole bin moves: an integer count stays an integer
    return count * fraction


class Histogram2d(DataElement):
    """``Histogram2d(xnbins, xmin, xmax, ynbins, ymin, ymax)``; ``counts[y][x]``.

    ``fill(x, y, weight=1)`` takes numbers or two sequences of the same length. An entry
    outside either range adds its weight to ``outliers``; NaN coordinates and non-finite
    weights are counted in ``nan_count``.
    """

    def __init__(
        self,
        xnbins: int,
        xrange_min: float,
        xrange_max: float,
        ynbins: int,
        yrange_min: float,
        yrange_max: float,
    ) -> None:
        super().__init__()
        self._xaxis = _Axis(xnbins, xrange_min, xrange_max, "x")
        self._yaxis = _Axis(ynbins, yrange_min, yrange_max, "y")
        self.counts: list[list[float]] = self._zeros()
        self.outliers: float = 0
        self.nan_count = 0

    def _zeros(self) -> list[list[float]]:
        return [[0] * self._xaxis.nbins for _ in range(self._yaxis.nbins)]

    @property
    def xnbins(self) -> int:
        return self._xaxis.nbins

    @property
    def ynbins(self) -> int:
        return self._yaxis.nbins

    @property
    def xrange(self) -> tuple[float, float]:
        return (self._xaxis.lo, self._xaxis.hi)

    @property
    def yrange(self) -> tuple[float, float]:
        return (self._yaxis.lo, self._yaxis.hi)

    def xcenters(self) -> list[float]:
        return [self._xaxis.center(k) for k in range(self.xnbins)]

    def ycenters(self) -> list[float]:
        return [self._yaxis.center(k) for k in range(self.ynbins)]

    def fill(
        self,
        x: float | Sequence[float],
        y: float | Sequence[float],
        weight: float | Sequence[float] = 1,
    ) -> None:
        """Add ``weight`` at ``(x, y)`` (or at every pair of two equal-length sequences)."""
        if is_sequence(x) or is_sequence(y):
            if not (is_sequence(x) and is_sequence(y)):
                raise TypeError("x and y must both be numbers or both be sequences")
            xs = [real(v, "x") for v in x]
            ys = [real(v, "y") for v in y]
            if len(xs) != len(ys):
                raise ValueError(f"x has {len(xs)} values but y has {len(ys)}")
            entries = list(zip(xs, ys, _weights(weight, len(xs)), strict=True))
        else:
            entries = [(real(x, "x"), real(y, "y"), _weight(weight))]
        for xv, yv, w in entries:
            if _bad(xv, w) or math.isnan(yv):
                self.nan_count += 1
                continue
            kx, ky = self._xaxis.bin(xv), self._yaxis.bin(yv)
            if kx is None or ky is None:
                self.outliers += w
            else:
                self.counts[ky][kx] += w

    def clear(self) -> None:
        super().clear()
        self.counts = self._zeros()
        self.outliers = 0
        self.nan_count = 0

    def _content(self) -> dict[str, Any]:
        return {
            "xbins": self._xaxis.to_json(),
            "ybins": self._yaxis.to_json(),
            "counts": [list(row) for row in self.counts],
        }

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> Histogram2d:
        """A 2-D histogram from ``{"xbins", "ybins", "counts": [[...], ...]}``."""
        rows = record.get("counts")
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], list):
            raise ValueError(f"counts must be a non-empty list of rows, not {rows!r}")
        counts = [_counts(row, len(rows[0]), f"counts[{k}]") for k, row in enumerate(rows)]
        xaxis = _axis_from_json(record, "xbins", len(counts[0]))
        yaxis = _axis_from_json(record, "ybins", len(counts))
        hist = cls(xaxis.nbins, xaxis.lo, xaxis.hi, yaxis.nbins, yaxis.lo, yaxis.hi)
        hist.counts = counts
        return hist


# ---------------------------------------------------------------------------------------------
# statistics functors: element.add_stat(HistogramBasicStat()) puts a stats box on the plot

_N = ("n", "counts", "entries")
_MEAN = ("m", "mean", "average")
_SD = ("sd", "std", "stdev", "rms", "sigma")


def _kind(field: Any, kinds: Mapping[str, Sequence[str]], functor: str) -> str:
    if not isinstance(field, str):
        raise TypeError(f"{functor} fields are strings, not {type(field).__name__}")
    for kind, aliases in kinds.items():
        if field.lower() in aliases:
            return kind
    accepted = ", ".join(a for aliases in kinds.values() for a in aliases)
    raise ValueError(f"{functor}: unknown field {field!r} (accepted: {accepted})")


def _rounded(value: float | None, ndigits: int | None) -> float | None:
    if value is None or ndigits is None or isinstance(value, int):
        return value
    return round(value, ndigits)


def _moments(pairs: Iterable[tuple[float, float]]) -> tuple[float | None, float | None]:
    """(mean, standard deviation) of (position, weight) pairs; Nones without weight."""
    points = [(x, w) for x, w in pairs if w != 0]
    n = sum(w for _, w in points)
    if n <= 0:
        return None, None
    mean = sum(w * x for x, w in points) / n
    variance = sum(w * (x - mean) ** 2 for x, w in points) / n  # two passes: no cancellation
    return mean, math.sqrt(max(variance, 0.0))


class HistogramBasicStat:
    """Statistics of a `Histogram`: ``hist.add_stat(HistogramBasicStat())``.

    ``fields`` (case-insensitive; the key in the stats box is the name as written):
    ``n``/``counts``/``entries`` (sum of the in-range counts), ``underflow``, ``overflow``,
    ``outliers`` (underflow + overflow), ``m``/``mean``/``average`` and
    ``sd``/``std``/``stdev``/``rms``/``sigma`` (of the bin centres, weighted by the counts;
    ``None`` when the histogram is empty). Floats are rounded to ``ndigits`` decimals
    (``ndigits=None``: not rounded). An unknown field raises `ValueError` at once.
    """

    _KINDS: Mapping[str, Sequence[str]] = {
        "n": _N,
        "underflow": ("underflow",),
        "overflow": ("overflow",),
        "outliers": ("outliers",),
        "mean": _MEAN,
        "sd": _SD,
    }

    def __init__(
        self,
        fields: Sequence[str] = ("n", "underflow", "overflow", "mean", "stdev"),
        ndigits: int | None = 4,
    ) -> None:
        self._fields = [(f, _kind(f, self._KINDS, "HistogramBasicStat")) for f in fields]
        self.ndigits = ndigits

    def __call__(self, hist: Histogram) -> dict[str, Any]:
        if not isinstance(hist, Histogram):
            raise TypeError(f"HistogramBasicStat is for a Histogram, not {type(hist).__name__}")
        mean, sd = _moments(zip(hist.centers(), hist.counts, strict=True))
        values: dict[str, float | None] = {
            "n": sum(hist.counts),
            "underflow": hist.underflow,
            "overflow": hist.overflow,
            "outliers": hist.underflow + hist.overflow,
            "mean": mean,
            "sd": sd,
        }
        return {field: _rounded(values[kind], self.ndigits) for field, kind in self._fields}


class HistogramCountStat:
    """The counts between ``lower`` and ``upper``: ``{"Counts(lower,upper)": value}``.

    Partly covered bins contribute in proportion to the covered part (linear interpolation);
    the part of ``[lower, upper]`` outside the histogram's range adds nothing. The result is
    rounded to ``ndigits`` decimals (one, as in SlowPy).
    """

    def __init__(
        self, lower: float, upper: float, label: str | None = None, ndigits: int | None = 1
    ) -> None:
        low, high = real(lower, "lower"), real(upper, "upper")
        if not low <= high:
            raise ValueError(f"lower ({lower}) must not be above upper ({upper})")
        self.lower, self.upper = low, high
        self.label = label if label is not None else f"Counts({lower},{upper})"
        self.ndigits = ndigits

    def __call__(self, hist: Histogram) -> dict[str, Any]:
        if not isinstance(hist, Histogram):
            raise TypeError(f"HistogramCountStat is for a Histogram, not {type(hist).__name__}")
        total = 0.0
        edges = hist.edges()
        for k, c in enumerate(hist.counts):
            a, b = edges[k], edges[k + 1]
            overlap = min(b, self.upper) - max(a, self.lower)
            if overlap > 0:
                total += c * overlap / (b - a)
        return {self.label: _rounded(total, self.ndigits)}


class Histogram2dBasicStat:
    """Statistics of a `Histogram2d`.

    ``fields``: ``n``/``counts``/``entries``, ``outliers``/``outofrange``, a mean alias
    (gives ``x_<name>`` and ``y_<name>``), a standard-deviation alias (likewise).
    """

    _KINDS: Mapping[str, Sequence[str]] = {
        "n": _N,
        "outliers": ("outliers", "outofrange"),
        "mean": _MEAN,
        "sd": _SD,
    }

    def __init__(
        self,
        fields: Sequence[str] = ("n", "outliers", "mean", "stdev"),
        ndigits: int | None = 4,
    ) -> None:
        self._fields = [(f, _kind(f, self._KINDS, "Histogram2dBasicStat")) for f in fields]
        self.ndigits = ndigits

    def __call__(self, hist: Histogram2d) -> dict[str, Any]:
        if not isinstance(hist, Histogram2d):
            raise TypeError(f"Histogram2dBasicStat is for a Histogram2d, not {type(hist).__name__}")
        xc, yc = hist.xcenters(), hist.ycenters()
        xmean, xsd = _moments((xc[kx], c) for row in hist.counts for kx, c in enumerate(row))
        ymean, ysd = _moments((yc[ky], c) for ky, row in enumerate(hist.counts) for c in row)
        result: dict[str, Any] = {}
        for field, kind in self._fields:
            if kind == "n":
                result[field] = _rounded(sum(sum(row) for row in hist.counts), self.ndigits)
            elif kind == "outliers":
                result[field] = _rounded(hist.outliers, self.ndigits)
            else:
                x, y = (xmean, ymean) if kind == "mean" else (xsd, ysd)
                result["x_" + field] = _rounded(x, self.ndigits)
                result["y_" + field] = _rounded(y, self.ndigits)
        return result
