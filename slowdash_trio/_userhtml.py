"""``PROJECT/userhtml/``: the user's own HTML pages, served at ``/userhtml/`` as the original
serves them.

- ``GET /userhtml/FILE`` (sub-directories too): the file. Every part of the path starts with a
  letter or a digit and holds only letters, digits and ``_-+=.,:`` (else 403); nothing
  outside the folder is reached, symbolic links included (403); a directory is not listed
  (403); a missing file is 404.
- ``GET /userhtml/api/...``: answered as ``/api/...``, so a page's relative ``./api/data/...``
  works.
- ``/api/config/contentlist`` lists the folder's ``*.html`` files as
  ``{type: "userhtml", name, mtime, config_file}`` (a link on the home page).

The original also serves its front-end library at ``/userhtml/slowjs/``; ours has a different
API, so that path is not served (a page importing it gets 404).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .webapi import WebApi

if TYPE_CHECKING:
    from ._server import Server

PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-+=.,:]*\Z")


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def user_dir(server: Server) -> Path:
    return server.project.directory / "userhtml"


def resolve(directory: Path, relative: str) -> Path:
    """The file ``relative`` names in ``directory``, or `Refused` (403 or 404)."""
    parts = relative.split("/")
    if not all(PART.match(part) for part in parts):
        raise Refused(403, f"userhtml/{relative}: not a file name of the userhtml folder")
    base = directory.resolve()
    path = directory.joinpath(*parts).resolve()
    if not path.is_relative_to(base):
        raise Refused(403, f"userhtml/{relative}: outside the userhtml folder")
    if path.is_dir():
        raise Refused(403, f"userhtml/{relative}: a folder (no listing)")
    if not path.is_file():
        raise Refused(404, f"userhtml/{relative}: no such file")
    return path


def userhtml_api(server: Server) -> WebApi:
    api = WebApi()
    directory = user_dir(server)

    @api.get("/config/contentlist")
    async def contentlist() -> Any:
        return await trio.to_thread.run_sync(_listing, directory)

    return api


def _listing(directory: Path) -> list[dict[str, Any]]:
    try:
        paths = sorted(directory.glob("*.html"))
    except OSError:
        return []
    entries: list[dict[str, Any]] = []
    for path in paths:
        if not PART.match(path.name) or not path.is_file():
            continue
        entries.append(
            {
                "type": "userhtml",
                "name": path.stem,
                "mtime": int(path.stat().st_mtime),
                "config_file": path.name,
            }
        )
    entries.sort(key=lambda entry: entry["mtime"], reverse=True)
    return entries
