"""Extending the web API from a user module: a small decorator-based router.

It mirrors the original's Slowlette usage, so porting a module means changing its import line
to ``import slowdash_trio.webapi as slowlette``::

    webapi = slowlette.Slowlette()          # or WebApi()

    @webapi.get('/channels')
    def get_channels():
        return [{'name': 'data_query', 'type': 'tree'}]

    @webapi.get('/data/{channels}')
    def get_data(channels: str, length: float = None, to: float = None):
        ...

    @webapi.get('/config/content/slowplot-Generated.json')
    def content(request: slowlette.Request):
        request.abort()            # the built-in handlers (and later modules) do not answer
        return {...}

Paths are relative to ``/api``. Every module-level `WebApi` of a user module is mounted
before the built-in API; all handlers whose route matches are called in order and their
answers merged (dicts deep-merged, lists concatenated; a higher HTTP status wins).

Handler parameters are bound by name: path parameters (``{channels}``), query parameters
(converted by the annotation: ``str``, ``int``, ``float``, ``bool``), ``request: Request``,
``body: bytes`` (raw body), ``doc: JSON``/``DictJSON`` (the parsed JSON body) and
``query: dict`` (all query parameters). A query parameter without a default that is absent
means the route does not match; a value that does not convert is a 400 error naming it.
Handlers may be ``def`` (run in a worker thread) or ``async def`` (run on the server's Trio
loop: use ``trio``, not ``asyncio``).
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NewType, Union

__all__ = [
    "JSON",
    "BadRequest",
    "DictJSON",
    "Request",
    "Response",
    "Route",
    "Slowlette",
    "WebApi",
]

JSON = NewType("JSON", object)
"""Annotation: the request body parsed as JSON."""

DictJSON = NewType("DictJSON", dict)  # type: ignore[type-arg]
"""Annotation: the request body parsed as JSON, which must be an object."""


class BadRequest(Exception):
    """Raised while binding a request to a handler; answered with a 4xx JSON error."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Response:
    """An explicit answer: content with a status (and optionally a content type and headers).

    A handler that returns anything else returns content with status 200. ``None`` means
    "nothing to add".
    """

    content: Any = None
    status: int = 200
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Request:
    """One API request, shared by every handler that answers it."""

    __slots__ = (
        "_json",
        "aborted",
        "body",
        "client",
        "headers",
        "internal",
        "method",
        "parts",
        "path",
        "query",
        "user",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        client: str | None = None,
        internal: bool = False,
        user: str | None = None,
    ) -> None:
        self.method = method.upper()
        self.path = path if path.startswith("/") else "/" + path
        self.parts = self.path.split("/")[1:]
        self.query: Mapping[str, str] = query or {}
        self.body = body
        self.headers: Mapping[str, str] = headers or {}
        self.client = client
        self.internal = internal
        self.user = user  # the authenticated user's name (None: no authentication)
        self.aborted = False
        self._json: Any = _UNSET

    def abort(self) -> None:
        """Handlers after this one (the built-in ones included) are not called."""
        self.aborted = True

    def json(self) -> Any:
        """The body parsed as JSON; `BadRequest` if it is not valid JSON."""
        if self._json is _UNSET:
            if not self.body.strip():
                raise BadRequest("the request body is empty; expected JSON")
            try:
                self._json = json.loads(self.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadRequest(f"the request body is not valid JSON: {exc}") from None
            except RecursionError:
                raise BadRequest("the request body is JSON nested too deeply") from None
        return self._json

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


Finalizer = Callable[[Request, "Response | None"], Awaitable["Response | None"]]
"""A built-in route's last word on the merged answer (used by the server's own routes)."""

_UNSET: Any = object()
_REQUIRED: Any = inspect.Parameter.empty


def _convert_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false)")


def _convert_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


_CONVERTERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: _convert_float,
    bool: _convert_bool,
    Any: str,
}


_SCHEMA_TYPES: dict[Callable[[str], Any], str] = {
    int: "integer",
    _convert_float: "number",
    _convert_bool: "boolean",
}


def _plain_type(annotation: Any) -> Any:
    """``Optional[float]`` / ``float | None`` → ``float``."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


@dataclass(frozen=True)
class _Param:
    kind: str  # request | path | query | body | json | dictjson | query_dict
    name: str
    convert: Callable[[str], Any] = str
    default: Any = _REQUIRED


class Route:
    """A registered handler: method, path pattern and how to bind its parameters."""

    def __init__(
        self,
        methods: tuple[str, ...],
        path: str,
        handler: Callable[..., Any],
        *,
        finalize: Finalizer | None = None,
    ) -> None:
        if not path.startswith("/"):
            path = "/" + path
        self.methods = tuple(m.upper() for m in methods)
        self.path = path
        self.handler = handler
        self.finalize = finalize
        self.is_async = inspect.iscoroutinefunction(handler)
        self._segments = path.split("/")[1:]
        self._path_params = {
            i: s[1:-1]
            for i, s in enumerate(self._segments)
            if s.startswith("{") and s.endswith("}")
        }
        self._params = self._plan(handler, set(self._path_params.values()))

    def _plan(self, handler: Callable[..., Any], path_names: set[str]) -> list[_Param]:
        try:
            hints = typing.get_type_hints(handler)
        except Exception:  # unresolvable forward references: fall back to raw annotations
            hints = {}
        plan = []
        for name, parameter in inspect.signature(handler).parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation = _plain_type(hints.get(name, parameter.annotation))
            default = parameter.default
            if annotation is Request or (annotation is _REQUIRED and name == "request"):
                plan.append(_Param("request", name))
            elif annotation is bytes:
                plan.append(_Param("body", name))
            elif annotation is JSON:
                plan.append(_Param("json", name))
            elif annotation is DictJSON:
                plan.append(_Param("dictjson", name))
            elif annotation is dict or typing.get_origin(annotation) is dict:
                plan.append(_Param("query_dict", name))
            else:
                if annotation is _REQUIRED:
                    annotation = str
                convert = _CONVERTERS.get(annotation)
                if convert is None:
                    raise TypeError(
                        f"{handler.__qualname__}: parameter {name!r} has an unsupported "
                        f"annotation {annotation!r} (use str, int, float, bool, Request, bytes, "
                        "JSON, DictJSON or dict)"
                    )
                kind = "path" if name in path_names else "query"
                plan.append(_Param(kind, name, convert, default))
        return plan

    def parameters(self) -> list[tuple[str, str, str, bool, Any]]:
        """What a request carries for this handler, for descriptions of the API:
        ``(where, name, type, required, default)`` with ``where`` one of ``path``, ``query``,
        ``body`` (raw bytes), ``json`` (any JSON), ``object`` (a JSON object), ``query_dict``
        (any query parameters); ``type`` a JSON-schema type name."""
        kinds = {"body": "body", "json": "json", "dictjson": "object", "query_dict": "query_dict"}
        out = []
        for param in self._params:
            if param.kind == "request":
                continue
            if param.kind in kinds:
                out.append((kinds[param.kind], param.name, "object", True, None))
                continue
            type_name = _SCHEMA_TYPES.get(param.convert, "string")
            required = param.default is _REQUIRED
            out.append(
                (param.kind, param.name, type_name, required, None if required else param.default)
            )
        return out

    def match(self, request: Request) -> dict[str, Any] | None:
        """The keyword arguments for this request, or None if the route does not apply.

        Raises `BadRequest` for a parameter that is present but unusable.
        """
        if request.method not in self.methods:
            return None
        parts = request.parts
        segments = self._segments
        if len(parts) != len(segments):
            return None
        path_values = {}
        for index, segment in enumerate(segments):
            name = self._path_params.get(index)
            if name is None:
                if parts[index] != segment:
                    return None
            elif not parts[index]:
                return None
            else:
                path_values[name] = parts[index]
        kwargs: dict[str, Any] = {}
        for param in self._params:
            kind = param.kind
            if kind == "request":
                kwargs[param.name] = request
            elif kind == "path":
                kwargs[param.name] = self._convert(param, path_values[param.name], "path")
            elif kind == "query":
                text = request.query.get(param.name)
                if text is None or (text == "" and param.convert is not str):
                    if param.default is _REQUIRED:
                        return None
                    continue
                kwargs[param.name] = self._convert(param, text, "query")
            elif kind == "body":
                kwargs[param.name] = request.body
            elif kind == "json":
                kwargs[param.name] = request.json()
            elif kind == "dictjson":
                doc = request.json()
                if not isinstance(doc, dict):
                    raise BadRequest("the request body must be a JSON object")
                kwargs[param.name] = doc
            else:
                kwargs[param.name] = dict(request.query)
        return kwargs

    @staticmethod
    def _convert(param: _Param, text: str, where: str) -> Any:
        try:
            return param.convert(text)
        except ValueError as exc:
            raise BadRequest(
                f"{where} parameter {param.name!r}: bad value {text!r} ({exc})"
            ) from None

    def __repr__(self) -> str:
        return f"<Route {'|'.join(self.methods)} {self.path} -> {self.handler.__qualname__}>"


class WebApi:
    """A set of routes; decorate handlers with `get`, `post`, `delete` or `route`."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        path: str,
        methods: tuple[str, ...] | list[str] = ("GET",),
        *,
        finalize: Finalizer | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.routes.append(Route(tuple(methods), path, handler, finalize=finalize))
            return handler

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(path, ("GET",), **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(path, ("POST",), **kwargs)

    def delete(
        self, path: str, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route(path, ("DELETE",), **kwargs)


Slowlette = WebApi
"""The original's name, so that ``import slowdash_trio.webapi as slowlette`` ports a module."""
