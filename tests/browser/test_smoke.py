"""The browser-test infrastructure itself: Chromium, the server subprocess, the vendored uPlot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import slowdash_trio

# plain (sync) tests: Playwright's sync API must not run inside a Trio loop

UPLOT = Path(slowdash_trio.__file__).parent / "static" / "vendor" / "uPlot.esm.js"


def test_uplot_is_served_as_a_javascript_module(
    serve: Callable[..., Any],
    web_project: Callable[..., Path],
    page: Any,
    page_errors: list[str],
) -> None:
    server = serve(web_project())
    reply = httpx.get(server.url + "vendor/uPlot.esm.js", timeout=30)
    assert reply.status_code == 200, reply.text[:300]
    assert "javascript" in reply.headers["content-type"]
    assert reply.content == UPLOT.read_bytes()
    assert b"export { uPlot as default }" in reply.content
    page.goto(server.url + "api/ping")  # any document of the server's origin
    kind = page.evaluate(
        "async () => { const m = await import('/vendor/uPlot.esm.js'); "
        "return [typeof m.default, typeof m.default.paths.linear]; }"
    )
    assert kind == ["function", "function"]
    # (a JSON document has no icon: Chromium's request for /favicon.ico may log a 404)
    assert [error for error in page_errors if "favicon.ico" not in error] == []


def test_home_page_title_is_the_project_title(
    serve: Callable[..., Any],
    web_project: Callable[..., Path],
    page: Any,
    page_errors: list[str],
    tmp_path: Path,
) -> None:
    server = serve(web_project(title="Smoke Test Bench 7"))
    config = httpx.get(server.url + "api/config", timeout=30).json()
    assert config["project"]["title"] == "Smoke Test Bench 7"
    page.goto(server.url)
    page.wait_for_function("document.title === 'Smoke Test Bench 7'", timeout=10_000)
    assert page.title() == config["project"]["title"]
    page.screenshot(path=str(tmp_path / "home.png"))  # (docs/images gets home.png from test_home)
    assert (tmp_path / "home.png").read_bytes().startswith(b"\x89PNG")
    assert page_errors == []


def test_server_stops_and_starts_again_on_the_same_port(
    serve: Callable[..., Any], web_project: Callable[..., Path]
) -> None:
    server = serve(web_project(title="Restarted"))
    port = server.port
    assert httpx.get(server.url + "api/ping", timeout=30).json() == ["pong"]
    assert server.stop() == 0, server.log
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "api/ping", timeout=30)
    server.start()
    assert server.port == port and server.url == f"http://127.0.0.1:{port}/"
    assert httpx.get(server.url + "api/config", timeout=30).json()["project"]["title"] == (
        "Restarted"
    )
    assert server.log.count(" is served at http://127.0.0.1:") == 2


def test_page_errors_are_collected(page: Any, page_errors: list[str]) -> None:
    page.set_content("<title>errors</title><p>x</p>")
    with page.expect_event("pageerror"):
        page.evaluate("setTimeout(() => { throw new Error('thrown on purpose'); }, 0)")
    with page.expect_console_message(lambda message: message.type == "error"):
        page.evaluate("console.error('logged on purpose')")
    assert len(page_errors) == 2, page_errors
    assert "thrown on purpose" in page_errors[0]
    assert page_errors[1].startswith("console error: logged on purpose")


def test_a_server_that_cannot_start_reports_its_output(
    serve: Callable[..., Any], web_project: Callable[..., Path]
) -> None:
    broken = web_project()
    (broken / "SlowdashProject.yaml").write_text("slowdash_project: [not, a, mapping\n")
    with pytest.raises(RuntimeError, match="did not report") as failure:
        serve(broken)
    assert "SlowdashProject.yaml" in str(failure.value)
