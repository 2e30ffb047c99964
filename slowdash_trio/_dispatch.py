"""Answering one API request from several `WebApi`s, and merging their answers.

Every mounted API is asked in order (user modules' APIs first, then the built-in ones); every
route that matches is called, until a handler calls ``request.abort()``. Answers merge as in
the original: a higher HTTP status wins outright; at equal status dicts are deep-merged (later
values win), lists concatenated and strings joined by CRLF. Handlers returning None add
nothing. A built-in route may then ``finalize`` the merged answer (an unhandled command, a
missing content file, unknown channels). If nothing answered, the reply is a 404 JSON error.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from .webapi import BadRequest, Finalizer, Request, Response, Route, WebApi

logger = logging.getLogger("slowdash_trio.api")

Invoke = Callable[[Route, dict[str, Any]], Awaitable[Any]]


class HandlerFailed(Exception):
    """A user handler raised; the message says which module and why."""


@dataclass(frozen=True)
class Mount:
    """A `WebApi` and how to call its handlers (directly, or through a module's gate)."""

    api: WebApi
    owner: str
    invoke: Invoke


def error_response(status: int, message: str) -> Response:
    """The JSON error every API answer uses: ``{"status": "error", "message": ...}``."""
    return Response({"status": "error", "message": message}, status)


async def dispatch(request: Request, mounts: Iterable[Mount]) -> Response:
    merged: Response | None = None
    finalizers: list[Finalizer] = []
    failures: list[str] = []
    try:
        for mount in mounts:
            for route in mount.api.routes:
                kwargs = route.match(request)
                if kwargs is None:
                    continue
                if route.finalize is not None:
                    finalizers.append(route.finalize)
                try:
                    result = await mount.invoke(route, kwargs)
                except HandlerFailed as exc:
                    failures.append(str(exc))
                    result = None
                if result is not None:
                    merged = merge(
                        merged, result if isinstance(result, Response) else Response(result)
                    )
                if request.aborted:
                    break
            if request.aborted:
                break
        for finalize in finalizers:
            merged = await finalize(request, merged)
    except BadRequest as exc:
        return error_response(exc.status, exc.message)
    if merged is None:
        if failures:
            return error_response(500, "; ".join(failures))
        return error_response(404, f"nothing answers {request.method} /api{request.path}")
    return merged


def merge(acc: Response | None, new: Response) -> Response:
    if acc is None:
        return new
    if new.status != acc.status:
        return new if new.status > acc.status else acc
    return Response(
        merge_content(acc.content, new.content),
        acc.status,
        acc.content_type or new.content_type,
        {**acc.headers, **new.headers},
    )


def merge_content(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            old = out.get(key)
            out[key] = (
                merge_content(old, value)
                if isinstance(old, dict) and isinstance(value, dict)
                else value
            )
        return out
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    if isinstance(a, str) and isinstance(b, str):
        return a + "\r\n" + b
    logger.error(
        "cannot merge %s with %s; the first answer is kept", type(a).__name__, type(b).__name__
    )
    return a


# ---------------------------------------------------------------------------------------------
# rendering


def encode_json(content: Any, indent: int | None = None) -> bytes:
    """JSON bytes; NaN and infinities become null (JSON has no such numbers).

    Compact replies go through orjson (NumPy arrays included); indented ones, and anything
    orjson refuses (integers beyond 64 bits, say), through the standard library.
    """
    if indent is None:
        try:
            return orjson.dumps(content, option=_ORJSON_OPTIONS)
        except (TypeError, orjson.JSONEncodeError):
            pass
    separators = (",", ":") if indent is None else None
    try:
        text = json.dumps(
            content,
            allow_nan=False,
            ensure_ascii=False,
            indent=indent,
            separators=separators,
            default=_plain,
        )
    except ValueError:
        text = json.dumps(
            _finite(content),
            ensure_ascii=False,
            indent=indent,
            separators=separators,
            default=_plain,
        )
    # a lone surrogate (a request's JSON may carry "\ud800") cannot be UTF-8: inside a JSON
    # string its \uXXXX escape is the same text
    return text.encode("utf-8", "backslashreplace")


_ORJSON_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _plain(value: Any) -> Any:
    """NumPy arrays and scalars as lists and numbers (for the standard library's encoder)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _finite(tolist())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render(response: Response, indent: int | None = None) -> tuple[int, str | None, bytes]:
    """(status, content type, body) for a response; a JSON error if it cannot be encoded."""
    content = response.content
    try:
        if content is None:
            return response.status, response.content_type, b""
        if isinstance(content, bytes | bytearray):
            return (
                response.status,
                response.content_type or "application/octet-stream",
                bytes(content),
            )
        if isinstance(content, str):
            return (
                response.status,
                response.content_type or "text/plain; charset=utf-8",
                content.encode(),
            )
        return (
            response.status,
            response.content_type or "application/json",
            encode_json(content, indent),
        )
    except (TypeError, ValueError, RecursionError) as exc:
        logger.error("reply is not JSON-serializable: %s", exc)
        body = encode_json({"status": "error", "message": f"reply is not JSON-serializable: {exc}"})
        return 500, "application/json", body
