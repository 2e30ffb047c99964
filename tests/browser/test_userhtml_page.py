"""A page of the user's own (PROJECT/userhtml/) opened from the home page's catalog, reading
data through its relative ./api/ path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

PAGE = """<!doctype html>
<title>Cryostat overview</title>
<p>Level: <span id=level>?</span></p>
<script type=module>
const reply = await (await fetch('./api/data/level?length=60')).json();
document.getElementById('level').textContent = String(reply.level.x);
</script>
"""

MODULE = """
def _get_channels():
    return [{"name": "level"}]

def _get_data(channel):
    return 73.5 if channel == "level" else None
"""


def test_a_user_page_is_listed_opened_and_reads_data(
    serve: Callable[..., Any], web_project: Callable[..., Path], page: Any, page_errors: list[str]
) -> None:
    directory = web_project(
        body="module:\n  file: level.py\n",
        files={"level.py": MODULE, "userhtml/cryostat.html": PAGE},
    )
    server = serve(directory)
    page.goto(server.url)
    link = page.locator('.sd-catalog-entry[data-type="userhtml"] a.sd-catalog-title')
    link.wait_for(timeout=15000)
    assert link.inner_text() == "cryostat"
    link.click()
    page.wait_for_url("**/userhtml/cryostat.html")
    page.wait_for_function(
        "document.getElementById('level')?.textContent === '73.5'", timeout=10000
    )
    assert page.title() == "Cryostat overview"
    assert page_errors == []
