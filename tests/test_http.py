"""End to end over real HTTP on 127.0.0.1 (hypercorn + the ASGI front)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
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


async def test_the_dashboard_files_are_served_from_the_package(make_project: MakeProject) -> None:
    """Pages and ES modules with the right types, revalidated on every use; nothing outside
    the package's static folder (the page content itself is tested in tests/browser)."""
    project = make_project({"broken": "raise RuntimeError('no luck')\n"}, title="Cryo <Lab>")
    async with serving(project) as (_, client):
        home = await client.get("/")
        assert home.status_code == 200
        assert home.headers["content-type"].startswith("text/html")
        assert '<script type="module"' in home.text
        module = await client.get("/js/api.mjs")
        assert module.status_code == 200
        assert module.headers["content-type"].startswith("text/javascript")
        assert "no-cache" in module.headers["cache-control"]
        assert "export async function getJSON" in module.text
        assert (
            (await client.get("/vendor/uPlot.min.css"))
            .headers["content-type"]
            .startswith("text/css")
        )
        outside_paths = ("/../pyproject.toml", "/%2e%2e/_web.py", "/js/../../_web.py", "/x.js")
        for outside in outside_paths:
            assert (await client.get(outside)).status_code == 404, outside
        # what the home page shows about modules comes from /api/config
        modules = (await client.get("/api/config")).json()["user_module"]
        assert "no luck" in modules["broken"]["error"]["message"]


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


async def test_an_install_without_the_browser_libraries_says_so(
    make_project: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package built without its npm step: the pages say what is wrong; the API works."""
    from slowdash_trio import _web

    monkeypatch.setattr(_web, "STATIC", tmp_path / "no-static")
    async with serving(make_project({})) as (_, client):
        page = await client.get("/")
        assert page.status_code == 503
        assert "browser libraries are missing" in page.text and "Node.js 20+" in page.text
        assert (await client.get("/api/ping")).json() == ["pong"]
