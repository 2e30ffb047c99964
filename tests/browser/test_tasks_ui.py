"""The task manager panel and the script editor in Chromium."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

Serve = Callable[..., Any]
Project = Callable[..., Path]

# a task exporting a constant as a value: channel x.level
LEVEL_TASK = """
ctrl = ControlSystem()  # noqa: F821 -- tasks get ControlSystem without an import
LEVEL = 1.5
level = ctrl.value(LEVEL)


def _export():
    return [("level", level)]
"""

BROKEN_TASK = """
def _initialize(params):
    pass

raise RuntimeError("calibration table missing")
"""

TASKS = """
task:
  - name: x
    auto_load: true
  - name: broken
    auto_load: true
"""

TASK_LAYOUT = {
    "meta": {"title": "Tasks"},
    "control": {
        "range": {"length": 3600, "to": 0},
        "reload": 60,
        "grid": {"rows": 1, "columns": 1},
    },
    "panels": [{"type": "taskmanager", "title": "Tasks"}],
}

NOT_SECURE = (
    "files with extension .py are accessible only when system.our_security_is_perfect is true"
)


def task_project(web_project: Project, *, secure: bool = False) -> Path:
    body = TASKS + ("system:\n  our_security_is_perfect: true\n" if secure else "")
    return web_project(
        title="Task Bench",
        body=body,
        files={
            "config/slowtask-x.py": LEVEL_TASK,
            "config/slowtask-broken.py": BROKEN_TASK,
            "config/slowtask-idle.py": LEVEL_TASK,
            "config/slowplot-tasks.json": json.dumps(TASK_LAYOUT),
        },
    )


def task_state(server: Any, name: str) -> str:
    reply = httpx.get(server.url + "api/control/task?since=0", timeout=30).json()
    return next(t["state"] for t in reply["tasks"] if t["name"] == name)


def unexpected(errors: list[str], *allowed: str) -> list[str]:
    """Page errors other than the favicon's 404 and the ``allowed`` ones."""
    return [e for e in errors if not any(a in e for a in ("/favicon.ico", *allowed))]


def test_task_manager_shows_states_and_stops_and_starts_a_task(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str], screenshot: Any
) -> None:
    server = serve(task_project(web_project))
    page.goto(server.url)
    panel = page.locator("section[data-type='taskmanager']")
    x = panel.locator("tr.sd-task[data-task='x']")
    expect(x.locator(".sd-task-state")).to_have_text("running", timeout=15_000)
    expect(x.locator(".sd-task-auto")).to_have_text("auto")
    expect(x.locator(".sd-task-exports a")).to_have_text(["x.level"])
    expect(panel.locator("tr.sd-task[data-task='idle'] .sd-task-state")).to_have_text("listed")
    expect(x.locator("a.sd-task-edit")).to_have_count(0)  # not secure: no editing

    x.locator("button.sd-task-stop").click()
    expect(x.locator(".sd-task-state")).to_have_text("stopped", timeout=15_000)
    assert task_state(server, "x") == "stopped"
    expect(page.locator("#sd-notices")).to_contain_text("task x: stopped")
    expect(x.locator("button.sd-task-start")).to_be_enabled()
    expect(x.locator("button.sd-task-stop")).to_be_disabled()

    x.locator("button.sd-task-start").click()
    expect(x.locator(".sd-task-state")).to_have_text("running", timeout=15_000)
    assert task_state(server, "x") == "running"
    assert httpx.get(server.url + "api/data/x.level", timeout=30).json()["x.level"]["x"] == 1.5

    # a change made elsewhere (here: through the API) reaches the page by the long poll
    reply = httpx.post(server.url + "api/control/task/idle", json={"action": "start"}, timeout=30)
    assert reply.json()["state"] == "running"
    idle = panel.locator("tr.sd-task[data-task='idle']")
    expect(idle.locator(".sd-task-state")).to_have_text("running", timeout=15_000)

    # the panel in a layout, for the docs
    page.goto(server.url + "slowplot.html?config=slowplot-tasks.json")
    layout_panel = page.locator("section.sd-panel[data-type='taskmanager']")
    expect(layout_panel.locator("tr.sd-task")).to_have_count(3, timeout=15_000)
    layout_panel.locator("tr.sd-task-error-row[data-task='broken'] summary").click()
    expect(layout_panel.locator(".sd-task-traceback")).to_be_visible()
    screenshot(page, "panel-taskmanager")
    assert unexpected(page_errors) == []


def failed_task(page: Any, server: Any, name: str) -> tuple[Any, Any, Any]:
    """Open the server's home page and wait until task ``name`` shows state error; returns
    the task manager panel, the task's row and its error row."""
    page.goto(server.url)
    panel = page.locator("section[data-type='taskmanager']")
    row = panel.locator(f"tr.sd-task[data-task='{name}']")
    expect(row.locator(".sd-task-state")).to_have_text("error", timeout=15_000)
    return panel, row, panel.locator(f"tr.sd-task-error-row[data-task='{name}']")


def test_a_task_that_fails_at_load_shows_its_error(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str]
) -> None:
    project = task_project(web_project)
    server = serve(project)
    panel, broken, error = failed_task(page, server, "broken")
    expect(error.locator(".sd-task-error-message")).to_contain_text("calibration table missing")
    colour = error.locator("details").evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(201, 42, 42)"  # --sd-error of the light theme
    traceback = error.locator(".sd-task-traceback")
    expect(traceback).to_be_hidden()
    error.locator("summary").click()
    expect(traceback).to_contain_text("RuntimeError")

    # Reload: the file still raises; the notice gives the task's own message
    broken.locator("button.sd-task-reload").click()
    expect(page.locator(".sd-notice-error")).to_contain_text(
        "task broken failed to start: ", timeout=15_000
    )
    expect(page.locator(".sd-notice-error")).to_contain_text("calibration table missing")
    # the unfolded traceback stays unfolded across the redraws of the long poll
    expect(traceback).to_be_visible()

    # Rescan finds a script added after the start
    (project / "config" / "slowtask-late.py").write_text(LEVEL_TASK)
    panel.locator("button.sd-task-rescan").click()
    expect(page.locator("#sd-notices")).to_contain_text("new tasks: late")
    late = panel.locator("tr.sd-task[data-task='late']")
    expect(late.locator(".sd-task-state")).to_have_text("listed", timeout=15_000)
    assert unexpected(page_errors) == []


# a task whose _loop fails once it has been asked for its level (exported as crashy.level)
CRASHING_TASK = (
    LEVEL_TASK
    + """

def _loop():
    raise RuntimeError("pump controller gone")
"""
)


def test_a_task_whose_loop_crashed_is_in_error_and_can_be_stopped(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str]
) -> None:
    project = web_project(
        title="Task Bench",
        body="task:\n  - name: crashy\n    auto_load: true\n",
        files={
            "config/slowtask-crashy.py": CRASHING_TASK,
            "config/slowplot-tasks.json": json.dumps(TASK_LAYOUT),
        },
    )
    server = serve(project)
    _, crashy, error = failed_task(page, server, "crashy")
    expect(error.locator(".sd-task-error-where")).to_have_text("_loop: ")
    expect(error.locator(".sd-task-error-message")).to_contain_text("pump controller gone")
    # still serving, as in the original: its export is listed and answered
    expect(crashy.locator(".sd-task-exports")).to_contain_text("crashy.level")
    data = httpx.get(server.url + "api/data/crashy.level", timeout=30).json()
    assert data["crashy.level"]["x"] == 1.5
    stop = crashy.locator("button.sd-task-stop")
    expect(stop).to_be_enabled()
    stop.click()
    expect(crashy.locator(".sd-task-state")).to_have_text("stopped", timeout=15_000)
    assert task_state(server, "crashy") == "stopped"
    expect(stop).to_be_disabled()
    assert unexpected(page_errors) == []


def test_secure_mode_edits_a_task_script_and_restarts_the_task(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str], screenshot: Any
) -> None:
    project = task_project(web_project, secure=True)
    server = serve(project)
    page.goto(server.url)
    x = page.locator("section[data-type='taskmanager'] tr.sd-task[data-task='x']")
    expect(x.locator(".sd-task-state")).to_have_text("running", timeout=15_000)
    x.locator("a.sd-task-edit").click()
    page.wait_for_url("**/slowedit.html?filename=slowtask-x.py")
    text = page.locator("#sd-editor-text")
    expect(text).to_be_enabled(timeout=10_000)
    expect(text).to_have_value(LEVEL_TASK.lstrip("\n"))
    assert page.title() == "slowtask-x.py - Task Bench"

    text.fill(text.input_value().replace("LEVEL = 1.5", "LEVEL = 7.25"))
    # Tab indents with spaces instead of leaving the text
    text.press("Control+End")
    text.press("Enter")
    text.press("Tab")
    text.type("# edited in the browser")
    expect(text).to_be_focused()
    assert text.input_value().endswith("\n    # edited in the browser")

    page.locator("#sd-editor-restart").click()
    status = page.locator("#sd-editor-status")
    expect(status).to_have_text("saved; task x: running", timeout=15_000)
    assert status.get_attribute("data-kind") == "ok"
    saved = (project / "config" / "slowtask-x.py").read_text()
    assert "LEVEL = 7.25" in saved and saved.endswith("    # edited in the browser")
    reply = httpx.get(server.url + "api/data/x.level", timeout=30).json()
    assert reply["x.level"]["x"] == 7.25
    screenshot(page, "editor")

    # a script that no longer loads: the restart shows the task's error
    text.fill("raise ValueError('bad constant')\n")
    page.locator("#sd-editor-restart").click()
    expect(status).to_have_text(
        "saved; task x failed to start: ValueError: bad constant", timeout=15_000
    )
    assert status.get_attribute("data-kind") == "error"
    assert task_state(server, "x") == "error"
    assert unexpected(page_errors) == []


def test_outside_secure_mode_saving_a_script_shows_the_servers_refusal(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str]
) -> None:
    project = task_project(web_project)
    before = (project / "config" / "slowtask-x.py").read_text()
    server = serve(project)
    page.goto(server.url + "slowedit.html?filename=slowtask-x.py")
    status = page.locator("#sd-editor-status")
    expect(status).to_contain_text(NOT_SECURE, timeout=10_000)
    assert status.get_attribute("data-kind") == "error"
    text = page.locator("#sd-editor-text")
    text.fill("LEVEL = 3\n")
    text.press("Control+s")
    expect(status).to_have_text(
        f"saving slowtask-x.py failed: {NOT_SECURE} (HTTP 403)", timeout=10_000
    )
    expect(page.locator(".sd-notice-error").last).to_contain_text(NOT_SECURE)
    assert (project / "config" / "slowtask-x.py").read_text() == before

    # a layout file can be edited in any mode
    page.goto(server.url + "slowedit.html?filename=slowplot-tasks.json")
    expect(text).to_have_value(json.dumps(TASK_LAYOUT), timeout=10_000)
    assert page.locator("#sd-editor-restart").count() == 0
    changed = dict(TASK_LAYOUT, meta={"title": "Edited tasks"})
    text.fill(json.dumps(changed, indent=2))
    expect(page.locator("body")).to_have_class("sd-editor-page sd-dirty")
    text.press("Control+s")
    expect(status).to_have_text("slowplot-tasks.json saved", timeout=10_000)
    expect(page.locator("body")).to_have_class("sd-editor-page")
    saved = json.loads((project / "config" / "slowplot-tasks.json").read_text())
    assert saved["meta"]["title"] == "Edited tasks"
    assert unexpected(page_errors, "status of 403") == []
