"""examples/slowtask: the seed's ramping power supply, driven through its HTML form's buttons."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import trio
from support import EXAMPLES, serving

from slowdash_trio._project import load_project

PROJECT = EXAMPLES / "slowtask"


def buttons() -> list[str]:
    html = (PROJECT / "config/html-PowerSupply.html").read_text()
    return re.findall(r'type="submit" name="([^"]+)"', html)


async def press(client: httpx.AsyncClient, button: str, **fields: Any) -> httpx.Response:
    """What the HTML panel posts when ``button`` is clicked (no Content-Type header)."""
    assert button in buttons(), f"the form has no button {button!r}"
    doc = {"ramping": "1", "V0": "0", "V1": "0", "V2": "0", "V3": "0", **fields, button: True}
    return await client.post("/api/control", content=json.dumps(doc))


async def status(client: httpx.AsyncClient) -> list[list[Any]]:
    reply = await client.get("/api/data/test.Status")
    table: list[list[Any]] = reply.json()["test.Status"]["x"]["table"]
    return table


async def wait_for(client: httpx.AsyncClient, column: int, expected: list[Any]) -> None:
    """Poll the status table (with a deadline) until ``column`` reads ``expected``."""
    with trio.fail_after(20):
        while [row[column] for row in await status(client)] != expected:  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_power_supply_form() -> None:
    assert buttons() == [
        "parallel test.set_V0()",
        "parallel test.set_V1()",
        "parallel test.set_V2()",
        "parallel test.set_V3()",
        "test.set_all()",
        "parallel test.stop()",
    ]
    async with serving(load_project(PROJECT)) as (server, client):
        channels = {e["name"]: e.get("type") for e in (await client.get("/api/channels")).json()}
        assert channels["test.V0"] == "numeric" and channels["test.Status"] == "table"

        reply = await press(client, "parallel test.set_V0()", V0="2", ramping="100")
        assert reply.json() == {"status": "ok"}
        await wait_for(client, 1, [2.0, 0.0, 0.0, 0.0])

        reply = await press(client, "test.set_all()", V0="1", V1="2", V2="3", V3="4", ramping="100")
        assert reply.json() == {"status": "ok"}
        await wait_for(client, 1, [1.0, 2.0, 3.0, 4.0])

        # a slow ramp, halted by the (parallel) stop button
        reply = await press(client, "parallel test.set_V1()", V1="1000", ramping="1")
        assert reply.json() == {"status": "ok"}
        await wait_for(client, 2, ["No", "Yes", "No", "No"])
        reply = await press(client, "parallel test.stop()")
        assert reply.json() == {"status": "ok"}
        await wait_for(client, 2, ["No", "No", "No", "No"])
        assert 2.0 <= (await status(client))[1][1] < 10.0

        # bad input is refused with the field named; nothing moves
        reply = await press(client, "parallel test.set_V2()", V2="high", ramping="100")
        assert reply.status_code == 400 and "field 'V2'" in reply.json()["message"]
        reply = await client.get("/api/data/test.V2")
        assert reply.json()["test.V2"]["x"] == 3.0
        task = server.tasks.get("test")
        assert task is not None and task.status()["has_error"] is False
