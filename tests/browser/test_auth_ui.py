"""Authentication in Chromium: the browser's own Basic-auth credentials carry the pages, the
API and the streaming WebSocket; a viewer sees everything and is told why a command is refused;
an operator commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser.test_html_panel import HTML, LAYOUT, TASK, TASK_ENTRY, open_bench, wait_text
from playwright.sync_api import Error as PlaywrightError

from slowdash_trio._auth import hash_password

# plain (sync) tests: Playwright's sync API must not run inside a Trio loop

USERS = {"otto": ("operator", "turn-knobs"), "vera": ("viewer", "look-only")}


def auth_yaml() -> str:
    lines = ["authentication:", "  type: Basic", "  users:"]
    for name, (role, password) in USERS.items():
        lines.append(f'    {name}: {{role: {role}, key: "{hash_password(password, rounds=4)}"}}')
    return "\n".join(lines) + "\n"


@pytest.fixture
def login(browser: Any) -> Iterator[Callable[[str | None], Any]]:
    """``login(user)``: a page in a context of its own, with that user's credentials."""
    contexts: list[Any] = []

    def open_page(user: str | None) -> Any:
        credentials = None
        if user is not None:
            credentials = {"username": user, "password": USERS[user][1]}
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, http_credentials=credentials
        )
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def test_operator_and_viewer(
    serve: Callable[..., Any],
    web_project: Callable[..., Path],
    login: Callable[[str | None], Any],
) -> None:
    project = web_project(
        title="Authenticated bench",
        body=TASK_ENTRY + auth_yaml(),
        files={
            "config/slowtask-bench.py": TASK,
            "config/html-Bench.html": HTML,
            "config/slowplot-Bench.json": json.dumps(LAYOUT),
        },
    )
    server = serve(project)

    # without credentials the browser gets the challenge (headless Chromium then gives up)
    anonymous = login(None)
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        anonymous.goto(server.url + "slowplot.html?config=slowplot-Bench.json")
    page = httpx.get(server.url + "slowplot.html", timeout=10)
    assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic")

    operator = login("otto")
    open_bench(operator, server)
    # the WebSocket was let in with the browser's credentials: live, not polling
    operator.wait_for_function(
        "document.querySelector('#sd-status')?.dataset.state === 'live'", timeout=10_000
    )
    operator.fill("#value", "3.25")
    operator.click("#set")
    wait_text(operator, ".sd-html-status", r"bench\.set_voltage\(\): done")
    wait_text(operator, "#voltage", r"^3\.25 V$", timeout=5_000)

    viewer = login("vera")
    viewer.goto(server.url + "slowplot.html?config=slowplot-Bench.json")
    wait_text(viewer, "#voltage", r"^3\.25 V$", timeout=15_000)  # she sees the values ...
    viewer.wait_for_function(
        "document.querySelector('#sd-status')?.dataset.state === 'live'", timeout=10_000
    )
    viewer.fill("#value", "9")
    viewer.click("#set")  # ... but may not command, and is told why
    wait_text(viewer, ".sd-html-status", r"failed: .*needs role operator; user vera is viewer")
    assert viewer.locator(".sd-notice-error", has_text="needs role operator").count() == 1
    reply = httpx.get(server.url + "api/data/bench.voltage", auth=("vera", "look-only"), timeout=10)
    assert reply.json()["bench.voltage"]["x"] == 3.25

    # streamed values reach the viewer's page over her WebSocket (the layout polls once a
    # minute: three ticks within 5 s came streaming)
    viewer.wait_for_function("Number(document.querySelector('#ticks').textContent) > 0")
    first = int(viewer.locator("#ticks").inner_text())
    viewer.wait_for_function(
        f"Number(document.querySelector('#ticks').textContent) >= {first + 3}", timeout=5_000
    )
    assert "bad credentials" not in server.log
