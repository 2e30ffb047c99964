"""The audit log: who changed what, from where, with what outcome; in the server log and in a
data store table that the dashboard reads back."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio_websocket
from support import build_project, serving, until, write
from test_auth import TASK, as_user, auth_section, basic
from test_websocket import wait_attached, ws_url

from slowdash_trio._audit import MAX_DETAIL, summarize
from slowdash_trio._errors import ApiError

FAILING = (
    TASK
    + """
def trip():
    raise RuntimeError("interlock open")
"""
)


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    records = caplog.records
    return [r.getMessage() for r in records if r.name == "slowdash_trio.audit" and r.levelno == 20]


@pytest.fixture
def project(tmp_path: Path) -> Any:
    write(tmp_path / "config/slowtask-hv.py", FAILING)
    return build_project(
        tmp_path,
        task=[{"name": "hv", "auto_load": True}],
        authentication=auth_section(),
        system={"audit": {"store": "sqlite:///audit.db", "table": "audit"}},
    )


async def test_who_changed_what(project: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="slowdash_trio.audit")
    async with serving(project) as (server, client):
        doc = json.dumps({"value": "3.5", "await hv.set_V0()": True})
        assert (await client.post("/api/control", content=doc, headers=as_user("otto"))).is_success
        failing = json.dumps({"await hv.trip()": True})
        await client.post("/api/control", content=failing, headers=as_user("otto"))
        refused = await client.post("/api/control", content=doc, headers=as_user("vera"))
        assert refused.status_code == 403
        path = "/api/config/file/slowplot-a.json"
        written = await client.post(path, content=b'{"panels": []}', headers=as_user("ada"))
        assert written.status_code == 201
        stop = json.dumps({"action": "stop"})
        stopped = await client.post("/api/control/task/hv", content=stop, headers=as_user("otto"))
        assert stopped.json() == {"status": "ok", "state": "stopped"}
        assert (await client.get("/api/channels", headers=as_user("otto"))).is_success
        with pytest.raises(ApiError, match="no module handled"):
            await server.app.request("/control", {"nobody": 1})  # the server's own
        lines = audit_lines(caplog)

    assert lines[0] == (
        'otto@127.0.0.1 POST /api/control {"value":"3.5","await hv.set_V0()":true} -> 200 ok'
    )
    assert lines[1].startswith('otto@127.0.0.1 POST /api/control {"await hv.trip()":true} -> ')
    assert "interlock open" in lines[1]
    assert lines[2] == "vera@127.0.0.1 POST /api/control -> 403 forbidden: needs role operator"
    assert lines[3] == "ada@127.0.0.1 POST /api/config/file/slowplot-a.json (14 bytes) -> 201 ok"
    assert lines[4] == 'otto@127.0.0.1 POST /api/control/task/hv {"action":"stop"} -> 200 ok'
    assert lines[5].startswith('(server)@- POST /api/control {"nobody":1} -> 400 ')
    assert len(lines) == 6  # reading (GET /api/channels) is not recorded

    # the same records in the store, one tree per record, readable after the server stopped
    with sqlite3.connect(project.directory / "audit.db") as db:
        rows = db.execute("SELECT timestamp, channel, value FROM audit ORDER BY timestamp")
        stored = [(t, channel, json.loads(value)["tree"]) for t, channel, value in rows]
    assert [channel for _, channel, _ in stored] == ["audit"] * 6
    first = stored[0][2]
    assert (first["user"], first["client"], first["action"]) == (
        "otto",
        "127.0.0.1",
        "POST /api/control",
    )
    assert (first["status"], first["outcome"]) == (200, "ok")
    assert [tree["user"] for _, _, tree in stored] == [
        "otto",
        "otto",
        "vera",
        "ada",
        "otto",
        "(server)",
    ]
    times = [t for t, _, _ in stored]
    assert times == sorted(set(times))


async def test_live_write_back_is_recorded(project: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="slowdash_trio.audit")
    async with serving(project) as (server, client):
        operator = [("Authorization", basic("otto"))]
        async with trio_websocket.open_websocket_url(ws_url(client), extra_headers=operator) as ws:
            await wait_attached(server, 1)
            await ws.send_message(
                json.dumps({"hv.V0": {"t": 1, "x": 7.0}, "other": {"t": 1, "x": 1}})
            )
            await until(lambda: bool(audit_lines(caplog)))
        emitted = json.dumps({"hv.V0": {"t": 2, "x": 8.0}})
        reply = await client.post(
            "/api/emit/current_data", content=emitted, headers=as_user("otto")
        )
        assert reply.status_code == 201
        publish = await client.post("/api/emit/news", content=b"hello", headers=as_user("otto"))
        assert publish.status_code == 201
    lines = audit_lines(caplog)
    # the node that was set, once per write; values that set nothing are not commands
    assert lines == [
        "otto@127.0.0.1 write-back hv.V0 7.0 -> 200 ok",
        "otto@127.0.0.1 write-back hv.V0 8.0 -> 200 ok",
    ]


def test_bodies_are_summarized() -> None:
    assert summarize(b"") == ""
    assert summarize(b'{ "a" : [1, 2] }') == '{"a":[1,2]}'
    assert summarize(b"line one\n  line two") == "line one line two"
    assert summarize(b"\xff\xfe") == "(2 bytes, not UTF-8)"
    assert summarize(b"\x00" * 10, "application/octet-stream") == "(10 bytes)"
    long = summarize(json.dumps({"x": "y" * 2000}).encode())
    assert len(long) < MAX_DETAIL + 40 and long.endswith("bytes)")
    # of a huge body only the head is read: a character cut in two is left out
    huge = ("é" * 10_000).encode()
    assert summarize(huge) == "é" * MAX_DETAIL + f"... ({len(huge)} bytes)"
    cut = b"a" + huge  # the head ends in the middle of an "é"
    assert summarize(cut) == "a" + "é" * (MAX_DETAIL - 1) + f"... ({len(cut)} bytes)"
    assert summarize(b"\xff" + huge) == f"({len(huge) + 1} bytes, not UTF-8)"


async def test_a_store_that_cannot_open_loses_nothing_from_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    project = build_project(tmp_path, system={"audit": {"store": "sqlite:///no/such/dir/audit.db"}})
    async with serving(project) as (_, client):
        await client.post("/api/control", content=b'{"x": 1}')
    assert audit_lines(caplog) == [
        '-@127.0.0.1 POST /api/control {"x":1} -> 400 no module handled the command'
    ]
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("audit store" in message and "no/such/dir" in message for message in problems)
