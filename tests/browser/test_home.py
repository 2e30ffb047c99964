"""The home page in Chromium: title and theme, the catalog, the channel browser, the server
status."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from slowdash_stores import DataStore_SQLite, Histogram

Serve = Callable[..., Any]
Project = Callable[..., Path]

SQLITE_SOURCE = """
data_source:
  url: sqlite:///data
  time_series:
    schema: data[channel]@timestamp(unix)=value
  object:
    schema: objects[channel]=value
"""

# a user module that fails in _initialize: the status panel shows its error
FAILING_MODULE = """
def _initialize(params):
    raise RuntimeError("probe head offline")
"""

LAYOUT = {
    "meta": {"name": "bench", "title": "Bench Overview", "description": "voltages of the bench"},
    "control": {
        "range": {"length": 3600, "to": 0},
        "reload": 10,
        "grid": {"rows": 1, "columns": 1},
    },
    "panels": [{"type": "timeaxis", "plots": [{"type": "timeseries", "channel": "psu.voltage"}]}],
}

# a syntax error on line 3 (a missing comma)
BROKEN_LAYOUT = '{\n    "meta": {"title": "Broken"}\n    "panels": []\n}\n'


def fill(project: Path, now: float) -> None:
    """Ten minutes of three channels and a histogram in project/data.db."""
    with DataStore_SQLite(f"sqlite:///{project}/data", "data") as out:
        for i in range(60):
            out.append(
                {"psu.voltage": 10 + i / 10, "psu.current": 0.5, "tc.temp": 21.5},
                timestamp=now - 600 + 10 * i,
            )
    histogram = Histogram(10, 0, 10)
    for value in (1, 2, 2, 3, 3, 3):
        histogram.fill(value)
    with DataStore_SQLite(f"sqlite:///{project}/data", "objects") as out:
        out.update(histogram, tag="psu.spectrum", timestamp=now)


def unexpected(errors: list[str], *allowed: str) -> list[str]:
    """Page errors other than the favicon's 404 and the ``allowed`` ones."""
    return [e for e in errors if not any(a in e for a in ("/favicon.ico", *allowed))]


def test_home_page_has_the_project_title_and_the_dark_theme(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str], screenshot: Any
) -> None:
    project = web_project(
        title="Cryostat Bench 4",
        body="style:\n  theme: dark\n" + SQLITE_SOURCE,
        files={"config/slowplot-bench.json": json.dumps(LAYOUT)},
    )
    fill(project, time.time())
    server = serve(project)
    page.goto(server.url)
    page.wait_for_function("document.title === 'Cryostat Bench 4'", timeout=10_000)
    expect(page.locator("#sd-title")).to_have_text("Cryostat Bench 4")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    # the dark theme's colours (css/slowdash.css) reach the page and the panels
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(16, 20, 24)"
    panel = page.locator("section.sd-panel[data-type='catalog']")
    assert panel.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(26, 32, 39)"
    expect(panel.locator(".sd-catalog-title")).to_have_text(["Bench Overview"])
    expect(page.locator("section[data-type='channellist'] .sd-channel-count")).to_have_text(
        "4 of 4"
    )
    screenshot(page, "home-dark")
    assert unexpected(page_errors) == []


def test_catalog_lists_layouts_and_html_panels_newest_first(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str], screenshot: Any
) -> None:
    project = web_project(
        title="Catalog Bench",
        body=SQLITE_SOURCE + "module:\n  file: probe.py\n",
        files={
            "config/slowplot-bench.json": json.dumps(LAYOUT),
            "config/slowplot-broken.json": BROKEN_LAYOUT,
            "config/html-Controls.html": "<form><p>Set the bench</p></form>\n",
            "probe.py": FAILING_MODULE,
        },
    )
    fill(project, time.time())
    now = time.time()
    # newest first: broken, then the html panel, then the layout
    for age, name in (
        (300, "slowplot-bench.json"),
        (200, "html-Controls.html"),
        (100, "slowplot-broken.json"),
    ):
        os.utime(project / "config" / name, (now - age, now - age))
    server = serve(project)
    page.goto(server.url)
    catalog = page.locator("section[data-type='catalog']")
    entries = catalog.locator(".sd-catalog-entry")
    expect(entries).to_have_count(3, timeout=10_000)
    expect(entries.locator(".sd-catalog-title")).to_have_text(
        ["broken", "Controls", "Bench Overview"]
    )
    expect(entries.nth(2).locator(".sd-catalog-description")).to_have_text("voltages of the bench")

    # the broken layout: its error, with the line, in the error colour
    problem = catalog.locator("[data-file='slowplot-broken.json'] .sd-catalog-problem")
    expect(problem).to_contain_text("Line 3")
    error_colour = page.evaluate(
        "getComputedStyle(document.documentElement).getPropertyValue('--sd-error').trim()"
    )
    assert error_colour == "#c92a2a"
    assert problem.evaluate("e => getComputedStyle(e).color") == "rgb(201, 42, 42)"

    # links: the layout page, the html panel page, all channels
    layout_link = catalog.locator("[data-file='slowplot-bench.json'] a.sd-catalog-title")
    assert layout_link.get_attribute("href") == "slowplot.html?config=slowplot-bench.json"
    html_link = catalog.locator("[data-file='html-Controls.html'] a.sd-catalog-title")
    assert html_link.get_attribute("href") == "slowplot.html?html=Controls"
    assert catalog.locator("a.sd-catalog-all").get_attribute("href") == "slowplot.html"

    # the server status: the data source is up, the failing module shows its error in red
    status = page.locator("section[data-type='serverstatus']")
    expect(status.locator(".sd-server-version")).to_contain_text("slowdash-trio")
    expect(status.locator(".sd-sources tr").first).to_have_attribute("data-state", "up")
    module_error = status.locator("tr[data-module='probe'] details summary")
    expect(module_error).to_contain_text("probe head offline", timeout=10_000)
    assert module_error.evaluate("e => getComputedStyle(e).color") == "rgb(201, 42, 42)"
    screenshot(page, "home")

    layout_link.click()
    page.wait_for_url("**/slowplot.html?config=slowplot-bench.json")
    page.wait_for_function("document.title.startsWith('Bench Overview')", timeout=10_000)
    plot = page.locator("section.sd-panel[data-type='timeaxis'] .sd-panel-body")
    expect(plot).to_have_attribute("data-last", '{"psu.voltage":15.9}', timeout=10_000)
    assert unexpected(page_errors) == []


def test_catalog_link_opens_an_html_panel(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str]
) -> None:
    project = web_project(
        title="Html Bench",
        files={"config/html-Controls.html": "<form><p>Set the bench</p></form>\n"},
    )
    server = serve(project)
    page.goto(server.url)
    link = page.locator(
        "section[data-type='catalog'] [data-file='html-Controls.html'] a.sd-catalog-title"
    )
    expect(link).to_have_text("Controls", timeout=10_000)
    link.click()
    page.wait_for_url("**/slowplot.html?html=Controls")
    html_panel = page.locator("section.sd-panel[data-type='html']")
    expect(html_panel).to_contain_text("Set the bench", timeout=10_000)
    assert unexpected(page_errors) == []


def test_channel_browser_filters_and_opens_quick_views(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str]
) -> None:
    project = web_project(title="Channel Bench", body=SQLITE_SOURCE)
    fill(project, time.time())
    server = serve(project)
    page.goto(server.url)
    panel = page.locator("section[data-type='channellist']")
    rows = panel.locator(".sd-channel:visible")
    expect(rows).to_have_count(4, timeout=10_000)
    spectrum = panel.locator(".sd-channel[data-channel='psu.spectrum']")
    expect(spectrum.locator(".sd-channel-type")).to_have_text("histogram")
    assert (
        spectrum.locator("a").get_attribute("href")
        == "slowplot.html?channel=psu.spectrum/histogram"
    )

    panel.locator(".sd-channel-filter").fill("psu volt")
    expect(rows).to_have_count(1)
    expect(panel.locator(".sd-channel-count")).to_have_text("1 of 4")
    panel.locator(".sd-channel-filter").fill("psu")
    expect(rows.locator(".sd-channel-name")).to_have_text(
        ["psu.current", "psu.voltage", "psu.spectrum"]
    )

    # one channel: a click opens its quick view, which draws it
    panel.locator(".sd-channel[data-channel='psu.voltage'] a").click()
    page.wait_for_url("**/slowplot.html?channel=psu.voltage")
    body = page.locator("section.sd-panel[data-type='timeaxis'] .sd-panel-body")
    expect(body).to_have_attribute("data-last", '{"psu.voltage":15.9}', timeout=10_000)
    assert int(body.get_attribute("data-points") or 0) >= 60

    # several channels: one plot of both
    page.go_back()
    panel.locator(".sd-channel-filter").fill("psu.")
    plot_button = panel.locator(".sd-channel-plot")
    expect(plot_button).to_be_disabled()
    panel.locator(".sd-channel[data-channel='psu.voltage'] input").check()
    panel.locator(".sd-channel[data-channel='psu.current'] input").check()
    expect(plot_button).to_have_text("Plot 2 selected")
    plot_button.click()
    page.wait_for_url("**/slowplot.html?channel=psu.current,psu.voltage")
    expect(body).to_have_count(1)
    # both channels drawn, in the order of the URL
    expect(body).to_have_attribute(
        "data-last", '{"psu.current":0.5,"psu.voltage":15.9}', timeout=10_000
    )
    assert unexpected(page_errors) == []
