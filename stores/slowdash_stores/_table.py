"""Tables and trees, with the cell attributes (colours, links) the data model allows.

JSON shapes::

    {"columns": ["name", "value"], "table": [["V0", 1.5], ["V1", 2.0]],
     "attr": [[{}, {"color": "red"}], [{}, {}]]}          # "attr" only when some cell has one
    {"tree": {"PS": {"V0": 1.5, "V1": 2.0}}, "attr": {"PS": {"V0": {"color": "red"}}}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._element import DataElement, is_sequence, to_json_value

__all__ = ["CELL_ATTRIBUTES", "Table", "Tree"]

CELL_ATTRIBUTES = frozenset({"color", "background", "href"})
"""The attributes a table cell or tree leaf may carry (CSS colours, a link target)."""


def _cell_attr(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: an attribute set is a dict, not {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in CELL_ATTRIBUTES)
    if unknown:
        raise ValueError(f"{where}: unknown attributes {unknown} (use {sorted(CELL_ATTRIBUTES)})")
    for key, item in value.items():
        if not isinstance(item, str):
            raise TypeError(f"{where}: attribute {key!r} is a string, not {item!r}")
    return dict(value)


def _cell(value: Any, where: str) -> Any:
    if isinstance(value, Mapping | list | tuple | DataElement):
        raise TypeError(
            f"{where}: a cell is a number, string, bool or None, not a {type(value).__name__}"
        )
    return to_json_value(value)


def _has_leaf(node: Mapping[str, Any]) -> bool:
    return any(not isinstance(v, Mapping) or _has_leaf(v) for v in node.values())


class Table(DataElement):
    """``Table(columns)``: rows of scalar cells under a header.

    ``add_row(values, attr=None)`` appends a row; it must have as many cells as there are
    columns (or, without columns, as the first row). ``attr`` gives per-cell attributes: a
    list as long as the row of ``None`` or dicts with ``color``, ``background`` (CSS colours)
    and ``href`` (a link).
    """

    def __init__(self, columns: Sequence[str] | None = None) -> None:
        super().__init__()
        if columns is not None:
            if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
                raise TypeError(f"columns must be a list of strings, not {columns!r}")
            columns = list(columns)
        self.columns: list[str] | None = columns
        self.rows: list[list[Any]] = []
        self._cell_attrs: list[list[dict[str, str]]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add_row(
        self, values: Sequence[Any], attr: Sequence[Mapping[str, str] | None] | None = None
    ) -> None:
        """Append a row (see the class docstring)."""
        where = f"row {len(self.rows)}"
        if not is_sequence(values):
            raise TypeError(f"{where}: a row is a list of cells, not {type(values).__name__}")
        expected = len(self.columns) if self.columns is not None else None
        if expected is None and self.rows:
            expected = len(self.rows[0])
        if expected is not None and len(values) != expected:
            raise ValueError(f"{where} has {len(values)} cells, expected {expected}")
        row = [_cell(v, f"{where}, cell {k}") for k, v in enumerate(values)]
        if attr is None:
            attrs: list[dict[str, str]] = [{} for _ in row]
        else:
            if not is_sequence(attr) or len(attr) != len(row):
                raise ValueError(f"{where}: attr must be a list of {len(row)} dicts or Nones")
            attrs = [_cell_attr(a, f"{where}, cell {k}") for k, a in enumerate(attr)]
        self.rows.append(row)
        self._cell_attrs.append(attrs)

    def clear(self) -> None:
        super().clear()
        self.rows.clear()
        self._cell_attrs.clear()

    def _content(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.columns is not None:
            record["columns"] = list(self.columns)
        record["table"] = [list(row) for row in self.rows]
        if any(a for row in self._cell_attrs for a in row):
            record["attr"] = [[dict(a) for a in row] for row in self._cell_attrs]
        return record

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> Table:
        """A table from ``{"columns"?, "table": [[...], ...], "attr"?}``."""
        rows = record.get("table")
        if not isinstance(rows, list):
            raise ValueError(f"table must be a list of rows, not {rows!r}")
        attrs = record.get("attr")
        if attrs is not None and (not isinstance(attrs, list) or len(attrs) != len(rows)):
            raise ValueError("attr must be a list with one entry per row")
        table = cls(record.get("columns"))
        for k, row in enumerate(rows):
            table.add_row(row, None if attrs is None else attrs[k])
        return table


class Tree(DataElement):
    """``Tree(path_delimiter='/')``: nested key/value data, set by path.

    ``set('PS/V0', 1.5)`` creates the branches on the way; ``set(path, value, attr={...})``
    also gives the leaf ``color``/``background``/``href`` attributes. Setting below a leaf
    raises `ValueError`; setting a branch's path replaces the branch. ``get(path)`` reads.
    """

    def __init__(self, path_delimiter: str = "/") -> None:
        super().__init__()
        if not isinstance(path_delimiter, str) or not path_delimiter:
            raise ValueError(f"path_delimiter must be a non-empty string, not {path_delimiter!r}")
        self.path_delimiter = path_delimiter
        self.tree: dict[str, Any] = {}
        self._leaf_attrs: dict[str, Any] = {}

    def _split(self, path: str) -> list[str]:
        if not isinstance(path, str):
            raise TypeError(f"a path is a string, not {type(path).__name__}")
        keys = path.split(self.path_delimiter)
        if not all(keys):
            raise ValueError(f"empty key in path {path!r}")
        return keys

    def set(self, path: str, value: Any, attr: Mapping[str, str] | None = None) -> None:
        """Set the value at ``path`` (see the class docstring)."""
        keys = self._split(path)
        converted = to_json_value(value)
        attrs = _cell_attr(attr, f"tree path {path!r}")
        node = self.tree
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                at = self.path_delimiter.join(keys[: depth + 1])
                raise ValueError(f"cannot set {path!r}: {at!r} holds a value, not a branch")
            node = child
        node[keys[-1]] = converted
        self._set_attr(keys, attrs)

    def _set_attr(self, keys: list[str], attrs: dict[str, str]) -> None:
        # the attribute tree mirrors the tree; setting a path resets the attributes there
        node = self._leaf_attrs
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                if not attrs:
                    return
                child = node[key] = {}
            node = child
        if attrs:
            node[keys[-1]] = attrs
        else:
            node.pop(keys[-1], None)

    def get(self, path: str) -> Any:
        """The value at ``path`` (`KeyError` if there is none)."""
        node: Any = self.tree
        for key in self._split(path):
            if not isinstance(node, dict) or key not in node:
                raise KeyError(path)
            node = node[key]
        return to_json_value(node)

    def clear(self) -> None:
        super().clear()
        self.tree = {}
        self._leaf_attrs = {}

    def _content(self) -> dict[str, Any]:
        record: dict[str, Any] = {"tree": self.tree}
        if _has_leaf(self._leaf_attrs):
            record["attr"] = self._leaf_attrs
        return record  # to_json() copies it

    @classmethod
    def _from_record(cls, record: Mapping[str, Any]) -> Tree:
        """A tree from ``{"tree": {...}, "attr"?: {...}}``."""
        content = record.get("tree")
        if not isinstance(content, Mapping):
            raise ValueError(f"tree must be an object, not {content!r}")
        attrs = record.get("attr", {})
        if not isinstance(attrs, Mapping):
            raise ValueError(f"attr must be an object, not {attrs!r}")
        tree = cls()
        tree.tree = to_json_value(content)
        tree._leaf_attrs = to_json_value(attrs)
        return tree
