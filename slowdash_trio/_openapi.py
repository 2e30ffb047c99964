"""``GET /api/openapi.json``: an OpenAPI 3.1 description of the web API, made from the routes
that answer requests (built-in, and user modules' own), so that it cannot drift from them.

Several parts of the server may answer one path (their answers are merged): an operation
lists them under ``x-answered-by``. The WebSocket ``/ws/attach/{topic}`` is not an HTTP
operation; the document's description points to it.

What a handler's signature cannot say about the built-in operations (allowed values, the
shape of answers, other success statuses) is in the tables below, taken from the constants
the handlers check against where there are such constants.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from ._configfiles import FILE_LIST_KEYS
from ._dispatch import Mount
from ._sources._query import MAX_LENGTH, REDUCER_ALIASES
from ._streaming_api import _TOPIC

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

_OBJECT: dict[str, Any] = {"type": "object"}
_STRING: dict[str, Any] = {"type": "string"}
_NUMBER: dict[str, Any] = {"type": "number"}
_TIME = {"anyOf": [_NUMBER, {"type": "array", "items": _NUMBER}]}
# a channel name that may reach a data source (check_channel_name)
_CHANNEL_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]+$", "maxLength": 256}
# {CH: {"t": T, "x": X, ...}}: what /emit/current_data and /consume/current_data take
_CURRENT_DATA = {
    "type": "object",
    "propertyNames": _CHANNEL_NAME,
    "additionalProperties": {
        "type": "object",
        "properties": {"t": _TIME},
        "required": ["t", "x"],
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


# request bodies of built-in operations (they take precedence over the handler's signature,
# which says only "bytes" or "a request")
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/control"): _json(_OBJECT),
    ("post", "/control/task/{taskname}"): _json(
        {
            "type": "object",
            "properties": {"action": {"enum": ["start", "stop", "reload", "restart"]}},
            "required": ["action"],
        }
    ),
    ("post", "/consume/current_data"): _json(_CURRENT_DATA),
    # current_data takes what /consume/current_data takes; other topics any text
    ("post", "/emit/{topic}"): {**_json({}), "text/plain": {"schema": _STRING}},
    ("post", "/config/file/{filename}"): {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    },
}

_FILE_NAME = {
    "description": "NAME.EXT: letters, digits, '_', '-' and '.', not starting with '.' "
    "(outside secure mode, only .json .yaml .html .csv .svg .png .jpg .jpeg)",
    "schema": {"pattern": r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*\.[A-Za-z0-9_-]+$", "maxLength": 255},
}

# parameters: what the handlers accept beyond the type of their annotation
PARAMETERS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("get", "/data/{channels}", "channels"): {
        "description": "comma-separated channel names",
    },
    ("get", "/data/{channels}", "length"): {
        "description": "window length, seconds",
        "schema": {"exclusiveMinimum": 0, "maximum": MAX_LENGTH},
    },
    ("get", "/data/{channels}", "to"): {
        "description": "window end, UNIX seconds; 0 or negative: now + to",
    },
    ("get", "/data/{channels}", "resample"): {
        "description": "bucket width, seconds (< 0: none; 0: automatic)",
    },
    ("get", "/data/{channels}", "reducer"): {"schema": {"enum": sorted(REDUCER_ALIASES)}},
    ("get", "/data/{channels}", "filler"): {"schema": {"enum": ["fillna", ""]}},
    ("get", "/data/{channels}", "envelope"): {"schema": {"enum": [0, 1, 2]}},
    ("get", "/data/{channels}", "prior_data"): {"schema": {"enum": [0, 1, 2]}},
    ("get", "/data/{channels}", "align"): {"schema": {"enum": [0, 1]}},
    ("get", "/config/content/{filename}", "filename"): {
        "description": "a file of config/ (html-NAME: NAME.py or NAME.html)",
        "schema": {"pattern": r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$", "maxLength": 255},
    },
    ("get", "/config/content/{filename}", "content_type"): {"schema": {"enum": ["json", "html"]}},
    ("get", "/config/file/{filename}", "filename"): _FILE_NAME,
    ("post", "/config/file/{filename}", "filename"): _FILE_NAME,
    ("delete", "/config/file/{filename}", "filename"): _FILE_NAME,
    ("post", "/emit/{topic}", "topic"): {"schema": {"pattern": f"^{_TOPIC.pattern}$"}},
    ("get", "/config/filelist", "sortby"): {"schema": {"enum": list(FILE_LIST_KEYS)}},
    ("post", "/config/file/{filename}", "overwrite"): {
        "description": "yes: replace an existing file (else it is kept, and the answer is 202)",
    },
    ("get", "/control/task", "since"): {
        "description": "a revision: answer when the task list changes after it",
    },
}

_STATUS_OK = {
    "type": "object",
    "properties": {"status": {"const": "ok"}},
    "required": ["status"],
}
_CHANNEL_DATA = {
    "type": "object",
    "additionalProperties": {"type": "object", "required": ["t", "x"]},
}
_FILE_ENTRY = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "size": {"type": "integer"},
        "mode": _STRING,
        "owner": _STRING,
        "group": _STRING,
        "mtime": _NUMBER,
    },
    "required": list(FILE_LIST_KEYS),
}
_CONTENT_ENTRY = {
    "type": "object",
    "properties": {"type": _STRING, "name": _STRING, "config_file": _STRING},
    "required": ["type", "name", "config_file"],
}


def _ok(content: dict[str, Any], description: str = "the answer") -> dict[str, Any]:
    return {"description": description, "content": content}


# success answers of the built-in operations (user modules' routes: any JSON)
ANSWERS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("get", "/ping"): {
        "200": _ok(_json({"type": "array", "items": {"const": "pong"}, "minItems": 1}))
    },
    ("get", "/openapi.json"): {
        "200": _ok(_json({"type": "object", "required": ["openapi", "paths"]}))
    },
    ("get", "/config"): {
        "200": _ok(_json({"type": "object", "required": ["slowdash", "project"]}))
    },
    ("get", "/channels"): {
        "200": _ok(
            _json(
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": _STRING,
                            "type": _STRING,
                            "current": {"type": "boolean"},
                        },
                        "required": ["name"],
                    },
                }
            ),
            "every channel; a missing type means numeric",
        )
    },
    ("get", "/data/{channels}"): {
        "200": _ok(_json(_CHANNEL_DATA), "per channel: start, length, t (relative), x")
    },
    ("post", "/control"): {"200": _ok(_json(_OBJECT), "the answer of the module or task")},
    ("get", "/config/contentlist"): {"200": _ok(_json({"type": "array", "items": _CONTENT_ENTRY}))},
    ("get", "/config/content/{filename}"): {
        "200": _ok({**_json({}), "text/html": {"schema": _STRING}})
    },
    ("get", "/config/filelist"): {"200": _ok(_json({"type": "array", "items": _FILE_ENTRY}))},
    ("get", "/config/file/{filename}"): {
        "200": _ok({"*/*": {"schema": {}}}, "the file's bytes; the type from its extension")
    },
    ("post", "/config/file/{filename}"): {
        "201": _ok(_json(_STATUS_OK), "written"),
        "202": _ok(
            _json(
                {
                    "type": "object",
                    "properties": {"status": {"const": "exists"}, "message": _STRING},
                    "required": ["status", "message"],
                }
            ),
            "the file exists and overwrite is not yes: nothing written",
        ),
    },
    ("delete", "/config/file/{filename}"): {"200": _ok(_json(_STATUS_OK), "deleted")},
    ("post", "/emit/{topic}"): {"201": _ok(_json({"const": True}), "published")},
    ("post", "/consume/current_data"): {
        "200": _ok(
            _json(
                {
                    "type": "object",
                    "properties": {
                        "status": {"const": "ok"},
                        "set": {"type": "array", "items": _STRING},
                    },
                    "required": ["status", "set"],
                }
            ),
            "cached; set: the channels written back to exported values",
        )
    },
    ("get", "/control/task"): {
        "200": _ok(
            _json(
                {
                    "type": "object",
                    "properties": {
                        "revision": {"type": "integer"},
                        "tasks": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["revision", "tasks"],
                }
            )
        )
    },
    ("post", "/control/task/{taskname}"): {
        "200": _ok(
            _json(
                {
                    "type": "object",
                    "properties": {"status": {"const": "ok"}, "state": _STRING},
                    "required": ["status", "state"],
                }
            )
        )
    },
    ("post", "/update/tasklist"): {
        "200": _ok(
            _json(
                {
                    "type": "object",
                    "properties": {"status": {"const": "ok"}, "added": {"type": "array"}},
                    "required": ["status", "added"],
                }
            )
        )
    },
}

_DEFAULT_ANSWER = {"200": {"description": "the answer (JSON unless the path says otherwise)"}}

ERROR = {
    "type": "object",
    "properties": {"status": {"const": "error"}, "message": {"type": "string"}},
    "required": ["status", "message"],
}
_ERRORS = {
    "4XX": {
        "description": "a bad request, named in the message",
        "content": _json({"$ref": "#/components/schemas/Error"}),
    },
    "5XX": {
        "description": "a user module or task function failed (the message names it), or "
        "the server could not answer",
        "content": _json({"$ref": "#/components/schemas/Error"}),
    },
}


def openapi(
    mounts: Iterable[Mount], *, title: str, version: str, basic_auth: bool = False
) -> dict[str, Any]:
    """The description of the mounted routes; with ``basic_auth``, every operation needs
    HTTP Basic credentials (the role each needs is in docs/security.md)."""
    paths: dict[str, dict[str, Any]] = {}
    for mount in mounts:
        for route in mount.api.routes:
            for method in route.methods:
                _add(paths, mount.owner, method.lower(), route)
    description: dict[str, Any] = {
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
    if basic_auth:
        description["components"]["securitySchemes"] = {
            "basic": {"type": "http", "scheme": "basic"}
        }
        description["security"] = [{"basic": []}]
    return description


def _add(paths: dict[str, dict[str, Any]], owner: str, method: str, route: Any) -> None:
    key = (method, route.path)
    operation = paths.setdefault(route.path, {}).get(method)
    if operation is None:
        operation = {
            "summary": SUMMARIES.get(key, f"answered by {owner}"),
            "x-answered-by": [],
            "parameters": [],
            "responses": copy.deepcopy({**ANSWERS.get(key, _DEFAULT_ANSWER), **_ERRORS}),
        }
        if key in BODIES:
            operation["requestBody"] = {"required": True, "content": copy.deepcopy(BODIES[key])}
        paths[route.path][method] = operation
    if owner not in operation["x-answered-by"]:
        operation["x-answered-by"].append(owner)
    known = {(p["in"], p["name"]) for p in operation["parameters"]}
    for where, name, type_name, required, default in route.parameters():
        if where in ("path", "query"):
            if (where, name) in known:
                continue
            extra = PARAMETERS.get((*key, name), {})
            schema: dict[str, Any] = {"type": type_name, **extra.get("schema", {})}
            if default is not None:
                schema["default"] = default
            parameter: dict[str, Any] = {
                "name": name,
                "in": where,
                "required": where == "path" or required,
                "schema": schema,
            }
            if "description" in extra:
                parameter["description"] = extra["description"]
            if where == "query" and not required and type_name != "string":
                parameter["allowEmptyValue"] = True  # an empty value means the default
            operation["parameters"].append(parameter)
            known.add((where, name))
        elif where in ("json", "object", "body") and "requestBody" not in operation:
            media = (
                {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
                if where == "body"
                else {"application/json": {"schema": {"type": type_name}}}
            )
            operation["requestBody"] = {"required": True, "content": media}
