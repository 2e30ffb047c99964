"""The README's example (examples/quicktour) in Chromium: the home page lists its layout and
canvas, and both draw what the example records (served from a copy: the example writes its
database beside itself)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import EXAMPLES


def test_the_quick_tour_home_layout_and_canvas_show_recorded_data(
    serve: Callable[..., Any], tmp_path: Path, page: Any, page_errors: list[str]
) -> None:
    project = tmp_path / "quicktour"
    shutil.copytree(EXAMPLES / "quicktour", project, ignore=shutil.ignore_patterns("*.db*"))
    server = serve(project)
    page.goto(server.url)
    page.wait_for_function("document.title === 'slowdash-trio quick tour'", timeout=15000)
    catalog = page.locator(".sd-panel-body[data-state]").first
    link = page.get_by_role("link", name="Quick tour", exact=True)
    link.wait_for(timeout=15000)
    assert "Quick tour: the device" in catalog.inner_text()
    link.click()
    page.wait_for_url("**/slowplot.html?config=slowplot-QuickTour.json")
    # the recorder stores a reading per second: the first plot gets points, the histogram
    # entries (the page polls every 5 s, the layout's reload interval)
    page.wait_for_function(
        "Number(document.querySelector('.sd-panel-body')?.dataset.points) >= 2", timeout=20000
    )
    page.wait_for_function(
        "Number(document.querySelectorAll('.sd-panel-body')[2]?.dataset.entries) >= 1",
        timeout=20000,
    )
    page.goto(server.url + "slowdash.html?config=slowdash-QuickTourCanvas.json")
    page.wait_for_function(
        "[...document.querySelectorAll('.sd-canvas-value')]"
        ".filter((t) => /^-?\\d+\\.\\d\\d$/.test(t.textContent)).length >= 4",
        timeout=20000,
    )
    assert page.title() == "Quick tour: the device - slowdash-trio quick tour"
    assert page_errors == []
