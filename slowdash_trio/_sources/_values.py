"""Values read from databases and files: JSON objects, types of channels."""

from __future__ import annotations

from typing import Any

import orjson


def decode_value(value: Any) -> Any:
    """A stored value as the API returns it: JSON text (``{...}``/``[...]``) decoded."""
    if isinstance(value, str):
        head = value.lstrip()[:1]
        if head in ("{", "["):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
    return value


def value_type(value: Any) -> str | None:
    """The channel type of a value (data model inference); None for plain numbers."""
    value = decode_value(value)
    if isinstance(value, dict):
        if "counts" in value and ("xbins" in value or "ybins" in value):
            return "histogram2d"
        if "counts" in value:
            return "histogram"
        if "y" in value:
            return "graph"
        if "table" in value:
            return "table"
        if "tree" in value:
            return "tree"
        if "mime" in value:
            return "blob"
        return "json"
    if isinstance(value, list):
        return "json"
    if isinstance(value, str):
        return "string"
    return None
