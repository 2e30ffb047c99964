"""/api/openapi.json describes the routes that really answer: built-in, tasks' and modules'."""

from __future__ import annotations

from pathlib import Path

from support import build_project, serving, write

from slowdash_trio._sources._query import MAX_LENGTH, REDUCER_ALIASES
from slowdash_trio.webapi import Request

MODULE = """
from slowdash_trio.webapi import WebApi

webapi = WebApi()

@webapi.get("/hello/{name}")
def hello(name: str, loud: bool = False):
    return {"hello": name.upper() if loud else name}

def _get_webapi():
    return webapi
"""


async def test_the_description_matches_the_routes(tmp_path: Path) -> None:
    write(tmp_path / "config" / "slowtask-t.py", "def f():\n    pass\n")
    project = build_project(tmp_path, {"greeter": MODULE}, task=[{"name": "t", "auto_load": True}])
    async with serving(project) as (server, client):
        reply = await client.get("/api/openapi.json")
        assert reply.status_code == 200
        doc = reply.json()
        assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/api"}]
        described = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
        routes = {
            (method, route.path)
            for mount in server.mounts()
            for route in mount.api.routes
            for method in route.methods
        }
        assert described == routes
        assert ("GET", "/hello/{name}") in described  # the module's own
        assert ("POST", "/control/task/{taskname}") in described
        # every described operation reaches a real route with example values
        for method, path in described:
            parts = "/".join("x" if p.startswith("{") else p for p in path.split("/"))
            request = Request(method, parts, {})
            assert any(
                route.match(request) is not None
                for mount in server.mounts()
                for route in mount.api.routes
            ), (method, path)
        data = doc["paths"]["/data/{channels}"]["get"]
        assert {p["name"] for p in data["parameters"]} >= {
            "channels",
            "length",
            "to",
            "resample",
            "reducer",
            "envelope",
            "prior_data",
        }
        length = next(p for p in data["parameters"] if p["name"] == "length")
        assert length["schema"] == {
            "type": "number",
            "default": 3600.0,
            "exclusiveMinimum": 0,
            "maximum": MAX_LENGTH,
        }
        reducer = next(p for p in data["parameters"] if p["name"] == "reducer")
        assert reducer["schema"]["default"] == "last"
        assert set(reducer["schema"]["enum"]) == set(REDUCER_ALIASES)
        assert set(data["x-answered-by"]) >= {"server", "streaming"}
        hello = doc["paths"]["/hello/{name}"]["get"]
        assert hello["x-answered-by"] == ["greeter"]
        loud = next(p for p in hello["parameters"] if p["name"] == "loud")
        assert loud == {
            "name": "loud",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": False},
            "allowEmptyValue": True,  # ?loud= is the default, as the route takes it
        }
        # the module's route answers as described
        assert (await client.get("/api/hello/ada?loud=true")).json() == {"hello": "ADA"}
        assert (await client.get("/api/hello/ada?loud=")).json() == {"hello": "ada"}
        control = doc["paths"]["/control"]["post"]
        assert "requestBody" in control
        # answers: the built-in ones have schemas; every operation has its error answers
        ping = doc["paths"]["/ping"]["get"]["responses"]
        assert ping["200"]["content"]["application/json"]["schema"]["items"] == {"const": "pong"}
        upload = doc["paths"]["/config/file/{filename}"]["post"]["responses"]
        assert set(upload) == {"201", "202", "4XX", "5XX"}
        assert hello["responses"]["200"] == {
            "description": "the answer (JSON unless the path says otherwise)"
        }
        error = {"$ref": "#/components/schemas/Error"}
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                for status in ("4XX", "5XX"):
                    content = operation["responses"][status]["content"]
                    assert content["application/json"]["schema"] == error, (method, path)
        # (tests/fuzz/test_schemathesis.py checks real answers against these schemas)
