"""Exported task values: adapters that read and write them, and their JSON shape.

What a task exports (``_export()`` pairs, ``ControlSystem.export(obj, name)``) becomes an
`Export`: a control node, a data object with ``to_json()``, a dict, a dataclass instance or
any object with attributes. Reading and writing go through the owning task's `Access`, so that
user code (a node's overridden sync ``get()``/``set()``, a ``to_json()``) runs in a worker
thread inside the task's stop scope, never on the Trio thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import Callable
from typing import Any, Protocol

from slowdash_controls import ControlNode, NodeAccessError, ValueNode

from ._taskfunc import convert, convert_like
from ._usermodule import json_problem

SPECIAL_KEYS = ("table", "tree", "ybins", "bins", "y")
_TYPES = {
    "table": "table",
    "tree": "tree",
    "ybins": "histogram2d",
    "bins": "histogram",
    "y": "graph",
}


class Access(Protocol):
    """How an export's user code is run: the owner's context, and its worker threads."""

    def enter(self) -> contextlib.AbstractContextManager[Any]: ...

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any: ...


def _overrides(node: ControlNode, name: str) -> bool:
    return getattr(type(node), name) is not getattr(ControlNode, name)


class Export:
    """One exported object under a channel name."""

    readonly = False

    def __init__(self, name: str, obj: Any, access: Access, owner: str | None) -> None:
        self.name = name
        self.obj = obj
        self.access = access
        self.owner = owner  # task name, or None for an export made outside any task

    async def read(self) -> Any:
        """The current value (Python, not yet shaped)."""
        return await self.access.in_thread(_plain_copy, self.obj)

    async def write(self, value: Any) -> None:
        """Set from the browser; ValueError/TypeError when the value does not fit."""
        raise NodeAccessError(f"channel {self.name} is read-only")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class NodeExport(Export):
    """A control node: ``aio_get``/``aio_set``, or the user's sync ``get``/``set`` in a thread."""

    async def read(self) -> Any:
        node: ControlNode = self.obj
        if _overrides(node, "get"):
            return await self.access.in_thread(node.get)
        with self.access.enter():
            return await node.aio_get()

    async def write(self, value: Any) -> None:
        node: ControlNode = self.obj
        if isinstance(node, ValueNode):
            value = convert_like(value, await node.aio_get())
        if _overrides(node, "set"):
            await self.access.in_thread(node.set, value)
        else:
            with self.access.enter():
                await node.aio_set(value)


class JsonExport(Export):
    """A data object (histogram, graph, time series...): ``to_json()``, read-only."""

    readonly = True

    async def read(self) -> Any:
        return await self.access.in_thread(self.obj.to_json)


class DictExport(Export):
    """A dict: read as a tree; written key by key, each converted to its present type."""

    async def read(self) -> Any:
        return dict(self.obj)

    async def write(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"channel {self.name}: expected an object, got {value!r:.60}")
        target: dict[str, Any] = self.obj
        update = {key: convert_like(item, target.get(key)) for key, item in value.items()}
        target.update(update)


class DataclassExport(Export):
    """A dataclass instance: read as a tree; fields written converted by their annotation."""

    async def read(self) -> Any:
        return await self.access.in_thread(dataclasses.asdict, self.obj)

    async def write(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"channel {self.name}: expected an object, got {value!r:.60}")
        try:
            hints = typing.get_type_hints(type(self.obj))
        except Exception:  # unresolvable annotations: use them as written
            hints = {}
        fields = {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(self.obj)}
        unknown = [key for key in value if key not in fields]
        if unknown:
            raise ValueError(f"channel {self.name}: no field {unknown[0]!r}")
        converted = {key: convert(item, fields[key]) for key, item in value.items()}
        for key, item in converted.items():
            setattr(self.obj, key, item)


class ObjectExport(Export):
    """Any other object: its public attributes as a tree; written with their present types."""

    async def write(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"channel {self.name}: expected an object, got {value!r:.60}")
        current = vars(self.obj)
        bad = [key for key in value if key.startswith("_") or key not in current]
        if bad:
            raise ValueError(f"channel {self.name}: no attribute {bad[0]!r}")
        converted = {key: convert_like(item, current[key]) for key, item in value.items()}
        for key, item in converted.items():
            setattr(self.obj, key, item)


def _plain_copy(obj: Any) -> dict[str, Any]:
    return {key: value for key, value in vars(obj).items() if not key.startswith("_")}


def make_export(name: str, obj: Any, access: Access, owner: str | None) -> Export:
    """The adapter for ``obj``; TypeError for what cannot be a channel."""
    if isinstance(obj, ControlNode):
        return NodeExport(name, obj, access, owner)
    if callable(getattr(obj, "to_json", None)) and not isinstance(obj, type):
        return JsonExport(name, obj, access, owner)
    if isinstance(obj, dict):
        return DictExport(name, obj, access, owner)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return DataclassExport(name, obj, access, owner)
    if hasattr(obj, "__dict__") and not isinstance(obj, type) and not callable(obj):
        return ObjectExport(name, obj, access, owner)
    raise TypeError(
        f"cannot export {type(obj).__name__} as channel {name!r}: export a control node "
        "(a ValueNode for a plain value), a data object, a dict or a dataclass"
    )


def shape(value: Any) -> Any:
    """A value as the data model shows it: scalars as they are, objects as trees."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if callable(getattr(value, "to_json", None)) and not isinstance(value, type):
        value = value.to_json()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        if not is_special(value) and not is_series(value):
            value = {"tree": value}
        return value if json_problem(value) is None else str(value)
    return str(value)


def is_special(value: dict[str, Any]) -> bool:
    return any(key in value for key in SPECIAL_KEYS)


def is_series(value: Any) -> bool:
    """A whole time series (``{"start", "length", "t": [...], ...}``), answered as is."""
    return isinstance(value, dict) and "start" in value and isinstance(value.get("t"), list)


def channel_type(value: Any) -> str:
    """The ``/api/channels`` type of a shaped value."""
    if isinstance(value, bool | int | float):
        return "numeric"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        if is_series(value):
            return "timeseries"
        for key, kind in _TYPES.items():
            if key in value:
                return kind
        return "json"
    return "unknown"
