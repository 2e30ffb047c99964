"""A page of another origin (a second server on 127.0.0.1, another port) tries to command
the lab's server through the browser: a text/plain form, a no-cors fetch, a JSON fetch and a
WebSocket. None gets through; with that origin allowed in system.allowed_origins, the same
page does, which shows the attacks are real."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

TASK = """
from slowdash_controls import ValueNode

valve = ValueNode(0)

def open_valve():
    valve.set(valve.get() + 1)

def _export():
    return [("valve", valve)]
"""

# the calls are `parallel`: three calls of one task arriving together would otherwise find it
# busy with the first (409), whichever way the browser orders them
ATTACK = """<!doctype html>
<title>Free cat pictures</title>
<iframe name=sink style="display:none"></iframe>
<form id=form method=POST action="TARGET/api/control" enctype="text/plain" target=sink>
<input type=hidden name='{"parallel lab.open_valve()": true, "x": "' value='"}'>
</form>
<p>websocket: <span id=ws>?</span></p>
<p>fetch: <span id=fetch>?</span></p>
<script type=module>
const target = 'TARGET';
document.getElementById('form').submit();
await fetch(target + '/api/control', {method: 'POST', mode: 'no-cors',
    headers: {'Content-Type': 'text/plain'}, body: '{"parallel lab.open_valve()": true}'})
    .catch(() => {});
const json = await fetch(target + '/api/control', {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: '{"parallel lab.open_valve()": true}'})
    .then((r) => `HTTP ${r.status}`, (e) => `failed: ${e.message}`);
document.getElementById('fetch').textContent = json;
const ws = new WebSocket(target.replace('http', 'ws') + '/ws/attach/current_data');
ws.onopen = () => { document.getElementById('ws').textContent = 'open';
    ws.send(JSON.stringify({'lab.valve': {t: Date.now() / 1000, x: 100}})); };
ws.onclose = () => { if (document.getElementById('ws').textContent === '?')
    document.getElementById('ws').textContent = 'refused'; };
</script>
"""


def valve(server: Any) -> Any:
    reply = httpx.get(server.url + "api/data/lab.valve?length=60", timeout=10).json()
    return reply["lab.valve"]["x"]


def test_another_origin_cannot_command_the_server(
    serve: Callable[..., Any], web_project: Callable[..., Path], page: Any
) -> None:
    lab_dir = web_project(
        title="Lab",
        body="task:\n  name: lab\n  auto_load: true\n",
        files={"config/slowtask-lab.py": TASK},
    )
    lab = serve(lab_dir)
    target = lab.url.rstrip("/")
    evil_dir = web_project(
        title="Cats", files={"userhtml/cats.html": ATTACK.replace("TARGET", target)}
    )
    evil = serve(evil_dir)
    assert valve(lab) == 0

    page.goto(evil.url + "userhtml/cats.html")
    page.wait_for_function(
        "document.getElementById('ws').textContent !== '?'"
        " && document.getElementById('fetch').textContent !== '?'",
        timeout=15000,
    )
    assert page.locator("#ws").inner_text() == "refused"
    assert page.locator("#fetch").inner_text().startswith("failed")  # 403 without CORS
    # the server's answers came back before the page finished: nothing was called or set
    assert valve(lab) == 0
    assert lab.log.count("cross-origin request refused") >= 3

    # the same page from an allowed origin: the attacks were real
    lab.stop()
    yaml = lab_dir / "SlowdashProject.yaml"
    yaml.write_text(
        yaml.read_text() + f"  system:\n    allowed_origins: ['{evil.url.rstrip('/')}']\n"
    )
    lab.start()
    page.goto(evil.url + "userhtml/cats.html")
    page.wait_for_function("document.getElementById('ws').textContent === 'open'", timeout=15000)
    assert page.locator("#fetch").inner_text() == "HTTP 200"  # called (the command answered)
    # and the allowed origin may read the answer: the valve moved (calls and the write-back)
    page.wait_for_function(
        """async (target) => {
            const reply = await (await fetch(target + '/api/data/lab.valve?length=60')).json();
            return reply['lab.valve'].x > 0;
        }""",
        arg=target,
        polling=200,
        timeout=10000,
    )
    assert valve(lab) > 0
