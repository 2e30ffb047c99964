"""Canvas panels in Chromium: items bound to metrics (formatted values, active colouring, the
stale-data warning), a sparkline, buttons that call task functions, and a form dialog."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

TASK = '''
"""A pump station: a flow set-point and a pump the canvas switches."""

from slowdash_controls import ValueNode

flow = ValueNode(0.0)
pump = ValueNode(0)
note = ValueNode("")


def _export():
    return [("flow", flow), ("pump", pump), ("note", note)]


def set_flow(flow_: float, note_: str = ""):
    flow.set(flow_)
    note.set(note_)


def start_pump():
    pump.set(1)


def stop_pump():
    pump.set(0)
'''

LOGO = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
<circle cx="5" cy="5" r="4" fill="#0b7285"/></svg>
"""

CANVAS = {
    "meta": {"title": "Pump station"},
    "view_box": "0 0 900 420",
    "items": [
        {"type": "grid", "attr": {"width": 900, "height": 420, "dx": 100, "dy": 100}},
        {
            "type": "image",
            "attr": {"x": 820, "y": 20, "width": 50, "height": 50, "href": "logo.svg"},
        },
        {"type": "text", "attr": {"x": 40, "y": 40, "text": "Pump station", "font-size": "20pt"}},
        {
            "type": "box",
            "attr": {"x": 60, "y": 90, "width": 140, "height": 70, "label": "Flow"},
            "metric": {"channel": "station.flow", "format": "%.1f sccm", "active-above": 10},
            "action": {"form": "Flow"},
        },
        {
            "type": "valve",
            "attr": {"x": 280, "y": 100, "width": 50, "height": 50, "label": ""},
            "metric": {"channel": "station.pump", "active-above": 0.5},
        },
        {
            "type": "solenoid",
            "attr": {"x": 380, "y": 105, "width": 80, "height": 40},
            "metric": {"channel": "station.pump", "active-above": 0.5},
        },
        {
            "type": "circle",
            "attr": {"x": 520, "y": 90, "width": 70, "height": 70, "label": "T"},
            "metric": {"channel": "lab.temperature", "format": "%.2f K", "tolerable-gap": 5},
        },
        {
            "type": "micro_plot",
            "attr": {"x": 640, "y": 100, "width": 160, "height": 60, "length": 330},
            "metric": {"channel": "lab.pressure"},
        },
        {
            "type": "text",
            "attr": {"x": 60, "y": 220},
            "metric": {"channel": "station.note", "format": "note: %s"},
        },
        {
            "type": "button",
            "attr": {"x": 60, "y": 280, "width": 150, "label": "Start pump"},
            "action": {"submit": {"name": "station.start_pump()"}},
        },
        {
            "type": "button",
            "attr": {"x": 240, "y": 280, "width": 150, "label": "Stop pump"},
            "action": {"submit": {"name": "station.stop_pump()"}},
        },
        {
            "type": "button",
            "attr": {"x": 420, "y": 280, "width": 150, "label": "Broken"},
            "action": {"submit": {"name": "station.explode()"}},
        },
        {
            "type": "box",
            "attr": {"x": 640, "y": 200, "width": 160, "height": 50, "label": "Vacuum"},
            "metric": {"channel": "lab.vacuum", "format": "%.1e mbar", "tolerable-gap": 5},
        },
    ],
    "forms": {
        "Flow": {
            "title": "Injection flow",
            "initial": {"note_": "from the form"},
            "inputs": [{"name": "flow_", "label": "Set-point (sccm)", "initial": 15, "step": 0.1}],
            "buttons": [{"name": "station.set_flow()", "label": "Apply set-point"}],
        }
    },
}

TASK_ENTRY = """
task:
  name: station
  auto_load: true
"""

UNEXPECTED = re.compile(r"^(?!console error: Failed to load resource: the server responded)")


def item(page: Any, index: int) -> Any:
    return page.locator(".sd-canvas-item").nth(index)


def wait_attribute(page: Any, index: int, name: str, pattern: str, timeout: float = 10_000) -> None:
    page.wait_for_function(
        """([index, name, pattern]) => {
            const e = document.querySelectorAll('.sd-canvas-item')[index];
            return !!e && new RegExp(pattern).test(e.getAttribute(name) ?? '');
        }""",
        arg=[index, name, pattern],
        timeout=timeout,
    )


def emit(server: Any, packet: dict[str, Any]) -> None:
    reply = httpx.post(server.url + "api/emit/current_data", json=packet, timeout=10)
    assert reply.status_code == 201, reply.text


def test_canvas_items_metrics_buttons_and_forms(
    serve: Callable[..., Any],
    web_project: Callable[..., Path],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    project = web_project(
        title="Canvas test",
        body=TASK_ENTRY,
        files={
            "config/slowtask-station.py": TASK,
            "config/slowdash-Station.json": json.dumps(CANVAS),
            "config/logo.svg": LOGO,
        },
    )
    server = serve(project)
    now = time.time()
    # a temperature last seen 30 s ago (tolerable gap 5 s) and a pressure history
    emit(server, {"lab.temperature": {"t": now - 30, "x": 4.2}})
    emit(server, {"lab.vacuum": {"t": now - 20, "x": 2.5e-6}})
    times = [now - 300 + 10 * k for k in range(31)]
    emit(server, {"lab.pressure": {"t": times, "x": [1.0 + (k % 7) * 0.1 for k in range(31)]}})

    page.goto(server.url + "slowdash.html?config=slowdash-Station.json")
    page.wait_for_selector(".sd-panel-body[data-loaded='true']", timeout=15_000)
    assert page.locator(".sd-panel-body").get_attribute("data-items") == "13"
    assert page.locator(".sd-canvas svg").get_attribute("viewBox") == "0 0 900 420"
    assert page.locator(".sd-panel-title-text").text_content() == "Pump station"
    flow, valve, solenoid, temperature, pressure, note = 3, 4, 5, 6, 7, 8
    start, stop, broken, vacuum = 9, 10, 11, 12

    # the metric's formatted value and its colouring (flow 0 < 10: inactive)
    wait_attribute(page, flow, "data-value", r"^0\.0 sccm$")
    assert item(page, flow).locator(".sd-canvas-value").text_content() == "0.0 sccm"
    assert item(page, flow).get_attribute("data-status") == "inactive"
    wait_attribute(page, valve, "data-status", "^inactive$")
    fills = page.evaluate(
        """() => [...document.querySelectorAll('.sd-canvas-item')].map(
            (e) => getComputedStyle(e.querySelector('.sd-canvas-shape') ?? e).fill)"""
    )
    inactive_fill = fills[flow]
    assert inactive_fill == fills[valve] != "none"

    # stale data: shown greyed with a visible warning sign
    wait_attribute(page, temperature, "data-stale", "^true$")
    assert item(page, temperature).get_attribute("data-status") == "dead"
    assert item(page, temperature).get_attribute("data-value") == "4.20 K"
    warning = item(page, temperature).locator(".sd-canvas-warning")
    assert warning.get_attribute("visibility") == "visible"
    assert warning.get_attribute("data-reason") == "stale"
    assert "no new value for" in str(item(page, temperature).locator("title").text_content())
    # a fresh value clears the warning (it came over the WebSocket)
    emit(server, {"lab.temperature": {"t": time.time(), "x": 4.25}})
    wait_attribute(page, temperature, "data-value", r"^4\.25 K$", timeout=5_000)
    assert item(page, temperature).get_attribute("data-stale") == "false"
    assert warning.get_attribute("visibility") == "hidden"
    assert item(page, flow).locator(".sd-canvas-warning").get_attribute("visibility") == "hidden"

    # the micro plot draws the series
    wait_attribute(page, pressure, "data-points", "^31$")
    assert len(str(item(page, pressure).locator("polyline").get_attribute("points")).split()) == 31

    # a button calls a task function: the pump runs, valve and solenoid turn active
    item(page, start).click()
    wait_attribute(page, valve, "data-status", "^active$", timeout=5_000)
    wait_attribute(page, solenoid, "data-status", "^active$", timeout=5_000)
    assert page.locator(".sd-notice-ok", has_text="station.start_pump(): done").count() >= 1
    active_stroke = page.evaluate(
        f"getComputedStyle(document.querySelectorAll('.sd-canvas-item')[{solenoid}]"
        ".querySelector('.sd-canvas-shape')).stroke"
    )
    assert active_stroke == page.evaluate(
        f"getComputedStyle(document.querySelectorAll('.sd-canvas-item')[{valve}]"
        ".querySelector('.sd-canvas-shape')).fill"
    )
    assert active_stroke != inactive_fill
    item(page, stop).click()
    wait_attribute(page, valve, "data-status", "^inactive$", timeout=5_000)
    item(page, start).click()
    wait_attribute(page, valve, "data-status", "^active$", timeout=5_000)

    # a failing call shows the server's message
    item(page, broken).click()
    notice = page.locator(".sd-notice-error", has_text="undefined function: station.explode()")
    notice.wait_for(timeout=5_000)
    assert "station.explode() failed" in str(notice.text_content())

    # the form action: a dialog with the form's inputs; its button posts them with `initial`
    item(page, flow).click()
    dialog = page.locator("dialog.sd-canvas-form")
    dialog.wait_for(timeout=5_000)
    assert dialog.locator("h2").text_content() == "Injection flow"
    assert dialog.locator("input[name='flow_']").input_value() == "15"
    dialog.locator("input[name='flow_']").fill("12.5")
    screenshot(page, "panel-canvas-form")
    dialog.get_by_role("button", name="Apply set-point").click()
    dialog.wait_for(state="detached", timeout=5_000)
    wait_attribute(page, flow, "data-value", r"^12\.5 sccm$", timeout=5_000)
    wait_attribute(page, flow, "data-status", "^active$")
    wait_attribute(page, note, "data-value", "^note: from the form$", timeout=5_000)
    data = httpx.get(server.url + "api/data/station.flow,station.note", timeout=10).json()
    assert (data["station.flow"]["x"], data["station.note"]["x"]) == (12.5, "from the form")

    # the vacuum gauge stays stale: its warning is in the picture
    assert item(page, vacuum).get_attribute("data-stale") == "true"
    assert item(page, vacuum).get_attribute("data-value") == "2.5e-06 mbar"
    page.evaluate("document.querySelectorAll('.sd-notice').forEach((n) => n.remove())")
    screenshot(page, "panel-canvas")
    assert [e for e in page_errors if UNEXPECTED.match(e)] == []
    assert len(page_errors) == 1, page_errors  # the 404 of station.explode()


def test_canvas_form_errors_keep_the_dialog_open(
    serve: Callable[..., Any],
    web_project: Callable[..., Path],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    layout = {
        "control": {"range": {"length": 600, "to": 0}, "reload": 60},
        "panels": [{"type": "canvas", "config_name": "Station", "title": "In a layout"}],
    }
    project = web_project(
        body=TASK_ENTRY + "style:\n  theme: dark\n",
        files={
            "config/slowtask-station.py": TASK,
            "config/slowdash-Station.json": json.dumps(CANVAS),
            "config/slowplot-WithCanvas.json": json.dumps(layout),
            "config/logo.svg": LOGO,
        },
    )
    server = serve(project)
    page.goto(server.url + "slowplot.html?config=slowplot-WithCanvas.json")
    page.wait_for_selector(".sd-panel-body[data-loaded='true']", timeout=15_000)
    assert page.locator(".sd-panel-title-text").text_content() == "In a layout"
    wait_attribute(page, 3, "data-value", r"^0\.0 sccm$")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    wait_attribute(page, 12, "data-status", "^dead$")  # no vacuum value at all: a warning
    assert item(page, 12).locator(".sd-canvas-warning").get_attribute("data-reason") == "no data"
    assert item(page, 12).locator(".sd-canvas-warning").get_attribute("visibility") == "visible"
    screenshot(page, "panel-canvas-dark")
    item(page, 3).click()
    dialog = page.locator("dialog.sd-canvas-form")
    dialog.locator("input[name='flow_']").fill("")  # blank: the parameter has no default
    dialog.get_by_role("button", name="Apply set-point").click()
    error = dialog.locator(".sd-dialog-error")
    error.wait_for(timeout=5_000)
    page.wait_for_function(
        "document.querySelector('dialog.sd-canvas-form .sd-dialog-error').textContent !== ''",
        timeout=5_000,
    )
    assert "flow_" in str(error.text_content())
    assert dialog.is_visible()
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="detached", timeout=5_000)
    assert [e for e in page_errors if UNEXPECTED.match(e)] == []


def test_a_link_that_is_not_http_is_not_followed(
    serve: Callable[..., Any], web_project: Callable[..., Path], page: Any
) -> None:
    canvas = {
        "view_box": "0 0 400 100",
        "items": [
            {
                "type": "box",
                "attr": {"x": 10, "y": 10, "width": 120, "height": 40, "label": "Help"},
                "action": {"open": "javascript:document.title='pwned'"},
            }
        ],
    }
    server = serve(web_project(files={"config/slowdash-Links.json": json.dumps(canvas)}))
    page.goto(server.url + "slowdash.html?config=slowdash-Links.json")
    item(page, 0).click()
    notice = page.locator(".sd-notice-error")
    notice.wait_for(timeout=10_000)
    assert "not opened: javascript:" in str(notice.text_content())
    assert "only http and https" in str(notice.text_content())
    assert "pwned" not in page.title()
