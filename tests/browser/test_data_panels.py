"""Plot (histogram, 2-D histogram, graph, time-series histogram and scatter), table, tree and
singles panels, drawn in Chromium from a project whose SQLite store holds the data.

One server serves every test of the module; each test opens its own layout file and checks the
values the page shows against the data written here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import write

from slowdash_stores import (
    DataStore_SQLite,
    Graph,
    Histogram,
    Histogram2d,
    HistogramBasicStat,
    Table,
    Tree,
)

# plain (sync) tests: Playwright's sync API must not run inside a Trio loop

WAIT = 15_000  # ms: generous bound for a panel to show its data

HIST_VALUES = [0.5, 1.5, 1.6, 2.5, 2.6, 2.7, 4.2, 4.4, 7.9, 9.99, 9.99, 12.0]  # 12.0: overflow
HIST2D_POINTS = [(1.5, 1.5)] * 5 + [(2.5, 6.5)] * 2 + [(8.5, 0.5)]
GRAPH_X = [1.0, 2.0, 3.0, 4.0, 5.0]
GRAPH_Y = [2.0, 3.5, 3.0, 5.5, 6.25]
TEMPERATURES = [20.0 + 0.5 * k for k in range(30)]  # one every 10 s, the last 5 min
PRESSURES = [1000.0 + 2.0 * k for k in range(30)]


def _layout(panels: list[dict[str, Any]], rows: int = 1, columns: int = 1) -> str:
    return json.dumps(
        {
            "meta": {"title": "panels"},
            "control": {
                "range": {"length": 900, "to": 0},
                "reload": 60,
                "grid": {"rows": rows, "columns": columns},
            },
            "panels": panels,
        }
    )


LAYOUTS: dict[str, list[dict[str, Any]]] = {
    "histogram": [
        {
            "type": "plot",
            "title": "Histogram",
            "plots": [{"type": "histogram", "channel": "hist", "label": "energy"}],
            "axes": {"xtitle": "energy [keV]", "ytitle": "counts"},
        },
    ],
    "histogram2d": [
        {
            "type": "plot",
            "title": "2-D histogram",
            "plots": [{"type": "histogram2d", "channel": "hist2d"}],
            "axes": {"colorscale": "Viridis", "xtitle": "x", "ytitle": "y"},
        },
    ],
    "graph": [
        {
            "type": "plot",
            "title": "Graph",
            "plots": [{"type": "graph", "channel": "graph", "marker_size": 4}],
            "axes": {
                "xfixed": True,
                "xmin": 0,
                "xmax": 6,
                "xtitle": "time [h]",
                "ytitle": "rate [cps]",
            },
        },
    ],
    "tsplots": [
        {
            "type": "plot",
            "title": "Temperature distribution",
            "plots": [{"type": "ts-histogram", "channel": "temperature", "bins": {"n": 10}}],
        },
        {
            "type": "plot",
            "title": "Pressure against temperature",
            "plots": [{"type": "ts-scatter", "channelX": "temperature", "channelY": "pressure"}],
        },
    ],
    "table": [{"type": "table", "title": "Power supplies", "channel": "psu_table"}],
    "tree": [{"type": "tree", "title": "Run", "channel": "run_tree"}],
    "singles": [
        {
            "type": "singles",
            "title": "Status",
            "item_type": "square",
            "ranges": {"apply_to_value": True, "apply_to_gauge": True},
            "items": [
                {
                    "channel": "temperature",
                    "label": "Temperature",
                    "format": "%.1f degC",
                    "gauge": {"min": 0, "max": 50},
                    "ranges": {
                        "normal": {"min": 0, "max": 30},
                        "warn": {"min": 30, "max": 40},
                        "error": {"min": 40},
                    },
                },
                {
                    "channel": "pressure",
                    "label": "Pressure",
                    "format": "%d hPa",
                    "ranges": {"normal": {"max": 1050}, "warn": {"min": 1050, "color": "#ff8800"}},
                },
                {
                    "channel": "run_status['lapse']",
                    "label": "Lapse",
                    "format": "%d s",
                    "text_transform": "replace(0,'Idling')",
                },
                {
                    "channel": "run_status['runs']",
                    "label": "Runs",
                    "format": "%d",
                    "tolerable_gap": 3600,
                },
                {"channel": "old_value", "label": "Old", "tolerable_gap": 60},
                {"channel": "temperature->nosuch()", "label": "Broken"},
            ],
        },
    ],
}


def _record(directory: Path) -> dict[str, Any]:
    """Write the project's data; answers what the panels should show."""
    now = time.time()
    expected: dict[str, Any] = {}
    with DataStore_SQLite(f"sqlite:///{directory / 'PanelData'}", table="data") as store:
        for k, (t, p) in enumerate(zip(TEMPERATURES, PRESSURES, strict=True)):
            store.append({"temperature": t, "pressure": p}, timestamp=now - 290 + 10 * k)
        store.append(7.5, tag="old_value", timestamp=now - 200)
        objects = store.another("objects")
        hist = Histogram(20, 0, 10)
        hist.add_stat(HistogramBasicStat(["entries", "mean"]))
        hist.fill(HIST_VALUES)
        expected["hist"] = hist.to_json()
        objects.update(hist, tag="hist")

        hist2d = Histogram2d(10, 0, 10, 8, 0, 8)
        for x, y in HIST2D_POINTS:
            hist2d.fill(x, y)
        expected["hist2d"] = hist2d.to_json()
        objects.update(hist2d, tag="hist2d")

        graph = Graph(["time", "rate"])
        graph.add_point(GRAPH_X, GRAPH_Y, y_err=[0.3] * len(GRAPH_X))
        graph.add_stat("Fit", "linear")
        graph.add_stat("Slope", 1.0625)
        expected["graph"] = graph.to_json()
        objects.update(graph, tag="graph")

        table = Table(["name", "voltage", "state"])
        table.add_row(["PS1", 12.5, "ok"], attr=[None, None, {"color": "#008000"}])
        table.add_row(
            ["PS2", 0.0, "tripped"],
            attr=[
                {"href": "https://example.org/ps2"},
                None,
                {"color": "#ff0000", "background": "#ffff00"},
            ],
        )
        objects.update(table, tag="psu_table")

        tree = Tree()
        tree.set("run/number", 1234)
        tree.set("run/state", "taking data", attr={"color": "#0000ff"})
        tree.set("detector/hv/ch0", 1500.25)
        tree.set("detector/hv/ch1", 1499.5)
        tree.set("operator", "Alice")
        objects.update(tree, tag="run_tree")

        status = Tree()
        status.set("lapse", 0)
        status.set("runs", 17)
        objects.update(status, tag="run_status")
        objects.close()
    return expected


@pytest.fixture(scope="module")
def panel_server(
    server_class: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any]]:
    directory = tmp_path_factory.mktemp("panels")
    write(
        directory / "SlowdashProject.yaml",
        """
        slowdash_project:
          name: PanelTest
          title: Panel Test
          data_source:
            url: sqlite:///PanelData
            time_series:
              schema: data[channel]@timestamp(unix)=value
            object:
              schema: objects[channel]=value
        """,
    )
    for name, panels in LAYOUTS.items():
        columns = len(panels)
        write(directory / "config" / f"slowplot-{name}.json", _layout(panels, 1, columns))
    write(
        directory / "config" / "slowplot-all.json",
        _layout([p for panels in LAYOUTS.values() for p in panels], 3, 3),
    )
    expected = _record(directory)
    server = server_class(directory).start()
    try:
        yield server, expected
    finally:
        server.stop()


def _open(page: Any, server: Any, name: str) -> None:
    page.goto(f"{server.url}slowplot.html?config=slowplot-{name}.json")


def _body(index: int = 0) -> str:
    return f'.sd-panel[data-index="{index}"] .sd-panel-body'


def _wait_data(page: Any, index: int, key: str) -> None:
    page.wait_for_function(
        "([selector, key]) => { const b = document.querySelector(selector);"
        " return b && b.dataset[key] !== undefined; }",
        arg=[_body(index), key],
        timeout=WAIT,
    )


def _summary(page: Any, index: int = 0) -> Any:
    return page.evaluate(
        "(selector) => document.querySelector(selector).sdPanel.summary()", _body(index)
    )


# ---------------------------------------------------------------------------------------------
# plots


def test_histogram_shows_the_stored_counts_and_stat_box(
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, expected = panel_server
    _open(page, server, "histogram")
    _wait_data(page, 0, "entries")
    body = page.locator(_body())
    in_range = sum(expected["hist"]["counts"])
    assert in_range == len([v for v in HIST_VALUES if 0 <= v < 10])
    assert float(body.get_attribute("data-entries")) == in_range
    assert body.get_attribute("data-bins") == "20"
    summary = _summary(page)
    plot = summary["plots"][0]
    assert plot["counts"] == expected["hist"]["counts"]
    assert (plot["min"], plot["max"]) == (0, 10)
    assert summary["scales"]["x"] == [0, 10]
    assert summary["scales"]["y"][0] == 0 and summary["scales"]["y"][1] >= max(plot["counts"])
    # the stat box: the histogram's _stat as a table
    stat = page.locator(".sd-plot-stat")
    stat_text = {
        row.locator("th").inner_text(): row.locator("td").inner_text()
        for row in stat.locator("tr").all()
    }
    assert stat_text == {k: str(v) for k, v in expected["hist"]["_stat"].items()}
    assert page.locator(".sd-panel-title-text").inner_text() == "Histogram"
    # hovering shows the bin under the cursor
    box = page.locator(".sd-plot-canvas .u-over").bounding_box()
    bin_index = 5  # [2.5, 3.0): three entries
    page.mouse.move(box["x"] + box["width"] * (bin_index + 0.5) / 20, box["y"] + box["height"] / 2)
    readout = page.locator(".sd-plot-readout")
    expect_text = f"energy: [2.5, 3) {expected['hist']['counts'][bin_index]}"
    page.wait_for_function(
        "(text) => document.querySelector('.sd-plot-readout').textContent.includes(text)",
        arg=expect_text,
        timeout=WAIT,
    )
    assert readout.is_visible()
    page.mouse.move(0, 0)
    screenshot(page, "panel-histogram")
    assert page_errors == []


def test_histogram2d_draws_a_colour_map_with_a_scale(
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, expected = panel_server
    _open(page, server, "histogram2d")
    _wait_data(page, 0, "entries")
    body = page.locator(_body())
    assert body.get_attribute("data-bins") == "10x8"
    assert float(body.get_attribute("data-entries")) == len(HIST2D_POINTS)
    summary = _summary(page)
    assert summary["scales"]["x"] == [0, 10] and summary["scales"]["y"] == [0, 8]
    peak = max(max(row) for row in expected["hist2d"]["counts"])
    assert summary["z"] == [0, peak]
    zbar = page.locator(".sd-plot-zbar")
    assert zbar.is_visible()
    assert zbar.get_attribute("data-colorscale") == "Viridis"
    assert zbar.locator(".sd-plot-zbar-labels span").first.inner_text() == str(peak)
    # the fullest bin (1..2, 1..2) is painted with the top colour of Viridis; an empty bin is not
    colours = page.evaluate(
        """(selector) => {
            const u = document.querySelector(selector).sdPanel.uplot;
            const at = (x, y) => Array.from(u.ctx.getImageData(
                Math.round(u.valToPos(x, 'x', true)), Math.round(u.valToPos(y, 'y', true)), 1, 1
            ).data.slice(0, 3));
            return {full: at(1.5, 1.5), empty: at(5.5, 4.5)};
        }""",
        _body(),
    )
    top = (0xFD, 0xE7, 0x25)
    assert all(abs(a - b) <= 3 for a, b in zip(colours["full"], top, strict=True)), colours
    assert colours["empty"] != colours["full"]
    screenshot(page, "panel-histogram2d")
    assert page_errors == []


def test_graph_shows_points_error_bars_stat_box_and_fixed_x_range(
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, _ = panel_server
    _open(page, server, "graph")
    _wait_data(page, 0, "points")
    body = page.locator(_body())
    assert body.get_attribute("data-points") == str(len(GRAPH_X))
    assert body.get_attribute("data-last") == "5,6.25"
    summary = _summary(page)
    plot = summary["plots"][0]
    assert plot["errors"] is True and plot["last"] == [GRAPH_X[-1], GRAPH_Y[-1]]
    assert summary["scales"]["x"] == [0, 6]  # axes.xfixed with xmin/xmax
    low, high = summary["scales"]["y"]
    assert low < min(GRAPH_Y) - 0.3 and high > max(GRAPH_Y) + 0.3  # error bars inside
    stat_text = page.locator(".sd-plot-stat").inner_text()
    assert "Fit" in stat_text and "linear" in stat_text and "1.0625" in stat_text
    # zoom by dragging, reset by double-click
    box = page.locator(".sd-plot-canvas .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "(s) => document.querySelector(s).dataset.zoomed === 'yes'", arg=_body(), timeout=WAIT
    )
    zoomed = _summary(page)["scales"]["x"]
    assert 0 < zoomed[0] < zoomed[1] < 6
    page.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "(s) => document.querySelector(s).dataset.zoomed === 'no'", arg=_body(), timeout=WAIT
    )
    assert _summary(page)["scales"]["x"] == [0, 6]
    page.mouse.move(0, 0)
    screenshot(page, "panel-graph")
    assert page_errors == []


def test_time_series_histogram_and_scatter(
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, _ = panel_server
    _open(page, server, "tsplots")
    _wait_data(page, 0, "entries")
    _wait_data(page, 1, "points")
    hist = _summary(page, 0)["plots"][0]
    assert hist["entries"] == len(TEMPERATURES) and hist["bins"] == 10
    assert (hist["min"], hist["max"]) == (min(TEMPERATURES), max(TEMPERATURES))
    assert hist["stat"]["Entries"] == len(TEMPERATURES)
    assert math.isclose(hist["stat"]["Mean"], sum(TEMPERATURES) / len(TEMPERATURES))
    scatter = _summary(page, 1)["plots"][0]
    assert scatter["points"] == len(TEMPERATURES)
    assert scatter["last"] == [TEMPERATURES[-1], PRESSURES[-1]]
    screenshot(page, "panel-ts-plots")
    assert page_errors == []


# ---------------------------------------------------------------------------------------------
# tables and trees


def _colour(locator: Any, prop: str) -> str:
    return str(locator.evaluate(f"(e) => getComputedStyle(e).{prop}"))


def test_table_shows_cells_with_their_attr_colours_and_links(
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, _ = panel_server
    _open(page, server, "table")
    _wait_data(page, 0, "rows")
    body = page.locator(_body())
    assert body.get_attribute("data-kind") == "table"
    header = body.locator("thead th").all_inner_texts()
    assert header == ["name", "voltage", "state"]
    rows = [row.locator("td").all_inner_texts() for row in body.locator("tbody tr").all()]
    assert rows == [["PS1", "12.5", "ok"], ["PS2", "0", "tripped"]]
    ok_cell = body.locator("tbody tr").nth(0).locator("td").nth(2)
    tripped = body.locator("tbody tr").nth(1).locator("td").nth(2)
    assert _colour(ok_cell, "color") == "rgb(0, 128, 0)"
    assert _colour(tripped, "color") == "rgb(255, 0, 0)"
    assert _colour(tripped, "backgroundColor") == "rgb(255, 255, 0)"
    link = body.locator("tbody tr").nth(1).locator("td").nth(0).locator("a")
    assert link.get_attribute("href") == "https://example.org/ps2"
    assert link.inner_text() == "PS2"
    assert body.locator(".sd-table-time").inner_text().startswith(time.strftime("%Y-"))
    screenshot(page, "panel-table")
    assert page_errors == []


def test_table_of_a_scalar_channel_lists_its_recent_values_newest_first(
    panel_server: tuple[Any, Any], page: Any, page_errors: list[str]
) -> None:
    server, _ = panel_server
    page.goto(f"{server.url}slowplot.html?channel=temperature/table")
    page.wait_for_function(
        "(s) => document.querySelector(s)?.dataset.kind === 'list'", arg=_body(), timeout=WAIT
    )
    body = page.locator(_body())
    assert body.locator("thead th").all_inner_texts() == ["Time", "temperature"]
    values = body.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert values == [f"{t:g}" for t in reversed(TEMPERATURES)]
    first_time = body.locator("tbody tr td:nth-child(1)").first.inner_text()
    assert first_time.startswith(time.strftime("%Y-"))
    assert page_errors == []


def test_tree_shows_nested_collapsible_lists_with_attr_colours(
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, _ = panel_server
    _open(page, server, "tree")
    _wait_data(page, 0, "leaves")
    body = page.locator(_body())
    assert body.get_attribute("data-kind") == "tree"
    assert body.get_attribute("data-leaves") == "5"
    root = body.locator("ul.sd-tree-root > li")
    assert [li.get_attribute("data-key") for li in root.all()] == ["run", "detector", "operator"]
    state = body.locator('li[data-key="run"] li[data-key="state"]')
    assert state.inner_text() == "state: taking data"
    assert _colour(state, "color") == "rgb(0, 0, 255)"
    ch0 = body.locator('li[data-key="hv"] li[data-key="ch0"] .sd-tree-value')
    assert ch0.inner_text() == "1500.25"
    assert body.locator('li[data-key="operator"]').inner_text() == "operator: Alice"
    # a branch collapses, and stays collapsed
    summary = body.locator('li[data-key="detector"] > details > summary')
    summary.click()
    assert not ch0.is_visible()
    assert body.locator('li[data-key="detector"] > details').evaluate("(d) => d.open") is False
    summary.click()
    assert ch0.is_visible()
    screenshot(page, "panel-tree")
    assert page_errors == []


# ---------------------------------------------------------------------------------------------
# singles


def test_singles_show_formatted_values_ranges_gauges_and_transforms(
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, _ = panel_server
    _open(page, server, "singles")
    page.wait_for_function(
        "() => { const t = [...document.querySelectorAll('.sd-single')];"
        " return t.length === 6 && t.slice(0, 5).every((e) => e.dataset.value !== undefined); }",
        timeout=WAIT,
    )
    tiles = page.locator(".sd-single")
    assert tiles.count() == 6
    values = tiles.locator(".sd-single-value").all_inner_texts()
    assert values == [
        f"{TEMPERATURES[-1]:.1f} degC",
        f"{int(PRESSURES[-1])} hPa",
        "Idling",
        "17",
        "7.5",
        "!",
    ]
    labels = tiles.locator(".sd-single-label").all_inner_texts()
    assert labels == ["Temperature", "Pressure", "Lapse", "Runs", "Old", "Broken"]
    states = [tiles.nth(k).get_attribute("data-state") for k in range(5)]
    assert states == ["warn", "warn", "none", "none", "none"]  # 34.5 degC; 1058 hPa
    pressure_value = tiles.nth(1).locator(".sd-single-value")
    assert _colour(pressure_value, "color") == "rgb(255, 136, 0)"
    fill = tiles.nth(0).locator(".sd-gauge-fill")
    width = fill.evaluate("(e) => e.style.width")
    assert math.isclose(float(width.rstrip("%")), TEMPERATURES[-1] / 50 * 100)
    warn = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--sd-warn')")
    assert _colour(fill, "backgroundColor") == page.evaluate(
        "(c) => { const e = document.createElement('div'); e.style.color = c;"
        " document.body.append(e); const v = getComputedStyle(e).color; e.remove(); return v; }",
        warn.strip(),
    )
    assert tiles.nth(0).locator(".sd-single-time").inner_text() != "---"
    # stale values are marked; a bad metric says what is wrong
    assert tiles.nth(4).get_attribute("data-stale") == "yes"
    assert tiles.nth(3).get_attribute("data-stale") == "no"
    assert tiles.nth(0).get_attribute("data-stale") is None
    assert "nosuch" in tiles.nth(5).locator(".sd-single-time").inner_text()
    screenshot(page, "panel-singles")
    assert page_errors == []


# ---------------------------------------------------------------------------------------------
# the add-panel dialog and the whole set


def test_panels_offer_themselves_for_the_add_panel_dialog_and_find_their_types(
    panel_server: tuple[Any, Any], page: Any, page_errors: list[str]
) -> None:
    server, expected = panel_server
    _open(page, server, "tree")
    _wait_data(page, 0, "leaves")
    addable = page.evaluate(
        """async () => {
            const registry = await import('/js/panels/registry.mjs');
            await registry.loadAllPanels();  // as the dialog does
            return registry.addablePanels().map(({type, cls}) => [type, cls.addable.label]);
        }"""
    )
    types = {t for t, _ in addable}
    assert {"plot", "table", "tree", "singles"} <= types
    # a plot made from the dialog's channel choice finds each channel's type from the data
    page.evaluate(
        """async () => {
            const registry = await import('/js/panels/registry.mjs');
            const cls = registry.panelClass('plot');
            window.sdLayout.addPanel(cls.newConfig('plot', ['hist', 'temperature']));
        }"""
    )
    page.wait_for_function(
        "() => { const b = document.querySelector('.sd-panel[data-index=\"1\"] .sd-panel-body');"
        " return b && b.sdPanel && b.sdPanel.summary().plots.every((p) => p.entries !== null); }",
        timeout=WAIT,
    )
    plots = _summary(page, 1)["plots"]
    assert [p["type"] for p in plots] == ["histogram", "ts-histogram"]
    assert plots[0]["entries"] == sum(expected["hist"]["counts"])
    assert plots[1]["entries"] == len(TEMPERATURES)
    saved = page.evaluate("() => window.sdLayout.document().panels[1].plots.map((p) => p.type)")
    assert saved == ["histogram", "ts-histogram"]
    assert page_errors == []


def test_all_panels_on_one_page_in_the_dark_theme(
    serve: Callable[..., Any],
    tmp_path: Path,
    panel_server: tuple[Any, Any],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server, _ = panel_server
    project = server.project_dir
    dark = tmp_path / "dark"
    dark.mkdir()
    text = (project / "SlowdashProject.yaml").read_text()
    text = text.replace("url: sqlite:///PanelData", f"url: sqlite:///{project / 'PanelData'}")
    write(dark / "SlowdashProject.yaml", text + "  style:\n    theme: dark\n")
    write(
        dark / "config" / "slowplot-all.json",
        (project / "config" / "slowplot-all.json").read_text(),
    )
    dark_server = serve(dark)
    try:
        page.goto(f"{dark_server.url}slowplot.html?config=slowplot-all.json")
        for index in range(sum(len(panels) for panels in LAYOUTS.values())):
            page.wait_for_function(
                "(s) => { const b = document.querySelector(s); return b && "
                "(b.dataset.drawn > 0 || b.dataset.rows || b.dataset.leaves || "
                "b.dataset.updated > 0); }",
                arg=_body(index),
                timeout=WAIT,
            )
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        # the plot area is painted in the theme's (dark) plot background
        corner = page.evaluate(
            """(selector) => {
                const u = document.querySelector(selector).sdPanel.uplot;
                return Array.from(u.ctx.getImageData(
                    u.bbox.left + u.bbox.width - 4, u.bbox.top + 4, 1, 1).data.slice(0, 3));
            }""",
            _body(2),
        )
        assert sum(corner) < 150, corner
        label = page.locator(_body(5)).locator("thead th").first
        assert sum(int(c) for c in _colour(label, "color")[4:-1].split(",")) > 450
        screenshot(page, "panel-dark")
    finally:
        dark_server.stop()
    assert page_errors == []
