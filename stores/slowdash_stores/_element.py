"""The base of the data objects: attributes, statistics, and JSON in the dashboard's data model.

Every data object (`Histogram`, `Graph`, `Table`, ...) is a `DataElement`. Its `to_json()` is
one value of the data model (a dict with `bins`, `y`, `table`, ...), and `str(element)` is that
value as compact JSON text: this is what the stores write into the database and what the
dashboard reads back.

JSON has no NaN or infinity. Wherever a non-finite float would appear (an empty bin's mean, a
NaN the user put in a graph, a statistic of nothing), `to_json()` gives `None`, which is JSON
`null`, the data model's "no value".
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, TypeGuard, cast, overload

__all__ = ["DataElement"]

StatFunctor = Callable[[Any], Mapping[str, Any]]

_MAX_DEPTH = 64


class DataElement:
    """A value of the data model that carries attributes (`_attr`) and statistics (`_stat`).

    - ``add_attr(key, value)``: an attribute, sent as ``"_attr": {key: value}`` (the dashboard
      uses e.g. ``title``, ``xtitle``, ``ytitle``, ``color``).
    - ``add_stat(key, value)``: a fixed entry of the statistics box (``"_stat"``).
    - ``add_stat(functor)``: ``functor(element)`` returns a dict of statistics; it is called at
      every ``to_json()``, so the box follows the data (`HistogramBasicStat` and friends).
    - ``clear()`` empties the data and the fixed statistics; attributes and functors stay.
    - ``to_json()`` gives a fresh dict (nothing in it is shared with the object); ``str()``
      gives it as compact JSON text.
    - ``DataElement.from_json(obj)`` rebuilds a `Histogram`, `Histogram2d`, `Graph`, `Table` or
      `Tree` from its dict or its JSON text, according to the shape.
    """

    def __init__(self) -> None:
        self._attr_values: dict[str, Any] = {}
        self._stat_values: dict[str, Any] = {}
        self._stat_functors: list[StatFunctor] = []

    # -- attributes and statistics ------------------------------------------------------------

    def add_attr(self, key: str, value: Any) -> None:
        """Set the attribute ``key`` (a JSON value; sent under ``_attr``)."""
        self._attr_values[_check_key(key)] = to_json_value(value)

    @overload
    def add_stat(self, key: str, value: Any) -> None: ...
    @overload
    def add_stat(self, key: StatFunctor) -> None: ...

    def add_stat(self, key: str | StatFunctor, value: Any = None) -> None:
        """``add_stat(key, value)`` sets one statistic; ``add_stat(functor)`` adds a functor."""
        if isinstance(key, str):
            self._stat_values[key] = to_json_value(value)
        elif callable(key):
            self._stat_functors.append(key)
        else:
            raise TypeError(f"add_stat() takes (key, value) or a functor, not {type(key).__name__}")

    def statistics(self) -> dict[str, Any]:
        """The statistics as they would be sent now (fixed ones first, then the functors')."""
        stats = dict(self._stat_values)
        for functor in self._stat_functors:
            result = functor(self)
            if not isinstance(result, Mapping):
                raise TypeError(
                    f"statistics functor {functor!r} returned {type(result).__name__}, not a dict"
                )
            for key, item in result.items():
                stats[_check_key(key)] = to_json_value(item)
        return stats

    def clear(self) -> None:
        """Empty the data and the fixed statistics (attributes and functors stay)."""
        self._stat_values.clear()

    # -- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """This object as a value of the data model (``_attr`` and ``_stat`` only when set)."""
        record: dict[str, Any] = {}
        attrs = self._attributes()
        if attrs:
            record["_attr"] = attrs
        stats = self.statistics()
        if stats:
            record["_stat"] = stats
        record.update(self._content())
        result: dict[str, Any] = to_json_value(record)
        return result

    def __str__(self) -> str:
        return dumps(self.to_json())

    def _attributes(self) -> dict[str, Any]:
        return dict(self._attr_values)

    def _content(self) -> dict[str, Any]:
        """The object's own keys (``bins``, ``y``...); subclasses define it.

        A subclass written in SlowPy's style, overriding ``to_json()`` as
        ``{**super().to_json(), ...}``, works too: the base then gives ``_attr``/``_stat``.
        """
        return {}

    def _restore_decorations(self, obj: Mapping[str, Any]) -> None:
        """Take ``_attr`` and ``_stat`` of a dict made by `to_json()` (for ``from_json``)."""
        for name, target in (("_attr", self._attr_values), ("_stat", self._stat_values)):
            values = obj.get(name)
            if values is None:
                continue
            if not isinstance(values, Mapping):
                raise ValueError(f"{name} must be an object, not {type(values).__name__}")
            for key, item in values.items():
                target[_check_key(key)] = to_json_value(item)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | str | bytes) -> Self:
        """Rebuild a data object from its dict or JSON text.

        Called on `DataElement`, the class is chosen by the shape: ``ybins`` (or ``xbins``
        with ``counts``) ⇒ `Histogram2d`, ``bins`` ⇒ `Histogram`, ``y`` ⇒ `Graph`,
        ``table`` ⇒ `Table`, ``tree`` ⇒ `Tree`. Called on a subclass, the shape must be that
        class's. A malformed value raises `ValueError`; ``_attr`` and ``_stat`` are kept (the
        statistics as fixed values).
        """
        record = as_mapping(obj)
        target: type[DataElement] = _class_for(record) if cls is DataElement else cls
        try:
            element = target._from_record(record)
            element._restore_decorations(record)
        except TypeError as exc:
            raise ValueError(f"not a valid {target.__name__}: {exc}") from None
        return cast(Self, element)

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> DataElement:
        raise NotImplementedError(f"a {cls.__name__} cannot be rebuilt from JSON")


def _class_for(record: Mapping[str, Any]) -> type[DataElement]:
    # the subclasses live in modules that import this one
    from ._graph import Graph
    from ._histogram import Histogram, Histogram2d
    from ._table import Table, Tree

    if "ybins" in record or ("xbins" in record and "counts" in record):
        return Histogram2d
    if "bins" in record:
        return Histogram
    if "y" in record:
        return Graph
    if "table" in record:
        return Table
    if "tree" in record:
        return Tree
    keys = ", ".join(sorted(str(k) for k in record)) or "none"
    raise ValueError(f"not a data object (no bins, ybins, y, table or tree; keys: {keys})")


class FrozenJSON(DataElement):
    """A JSON value frozen at one moment, so that later changes of its source do not show.

    `TimeSeries.write()` keeps data objects and dicts in this form: ``str()`` is the JSON text
    a store writes, ``to_json()`` a fresh copy of the value.
    """

    def __init__(self, value: DataElement | Mapping[str, Any]) -> None:
        super().__init__()
        self._value: dict[str, Any] = to_json_value(value)

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = to_json_value(self._value)
        return result


# ---------------------------------------------------------------------------------------------
# helpers shared by the data objects


def dumps(value: Any) -> str:
    """Compact JSON text of a value that `to_json_value` has made JSON-safe."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def as_mapping(obj: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    """A dict from a dict or from JSON text (`ValueError` if it is neither)."""
    if isinstance(obj, str | bytes | bytearray):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise ValueError(f"not JSON text: {exc}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"a data object is a JSON object, not {type(obj).__name__}")
    return obj


def to_json_value(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` that ``json.dumps(allow_nan=False)`` accepts.

    Non-finite floats become ``None``; tuples become lists; numbers of other libraries (numpy
    scalars) become ``int``/``float``; data objects become their `to_json()`. Anything else
    (sets, datetimes, non-string keys) raises `TypeError`.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return int(value)
    if _depth > _MAX_DEPTH:
        raise ValueError(f"value nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):
        return {_check_key(k): to_json_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v, _depth + 1) for v in value]
    if isinstance(value, DataElement):
        return value.to_json()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    raise TypeError(f"{type(value).__name__} is not a JSON value: {value!r}")


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"keys must be strings, not {type(key).__name__} ({key!r})")
    return key


def real(value: Any, what: str) -> float:
    """``value`` as a float, for a parameter that must be a real number (`TypeError` if not)."""
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{what} must be a number, not {type(value).__name__} ({value!r})")


def finite(value: Any, what: str) -> float:
    """``value`` as a finite float (`TypeError` for non-numbers, `ValueError` for NaN/inf)."""
    number = real(value, what)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, not {number}")
    return number


def plain_number(value: Any, what: str) -> float:
    """A finite range bound kept as given when it is an integer (``{"min": 0, "max": 4}``)."""
    number = finite(value, what)
    if isinstance(value, numbers.Integral):
        return int(value)
    return number


def is_sequence(value: object) -> TypeGuard[Sequence[Any]]:
    """True for lists, tuples, arrays...: sized iterables that are not text."""
    return (
        hasattr(value, "__len__")
        and hasattr(value, "__iter__")
        and not isinstance(value, str | bytes | bytearray | Mapping)
    )
