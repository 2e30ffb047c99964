"""The layout page (slowplot.html) in Chromium: time-axis plots of recorded and streamed data,
the range controls, live updates over the WebSocket and by polling, recovery when the server
restarts, editing and saving layouts, quick views and the first page of a new project."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from slowdash_stores import DataStore_SQLite

# plain (sync) tests: Playwright's sync API must not run inside a Trio loop

Serve = Callable[..., Any]
Project = Callable[..., Path]

SOURCE = """
data_source:
  url: sqlite:///data.db
  time_series:
    schema: data[channel]@timestamp(unix)=value
"""

LAYOUT = {
    "meta": {"name": "Plots", "title": "Recorded plots", "description": "two channels"},
    "control": {
        "range": {"length": 3600, "to": 0},
        "reload": 60,
        "grid": {"rows": 1, "columns": 2},
    },
    "panels": [
        {
            "type": "timeaxis",
            "title": "Temperatures",
            "plots": [
                {"type": "timeseries", "channel": "temp_a"},
                {"type": "timeseries", "channel": "temp_b"},
            ],
        },
        {"type": "timeaxis", "plots": [{"type": "timeseries", "channel": "pressure"}]},
    ],
}


def record(directory: Path, channels: dict[str, list[float]], step: float, end: float) -> None:
    """Write ``channels`` (values oldest first, ``step`` seconds apart, the last at ``end``)."""
    with DataStore_SQLite(f"sqlite:///{directory / 'data.db'}", table="data") as store:
        count = max(len(v) for v in channels.values())
        for i in range(count):
            t = end - (count - 1 - i) * step
            store.append(
                {ch: values[i] for ch, values in channels.items() if i < len(values)}, timestamp=t
            )


def panel_points(page: Any, index: int) -> int:
    return int(page.locator(".sd-panel-body").nth(index).get_attribute("data-points") or 0)


def wait_last(page: Any, index: int, channel: str, value: float, timeout: float = 5000) -> None:
    """Wait until panel ``index`` shows ``value`` as the last point of ``channel``."""
    page.wait_for_function(
        """([i, ch, v]) => {
            const body = document.querySelectorAll('.sd-panel-body')[i];
            if (!body || !body.dataset.last) return false;
            return JSON.parse(body.dataset.last)[ch] === v;
        }""",
        arg=[index, channel, value],
        timeout=timeout,
    )


def emit(server: Any, values: dict[str, float]) -> None:
    packet = {ch: {"t": time.time(), "x": x} for ch, x in values.items()}
    reply = httpx.post(server.url + "api/emit/current_data", json=packet, timeout=10)
    assert reply.status_code == 201, reply.text


@pytest.fixture
def recorded(web_project: Project) -> Path:
    directory = web_project(
        title="Layout Test",
        body=SOURCE,
        files={"config/slowplot-Plots.json": json.dumps(LAYOUT, indent=2)},
    )
    now = time.time()
    record(
        directory,
        {
            "temp_a": [20.0 + 0.5 * i for i in range(30)],
            "temp_b": [10.0 - 0.25 * i for i in range(30)],
            "pressure": [1.5e-6 * (1 + i) for i in range(30)],
        },
        step=60,
        end=now - 5,
    )
    return directory


def test_time_axis_plots_draw_the_recorded_values(
    serve: Serve, recorded: Path, page: Any, page_errors: list[str], screenshot: Any
) -> None:
    server = serve(recorded)
    page.goto(server.url + "slowplot.html?config=slowplot-Plots.json")
    wait_last(page, 0, "temp_b", 10.0 - 0.25 * 29, timeout=15000)
    wait_last(page, 0, "temp_a", 20.0 + 0.5 * 29)
    wait_last(page, 1, "pressure", 1.5e-6 * 30)
    assert panel_points(page, 0) == 60  # 30 points of each channel, all in the hour
    assert page.title() == "Recorded plots - Layout Test"
    assert page.locator(".sd-panel-title-text").first.inner_text() == "Temperatures"
    assert page.locator(".sd-panel-title-text").nth(1).inner_text() == "pressure"
    # away from the cursor, the legend shows each channel's latest value
    legend = page.evaluate(
        """() => Object.fromEntries([...document.querySelector('.sd-panel .u-legend')
            .querySelectorAll('.u-series')].slice(1).map((row) =>
                [row.querySelector('.u-label').textContent,
                 row.querySelector('.u-value').textContent]))"""
    )
    assert legend == {"temp_a": "34.5", "temp_b": "2.75"}
    assert page.locator("#sd-status").get_attribute("data-state") == "live"
    screenshot(page, "panel-timeaxis")
    assert page_errors == []


def test_a_long_window_is_resampled_by_the_server_and_drawn_with_its_envelope(
    serve: Serve, web_project: Project, page: Any, page_errors: list[str]
) -> None:
    layout = {
        "control": {"range": {"length": 2 * 86400, "to": 0}, "reload": 300},
        "panels": [{"type": "timeaxis", "plots": [{"type": "timeseries", "channel": "slow"}]}],
    }
    directory = web_project(body=SOURCE, files={"config/slowplot-Long.json": json.dumps(layout)})
    # three days of one sample a minute, alternating +-1 around a ramp: the envelope is +-1
    values = [i / 100 + (1 if i % 2 else -1) for i in range(3 * 1440)]
    record(directory, {"slow": values}, step=60, end=time.time() - 30)
    server = serve(directory)
    with page.expect_request(lambda r: "/api/data/slow?" in r.url) as request:
        page.goto(server.url + "slowplot.html?config=slowplot-Long.json")
    query = httpx.URL(request.value.url).params
    # about 600 buckets (2 days / 600 = 288 s) of a width the tiers have (a multiple of 60 s),
    # their means with the min..max envelope, aligned to the width
    assert query["resample"] == "300"
    assert (query["reducer"], query["envelope"], query["align"]) == ("mean", "1", "1")
    page.wait_for_function(
        "Number(document.querySelector('.sd-panel-body')?.dataset.points) > 0", timeout=15000
    )
    points = panel_points(page, 0)
    assert 570 <= points <= 577  # 576 buckets, not the 2880 raw samples
    bands = page.evaluate("window.sdLayout.frames[0].panel.plot.bands.length")
    assert bands == 1
    # the envelope the page holds is the server's min/max of each bucket
    spread = page.evaluate(
        """() => { const s = window.sdLayout.feed.series('slow');
                   const k = s.x_max.findIndex((v, i) => v !== null && s.x_min[i] !== null);
                   return s.x_max[k] - s.x_min[k]; }"""
    )
    assert spread == pytest.approx(2.0, abs=0.1)
    assert page_errors == []


def test_streamed_values_reach_the_plot_over_the_websocket(
    serve: Serve, recorded: Path, page: Any, page_errors: list[str]
) -> None:
    server = serve(recorded)
    emit(server, {"live_ch": 0.5})  # the channel exists (a quick view of an unknown one is empty)
    page.goto(server.url + "slowplot.html?channel=live_ch")
    page.wait_for_function("window.sdLayout?.feed.socketOpen === true", timeout=15000)
    for value in (1.25, 2.5, 3.75):
        emit(server, {"live_ch": value})
        wait_last(page, 0, "live_ch", value)  # well before the 10 s poll of a quick view
    assert page.evaluate("window.sdLayout.feed.frameCount") >= 3
    assert page.locator("#sd-status").get_attribute("data-state") == "live"
    # a reload answers a channel nobody records with its latest value only: the streamed
    # trace stays whole
    before = page.evaluate("window.sdLayout.feed.fetchCount")
    page.evaluate("window.sdLayout.feed.refresh()")
    page.wait_for_function(f"window.sdLayout.feed.fetchCount > {before}", timeout=5000)
    trace = page.evaluate("window.sdLayout.feed.series('live_ch').x")
    assert trace[-3:] == [1.25, 2.5, 3.75]
    assert page_errors == []


def test_without_the_websocket_the_page_polls_and_says_so(
    serve: Serve, recorded: Path, page: Any
) -> None:
    server = serve(recorded)
    page.route_web_socket("**/ws/attach/**", lambda ws: ws.close())  # a proxy refusing it
    emit(server, {"polled": 1.0})
    page.goto(server.url + "slowplot.html?channel=polled")
    status = page.locator("#sd-status")
    page.wait_for_function(
        "document.querySelector('#sd-status')?.dataset.state === 'polling'", timeout=15000
    )
    assert "polling" in status.inner_text()
    emit(server, {"polled": 42.0})
    wait_last(page, 0, "polled", 42.0, timeout=10000)  # the fallback polls every 3 s
    assert page.evaluate("window.sdLayout.feed.frameCount") == 0


def test_the_page_shows_a_stopped_server_and_recovers_when_it_returns(
    serve: Serve, recorded: Path, page: Any, screenshot: Any
) -> None:
    server = serve(recorded)
    page.goto(server.url + "slowplot.html?config=slowplot-Plots.json")
    page.wait_for_function("window.sdLayout?.feed.socketOpen === true", timeout=15000)
    server.stop()
    page.wait_for_function(
        "document.querySelector('#sd-status')?.dataset.state === 'disconnected'", timeout=15000
    )
    assert "disconnected" in page.locator("#sd-status").inner_text()
    screenshot(page, "status-disconnected")
    server.start()
    page.wait_for_function(
        "document.querySelector('#sd-status')?.dataset.state === 'live'"
        " && window.sdLayout.feed.socketOpen",
        timeout=20000,
    )
    emit(server, {"temp_a": 99.5})
    wait_last(page, 0, "temp_a", 99.5)


def test_a_layout_edited_in_the_browser_is_saved_and_reloads_identically(
    serve: Serve, recorded: Path, page: Any, page_errors: list[str], screenshot: Any
) -> None:
    server = serve(recorded)
    page.goto(server.url + "slowplot.html?config=slowplot-Plots.json")
    page.wait_for_function("window.sdLayout?.frames.length === 2", timeout=15000)
    page.click("#sd-edit")
    # add a time-axis panel of temp_b
    page.click("#sd-add")
    dialog = page.locator("dialog.sd-dialog")
    dialog.locator("select[name=type]").select_option("timeaxis")
    dialog.locator("input[name=filter]").fill("temp_b")
    dialog.locator("select[name=channels]").select_option(["temp_b"])
    screenshot(page, "edit-add-panel")
    dialog.locator("button[type=submit]").click()
    page.wait_for_function("window.sdLayout.frames.length === 3")
    # move it to the front, retitle it, remove the pressure panel
    page.locator(".sd-panel").nth(2).locator("[data-action=left]").click()
    page.locator(".sd-panel").nth(1).locator("[data-action=left]").click()
    page.locator(".sd-panel").nth(0).locator("[data-action=configure]").click()
    dialog.locator("input[name=title]").fill("Only B")
    dialog.locator("button[type=submit]").click()
    page.locator(".sd-panel").nth(2).locator("[data-action=remove]").click()
    titles = page.locator(".sd-panel-title-text").all_inner_texts()
    assert titles == ["Only B", "Temperatures"]
    page.click("#sd-save")
    page.wait_for_function("!document.body.classList.contains('sd-dirty')", timeout=10000)
    assert "saved slowplot-Plots.json" in page.locator("#sd-notices").inner_text()
    saved = json.loads((recorded / "config" / "slowplot-Plots.json").read_text())
    assert [p.get("title") for p in saved["panels"]] == ["Only B", "Temperatures"]
    assert saved["panels"][0]["plots"] == [{"type": "timeseries", "channel": "temp_b"}]
    before = page.evaluate("JSON.stringify(window.sdLayout.document())")
    page.reload()
    page.wait_for_function("window.sdLayout?.frames.length === 2", timeout=15000)
    assert page.evaluate("JSON.stringify(window.sdLayout.document())") == before
    assert page.locator(".sd-panel-title-text").all_inner_texts() == titles
    wait_last(page, 0, "temp_b", 10.0 - 0.25 * 29, timeout=15000)
    assert page_errors == []


def test_saving_under_a_new_name_and_a_refused_save_shows_the_servers_reason(
    serve: Serve, recorded: Path, page: Any
) -> None:
    server = serve(recorded)
    page.goto(server.url + "slowplot.html?channel=temp_a,temp_b")
    page.wait_for_function("window.sdLayout?.frames.length === 1", timeout=15000)
    page.click("#sd-edit")
    page.once("dialog", lambda d: d.accept("Quick1"))
    page.click("#sd-save")
    page.wait_for_function(
        "document.querySelector('#sd-notices')?.innerText.includes('saved slowplot-Quick1.json')",
        timeout=10000,
    )
    saved = json.loads((recorded / "config" / "slowplot-Quick1.json").read_text())
    assert saved["panels"][0]["plots"][1]["channel"] == "temp_b"
    assert "config=slowplot-Quick1.json" in page.url
    # the server cannot write the file (a directory is in the way): the page shows its reason
    (recorded / "config" / "slowplot-Taken.json").mkdir()
    # the prompt for the name, then the question whether to overwrite what is there
    page.on("dialog", lambda d: d.accept("Taken") if d.type == "prompt" else d.accept())
    page.click("#sd-save-as")
    error = page.locator(".sd-notice-error")
    error.wait_for(timeout=10000)
    text = error.inner_text()
    assert "saving slowplot-Taken.json failed" in text
    assert "cannot write slowplot-Taken.json" in text and "HTTP 500" in text


def test_drag_zooms_every_panel_and_double_click_goes_back(
    serve: Serve, recorded: Path, page: Any, page_errors: list[str]
) -> None:
    server = serve(recorded)
    page.goto(server.url + "slowplot.html?config=slowplot-Plots.json")
    wait_last(page, 0, "temp_a", 20.0 + 0.5 * 29, timeout=15000)
    box = page.locator(".sd-panel").first.locator(".u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    with page.expect_request(lambda r: "/api/data/" in r.url and "to=0" not in r.url) as request:
        page.mouse.move(box["x"] + box["width"] * 0.5, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
        page.mouse.up()
    to = float(httpx.URL(request.value.url).params["to"])
    length = page.evaluate("window.sdLayout.feed.length")
    assert 600 < length < 1200  # a quarter of the hour
    assert to == pytest.approx(time.time() - 3600 / 4, abs=120)
    page.wait_for_function(
        "document.querySelector('#sd-status')?.dataset.state === 'fixed-range'", timeout=5000
    )
    page.locator(".sd-panel").first.locator(".u-over").dblclick()
    page.wait_for_function("window.sdLayout.feed.live && window.sdLayout.feed.length === 3600")
    assert page_errors == []


def test_a_new_project_opens_on_every_channel_and_quick_views_come_from_the_url(
    serve: Serve, recorded: Path, page: Any, page_errors: list[str]
) -> None:
    server = serve(recorded)
    page.goto(server.url + "slowplot.html")
    page.wait_for_function("window.sdLayout?.frames.length >= 1", timeout=15000)
    plotted = page.evaluate("window.sdLayout.frames[0].panel.seriesChannels()")
    assert sorted(plotted) == ["pressure", "temp_a", "temp_b"]
    wait_last(page, 0, "temp_a", 20.0 + 0.5 * 29, timeout=15000)
    page.goto(server.url + "slowplot.html?channel=temp_a;pressure")
    page.wait_for_function("window.sdLayout?.frames.length === 2", timeout=15000)
    wait_last(page, 1, "pressure", 1.5e-6 * 30, timeout=15000)
    assert page_errors == []


def test_a_broken_layout_file_shows_the_servers_error(
    serve: Serve, web_project: Project, page: Any
) -> None:
    directory = web_project(files={"config/slowplot-Broken.json": '{"panels": [\n  {"type": }\n]}'})
    server = serve(directory)
    page.goto(server.url + "slowplot.html?config=slowplot-Broken.json")
    error = page.locator(".sd-config-error")
    error.wait_for(timeout=15000)
    assert "Configuration file error" in error.inner_text()
    assert "line 2" in error.inner_text().lower()


def test_dark_theme_from_the_project_style(
    serve: Serve, recorded: Path, page: Any, screenshot: Any
) -> None:
    yaml = recorded / "SlowdashProject.yaml"
    yaml.write_text(yaml.read_text() + "  style:\n    theme: dark\n")
    server = serve(recorded)
    page.goto(server.url + "slowplot.html?config=slowplot-Plots.json")
    wait_last(page, 0, "temp_a", 20.0 + 0.5 * 29, timeout=15000)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(16, 20, 24)"
    screenshot(page, "layout-dark")


def test_tick_labels_keep_the_digits_their_spacing_needs(
    serve: Serve, web_project: Project, page: Any
) -> None:
    server = serve(web_project())
    page.goto(server.url + "slowplot.html?channel=x")
    labels = page.evaluate(
        """async () => {
            const { tickLabels } = await import('./js/panels/timeaxis.mjs');
            return [tickLabels(null, [0, 5e-6, 1e-5, 1.5e-5]), tickLabels(null, [20, 22.5, 25]),
                    tickLabels(null, [1e6, 2e6]), tickLabels(null, [-0.3, 0, 0.3, 0.6])];
        }"""
    )
    assert labels == [
        ["0", "5e-6", "1.0e-5", "1.5e-5"],
        ["20.0", "22.5", "25.0"],
        ["1e6", "2e6"],
        ["-0.3", "0", "0.3", "0.6"],
    ]


def test_the_same_layout_fills_a_laptop_and_a_wall_display(
    serve: Serve, recorded: Path, browser: Any
) -> None:
    server = serve(recorded)
    measured = {}
    for width, height in ((1280, 800), (2560, 1440)):
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            page.goto(server.url + "slowplot.html?config=slowplot-Plots.json")
            wait_last(page, 0, "temp_a", 20.0 + 0.5 * 29, timeout=15000)
            measured[width] = page.evaluate(
                """() => {
                    const panels = [...document.querySelectorAll('.sd-panel')];
                    const box = (e) => e.getBoundingClientRect();
                    const canvas = panels[0].querySelector('canvas');
                    return {
                        font: parseFloat(getComputedStyle(document.body).fontSize),
                        widths: panels.map((p) => box(p).width),
                        bottom: Math.max(...panels.map((p) => box(p).bottom)),
                        plotHeight: box(canvas).height,
                    };
                }"""
            )
        finally:
            context.close()
    for width, height in ((1280, 800), (2560, 1440)):
        m = measured[width]
        # two columns side by side over the width, filling the height without scrolling
        assert all(w > width * 0.45 for w in m["widths"]), m
        assert height * 0.9 < m["bottom"] <= height, m
        assert m["plotHeight"] > height * 0.5, m
    assert measured[2560]["font"] > measured[1280]["font"] * 1.4  # readable from afar


# A layout as the original SlowDash writes it: every style key its editor saves, numbers as
# strings in the grid, the older "timeseries" panel type, and a panel type we do not draw.
ORIGINAL_LAYOUT = {
    "control": {
        "range": {"length": 3600, "to": 0},
        "reload": 60,
        "mode": "normal",
        "grid": {"rows": "2", "columns": "2"},
    },
    "style": {},
    "panels": [
        {
            "type": "timeseries",
            "plots": [
                {
                    "type": "timeseries",
                    "channel": "temp_a",
                    "color": "#009090",
                    "label": "",
                    "format": "%.5g",
                    "opacity": 1,
                    "marker_type": "circle",
                    "marker_size": 2,
                    "line_width": 1,
                    "line_type": "connect",
                    "fill_opacity": 0,
                    "fill_envelope": False,
                    "fill_baseline": "1e-100",
                }
            ],
            "axes": {
                "xfixed": False,
                "yfixed": False,
                "xlog": False,
                "ylog": False,
                "zlog": False,
                "ymin": 0,
                "ymax": 40,
                "title": "Temperature A",
            },
            "legend": {"style": "side"},
        },
        {"type": "map", "map": "Detector", "channel": "hits", "legend": {"style": "none"}},
        {
            "type": "singles",
            "item_type": "square",
            "items": [
                {
                    "channel": "temp_b",
                    "gauge": {"min": 0, "max": 0},
                    "ranges": {
                        "normal": {"min": 0, "max": 0},
                        "warn": {"min": 0, "max": 0},
                        "error": {"min": 0, "max": 0},
                    },
                    "label": "Temperature B",
                    "format": "%.2f K",
                }
            ],
            "color": {
                "base": "rgb(0, 0, 0)",
                "normal": "#9a9996",
                "warn": "#f59e0b",
                "error": "#d81b60",
                "value_opacity": 1,
                "gauge_opacity": 0.4,
                "tile_opacity": 0.3,
            },
            "grid": {"rows": 1, "columns": 1},
            "margin": {"top": 0, "right": 0, "bottom": 0, "left": 0},
            "ranges": {"apply_to_value": False, "apply_to_gauge": False, "apply_to_tile": True},
        },
        {"type": "tree", "channel": "nothing_here", "title": "Run Status"},
    ],
    "meta": {"name": "original", "title": "", "description": ""},
}


def test_a_layout_written_by_the_original_loads_unchanged(
    serve: Serve, recorded: Path, page: Any
) -> None:
    (recorded / "config" / "slowplot-original.json").write_text(
        json.dumps(ORIGINAL_LAYOUT, indent=4)
    )
    server = serve(recorded)
    page.goto(server.url + "slowplot.html?config=slowplot-original.json")
    wait_last(page, 0, "temp_a", 20.0 + 0.5 * 29, timeout=15000)
    panels = page.locator(".sd-panel")
    assert panels.count() == 4
    assert panels.nth(0).locator(".sd-panel-title-text").inner_text() == "Temperature A"
    assert 'unknown panel type "map"' in panels.nth(1).inner_text()
    page.wait_for_function(
        "document.querySelectorAll('.sd-panel')[2].innerText.includes('2.75 K')", timeout=15000
    )
    assert "Temperature B" in panels.nth(2).inner_text()
    # the layout's grid (given as strings) is two by two
    columns = page.evaluate(
        "getComputedStyle(document.querySelector('#sd-layout')).gridTemplateColumns"
    )
    assert len(columns.split()) == 2
    # saving it back keeps what this dashboard does not use (the map panel, style keys)
    saved = page.evaluate("JSON.parse(JSON.stringify(window.sdLayout.document()))")
    assert saved["panels"][1] == ORIGINAL_LAYOUT["panels"][1]
    assert saved["panels"][0]["plots"][0]["fill_baseline"] == "1e-100"
    assert saved["control"]["mode"] == "normal"
