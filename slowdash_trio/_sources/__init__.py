"""Data sources: what ``data_source:`` entries read for ``/api/channels`` and ``/api/data``."""

from ._base import (
    DataSource,
    SourceConfigError,
    SourceUnavailable,
    TableEntry,
    ViewEntry,
    build_source,
    table_entries,
    view_entries,
)
from ._query import DataQuery, Grid, QueryError, make_grid, parse_query
from ._schema import SchemaError, TableSchema, parse_schema

__all__ = [
    "DataQuery",
    "DataSource",
    "Grid",
    "QueryError",
    "SchemaError",
    "SourceConfigError",
    "SourceUnavailable",
    "TableEntry",
    "TableSchema",
    "ViewEntry",
    "build_source",
    "make_grid",
    "parse_query",
    "parse_schema",
    "table_entries",
    "view_entries",
]
