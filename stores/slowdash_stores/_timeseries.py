"""A time series: the per-channel reply object of the data model, and what stores write."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._element import DataElement, FrozenJSON, dumps, finite, plain_number, to_json_value

__all__ = ["TimeSeries"]

_RESERVED = frozenset({"start", "length", "t"})


def _value(value: Any, field: str) -> Any:
    """A value as kept in a series: scalars as they are, objects and dicts frozen."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, DataElement | Mapping):
        return FrozenJSON(value)
    if isinstance(value, list | tuple):
        raise TypeError(
            f"field {field!r}: a time-series value is a number, string, bool, None, dict or "
            f"data object, not a {type(value).__name__}"
        )
    converted: Any = to_json_value(value)  # numbers of other libraries; others: TypeError
    return converted


class TimeSeries:
    """``TimeSeries(*, fields=None, start=0, length=None, name=None)``: values at times.

    ``write(values, t=None)`` adds one point: ``values`` is a dict by field name, a list by
    position (missing ones are ``None``), or a single value for the first field; ``t`` is the
    time in seconds *relative to* ``start`` (``None``: now, i.e. ``time.time() - start``).
    A value is a number, string, bool, ``None``, a dict, or a data object (`Histogram`...);
    objects and dicts are frozen when written, so later changes to them do not show.

    ``to_json()`` is the data model's per-channel reply object::

        {"start": 1700000000, "length": 60, "t": [10.0, 20.0], "x": [1.5, null]}

    ``length`` is the given one, or ``max(t) + 1`` (0 when empty), as in SlowPy.

    **Interface for stores** (stable; `DataStore_*` classes rely on exactly this):

    - ``ts.name`` — ``str | None``: the channel name when the series was named
      (``Trend.time_series('rate')``, ``TimeSeries(name=...)``). A store writes a named series
      under ``tag`` if one is given to ``append()``, else under ``name``.
    - ``ts.start`` — float (an int if given as one): UNIX seconds that ``t`` is relative to.
    - ``ts.t`` — ``list[float]``: the time offsets from ``start``, in the order written.
    - ``ts.fields`` — ``dict[str, list]``: field name → values, each list as long as ``t``;
      ``None`` where a point has no value for the field. Field order is the order given.
    - ``ts.points()`` — iterator of ``(timestamp, {field: value})`` with ``timestamp =
      start + t[i]`` (UNIX seconds, float); only fields that have a value (not ``None``, not
      NaN) are in the dict, in field order, and points without any value are skipped. A value
      is ``bool``, ``int``, ``float``, ``str`` or a `DataElement` (write ``str(value)``: its
      JSON text).
    - ``len(ts)`` — number of points (including those without values).
    """

    def __init__(
        self,
        *,
        fields: Sequence[str] | None = None,
        start: float = 0,
        length: float | None = None,
        name: str | None = None,
    ) -> None:
        names = ["x"] if fields is None else list(fields)
        if isinstance(fields, str) or not names:
            raise TypeError(f"fields must be a non-empty list of names, not {fields!r}")
        for field in names:
            if not isinstance(field, str) or not field:
                raise TypeError(f"field names are non-empty strings, not {field!r}")
            if field in _RESERVED:
                raise ValueError(f"{field!r} cannot be a field name (it is a key of the reply)")
        if len(set(names)) != len(names):
            raise ValueError(f"field names must be unique: {names!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty string or None, not {name!r}")
        self.name = name
        self.start: float = plain_number(start, "start")
        self.length = length
        self.t: list[float] = []
        self.fields: dict[str, list[Any]] = {field: [] for field in names}

    @property
    def length(self) -> float:
        """The window length in seconds: as given, else ``max(t) + 1`` (0 when empty)."""
        if self._length is not None:
            return self._length
        return max(self.t) + 1 if self.t else 0

    @length.setter
    def length(self, value: float | None) -> None:
        if value is not None:
            value = plain_number(value, "length")
            if value < 0:
                raise ValueError(f"length must not be negative, not {value}")
        self._length = value

    def __len__(self) -> int:
        return len(self.t)

    def write(self, values: Any, t: float | None = None) -> None:
        """Add one point (see the class docstring for ``values`` and ``t``)."""
        names = list(self.fields)
        if isinstance(values, Mapping) and not isinstance(values, DataElement):
            unknown = [k for k in values if k not in self.fields]
            if unknown:
                raise ValueError(f"unknown fields {unknown!r} (fields are {names!r})")
            row = [values.get(field) for field in names]
        elif isinstance(values, list | tuple):
            if len(values) > len(names):
                raise ValueError(f"{len(values)} values for {len(names)} fields {names!r}")
            row = [*values, *([None] * (len(names) - len(values)))]
        else:
            row = [values, *([None] * (len(names) - 1))]
        kept = [_value(v, field) for v, field in zip(row, names, strict=True)]
        offset = time.time() - self.start if t is None else finite(t, "t")
        self.t.append(offset)
        for field, value in zip(names, kept, strict=True):
            self.fields[field].append(value)

    def points(self) -> Iterator[tuple[float, dict[str, Any]]]:
        """``(start + t, {field: value})`` for each point that has a value (see above)."""
        columns = list(self.fields.items())
        for i, offset in enumerate(self.t):
            values = {}
            for field, column in columns:
                value = column[i]
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                values[field] = value
            if values:
                yield self.start + offset, values

    def to_json(self) -> dict[str, Any]:
        """The per-channel reply object: ``{"start", "length", "t", FIELD: [...], ...}``."""
        record: dict[str, Any] = {"start": self.start, "length": self.length, "t": list(self.t)}
        for field, column in self.fields.items():
            record[field] = [to_json_value(v) for v in column]
        result: dict[str, Any] = to_json_value(record)
        return result

    def __str__(self) -> str:
        return dumps(self.to_json())

    def __repr__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        return f"<TimeSeries{named} {len(self.t)} points, fields {list(self.fields)!r}>"
