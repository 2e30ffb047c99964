"""PROJECT/userhtml/: the user's own pages at /userhtml/, their ./api/ requests, and their
entries in the content list; nothing outside the folder is served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import build_project, serving, write

MODULE = """
def _get_channels():
    return [{"name": "answer"}]

def _get_data(channel):
    return 42 if channel == "answer" else None
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    write(tmp_path / "userhtml" / "status.html", "<h1>Status</h1><script src=app.js></script>")
    write(tmp_path / "userhtml" / "lib" / "app.js", "export const x = 1;\n")
    write(tmp_path / "secret.txt", "not for the web\n")
    os.symlink(tmp_path / "secret.txt", tmp_path / "userhtml" / "escape.html")
    return tmp_path


async def test_pages_files_and_their_api_requests(project_dir: Path) -> None:
    async with serving(build_project(project_dir, {"m": MODULE})) as (_, client):
        page = await client.get("/userhtml/status.html")
        assert page.status_code == 200 and page.text.startswith("<h1>Status</h1>")
        assert page.headers["content-type"].startswith("text/html")
        script = await client.get("/userhtml/lib/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        data = await client.get("/userhtml/api/data/answer", params={"length": 60})
        assert data.status_code == 200 and data.json()["answer"]["x"] == 42
        assert (await client.get("/userhtml/api/data/nobody")).status_code == 404
        listed = (await client.get("/api/config/contentlist")).json()
        mine = [entry for entry in listed if entry["type"] == "userhtml"]
        assert sorted((e["name"], e["config_file"]) for e in mine) == [
            ("escape", "escape.html"),  # listed (a name), but refused when asked for (below)
            ("status", "status.html"),
        ]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/userhtml/missing.html", 404),
        ("/userhtml/lib", 403),  # no listing
        ("/userhtml/escape.html", 403),  # a symbolic link out of the folder
        ("/userhtml/.hidden.html", 403),
        ("/userhtml/a%20b.html", 403),
        ("/userhtml/lib/..%2F..%2Fsecret.txt", 403),
        ("/userhtml/%2e%2e/secret.txt", 403),
    ],
)
async def test_nothing_outside_the_folder(project_dir: Path, path: str, status: int) -> None:
    async with serving(build_project(project_dir, {"m": MODULE})) as (_, client):
        reply = await client.get(path)
        assert reply.status_code == status, reply.text
        assert "not for the web" not in reply.text
        if status == 403:
            assert reply.json()["status"] == "error"


async def test_no_folder_no_entries(tmp_path: Path) -> None:
    async with serving(build_project(tmp_path, {"m": MODULE})) as (_, client):
        listed = (await client.get("/api/config/contentlist")).json()
        assert [entry for entry in listed if entry["type"] == "userhtml"] == []
        assert (await client.get("/userhtml/x.html")).status_code == 404
