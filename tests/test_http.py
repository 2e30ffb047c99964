"""End to end over real HTTP on 127.0.0.1 (hypercorn + the ASGI front)."""

from __future__ import annotations

import threading

import httpx
import trio
from support import MakeProject, serving

BLOCKING = """
def _initialize(params):
    global PARAMS
    PARAMS = params

def _get_channels():
    return [{"name": "slow"}]

def _get_data(channel):
    if channel == "slow":
        PARAMS["entered"].set()
        PARAMS["release"].wait(60)
        return 1.0
    return None
"""


async def test_ping_is_answered_while_a_sync_get_data_is_blocked(make_project: MakeProject) -> None:
    entered, release = threading.Event(), threading.Event()
    project = make_project(
        {"blocker": BLOCKING}, parameters={"entered": entered, "release": release}
    )
    data_answered = trio.Event()
    replies: list[httpx.Response] = []
    try:
        async with serving(project) as (_, client):

            async def ask_data() -> None:
                replies.append(await client.get("/api/data/slow"))
                data_answered.set()

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ask_data)
                    assert await trio.to_thread.run_sync(entered.wait, 20)
                    # _get_data is now inside user code and cannot return before release:
                    ping = await client.get("/api/ping")
                    assert ping.status_code == 200 and ping.json() == ["pong"]
                    assert not data_answered.is_set()
                    assert not release.is_set()
                    release.set()
            assert replies[0].status_code == 200
            assert replies[0].json()["slow"]["x"] == 1.0
    finally:
        release.set()


async def test_errors_are_json_over_http(make_project: MakeProject) -> None:
    project = make_project({"blocker": BLOCKING}, system={"max_request_body": 1000})
    async with serving(project) as (_, client):
        unknown = await client.get("/api/nothing/here")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/json"
        assert unknown.json()["status"] == "error"

        bad_json = await client.post(
            "/api/control", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["message"]

        too_big = await client.post("/api/control", content=b"x" * 1001)
        assert too_big.status_code == 413
        assert "max_request_body" in too_big.json()["message"]

        async def chunked() -> object:  # no content-length: the limit applies while reading
            for _ in range(20):
                yield b"y" * 100

        streamed = await client.post("/api/control", content=chunked())  # type: ignore[arg-type]
        assert streamed.status_code == 413

        bad_param = await client.get("/api/data/slow", params={"length": "forever"})
        assert bad_param.status_code == 400 and "'length'" in bad_param.json()["message"]

        traversal = await client.get("/api/config/file/..%2FSlowdashProject.yaml")
        assert traversal.status_code == 404
        assert traversal.json()["status"] == "error"

        # the server is still fine
        assert (await client.get("/api/ping")).json() == ["pong"]


async def test_unicode_channel_names_and_query(make_project: MakeProject) -> None:
    source = """
    def _get_data(channel):
        return {"temp°C": 21.5}.get(channel)
    def _get_channels():
        return [{"name": "temp°C"}]
    """
    async with serving(make_project({"u": source})) as (_, client):
        reply = await client.get("/api/data/temp%C2%B0C", params={"length": "60"})
        assert reply.status_code == 200
        assert reply.json()["temp°C"]["x"] == 21.5


async def test_home_page_shows_project_and_module_state(make_project: MakeProject) -> None:
    project = make_project({"broken": "raise RuntimeError('no luck')\n"}, title="Cryo <Lab>")
    async with serving(project) as (_, client):
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>Cryo &lt;Lab&gt;</h1>" in page.text
        assert "RuntimeError: no luck" in page.text


async def test_shutdown_finalizes_modules_after_the_port_closes(make_project: MakeProject) -> None:
    source = """
    def _initialize(params):
        global PARAMS
        PARAMS = params
    def _finalize():
        PARAMS["finalized"].set()
    """
    finalized = threading.Event()
    project = make_project({"m": source}, parameters={"finalized": finalized})
    async with serving(project) as (server, client):
        assert (await client.get("/api/ping")).status_code == 200
        assert not finalized.is_set()
        url = str(client.base_url)
    assert finalized.is_set()
    async with httpx.AsyncClient() as fresh:
        try:
            await fresh.get(url + "/api/ping")
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("the port is still open after shutdown")
    assert server.modules[0].status.state == "stopped"
