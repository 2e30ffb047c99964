"""Authentication and roles: every HTTP route and every WebSocket, the original's key form,
the server's own requests, and the key command."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from support import UPGRADE_HEADERS, build_project, serving, write
from test_websocket import receive_json, wait_attached, ws_url

from slowdash_trio._auth import Authenticator, Role, hash_password, parse_basic, required_role
from slowdash_trio._config import AuthConfig, ProjectConfig

TASK = """
from slowdash_controls import ValueNode

V0 = ValueNode(0.0)
calls = []

def set_V0(value: float):
    V0.set(value)
    calls.append(value)
    return value

def _export():
    return [("V0", V0)]
"""
PASSWORDS = {"vera": "look-only", "otto": "turn-knobs", "ada": "edit-all", "old": "sl0wdash"}
ROLES = {"vera": Role.VIEWER, "otto": Role.OPERATOR, "ada": Role.ADMIN, "old": Role.ADMIN}


def quick_hash(password: str) -> str:
    return hash_password(password, rounds=4)  # the cost is the users' choice; tests go fast


def auth_section() -> dict[str, Any]:
    return {
        "type": "Basic",
        "key": f"old:{quick_hash(PASSWORDS['old'])}",  # the original's form: admin
        "users": {
            "vera": {"key": quick_hash(PASSWORDS["vera"]), "role": "viewer"},
            "otto": {"key": quick_hash(PASSWORDS["otto"]), "role": "operator"},
            "ada": {"key": quick_hash(PASSWORDS["ada"]), "role": "admin"},
        },
    }


def basic(user: str, password: str | None = None) -> str:
    secret = f"{user}:{PASSWORDS[user] if password is None else password}"
    return "Basic " + base64.b64encode(secret.encode()).decode()


def as_user(user: str | None) -> dict[str, str]:
    return {} if user is None else {"Authorization": basic(user)}


@pytest.fixture
def project(tmp_path: Path) -> Any:
    write(tmp_path / "config/slowtask-hv.py", TASK)
    write(tmp_path / "config/slowplot-main.json", '{"panels": []}')
    return build_project(
        tmp_path,
        task=[{"name": "hv", "auto_load": True}],
        authentication=auth_section(),
    )


def concrete(path: str) -> str:
    values = {"channels": "hv.V0", "filename": "slowplot-main.json", "topic": "news"}
    values["taskname"] = "hv"
    for key, value in values.items():
        path = path.replace("{" + key + "}", value)
    return path


async def test_every_route_needs_its_role(project: Any) -> None:
    async with serving(project) as (_, client):
        reply = await client.get("/api/openapi.json", headers=as_user("vera"))
        assert reply.status_code == 200
        assert reply.json()["components"]["securitySchemes"] == {
            "basic": {"type": "http", "scheme": "basic"}
        }
        assert reply.json()["security"] == [{"basic": []}]
        routes = [
            (method.upper(), "/api" + concrete(path))
            for path, operations in reply.json()["paths"].items()
            for method in operations
        ]
        assert len(routes) >= 15
        routes += [("GET", "/"), ("GET", "/slowhome.html"), ("GET", "/userhtml/none.html")]
        checked = 0
        for method, path in routes:
            needed = required_role(method, path)
            # no credentials, wrong password, unknown user: 401 with the challenge
            for headers in (
                {},
                {"Authorization": basic("otto", "wrong")},
                {"Authorization": "Basic " + base64.b64encode(b"eve:x").decode()},
                {"Authorization": "Bearer abc"},
            ):
                reply = await client.request(method, path, headers=headers, content=b"{}")
                assert reply.status_code == 401, (method, path, headers)
                assert reply.headers["www-authenticate"].startswith('Basic realm="SlowDash"')
                assert reply.json()["message"] == "authentication required"
            for user, role in ROLES.items():
                # bodies that do nothing harmful: an unknown command, a file rewritten as is
                body = b'{"panels": []}' if "config/file" in path else b'{"nobody": 1}'
                reply = await client.request(method, path, headers=as_user(user), content=body)
                if role < needed:
                    assert reply.status_code == 403, (user, method, path, reply.text)
                    message = reply.json()["message"]
                    assert f"needs role {needed}" in message and f"{user} is {role}" in message
                else:
                    assert reply.status_code not in (401, 403), (user, method, path, reply.text)
                checked += 1
        assert checked == 4 * len(routes)


async def test_roles_for_commands(project: Any) -> None:
    async with serving(project) as (server, client):
        task = server.tasks.get("hv")
        assert task is not None and task.module is not None and task.module.module is not None
        calls = task.module.module.calls
        doc = json.dumps({"value": "3.5", "await hv.set_V0()": True})
        reply = await client.post("/api/control", content=doc, headers=as_user("vera"))
        assert reply.status_code == 403 and calls == []
        reply = await client.post("/api/control", content=doc, headers=as_user("otto"))
        assert (reply.status_code, reply.json()["result"]) == (200, 3.5)
        assert calls == [3.5]
        # task stop/start: operator; config files: admin only
        stop = json.dumps({"command": "stop"})
        reply = await client.post("/api/control/task/hv", content=stop, headers=as_user("vera"))
        assert reply.status_code == 403
        for user, status in (("vera", 403), ("otto", 403), ("ada", 201), ("old", 201)):
            path = f"/api/config/file/slowplot-{user}.json"
            reply = await client.post(path, content=b'{"panels": []}', headers=as_user(user))
            assert reply.status_code == status, (user, reply.text)
        listed = await client.get("/api/config/filelist", headers=as_user("vera"))
        names = {entry["name"] for entry in listed.json()}
        assert {"slowplot-ada.json", "slowplot-old.json"} <= names
        assert "slowplot-vera.json" not in names and "slowplot-otto.json" not in names


async def test_an_allowed_origin_reads_and_commands_with_credentials(tmp_path: Path) -> None:
    friend, evil = "http://dashboards.example.org:3000", "http://evil.example.com"
    write(tmp_path / "config/slowtask-hv.py", TASK)
    project = build_project(
        tmp_path,
        task=[{"name": "hv", "auto_load": True}],
        authentication=auth_section(),
        system={"allowed_origins": [friend]},
    )
    async with serving(project) as (_, client):
        # a browser's preflight carries no credentials: answered for the allowed origin ...
        asking = {"Access-Control-Request-Method": "POST"}
        asking["Access-Control-Request-Headers"] = "authorization, content-type"
        preflight = await client.options("/api/control", headers={"Origin": friend, **asking})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == friend
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        # ... and grants nothing by itself; another origin's preflight is not answered so
        foreign = await client.options("/api/control", headers={"Origin": evil, **asking})
        assert foreign.status_code == 401
        assert "access-control-allow-origin" not in foreign.headers
        doc = json.dumps({"value": "2", "await hv.set_V0()": True})
        bare = await client.post("/api/control", content=doc, headers={"Origin": friend})
        assert bare.status_code == 401
        reply = await client.post(
            "/api/control", content=doc, headers={"Origin": friend, **as_user("otto")}
        )
        assert (reply.status_code, reply.json()["result"]) == (200, 2.0)
        assert reply.headers["access-control-allow-origin"] == friend
        assert reply.headers["access-control-allow-credentials"] == "true"
        viewer = await client.post(
            "/api/control", content=doc, headers={"Origin": friend, **as_user("vera")}
        )
        assert viewer.status_code == 403


async def test_websockets_are_authenticated(project: Any) -> None:
    async with serving(project) as (server, client):
        url = ws_url(client)
        # no or wrong credentials: the upgrade itself is refused with the challenge, which a
        # browser answers with the credentials it has for the pages
        for headers in ({}, {"Authorization": basic("otto", "wrong")}):
            path = "/ws/attach/current_data"
            reply = await client.get(path, headers={**UPGRADE_HEADERS, **headers})
            assert reply.status_code == 401
            assert reply.headers["www-authenticate"].startswith("Basic realm=")
        assert server.hub.subscribers("current_data") == []
        viewer = [("Authorization", basic("vera"))]
        operator = [("Authorization", basic("otto"))]
        async with (
            trio_websocket.open_websocket_url(url, extra_headers=viewer) as listening,
            trio_websocket.open_websocket_url(url, extra_headers=operator) as commanding,
        ):
            await wait_attached(server, 2)
            # a viewer listens but may not write back
            await listening.send_message(json.dumps({"hv.V0": {"t": 1, "x": 9.0}}))
            answer = await receive_json(listening)
            assert "forbidden" in answer["error"] and "vera is viewer" in answer["error"]
            task = server.tasks.get("hv")
            assert task is not None and task.module is not None and task.module.module is not None
            assert float(task.module.module.V0.get()) == 0.0
            # an operator writes back; the viewer sees the value
            await commanding.send_message(json.dumps({"hv.V0": {"t": 2, "x": 7.0}}))
            with trio.fail_after(20):
                while True:
                    frame = await receive_json(listening)
                    if "hv.V0" in frame:
                        break
            assert frame["hv.V0"]["x"] == 7.0
            assert float(task.module.module.V0.get()) == 7.0


async def test_the_servers_own_requests_need_no_credentials(project: Any) -> None:
    async with serving(project) as (server, client):
        channels = await server.app.request_channels()
        assert "hv.V0" in [entry["name"] for entry in channels]
        answer = await server.app.request("/control", {"value": 1.5, "await hv.set_V0()": True})
        assert answer == {"status": "ok", "result": 1.5}
        assert (await client.get("/api/channels")).status_code == 401  # from outside: not


async def test_no_authentication_keeps_todays_behaviour(tmp_path: Path) -> None:
    async with serving(build_project(tmp_path)) as (server, client):
        assert server.auth is None
        assert (await client.get("/api/ping")).status_code == 200
        description = (await client.get("/api/openapi.json")).json()
        assert "security" not in description
        assert "securitySchemes" not in description["components"]
        assert (await client.post("/api/control", content=b'{"x": 1}')).status_code == 400


async def test_credentials_are_checked_once_then_remembered() -> None:
    config = AuthConfig.model_validate(auth_section())
    auth = Authenticator.from_config(config)
    assert auth is not None
    header = basic("otto")
    with trio.fail_after(20):
        first = await auth.authenticate(header)
        assert first is not None and (first.name, first.role) == ("otto", Role.OPERATOR)
        auth.users["otto"] = (quick_hash("changed").encode(), Role.OPERATOR)
        again = await auth.authenticate(header)  # remembered: the hash is not asked again
        assert again == first
        assert await auth.authenticate(basic("otto", "turn-knobs ")) is None
        # a refused value is remembered too: refused again without a check, even once it
        # would pass (so a client repeating a wrong password costs no bcrypt check)
        auth.users["otto"] = (quick_hash("turn-knobs ").encode(), Role.OPERATOR)
        assert await auth.authenticate(basic("otto", "turn-knobs ")) is None
        digest = hashlib.sha256(basic("otto", "turn-knobs ").encode()).digest()
        auth._remembered[digest] = (None, 0.0)  # its time is up: checked afresh
        fixed = await auth.authenticate(basic("otto", "turn-knobs "))
        assert fixed is not None and fixed.name == "otto"
        assert await auth.authenticate(basic("otto", "x" * 100)) is None  # over bcrypt's 72
    assert parse_basic("Basic !!!") is None and parse_basic("Digest abc") is None
    assert parse_basic("basic " + base64.b64encode(b"a:b:c").decode()) == ("a", b"b:c")


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"key": "slow:abc"}, "not a bcrypt hash"),
        ({"key": "no-colon"}, "USER:BCRYPT_HASH"),
        ({"type": "Digest", "key": "a:" + "$2b$04$" + "x" * 53}, "only Basic"),
        ({"users": {"a": {"key": "$2b$04$" + "x" * 53, "role": "root"}}}, "one of viewer"),
        ({"users": {}}, "no user"),
        (
            {"key": "a:" + "$2b$04$" + "x" * 53, "users": {"a": {"key": "$2b$04$" + "x" * 53}}},
            "more than once",
        ),
    ],
)
def test_bad_authentication_sections_are_refused(section: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ProjectConfig.model_validate({"authentication": section})


def test_a_bad_section_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    write(
        tmp_path / "SlowdashProject.yaml",
        """
        slowdash_project:
          authentication:
            type: Basic
            users:
              alice: {role: superuser, key: "$2b$04$abc"}
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "slowdash_trio", "serve", "--project-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SlowdashProject.yaml" in done.stderr and "authentication" in done.stderr
    assert "not a bcrypt hash" in done.stderr and "role 'superuser'" in done.stderr


def test_generate_key_from_a_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "slowdash_trio", "generate-key", "alice"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    user, _, hashed = done.stdout.strip().partition(":")
    assert user == "alice"
    config = AuthConfig.model_validate({"key": done.stdout.strip()})
    assert config.key == [f"alice:{hashed}"]
    auth = Authenticator.from_config(config)
    assert auth is not None
    request = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert trio.run(auth.authenticate, request) is not None
    assert "users:" in done.stderr  # the richer form is shown too
    bad = subprocess.run(
        [sys.executable, "-m", "slowdash_trio", "generate-key", "a:b"],
        input="x\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "without ':'" in bad.stderr


def test_generate_key_on_a_terminal_does_not_echo() -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of its own, as a user at a shell
        os.execv(sys.executable, [sys.executable, "-m", "slowdash_trio", "generate-key", "bob"])
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        while marker not in seen:
            chunk = os.read(fd, 4096)
            assert chunk, seen
            seen += chunk

    read_until(b"Password for bob: ")
    os.write(fd, b"pa55word\n")
    read_until(b"Again: ")
    os.write(fd, b"pa55word\n")
    try:
        read_until(b"users:")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"pa55word" not in seen  # never echoed
    line = next(text for text in seen.decode().splitlines() if text.startswith("bob:$2b$"))
    auth = Authenticator.from_config(AuthConfig.model_validate({"key": line.strip()}))
    assert auth is not None
    assert trio.run(auth.authenticate, basic("bob", "pa55word")) is not None
