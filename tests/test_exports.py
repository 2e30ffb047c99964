"""Exports: ``_export()`` and ``ControlSystem.export`` channels in ``/api/channels`` and
``/api/data``, user ``get()``/``set()`` off the Trio thread, and ``set_export`` conversion."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import trio
from support import build_project, serving, write

from slowdash_trio._server import Server

TASK = """
import dataclasses, threading
from slowdash_controls import ControlNode, ValueNode
from slowdash_stores import Histogram

V0 = ValueNode(1.5)
flag = ValueNode(True)
count = ValueNode(3)
label = ValueNode("idle")
seen = {}

class StatusNode(ControlNode):
    def get(self):                       # user code, may do device I/O: never on the Trio thread
        seen["get"] = threading.get_ident()
        seen["stop_requested"] = ControlSystem.is_stop_requested()
        return {"columns": ["Channel", "Value"], "table": [["Ch0", float(V0)]]}

class Setpoint(ControlNode):
    value = 0.0
    def get(self):
        return self.value
    def set(self, value):
        seen["set"] = threading.get_ident()
        self.value = float(value)

@dataclasses.dataclass
class Settings:
    enabled: bool = False
    gain: float = 1.0

settings = Settings()
config = {"mode": "auto", "level": 2}

class Plain:
    def __init__(self):
        self.speed = 1.0
        self._hidden = 1

plain = Plain()
setpoint = Setpoint()
hist = Histogram(4, 0, 4)
hist.fill(1.5)

def _export():
    return [("V0", V0), ("flag", flag), ("count", count), ("label", label),
            ("Status", StatusNode()), ("sp", setpoint)]

def _initialize(params):
    ControlSystem.export(settings, "settings")   # names verbatim: no prefix
    ControlSystem.export(config, "config")
    ControlSystem.export(plain, "plain")
    ControlSystem.export(hist, "hist")
    seen["unnamed"] = ControlSystem.export(ValueNode(0))
"""


async def channels(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    reply = await client.get("/api/channels")
    assert reply.status_code == 200
    return {entry["name"]: entry for entry in reply.json()}


async def test_exports_are_channels_with_current_values(tmp_path: Path) -> None:
    write(tmp_path / "config/slowtask-test.py", TASK)
    project = build_project(tmp_path, task=[{"name": "test", "auto_load": True}])
    async with serving(project) as (server, client):
        task = server.tasks.get("test")
        assert task is not None and task.module is not None
        user = task.module.module
        listed = await channels(client)
        expected_types = {
            "test.V0": "numeric",
            "test.flag": "numeric",
            "test.label": "string",
            "test.Status": "table",
            "test.sp": "numeric",
            "settings": "tree",
            "config": "tree",
            "plain": "tree",
            "hist": "histogram",
        }
        for name, kind in expected_types.items():
            assert listed[name]["type"] == kind, name
            assert listed[name]["current"] is True
        assert user.seen["unnamed"] in listed and user.seen["unnamed"].startswith("unnamed")

        reply = await client.get("/api/data/test.V0,test.Status,settings,plain,hist?length=60")
        data = reply.json()
        assert data["test.V0"]["x"] == 1.5 and data["test.V0"]["length"] == 60
        assert abs(data["test.V0"]["start"] + data["test.V0"]["t"] - time.time()) < 60
        assert data["test.Status"]["x"]["table"] == [["Ch0", 1.5]]
        assert data["settings"]["x"] == {"tree": {"enabled": False, "gain": 1.0}}
        assert data["plain"]["x"] == {"tree": {"speed": 1.0}}  # private attributes left out
        assert data["hist"]["x"]["counts"] == [0, 1, 0, 0]
        # the sync get() ran in a worker thread, in the task's stop scope
        assert user.seen["get"] != threading.get_ident()
        assert user.seen["stop_requested"] is False

        # exports hold current values only: a window in the past has none
        reply = await client.get("/api/data/test.V0?length=60&to=1000000")
        assert reply.status_code == 200 and reply.json() == {}

        # a stopped task's channels are gone
        await client.post("/api/control/task/test", content=b'{"action": "stop"}')
        listed = await channels(client)
        assert "test.V0" not in listed and "settings" not in listed
        reply = await client.get("/api/data/test.V0")
        assert reply.status_code == 404


async def test_set_export_converts_to_the_type_of_the_target(tmp_path: Path) -> None:
    write(tmp_path / "config/slowtask-test.py", TASK)
    project = build_project(tmp_path, task=[{"name": "test", "auto_load": True}])
    async with serving(project) as (server, _client):
        tasks = server.tasks
        task = tasks.get("test")
        assert task is not None and task.module is not None
        user = task.module.module

        assert await tasks.set_export("test.V0", "2.5") is True
        assert user.V0.get() == 2.5
        assert await tasks.set_export("test.flag", "false") is True
        assert user.flag.get() is False  # not bool("false")
        assert await tasks.set_export("test.count", "7") is True
        assert user.count.get() == 7
        assert await tasks.set_export("test.label", 5) is True
        assert user.label.get() == "5"

        # a value that does not convert: refused, the node unchanged
        assert await tasks.set_export("test.count", "seven") is False
        assert user.count.get() == 7
        # the task's own stream is not echoed back; unknown channels are not set
        assert await tasks.set_export("test.V0", 9, sender="taskmodule_test.V0") is False
        assert user.V0.get() == 2.5
        assert await tasks.set_export("nosuch", 1) is False
        assert await tasks.set_export("hist", {"counts": []}) is False  # data objects: read-only

        # a user set() runs in a worker thread
        assert await tasks.set_export("test.sp", "4.5") is True
        assert user.setpoint.value == 4.5 and user.seen["set"] != threading.get_ident()

        # dict, dataclass and object adapters
        assert await tasks.set_export("config", {"level": "5"}) is True
        assert user.config == {"mode": "auto", "level": 5}
        assert await tasks.set_export("settings", {"enabled": "false", "gain": "2"}) is True
        assert (user.settings.enabled, user.settings.gain) == (False, 2.0)
        assert await tasks.set_export("settings", {"enabled": "yes"}) is True
        assert user.settings.enabled is True
        assert await tasks.set_export("settings", {"gain": "loud"}) is False
        assert await tasks.set_export("settings", {"nosuch": 1}) is False
        assert user.settings.gain == 2.0
        assert await tasks.set_export("plain", {"speed": "3"}) is True
        assert user.plain.speed == 3.0
        assert await tasks.set_export("plain", {"_hidden": 5}) is False
        assert user.plain._hidden == 1

        # export_name_of: the name a node is exported under
        assert tasks.export_name_of(user.V0) == "test.V0"
        assert tasks.export_name_of(user.settings) == "settings"
        assert tasks.export_name_of(object()) is None


async def test_namespace_prefix_and_suffix_and_bad_exports(tmp_path: Path) -> None:
    source = """
from slowdash_controls import ValueNode
V = ValueNode(1)
def _export():
    return [("V", V), ("bad name!", V), "not a pair", ("x", 42)]
def export_bad():
    ControlSystem.export(V, "no/slash")
"""
    write(tmp_path / "config/slowtask-ns.py", source)
    project = build_project(
        tmp_path,
        task=[{"name": "ns", "auto_load": True, "namespace": {"prefix": "hv:", "suffix": ".set"}}],
    )
    async with serving(project) as (server, client):
        listed = await channels(client)
        assert "hv:V.set" in listed
        task = server.tasks.get("ns")
        assert task is not None
        status = task.status()
        assert status["exports"] == ["hv:V.set"]
        assert status["error"]["callback"] == "_export"  # the bad entries were reported
        reply = await client.post("/api/control", content=b'{"await hv:export_bad.set()": true}')
        assert reply.status_code == 500 and "bad channel name" in reply.json()["message"]
        assert server.tasks.export_name_of(task.module.module.V) == "hv:V.set"  # type: ignore[union-attr]


async def test_export_outside_a_task_and_the_hook_is_removed(tmp_path: Path) -> None:
    from slowdash_controls import ControlSystem, ValueNode

    node = ValueNode(2.0)
    server = Server(build_project(tmp_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.tasks.run)
        assert ControlSystem.export(node, "loose") == "loose"
        assert server.tasks.export_name_of(node) == "loose"
        assert await server.tasks.set_export("loose", "3") is True
        assert node.get() == 3.0
        server.tasks.request_stop()
    # no server: the library only names the object
    assert ControlSystem.export(node, "after") == "after"
    assert server.tasks.export_name_of(node) == "loose"  # the old table, untouched
