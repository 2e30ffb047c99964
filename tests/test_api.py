"""The built-in web API answered in-process: shapes, merging of modules, errors."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import trio
from support import MakeProject, running

from slowdash_trio._errors import ApiError
from slowdash_trio.webapi import Request

TWO_MODULES = {
    "first": """
    def _get_channels():
        return [{"name": "shared", "type": "tree"}, {"name": "only1"}]
    def _get_data(channel):
        return {"shared": {"tree": {"from": "first"}}, "only1": 1.5}.get(channel)
    """,
    "second": """
    def _get_channels():
        return [{"name": "shared", "type": "tree"}, {"name": "only2", "current": False}]
    def _get_data(channel):
        return {"shared": {"tree": {"from": "second"}}, "only2": "text"}.get(channel)
    """,
}


async def get(server: Any, path: str, **query: str) -> Any:
    return await server.handle(Request("GET", path, query))


async def post(server: Any, path: str, doc: Any) -> Any:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return await server.handle(Request("POST", path, body=body))


async def test_ping_and_config(make_project: MakeProject) -> None:
    project = make_project(
        {"first": TWO_MODULES["first"]},
        style={"theme": "dark"},
        task=[{"name": "t1", "auto_load": True}],
        name="Proj",
        title="My Proj",
    )
    async with running(project) as server:
        assert (await get(server, "/ping")).content == ["pong"]
        config = (await get(server, "/config")).content
    assert config["project"] == {
        "name": "Proj",
        "title": "My Proj",
        "is_secure": False,
        "is_cgi": False,
        "is_command": False,
        "is_async": True,
    }
    assert config["style"] == {"theme": "dark"}
    assert config["task_module"]["t1"]["auto_load"] is True  # the task manager adds its state
    assert config["task_module"]["t1"]["state"] == "listed"  # running() does not start tasks
    assert config["user_module"]["first"]["state"] == "running"
    assert config["user_module"]["first"]["error"] is None


async def test_channels_of_modules_are_concatenated_in_order(make_project: MakeProject) -> None:
    async with running(make_project(TWO_MODULES)) as server:
        reply = await get(server, "/channels")
    # a channel that two modules list with the same type is listed once (the original: twice)
    assert reply.content == [
        {"name": "shared", "type": "tree", "current": True},
        {"name": "only1", "current": True},
        {"name": "only2", "current": False},
    ]


async def test_data_merges_modules_and_times_are_relative(make_project: MakeProject) -> None:
    async with running(make_project(TWO_MODULES)) as server:
        before = time.time()
        reply = await get(server, "/data/shared,only1,only2", length="60")
        after = time.time()
    assert reply.status == 200
    data = reply.content
    assert set(data) == {"shared", "only1", "only2"}
    assert data["shared"]["x"] == {"tree": {"from": "second"}}  # the later module wins
    assert data["only1"]["x"] == 1.5 and data["only2"]["x"] == "text"
    for entry in data.values():
        assert entry["length"] == 60.0
        assert entry["t"] == pytest.approx(60.0)
        assert before <= entry["start"] + entry["t"] <= after  # start + t is now


async def test_data_suffix_reaches_one_module(make_project: MakeProject) -> None:
    project = make_project(
        TWO_MODULES, entries={"first": {"data_suffix": "one"}, "second": {"data_suffix": "two"}}
    )
    async with running(project) as server:
        reply = await get(server, "/data/shared.one,shared.two,shared")
        channels = await get(server, "/channels")
    data = reply.content
    assert data["shared.one"]["x"] == {"tree": {"from": "first"}}
    assert data["shared.two"]["x"] == {"tree": {"from": "second"}}
    assert data["shared"]["x"] == {"tree": {"from": "second"}}
    assert all("." not in entry["name"] for entry in channels.content)  # bare names listed


async def test_module_data_only_for_windows_containing_now(make_project: MakeProject) -> None:
    async with running(make_project(TWO_MODULES)) as server:
        past = await get(server, "/data/only1", length="60", to=str(time.time() - 3600))
        relative_past = await get(server, "/data/only1", length="60", to="-600")
        future = await get(server, "/data/only1", length="3600", to=str(time.time() + 600))
    assert (past.status, past.content) == (200, {})  # a known channel without data
    assert (relative_past.status, relative_past.content) == (200, {})
    assert future.content["only1"]["start"] + future.content["only1"]["t"] == pytest.approx(
        time.time(), abs=5
    )


async def test_unknown_channels(make_project: MakeProject) -> None:
    async with running(make_project(TWO_MODULES)) as server:
        unknown = await get(server, "/data/nope,nada")
        partial = await get(server, "/data/only1,nope")
    assert unknown.status == 404
    assert unknown.content == {"status": "error", "message": "unknown channels: nope, nada"}
    assert partial.status == 200
    assert set(partial.content) == {"only1"}
    assert partial.headers["X-Slowdash-Unknown-Channels"] == "nope"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"length": "abc"}, "'length'"),
        ({"length": "-5"}, "must be positive"),
        ({"to": "soon"}, "'to'"),
        ({"reducer": "avg"}, "unknown reducer 'avg'"),
        ({"envelope": "3"}, "'envelope'"),
        ({"prior_data": "x"}, "'prior_data'"),
    ],
)
async def test_bad_data_parameters_are_400(
    make_project: MakeProject, query: dict[str, str], fragment: str
) -> None:
    async with running(make_project(TWO_MODULES)) as server:
        reply = await get(server, "/data/only1", **query)
    assert reply.status == 400
    assert reply.content["status"] == "error"
    assert fragment in reply.content["message"]


async def test_empty_channel_list_is_an_error(make_project: MakeProject) -> None:
    async with running(make_project(TWO_MODULES)) as server:
        assert (await get(server, "/data/,")).status == 400
        assert (await get(server, "/data/")).status == 404


COMMANDS = """
def _process_command(doc):
    action = doc.get("action")
    if action == "ok":
        return True
    if action == "fail":
        return False
    if action == "explain":
        return {"status": "error", "message": "valve is locked"}
    if action == "custom":
        return {"status": "ok", "value": 7}
    if action == "forbidden":
        return 403
    return None
"""


@pytest.mark.parametrize(
    ("action", "status", "content"),
    [
        ("ok", 200, {"status": "ok"}),
        ("fail", 400, {"status": "error", "message": "module cmd: the command failed"}),
        ("explain", 400, {"status": "error", "message": "valve is locked"}),
        ("custom", 200, {"status": "ok", "value": 7}),
        ("forbidden", 403, {"status": "error"}),
        ("unknown", 400, {"status": "error", "message": "no module handled the command"}),
    ],
)
async def test_control_results(
    make_project: MakeProject, action: str, status: int, content: Any
) -> None:
    async with running(make_project({"cmd": COMMANDS})) as server:
        reply = await post(server, "/control", {"action": action})
    assert (reply.status, reply.content) == (status, content)


async def test_control_first_module_that_answers_wins(make_project: MakeProject) -> None:
    recorder = """
    calls = []
    def _process_command(doc):
        calls.append(doc)
        return True
    """
    async with running(make_project({"cmd": COMMANDS, "rec": recorder})) as server:
        handled = await post(server, "/control", {"action": "ok"})
        passed = await post(server, "/control", {"action": "other"})
        rec = server.modules[1].module
    assert handled.content == {"status": "ok"}
    assert passed.content == {"status": "ok"}
    assert rec is not None and rec.calls == [{"action": "other"}]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"", b'"text"'])
async def test_control_rejects_bad_documents(make_project: MakeProject, body: bytes) -> None:
    async with running(make_project({"cmd": COMMANDS})) as server:
        reply = await post(server, "/control", body)
    assert reply.status == 400
    assert reply.content["status"] == "error"


async def test_unknown_api_path(make_project: MakeProject) -> None:
    async with running(make_project({})) as server:
        reply = await get(server, "/no/such/thing")
    assert reply.status == 404
    assert reply.content["message"] == "nothing answers GET /api/no/such/thing"


async def test_user_webapi_extends_and_overrides(make_project: MakeProject) -> None:
    source = """
    import slowdash_trio.webapi as slowlette
    webapi = slowlette.Slowlette()

    @webapi.get('/channels')
    def channels():
        return [{'name': 'extra'}]

    @webapi.get('/data/{channels}')
    async def data(channels: str, length: float = 0):
        if 'extra' in channels.split(','):
            return {'extra': {'x': length}}

    @webapi.get('/config')
    def config(request: slowlette.Request):
        request.abort()
        return {'replaced': True}

    @webapi.post('/echo')
    def echo(doc: slowlette.DictJSON):
        return doc

    @webapi.get('/broken')
    def broken():
        raise RuntimeError('handler bug')

    def _get_channels():
        return [{'name': 'own'}]
    """
    async with running(make_project({"ext": source})) as server:
        channels = await get(server, "/channels")
        data = await get(server, "/data/extra", length="12")
        config = await get(server, "/config")
        echo = await post(server, "/echo", {"a": [1]})
        broken = await get(server, "/broken")
    assert [c["name"] for c in channels.content] == ["extra", "own"]
    assert data.content == {"extra": {"x": 12.0}}
    assert config.content == {"replaced": True}  # the built-in /config did not answer
    assert echo.content == {"a": [1]}
    assert broken.status == 500
    assert "handler bug" in broken.content["message"]
    error = server.modules[0].status.error
    assert error is not None and "handler bug" in error.message


async def test_app_request_services(make_project: MakeProject) -> None:
    async with running(make_project(TWO_MODULES)) as server:
        app = server.app
        assert await app.request("/api/ping") == ["pong"]
        assert (await app.request_config())["project"]["name"] == "TestProject"
        assert len(await app.request_channels()) == 3  # "shared" once
        data = await app.request_data(["only1", "only2"], length=10)
        assert set(data) == {"only1", "only2"} and data["only1"]["length"] == 10.0
        with pytest.raises(ApiError) as info:
            await app.request_data("nope")
        assert info.value.status == 404
        with pytest.raises(ApiError, match="no module handled"):
            await app.request("/control", {"x": 1})


async def test_async_handler_may_call_back_into_its_own_module(make_project: MakeProject) -> None:
    source = """
    import slowdash_trio.webapi as slowlette
    webapi = slowlette.WebApi()
    APP = None

    async def _setup(app):
        global APP
        APP = app

    def _get_channels():
        return [{"name": "mine"}]

    @webapi.get('/config/content/slowplot-all.json')
    async def layout():
        channels = await APP.request_channels()     # reaches this module's _get_channels too
        return {"panels": [c["name"] for c in channels]}
    """
    project = make_project({"gen": source}, entries={"gen": {"call_timeout": 5}})
    async with running(project) as server:
        with trio.fail_after(3):  # well under the call deadline: no waiting on ourselves
            reply = await get(server, "/config/content/slowplot-all.json")
    assert reply.content == {"panels": ["mine"]}


async def test_user_content_is_not_overridden_by_builtin_refusals(
    make_project: MakeProject,
) -> None:
    source = """
    import slowdash_trio.webapi as slowlette
    webapi = slowlette.WebApi()

    @webapi.get('/config/content/{name}')
    def content(name: str):
        return {"generated": name} if name == "virtual" else None
    """
    async with running(make_project({"gen": source})) as server:
        virtual = await get(server, "/config/content/virtual")  # no extension: not a file name
        absent = await get(server, "/config/content/absent")
    assert (virtual.status, virtual.content) == (200, {"generated": "virtual"})
    assert absent.status == 400
    assert "expected NAME.EXT" in absent.content["message"]


async def test_bad_values_from_modules_are_recorded_not_sent(
    make_project: MakeProject, caplog: pytest.LogCaptureFixture
) -> None:
    source = """
    def _get_channels():
        return [{"name": "ok"}, {"nom": "typo"}, "text", {"name": 5}]
    def _get_data(channel):
        return {"ok": 1.0, "set": {1, 2}, "keys": {1: "a"}}.get(channel)
    """
    async with running(make_project({"sloppy": source})) as server:
        channels = await get(server, "/channels")
        data = await get(server, "/data/ok,set,keys")
    assert channels.content == [{"name": "ok", "current": True}]
    assert set(data.content) == {"ok"}
    logged = [r.getMessage() for r in caplog.records if r.name == "slowdash_trio.module"]
    assert "module sloppy: _get_data: channel 'set': not JSON data: set value {1, 2}" in logged
    assert (
        "module sloppy: _get_data: channel 'keys': not JSON data: key 1 is not a string" in logged
    )
    assert sum("_get_channels: bad entry" in m for m in logged) == 6  # two listings, 3 each
    assert server.modules[0].status.error_count == 8
