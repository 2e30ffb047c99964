"""``GET /api/openapi.json``: an OpenAPI 3.1 description of the web API, made from the routes
that answer requests (built-in, and user modules' own), so that it cannot drift from them.

Several parts of the server may answer one path (their answers are merged): an operation
lists them under ``x-answered-by``. The WebSocket ``/ws/attach/{topic}`` is not an HTTP
operation; the document's description points to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._dispatch import Mount

# one line per built-in operation (docs/api.md has the details)
SUMMARIES = {
    ("get", "/ping"): 'liveness: answers ["pong"]',
    ("get", "/config"): "the project, its modules, tasks, data sources and style",
    ("get", "/channels"): "every channel of modules, tasks, data sources and streamed values",
    ("get", "/data/{channels}"): "time series and values of comma-separated channels",
    ("post", "/control"): "a command (a form's fields) for user modules and task functions",
    ("get", "/config/contentlist"): "layouts, canvases and HTML panels of config/ and userhtml/",
    ("get", "/config/content/{filename}"): "a config file's content (parsed, or generated)",
    ("get", "/config/filelist"): "the files of config/",
    ("get", "/config/file/{filename}"): "a file of config/",
    ("post", "/config/file/{filename}"): "write a file of config/ (body: its bytes)",
    ("delete", "/config/file/{filename}"): "delete a file of config/",
    ("post", "/emit/{topic}"): "publish to a topic (current_data: values to every browser)",
    ("post", "/consume/current_data"): "current values for the cache and write-back only",
    ("get", "/control/task"): "the tasks and their states (long poll with since)",
    ("post", "/control/task/{taskname}"): "start (reload) or stop a task",
    ("post", "/update/tasklist"): "look for new config/slowtask-*.py files",
    ("get", "/openapi.json"): "this description",
}

_OBJECT = {"application/json": {"schema": {"type": "object"}}}
# built-in handlers that read the body from the request themselves
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/control"): _OBJECT,
    ("post", "/control/task/{taskname}"): _OBJECT,
    ("post", "/consume/current_data"): _OBJECT,
    ("post", "/emit/{topic}"): {**_OBJECT, "text/plain": {"schema": {"type": "string"}}},
    ("post", "/config/file/{filename}"): {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    },
}

ERROR = {
    "type": "object",
    "properties": {"status": {"const": "error"}, "message": {"type": "string"}},
    "required": ["status", "message"],
}


def openapi(mounts: Iterable[Mount], *, title: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for mount in mounts:
        for route in mount.api.routes:
            for method in route.methods:
                _add(paths, mount.owner, method.lower(), route)
    for (method, path), content in BODIES.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None and "requestBody" not in operation:
            operation["requestBody"] = {"required": True, "content": content}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title}: slowdash-trio web API",
            "version": version,
            "description": "The SlowDash web API (docs/api.md). Live values also stream over "
            "the WebSocket /ws/attach/{topic} (docs/streaming.md).",
        },
        "servers": [{"url": "/api"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {"Error": ERROR}},
    }


def _add(paths: dict[str, dict[str, Any]], owner: str, method: str, route: Any) -> None:
    operation = paths.setdefault(route.path, {}).get(method)
    if operation is None:
        operation = {
            "summary": SUMMARIES.get((method, route.path), f"answered by {owner}"),
            "x-answered-by": [],
            "parameters": [],
            "responses": {
                "200": {"description": "the answer (JSON unless the path says otherwise)"},
                "4XX": {
                    "description": "a bad request, named in the message",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        paths[route.path][method] = operation
    if owner not in operation["x-answered-by"]:
        operation["x-answered-by"].append(owner)
    known = {(p["in"], p["name"]) for p in operation["parameters"]}
    for where, name, type_name, required, default in route.parameters():
        if where in ("path", "query"):
            if (where, name) in known:
                continue
            schema: dict[str, Any] = {"type": type_name}
            if default is not None:
                schema["default"] = default
            operation["parameters"].append(
                {
                    "name": name,
                    "in": where,
                    "required": where == "path" or required,
                    "schema": schema,
                }
            )
            known.add((where, name))
        elif where in ("json", "object", "body") and "requestBody" not in operation:
            media = (
                {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
                if where == "body"
                else {"application/json": {"schema": {"type": type_name}}}
            )
            operation["requestBody"] = {"required": True, "content": media}
