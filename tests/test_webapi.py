"""The router (slowdash_trio.webapi) and the dispatcher's merge rules, without sockets."""

from __future__ import annotations

from typing import Any

import pytest

from slowdash_trio._dispatch import Mount, dispatch, encode_json, merge_content, render
from slowdash_trio.webapi import JSON, BadRequest, DictJSON, Request, Response, Route, WebApi


def route(path: str, handler: Any, methods: tuple[str, ...] = ("GET",)) -> Route:
    return Route(methods, path, handler)


def test_path_and_typed_query_parameters_bind_by_name() -> None:
    def handler(channels: str, length: float = 3600.0, n: int = 1, flag: bool = False) -> None: ...

    r = route("/data/{channels}", handler)
    kwargs = r.match(Request("GET", "/data/a,b", {"length": "60", "n": "3", "flag": "true"}))
    assert kwargs == {"channels": "a,b", "length": 60.0, "n": 3, "flag": True}
    assert r.match(Request("GET", "/data/a")) == {"channels": "a"}


def test_routes_that_do_not_apply_do_not_match() -> None:
    def handler(channels: str, required: int) -> None: ...

    r = route("/data/{channels}", handler)
    assert r.match(Request("GET", "/data/a")) is None  # required query parameter absent
    assert r.match(Request("POST", "/data/a", {"required": "1"})) is None  # method
    assert r.match(Request("GET", "/data", {"required": "1"})) is None  # segment count
    assert r.match(Request("GET", "/data/", {"required": "1"})) is None  # empty path parameter
    assert r.match(Request("GET", "/other/a", {"required": "1"})) is None


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"length": "abc"}, "'length': bad value 'abc'"),
        ({"length": "nan"}, "not a finite number"),
        ({"flag": "maybe"}, "'flag': bad value 'maybe'"),
        ({"n": "1.5"}, "'n': bad value '1.5'"),
    ],
)
def test_bad_query_values_are_bad_requests_naming_the_parameter(
    query: dict[str, str], fragment: str
) -> None:
    def handler(length: float = 1.0, flag: bool = False, n: int = 0) -> None: ...

    with pytest.raises(BadRequest) as info:
        route("/x", handler).match(Request("GET", "/x", query))
    assert fragment in info.value.message
    assert info.value.status == 400


def test_bool_is_parsed_not_truthiness() -> None:
    def handler(flag: bool = True) -> None: ...

    r = route("/x", handler)
    assert r.match(Request("GET", "/x", {"flag": "false"})) == {"flag": False}
    assert r.match(Request("GET", "/x", {"flag": ""})) == {}  # blank: the default


def test_request_body_json_and_query_dict_bindings() -> None:
    def handler(
        request: Request, raw: bytes, doc: DictJSON, any_doc: JSON, query: dict
    ) -> None: ...  # type: ignore[type-arg]

    req = Request("POST", "/x", {"a": "1"}, b'{"k": 2}')
    kwargs = route("/x", handler, ("POST",)).match(req)
    assert kwargs == {
        "request": req,
        "raw": b'{"k": 2}',
        "doc": {"k": 2},
        "any_doc": {"k": 2},
        "query": {"a": "1"},
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{oops", "not valid JSON"),
        (b"", "empty"),
        (b"[1]", "JSON object"),
        (b"\xff\xfe{", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_json_bodies_are_bad_requests(body: bytes, fragment: str) -> None:
    def handler(doc: DictJSON) -> None: ...

    with pytest.raises(BadRequest, match=fragment):
        route("/x", handler, ("POST",)).match(Request("POST", "/x", body=body))


def test_unsupported_annotation_is_refused_at_registration() -> None:
    def handler(x: list) -> None: ...  # type: ignore[type-arg]

    with pytest.raises(TypeError, match="unsupported annotation"):
        route("/x", handler)


def test_merge_rules() -> None:
    assert merge_content({"a": {"x": 1, "y": 1}, "b": 1}, {"a": {"y": 2}, "c": 3}) == {
        "a": {"x": 1, "y": 2},
        "b": 1,
        "c": 3,
    }
    assert merge_content([1], [2, 3]) == [1, 2, 3]
    assert merge_content("a", "b") == "a\r\nb"
    assert merge_content({"a": 1}, [1]) == {"a": 1}  # incompatible: the first is kept
    assert merge_content(None, [1]) == [1]


async def _direct(route: Route, kwargs: dict[str, Any]) -> Any:
    result = route.handler(**kwargs)
    return await result if route.is_async else result


async def test_dispatch_calls_every_matching_handler_and_merges() -> None:
    first, second = WebApi(), WebApi()
    first.get("/channels")(lambda: [{"name": "a"}])
    second.get("/channels")(lambda: [{"name": "b"}])
    reply = await dispatch(
        Request("GET", "/channels"), [Mount(first, "1", _direct), Mount(second, "2", _direct)]
    )
    assert reply.status == 200
    assert reply.content == [{"name": "a"}, {"name": "b"}]


async def test_higher_status_wins_and_abort_stops_later_handlers() -> None:
    calls: list[str] = []
    first, second = WebApi(), WebApi()

    @first.get("/x")
    def stopper(request: Request) -> Any:
        calls.append("first")
        request.abort()
        return Response({"from": "first"}, 202)

    @second.get("/x")
    def later() -> Any:
        calls.append("second")
        return {"from": "second"}

    reply = await dispatch(
        Request("GET", "/x"), [Mount(first, "1", _direct), Mount(second, "2", _direct)]
    )
    assert calls == ["first"]
    assert (reply.status, reply.content) == (202, {"from": "first"})

    first.routes.clear()
    first.get("/x")(lambda: Response({"e": 1}, 500))
    reply = await dispatch(
        Request("GET", "/x"), [Mount(first, "1", _direct), Mount(second, "2", _direct)]
    )
    assert reply.status == 500


async def test_nothing_answering_is_a_json_404() -> None:
    reply = await dispatch(Request("GET", "/nowhere"), [])
    assert reply.status == 404
    assert reply.content == {"status": "error", "message": "nothing answers GET /api/nowhere"}


async def test_bad_request_during_binding_is_a_json_400() -> None:
    api = WebApi()

    @api.get("/x")
    def handler(n: int = 1) -> int:
        return n

    reply = await dispatch(Request("GET", "/x", {"n": "one"}), [Mount(api, "x", _direct)])
    assert reply.status == 400
    assert "'n'" in reply.content["message"]


def test_render_json_text_bytes_and_unserializable() -> None:
    assert render(Response({"a": float("nan")})) == (200, "application/json", b'{"a":null}')
    assert render(Response("hi"))[1:] == ("text/plain; charset=utf-8", b"hi")
    assert render(Response(b"\x00", 200, "image/png")) == (200, "image/png", b"\x00")
    status, _, body = render(Response({"a": object()}))
    assert status == 500 and b"not JSON-serializable" in body
    assert encode_json({"k": "µ"}) == '{"k":"µ"}'.encode()
