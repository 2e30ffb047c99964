"""Device links on the home page: a task's and a module's link to a fake instrument, shown up,
then down once the instrument is gone (task manager by its long poll, server status on load)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from support import free_port

from slowdash_controls.testing import FakeScpiInstrument, run_in_thread

Serve = Callable[..., Any]
Project = Callable[..., Path]

TASK = """
from slowdash_controls import ControlException
device = ControlSystem().ethernet(  # noqa: F821 -- tasks get ControlSystem without an import
    "127.0.0.1", PORT, timeout=1, backoff_initial=0.05, backoff_max=0.2
)
V0 = device.scpi().command("MEAS:V0")


def _loop():
    try:
        V0.get()
    except ControlException:
        pass
    ControlSystem().sleep(0.05)  # noqa: F821
"""

MODULE = """
from slowdash_controls import ControlException, ControlSystem

V0 = ControlSystem().ethernet("127.0.0.1", PORT, timeout=1, backoff_max=0.2).scpi().command("V0")


def _loop():
    try:
        V0.get()
    except ControlException:
        pass
    ControlSystem().sleep(0.05)
"""

RED = "rgb(201, 42, 42)"  # --sd-error of the light theme


def test_a_device_link_going_down_is_shown_on_the_home_page(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str], screenshot: Any
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    project = web_project(
        title="Link Bench",
        body="module:\n  - file: reader.py\ntask:\n  - name: hv\n    auto_load: true\n",
        files={
            "config/slowtask-hv.py": TASK.replace("PORT", str(port)),
            "reader.py": MODULE.replace("PORT", str(port)),
        },
    )
    with run_in_thread(FakeScpiInstrument(port=port)):
        server = serve(project)
        page.goto(server.url)
        hv = page.locator("section[data-type='taskmanager'] tr.sd-task[data-task='hv']")
        expect(hv.locator(".sd-task-state")).to_have_text("running", timeout=15_000)
        link = hv.locator(f".sd-link[data-address='{address}']")
        expect(link).to_have_attribute("data-state", "up", timeout=15_000)
        expect(hv).to_have_attribute("data-links", "ok")
    # the instrument is gone: the task manager follows at once (long poll)
    expect(link).to_have_attribute("data-state", "down", timeout=15_000)
    expect(hv).to_have_attribute("data-links", "trouble")
    expect(link.locator(".sd-link-state")).to_have_text("down")
    expect(link.locator(".sd-link-error")).to_contain_text(f"connect to {address} failed")
    expect(link).to_have_css("color", RED)  # (the list is redrawn on every change: retried)
    expect(hv.locator(".sd-task-state")).to_have_text("running")  # the task itself runs on

    # the server status shows the module's link (read when the page loads)
    page.reload()
    reader = page.locator("section[data-type='serverstatus'] tr[data-module='reader']")
    module_link = reader.locator(f".sd-link[data-address='{address}']")
    expect(module_link).to_have_attribute("data-state", "down", timeout=15_000)
    expect(reader).to_have_attribute("data-links", "trouble")
    expect(module_link).to_have_css("color", RED)
    screenshot(page, "links-down")
    assert [e for e in page_errors if "/favicon.ico" not in e] == []
