"""Graphs (points with optional z and errors) and their statistics functor.

JSON shape (the data model's)::

    {"labels": ["x", "y"], "x": [1.0, 2.0], "y": [10.0, 20.0]}

``z``, ``x_err``, ``y_err`` and ``z_err`` are included only when some point has them; a point
without one has ``null`` there, as has a NaN coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._element import DataElement, is_sequence, real

__all__ = ["Graph", "GraphYStat"]

_OPTIONAL = ("z", "x_err", "y_err", "z_err")

Number = float | int


def _optional(value: Any, what: str) -> float | None:
    return None if value is None else real(value, what)


def _column(value: Any, n: int, what: str, required: bool) -> list[float | None]:
    if value is None:
        if required:
            raise TypeError(f"{what} is required")
        return [None] * n
    if not is_sequence(value):
        raise TypeError(f"{what} must be a sequence like x, not {type(value).__name__}")
    if len(value) != n:
        raise ValueError(f"{what} has {len(value)} values but x has {n}")
    return [_optional(v, what) for v in value]


class Graph(DataElement):
    """``Graph(labels=['x', 'y'])``: a list of points ``(x, y[, z])`` with optional errors.

    ``add_point(x, y, z=None, x_err=None, y_err=None, z_err=None)`` adds one point from
    numbers, or many from sequences of equal length (a length mismatch raises `ValueError`
    and adds nothing). ``fill()`` is the same method, under the name the seed documents use.
    The columns are the public lists ``x``, ``y``, ``z``, ``x_err``, ``y_err``, ``z_err``
    (``None`` where a point has no such value).
    """

    def __init__(self, labels: Sequence[str] = ("x", "y")) -> None:
        super().__init__()
        if isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
            raise TypeError(f"labels must be a list of strings, not {labels!r}")
        if not 2 <= len(labels) <= 3:
            raise ValueError(f"labels are [x, y] or [x, y, z], not {list(labels)!r}")
        self.labels = list(labels)
        self.x: list[float] = []
        self.y: list[float] = []
        self.z: list[float | None] = []
        self.x_err: list[float | None] = []
        self.y_err: list[float | None] = []
        self.z_err: list[float | None] = []

    def __len__(self) -> int:
        return len(self.y)

    def add_point(
        self,
        x: Number | Sequence[Number],
        y: Number | Sequence[Number],
        z: Number | Sequence[Number | None] | None = None,
        x_err: Number | Sequence[Number | None] | None = None,
        y_err: Number | Sequence[Number | None] | None = None,
        z_err: Number | Sequence[Number | None] | None = None,
    ) -> None:
        """Add a point (numbers) or points (equal-length sequences)."""
        optional = {"z": z, "x_err": x_err, "y_err": y_err, "z_err": z_err}
        if is_sequence(x) or is_sequence(y):
            if not (is_sequence(x) and is_sequence(y)):
                raise TypeError("x and y must both be numbers or both be sequences")
            xs = [real(v, "x") for v in x]
            if len(y) != len(xs):
                raise ValueError(f"y has {len(y)} values but x has {len(xs)}")
            ys = [real(v, "y") for v in y]
            extra = {k: _column(v, len(xs), k, required=False) for k, v in optional.items()}
        else:
            xs, ys = [real(x, "x")], [real(y, "y")]
            extra = {}
            for key, value in optional.items():
                if is_sequence(value):
                    raise TypeError(f"{key} is a sequence but x and y are numbers")
                extra[key] = [_optional(value, key)]
        self.x.extend(xs)
        self.y.extend(ys)
        self.z.extend(extra["z"])
        self.x_err.extend(extra["x_err"])
        self.y_err.extend(extra["y_err"])
        self.z_err.extend(extra["z_err"])

    fill = add_point

    def clear(self) -> None:
        super().clear()
        for column in (self.x, self.y, self.z, self.x_err, self.y_err, self.z_err):
            column.clear()

    def _content(self) -> dict[str, Any]:
        record: dict[str, Any] = {"labels": list(self.labels), "x": list(self.x), "y": list(self.y)}
        for key in _OPTIONAL:
            column: list[float | None] = getattr(self, key)
            if any(v is not None for v in column):
                record[key] = list(column)
        return record

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> Graph:
        """A graph from ``{"labels"?, "x"?, "y", "z"?, "x_err"?, ...}``.

        A missing ``x`` means ``0, 1, ..., n-1``; ``null`` in ``x`` or ``y`` becomes NaN.
        """
        labels = record.get("labels", ["x", "y"])
        graph = cls(labels)
        y = record.get("y")
        if not isinstance(y, list):
            raise ValueError(f"y must be a list, not {y!r}")
        n = len(y)
        x = record.get("x", list(range(n)))
        if not isinstance(x, list) or len(x) != n:
            raise ValueError(f"x must be a list as long as y ({n}), not {x!r}")
        graph.x = [math.nan if v is None else real(v, "x") for v in x]
        graph.y = [math.nan if v is None else real(v, "y") for v in y]
        for key in _OPTIONAL:
            setattr(graph, key, _column(record.get(key), n, key, required=False))
        return graph


class GraphYStat:
    """Statistics of a `Graph`'s y values: ``graph.add_stat(GraphYStat())``.

    ``fields`` (case-insensitive, an optional ``y-`` prefix is ignored; the key in the stats
    box is the name as written): ``n``/``counts``/``entries`` (number of points),
    ``m``/``mean``/``average``, ``sd``/``std``/``stdev``/``rms``/``sigma`` (population standard
    deviation). NaN y values are left out of the mean and deviation; with no finite value they
    are ``None``.
    """

    _KINDS: Mapping[str, Sequence[str]] = {
        "n": ("n", "counts", "entries"),
        "mean": ("m", "mean", "average"),
        "sd": ("sd", "std", "stdev", "rms", "sigma"),
    }

    def __init__(
        self, fields: Sequence[str] = ("n", "y-mean", "y-stdev"), ndigits: int | None = 4
    ) -> None:
        self._fields: list[tuple[str, str]] = []
        for field in fields:
            if not isinstance(field, str):
                raise TypeError(f"GraphYStat fields are strings, not {type(field).__name__}")
            name = field[2:] if field[:2].lower() == "y-" else field
            kind = next((k for k, a in self._KINDS.items() if name.lower() in a), None)
            if kind is None:
                accepted = ", ".join(a for aliases in self._KINDS.values() for a in aliases)
                raise ValueError(f"GraphYStat: unknown field {field!r} (accepted: {accepted})")
            self._fields.append((field, kind))
        self.ndigits = ndigits

    def __call__(self, graph: Graph) -> dict[str, Any]:
        if not isinstance(graph, Graph):
            raise TypeError(f"GraphYStat is for a Graph, not {type(graph).__name__}")
        values = [v for v in graph.y if math.isfinite(v)]
        mean = sd = None
        if values:
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        result: dict[str, Any] = {}
        for field, kind in self._fields:
            if kind == "n":
                result[field] = len(graph.y)
            else:
                value = mean if kind == "mean" else sd
                if value is not None and self.ndigits is not None:
                    value = round(value, self.ndigits)
                result[field] = value
        return result
