"""Hostile web pages: state-changing requests and WebSocket upgrades from another origin are
refused; the server's own pages, scripts and configured origins keep working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from support import UPGRADE_HEADERS, build_project, serving

from slowdash_trio._origin import OriginPolicy, normalize_origin

MODULE = """
def _initialize(params):
    global CALLS
    CALLS = params["calls"]

def _process_command(doc):
    CALLS.append(doc)
    return True
"""
EVIL = "http://127.0.0.1:9"  # another origin on the same host (a different port)
FRIEND = "http://dashboards.example.org:3000"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:18881", "http://127.0.0.1:18881"),
        ("HTTP://LAB-PC:80/", "http://lab-pc"),
        ("https://lab.example.org:443", "https://lab.example.org"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_origins_are_normalized(text: str, expected: str) -> None:
    assert normalize_origin(text) == expected


@pytest.mark.parametrize(
    "text", ["lab-pc:8080", "ftp://lab-pc", "http://lab-pc/path", "http://", "http://h:99999"]
)
def test_what_is_not_an_origin_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)origin|port"):
        normalize_origin(text)


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("POST", {}, False),  # a script, curl
        ("POST", {"host": "lab:1", "origin": "http://lab:1"}, False),  # the server's own page
        ("POST", {"host": "lab:1", "origin": "http://evil:1"}, True),
        ("POST", {"host": "lab:1", "origin": "http://lab:2"}, True),  # another port
        ("POST", {"host": "lab:1", "origin": "null"}, True),
        ("POST", {"host": "lab:1", "sec-fetch-site": "cross-site"}, True),
        ("POST", {"host": "lab:1", "sec-fetch-site": "same-origin"}, False),
        ("DELETE", {"host": "lab:1", "origin": "http://evil:1"}, True),
        ("GET", {"host": "lab:1", "origin": "http://evil:1"}, False),  # reads: no CORS header
        ("POST", {"host": "lab:1", "origin": "http://friend:3"}, False),  # configured
    ],
)
def test_the_rule(method: str, headers: dict[str, str], refused: bool) -> None:
    policy = OriginPolicy.from_config(["http://friend:3"])
    assert (policy.refusal(method, headers, "http") is not None) == refused


def test_websocket_upgrades_always_show_their_origin() -> None:
    policy = OriginPolicy()
    headers = {"host": "lab:1", "origin": "http://lab:1"}
    assert policy.refusal("GET", headers, "ws", websocket=True) is None
    assert policy.refusal("GET", {**headers, "origin": "http://evil"}, "ws", websocket=True)


def test_a_bad_allowed_origin_is_a_project_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        build_project(tmp_path, {}, system={"allowed_origins": ["lab-pc/dashboard"]})


async def test_cross_origin_commands_are_refused_and_nothing_is_called(tmp_path: Path) -> None:
    calls: list[Any] = []
    project = build_project(
        tmp_path, {"m": MODULE}, parameters={"calls": calls}, system={"allowed_origins": [FRIEND]}
    )
    async with serving(project) as (_, client):
        own = str(client.base_url).rstrip("/")
        refused = [
            ({"Origin": EVIL}, "application/json"),
            ({"Origin": EVIL}, "text/plain"),
            ({"Origin": EVIL}, "application/x-www-form-urlencoded"),
            ({"Origin": "null"}, "application/json"),
            ({"Sec-Fetch-Site": "cross-site"}, "text/plain"),
        ]
        for headers, content_type in refused:
            reply = await client.post(
                "/api/control",
                content=b'{"evil": true}',
                headers={**headers, "Content-Type": content_type},
            )
            assert reply.status_code == 403, (headers, reply.text)
            assert "cross-origin request refused" in reply.json()["message"]
            assert "access-control-allow-origin" not in reply.headers
        delete = await client.delete("/api/config/file/x.json", headers={"Origin": EVIL})
        assert delete.status_code == 403
        assert calls == []
        # the server's own pages (with or without a content type), scripts, friends
        accepted = [{"Origin": own}, {}, {"Origin": FRIEND}]
        for headers in accepted:
            reply = await client.post("/api/control", content=b'{"ok": 1}', headers=headers)
            assert reply.status_code == 200, (headers, reply.text)
        assert calls == [{"ok": 1}] * 3
        reply = await client.post("/api/control", json={"ok": 2}, headers={"Origin": FRIEND})
        assert reply.headers["access-control-allow-origin"] == FRIEND
        preflight = await client.options(
            "/api/control",
            headers={"Origin": FRIEND, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == FRIEND
        assert "access-control-allow-credentials" not in preflight.headers  # no auth here
        # reading is allowed from anywhere, but no CORS header lets another page see it
        read = await client.get("/api/ping", headers={"Origin": EVIL})
        assert read.status_code == 200 and "access-control-allow-origin" not in read.headers
        foreign_preflight = await client.options("/api/control", headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in foreign_preflight.headers


async def test_websockets_from_another_origin_are_refused(tmp_path: Path) -> None:
    async with serving(build_project(tmp_path, {})) as (_, client):
        url = (
            str(client.base_url).replace("http://", "ws://").rstrip("/") + "/ws/attach/current_data"
        )
        own = str(client.base_url).rstrip("/")
        with trio.fail_after(10):
            # the upgrade from another origin is answered 403
            for origin in (EVIL, "null"):
                reply = await client.get(
                    "/ws/attach/current_data", headers={**UPGRADE_HEADERS, "Origin": origin}
                )
                assert reply.status_code == 403, reply.text
            async with trio_websocket.open_websocket_url(
                url, extra_headers=[(b"Origin", own.encode())]
            ) as ws:
                await ws.send_message('{"x": {"t": 1, "x": 1}}')
                assert "x" in await ws.get_message()
