"""HTML panels in Chromium: metric transforms, sd-value/sd-enabled bindings, form submits that
call task functions (converted fields, the server's errors, `await` results, sd-confirm),
streamed values and sd-live write-back to a task's exported variable."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

TASK = '''
"""The bench: a power supply whose functions the HTML form calls."""

import trio

from slowdash_controls import ValueNode

voltage = ValueNode(0.0)
rate = ValueNode(0.0)
setpoint = ValueNode(2.5)  # bound to the page's sd-live slider
seen = ValueNode(0.0)  # what this task saw of the set-point (mirrored by _loop)
ticks = ValueNode(0)  # streamed by _loop
running = ValueNode(False)
info = ValueNode({"mode": "idle", "limits": {"high": 12.5}})


def _export():
    return [
        ("voltage", voltage), ("rate", rate), ("setpoint", setpoint), ("seen", seen),
        ("ticks", ticks), ("running", running), ("info", info),
    ]


def set_voltage(value: float, rate_: float = 1.0, enable: bool = False):
    voltage.set(value)
    rate.set(rate_)
    running.set(enable)


def reset():
    voltage.set(0.0)
    running.set(False)


async def add(a: int, b: int):
    return {"sum": a + b}


async def _loop():
    await seen.aio_set(await setpoint.aio_get())
    await ticks.aio_set(await ticks.aio_get() + 1)
    await ticks.deliver()
    await seen.deliver()
    await trio.sleep(0.2)
'''

HTML = """
<style>.bench-row { margin: 0.4em 0; }</style>
<script>window.sdScriptRan = true;</script>
<h3>Bench power supply</h3>
<form id="psu">
  <div class="bench-row">Voltage: <b id="voltage" sd-value="bench.voltage->format('%.2f V')"></b>
    (rate <span id="rate" sd-value="bench.rate"></span>,
    output <span id="output" sd-value="bench.running->match('true', 'ON', 'OFF')"></span>)</div>
  <div class="bench-row">
    Value <input name="value" id="value" value="1.5" size="6">
    Rate <input type="number" name="rate_" id="rate-input" value="2" step="any">
    <label><input type="checkbox" name="enable" id="enable" checked> output on</label>
    <input id="unnamed" value="not sent">
  </div>
  <input type="submit" id="set" name="bench.set_voltage()" value="Set">
  <input type="submit" id="reset" name="bench.reset()" value="Reset"
         sd-confirm="Really reset the voltage?" sd-enabled="bench.voltage->gt(0)">
  <input type="submit" id="nothing" name="bench.nothing()" value="Undefined">
</form>
<form id="adder" class="bench-row">
  a <input type="number" name="a" value="2" style="width:4em">
  b <input type="number" name="b" value="3" style="width:4em">
  <input type="submit" id="add" name="await bench.add()" value="Add">
</form>
<div class="bench-row">
  Set-point <input type="range" id="setpoint" min="0" max="10" step="0.5"
                   sd-value="bench.setpoint" sd-live="true">
  the task saw <span id="seen" sd-value="bench.seen"></span>
</div>
<div class="bench-row">Ticks (streamed): <span id="ticks" sd-value="bench.ticks"></span>;
  high limit <span id="limit" sd-value="bench.info['limits/high']->format('%.1f')"></span>;
  mode <input id="mode" sd-value="bench.info->get('mode')"></div>
<div class="bench-row">Broken: <span id="broken" sd-value="bench.voltage->nosuch()">?</span></div>
"""

LAYOUT = {
    "meta": {"title": "Bench"},
    "control": {"range": {"length": 600, "to": 0}, "reload": 60, "grid": {"rows": 1, "columns": 1}},
    "panels": [{"type": "html", "file": "Bench", "title": "Bench form"}],
}

TASK_ENTRY = """
task:
  name: bench
  auto_load: true
"""

UNEXPECTED = re.compile(r"^(?!console error: Failed to load resource: the server responded)")


def bench_project(web_project: Callable[..., Path], **files: str) -> Path:
    return web_project(
        title="HTML panel test",
        body=TASK_ENTRY,
        files={
            "config/slowtask-bench.py": TASK,
            "config/html-Bench.html": HTML,
            "config/slowplot-Bench.json": json.dumps(LAYOUT),
            **files,
        },
    )


def text_of(page: Any, selector: str) -> str:
    return str(page.locator(selector).text_content())


def wait_text(page: Any, selector: str, pattern: str, timeout: float = 10_000) -> None:
    """Wait until the element's text (or value, for inputs) matches the regex ``pattern``."""
    page.wait_for_function(
        """([selector, pattern]) => {
            const e = document.querySelector(selector);
            if (!e) return false;
            const text = 'value' in e && e.tagName !== 'BUTTON' ? e.value : e.textContent;
            return new RegExp(pattern).test(text);
        }""",
        arg=[selector, pattern],
        timeout=timeout,
    )


def open_bench(page: Any, server: Any) -> None:
    page.goto(server.url + "slowplot.html?config=slowplot-Bench.json")
    page.wait_for_selector(".sd-panel-body[data-loaded='true']", timeout=15_000)
    wait_text(page, "#voltage", r"^0\.00 V$")


def test_metric_transforms(
    serve: Callable[..., Any], web_project: Callable[..., Path], page: Any, page_errors: list[str]
) -> None:
    server = serve(web_project())
    page.goto(server.url + "slowplot.html")
    results = page.evaluate(
        """async () => {
        const { parseMetric } = await import('./js/transform.mjs');
        const run = (metric, value) => parseMetric(metric).apply(value);
        const error = (metric) => { try { parseMetric(metric); return null; }
                                    catch (e) { return e.name + ': ' + e.message; } };
        const table = {columns: ['ch', 'v'], table: [['a', 1], ['b', 2.5]]};
        return {
            channel: parseMetric("run_status['running']->invert()").channel,
            bracket: run("run_status['running']->invert()", {tree: {running: true}}),
            path: run("s[a/b]", {tree: {a: {b: 7}}}),
            offset: run('x->offset(10)->scale(2)', 1.5),
            format: run("x->format('%.2f mV')", 3.14159),
            arrow: run("x->format('%d -> %s')", 4),
            match: run("x->match('^ok', 'good', 'bad')", 'okay'),
            nomatch: run("x->match('^ok', 'good', 'bad')", 'fail'),
            replace: run("x->replace(1, 'one')", 1),
            eq: run("x->eq('on')", 'on'),
            gt: [run('x->gt(3)', 5), run('x->gt(3)', 2), run('x->gt(3)', null)],
            invert: run('x->invert()', 0),
            deflt: [run("x->default('n/a')", null), run("x->default('n/a')", 0)],
            last: run('x->last()', [1, 2, 3]),
            column: run("t->get('v')", table),
            columnLast: run("t->get('v')->last()", table),
            byIndex: run('t->get(0)', table),
            scaleArray: run('t->get(1)->scale(10)', table),
            args: parseMetric("x->replace(null, NaN)->default(true)").functors,
            errors: [
                error("x->nosuch()"), error("x->scale()"), error("x->format('%d)"),
                error("->scale(2)"), error("x->scale 2"), error("x->match('(')"),
                error("x->scale(1 2)"),
            ],
        };
    }"""
    )
    assert results["channel"] == "run_status"
    assert results["bracket"] is False
    assert results["path"] == 7
    assert results["offset"] == 23
    assert results["format"] == "3.14 mV"
    assert results["arrow"] == "4 -> "
    assert (results["match"], results["nomatch"]) == ("good", "bad")
    assert results["replace"] == "one"
    assert results["eq"] is True
    assert results["gt"] == [True, False, None]
    assert results["invert"] is True
    assert results["deflt"] == ["n/a", 0]
    assert results["last"] == 3
    assert results["column"] == [1, 2.5]
    assert results["columnLast"] == 2.5
    assert results["byIndex"] == ["a", "b"]
    assert results["scaleArray"] == [10, 25]
    replace_args = results["args"][0]["args"]
    assert results["args"][0]["name"] == "replace"
    assert replace_args[0] is None and math.isnan(replace_args[1])
    assert results["args"][1] == {"name": "default", "args": [True]}
    errors = results["errors"]
    assert all(e and e.startswith('MetricError: metric "') for e in errors), errors
    assert "unknown function nosuch()" in errors[0]
    assert "scale() takes 1 argument, not 0" in errors[1]
    assert "unclosed ' quote" in errors[2]
    assert "no channel name" in errors[3]
    assert "is not a function call" in errors[4]
    assert "bad regular expression" in errors[5]
    assert "bad argument 1 2" in errors[6]
    assert page_errors == []


def test_form_buttons_call_task_functions(
    serve: Callable[..., Any],
    web_project: Callable[..., Path],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
) -> None:
    server = serve(bench_project(web_project))
    open_bench(page, server)
    status = ".sd-html-status"

    # scripts in the user's HTML are not run; CSS in it applies; bindings were found
    assert page.evaluate("window.sdScriptRan") is None
    assert page.locator(".sd-panel-body").get_attribute("data-bindings") == "10"
    # a metric that does not parse is marked on the element and reported
    assert "unknown function nosuch()" in str(page.locator("#broken").get_attribute("title"))
    assert page.locator(".sd-notice-error", has_text="nosuch()").count() == 1
    # values shown at load: format(), match(), get() with a path and on a non-live input
    wait_text(page, "#output", "^OFF$")
    wait_text(page, "#limit", r"^12\.5$")
    wait_text(page, "#mode", "^idle$")
    assert page.locator("#reset").is_disabled()  # sd-enabled: voltage > 0 is false

    # Set: fields converted by the annotations (value: float from text, rate_ from a number
    # input, enable: bool from a checkbox); the page shows the new values via sd-value
    page.fill("#value", "3.25")
    page.click("#set")
    wait_text(page, status, r"bench\.set_voltage\(\): done")
    wait_text(page, "#voltage", r"^3\.25 V$", timeout=5_000)
    wait_text(page, "#rate", "^2$", timeout=5_000)
    wait_text(page, "#output", "^ON$", timeout=5_000)
    reply = httpx.get(server.url + "api/data/bench.voltage,bench.rate,bench.running", timeout=10)
    assert [reply.json()[c]["x"] for c in ("bench.voltage", "bench.rate", "bench.running")] == [
        3.25,
        2.0,
        True,
    ]
    # sd-enabled follows the value: Reset is enabled now
    page.wait_for_function("!document.querySelector('#reset').disabled", timeout=5_000)

    # a field that does not convert: the server's message on the page, nothing called
    page.fill("#value", "abc")
    page.click("#set")
    wait_text(page, status, r"failed: .*field 'value': 'abc' is not a number")
    assert page.locator(".sd-notice-error", has_text="'abc' is not a number").count() == 1
    assert text_of(page, "#voltage") == "3.25 V"

    # a function the task does not have: the server's 404 message
    page.click("#nothing")
    wait_text(page, status, r"undefined function: bench\.nothing\(\)")

    # await: the function's return value is shown
    page.click("#add")
    wait_text(page, status, r'await bench\.add\(\): returned \{"sum":5\}')
    assert page.locator(".sd-notice-ok", has_text='returned {"sum":5}').count() >= 1

    # sd-confirm: dismissed, nothing is sent; accepted, the function runs
    questions: list[str] = []

    def answer(accept: bool) -> Callable[[Any], None]:
        def handler(dialog: Any) -> None:
            questions.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        return handler

    page.once("dialog", answer(False))
    page.click("#reset")
    wait_text(page, status, r"bench\.reset\(\): cancelled")
    assert text_of(page, "#voltage") == "3.25 V"
    page.once("dialog", answer(True))
    page.click("#reset")
    wait_text(page, status, r"bench\.reset\(\): done")
    wait_text(page, "#voltage", r"^0\.00 V$", timeout=5_000)
    assert questions == ["Really reset the voltage?", "Really reset the voltage?"]
    page.wait_for_function("document.querySelector('#reset').disabled", timeout=5_000)

    page.fill("#value", "4.5")
    page.click("#set")
    wait_text(page, "#voltage", r"^4\.50 V$", timeout=5_000)
    page.evaluate("document.querySelectorAll('.sd-notice').forEach((n) => n.remove())")
    screenshot(page, "panel-html")
    unexpected = [e for e in page_errors if UNEXPECTED.match(e)]
    assert unexpected == []
    # the expected failures only: 400 (bad field) and 404 (undefined function)
    assert len(page_errors) == 2, page_errors


def test_streamed_values_and_live_write_back(
    serve: Callable[..., Any], web_project: Callable[..., Path], page: Any, page_errors: list[str]
) -> None:
    server = serve(bench_project(web_project))
    open_bench(page, server)
    # the task streams ticks every 0.2 s; the layout polls once a minute, so a value that
    # moves twice within 5 s came over the WebSocket
    page.wait_for_function(
        "Number(document.querySelector('#ticks').textContent) > 0", timeout=5_000
    )
    first = int(text_of(page, "#ticks"))
    page.wait_for_function(
        f"Number(document.querySelector('#ticks').textContent) >= {first + 3}", timeout=5_000
    )
    assert page.evaluate("window.sdLayout.feed.fetchCount") <= 3

    # the sd-live slider shows the task's set-point and writes back to it
    wait_text(page, "#setpoint", r"^2\.5$")
    wait_text(page, "#seen", r"^2\.5$", timeout=5_000)
    page.locator("#setpoint").fill("7.5")
    wait_text(page, "#seen", r"^7\.5$", timeout=5_000)
    reply = httpx.get(server.url + "api/data/bench.setpoint,bench.seen", timeout=10).json()
    assert reply["bench.setpoint"]["x"] == 7.5
    assert reply["bench.seen"]["x"] == 7.5
    # the slider keeps the written value (it does not jump back)
    assert page.locator("#setpoint").input_value() == "7.5"
    assert page_errors == []


def test_missing_file_is_reported_in_the_panel(
    serve: Callable[..., Any], web_project: Callable[..., Path], page: Any
) -> None:
    layout = {"panels": [{"type": "html", "file": "html-Nowhere.html"}]}
    server = serve(web_project(files={"config/slowplot-Missing.json": json.dumps(layout)}))
    page.goto(server.url + "slowplot.html?config=slowplot-Missing.json")
    page.wait_for_selector(".sd-panel-body[data-loaded='error']", timeout=15_000)
    shown = text_of(page, ".sd-panel-body")
    assert shown.startswith("html-Nowhere.html could not be loaded: "), shown
    assert "(HTTP 404)" in shown  # with the server's own message before it


@pytest.mark.parametrize("theme", ["dark"])
def test_html_panel_dark_theme(
    serve: Callable[..., Any],
    web_project: Callable[..., Path],
    page: Any,
    page_errors: list[str],
    screenshot: Callable[[Any, str], Path],
    theme: str,
) -> None:
    project = bench_project(web_project)
    yaml = project / "SlowdashProject.yaml"
    yaml.write_text(yaml.read_text() + f"  style:\n    theme: {theme}\n")
    server = serve(project)
    open_bench(page, server)
    assert page.evaluate("document.documentElement.dataset.theme") == theme
    wait_text(page, "#ticks", "^[1-9]")
    page.evaluate("document.querySelectorAll('.sd-notice').forEach((n) => n.remove())")
    screenshot(page, "panel-html-dark")
    assert [e for e in page_errors if UNEXPECTED.match(e)] == []
