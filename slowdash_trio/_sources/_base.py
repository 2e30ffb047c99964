"""The data-source contract, the table entries of a project's ``data_source:`` and the
registry of source types.

A source is built from its ``data_source`` entry (``parameters:`` already merged into the top
level), opened by the server (`DataSources`), asked for channels and data, and closed. Its
blocking work (database drivers, files) runs in worker threads; the Trio thread only waits.
A source that cannot reach its data raises `SourceUnavailable`; the server then reports it
as down and retries it, while the other sources go on answering.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from ._query import DataQuery
from ._schema import SchemaError, TableSchema, parse_schema


class SourceUnavailable(Exception):
    """The source cannot reach its data now (missing file, server down); retried later."""


class PartialReply(dict[str, Any]):
    """A source's answer with some channels left out because they failed (a broken SQL
    view, say): ``problems`` says which and why; the server passes them on to the client."""

    def __init__(
        self, reply: Mapping[str, Any] | None = None, problems: list[str] | None = None
    ) -> None:
        super().__init__(reply or {})
        self.problems: list[str] = list(problems or [])


class SourceConfigError(ValueError):
    """A ``data_source`` entry that cannot work; the project is refused at load."""


class DataSource:
    """Base of every data source. Subclasses implement the four async methods."""

    kind: ClassVar[str] = ""

    def __init__(self, params: Mapping[str, Any], *, project_dir: Path) -> None:
        self.params = dict(params)
        self.project_dir = project_dir

    @property
    def label(self) -> str:
        """How messages and the API name this source (no passwords)."""
        return self.kind

    async def open(self) -> None:
        """Connect; raise `SourceUnavailable` if the data cannot be reached now."""

    async def aclose(self) -> None:
        """Release connections and threads."""

    async def channels(self, *, force_rescan: bool = False) -> list[dict[str, Any]]:
        return []

    async def data(self, query: DataQuery) -> dict[str, Any]:
        """``{channel: reply}`` for the channels of ``query`` this source has."""
        return {}


# ----------------------------------------------------------------------------------------------
# table entries: time_series / object / object_time_series / view


@dataclass(frozen=True, slots=True)
class TableEntry:
    """One ``time_series:``, ``object:`` or ``object_time_series:`` entry."""

    kind: str
    schema: TableSchema
    tags: tuple[str, ...] | None = None
    tags_sql: str | None = None
    suffix: str = ""


@dataclass(frozen=True, slots=True)
class ViewEntry:
    """One SQL ``view:`` entry: channel ``name`` of type table."""

    name: str
    sql: str


TABLE_KINDS: Final = ("time_series", "object", "object_time_series")
_VIEW_NAME: Final = re.compile(r"[A-Za-z0-9._:\-]+")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def table_entries(params: Mapping[str, Any]) -> list[TableEntry]:
    """The table entries of a source's parameters, checked; `SourceConfigError` if bad."""
    entries: list[TableEntry] = []
    for kind in TABLE_KINDS:
        for index, item in enumerate(_as_list(params.get(kind))):
            where = f"{kind}[{index}]"
            if isinstance(item, str):
                item = {"schema": item}
            if not isinstance(item, Mapping) or not isinstance(item.get("schema"), str):
                raise SourceConfigError(f"{where}: needs 'schema: TABLE[TAG]@TIME=FIELDS'")
            try:
                schema = parse_schema(item["schema"])
            except SchemaError as exc:
                raise SourceConfigError(f"{where}: {exc}") from None
            if schema.table is None:
                raise SourceConfigError(f"{where}: schema {schema.text!r} names no table")
            if kind != "object" and schema.time is None:
                raise SourceConfigError(
                    f"{where}: schema {schema.text!r} needs a time column (@TIME)"
                )
            tags = item.get("tags") or {}
            if not isinstance(tags, Mapping):
                raise SourceConfigError(f"{where}.tags: a mapping with 'list:' or 'sql:'")
            tag_list = tags.get("list")
            if tag_list is not None and (
                not isinstance(tag_list, list) or not all(isinstance(t, str) for t in tag_list)
            ):
                raise SourceConfigError(f"{where}.tags.list: a list of channel names")
            tag_sql = tags.get("sql")
            if tag_sql is not None and not isinstance(tag_sql, str):
                raise SourceConfigError(f"{where}.tags.sql: an SQL SELECT returning tag values")
            suffix = item.get("suffix", "") or ""
            if not isinstance(suffix, str) or (suffix and not _VIEW_NAME.fullmatch(suffix)):
                raise SourceConfigError(f"{where}.suffix: letters, digits and '. _ - :' only")
            entries.append(
                TableEntry(
                    kind,
                    schema,
                    tuple(tag_list) if tag_list is not None else None,
                    tag_sql,
                    suffix,
                )
            )
    return entries


def view_entries(params: Mapping[str, Any]) -> list[ViewEntry]:
    views = []
    for index, item in enumerate(_as_list(params.get("view"))):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("sql"), str)
        ):
            raise SourceConfigError(f"view[{index}]: needs 'name:' and 'sql:'")
        if not _VIEW_NAME.fullmatch(item["name"]):
            raise SourceConfigError(
                f"view[{index}].name: {item['name']!r}: letters, digits and '. _ - :' only"
            )
        views.append(ViewEntry(item["name"], item["sql"]))
    return views


# ----------------------------------------------------------------------------------------------
# registry

SOURCE_TYPES: Final = {
    "sqlite": "slowdash_trio._sources._sqlite:SQLiteSource",
    "postgresql": "slowdash_trio._sources._postgresql:PostgreSQLSource",
    "postgres": "slowdash_trio._sources._postgresql:PostgreSQLSource",
    "csv": "slowdash_trio._sources._csv:CSVSource",
    "redis": "slowdash_trio._sources._redis:RedisSource",
}
"""Source type (or URL scheme), lower case, and the class that reads it."""


def source_type(entry: Mapping[str, Any]) -> str:
    kind = entry.get("type")
    if not kind:
        url = entry.get("url")
        if not isinstance(url, str) or "://" not in url:
            raise SourceConfigError("needs 'type:' or a 'url:' with a scheme (sqlite:///...)")
        kind = url.split("://", 1)[0]
    return str(kind).lower()


def build_source(entry: Mapping[str, Any], *, project_dir: Path) -> DataSource:
    """The source for one ``data_source`` entry; `SourceConfigError` if it cannot work."""
    params = {k: v for k, v in entry.items() if k != "parameters"}
    extra = entry.get("parameters") or {}
    if not isinstance(extra, Mapping):
        raise SourceConfigError("parameters: must be a mapping")
    params.update(extra)
    kind = source_type(params)
    target = SOURCE_TYPES.get(kind)
    if target is None:
        raise SourceConfigError(
            f"unknown data source type {kind!r} (this version reads: "
            f"{', '.join(sorted(set(SOURCE_TYPES) - {'postgres'}))})"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceConfigError(
            f"data source type {kind!r} needs a package that is not installed: {exc} "
            f"(pip install 'slowdash-trio[{kind}]')"
        ) from None
    cls = getattr(module, class_name)
    source: DataSource = cls(params, project_dir=project_dir)
    return source
