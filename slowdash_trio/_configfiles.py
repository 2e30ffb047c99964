"""The ``config/`` directory API: content list, content, file list, file get/post/delete.

File names follow the reference's rules: ``ROOT.EXT`` where ROOT is non-empty, does not start
with a dot, and holds only letters, digits, ``_``, ``-`` and ``.``. Outside secure mode
(``system.our_security_is_perfect``) only the whitelisted extensions are served or written;
``.py`` never is. Nothing resolves outside ``config/``, symbolic links included. Uploads are
written to a temporary file and renamed, so a reader never sees half a file.

A ``.py`` content file (``slowplot-x.py``, ``html-x.py``) generates its content: its
``_setup(app)`` (or ``_setup()``) return value, run like a user callback with a deadline.
"""

from __future__ import annotations

import grp
import itertools
import json
import logging
import os
import pwd
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import yaml

from ._dispatch import error_response
from ._project import MAX_YAML_DEPTH, YamlShapeError, safe_load_checked
from ._usercode import (
    USER_PACKAGE,
    SlowStep,
    guarded,
    import_user_file,
    is_async_callable,
    leading_args,
)
from .webapi import Request, Response, WebApi

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.config")

SAFE_EXTENSIONS = frozenset({".json", ".yaml", ".html", ".csv", ".svg", ".png", ".jpg", ".jpeg"})
CONTENT_EXTENSIONS = (".json", ".yaml", ".html", ".py")
LAYOUT_TYPES = frozenset({"slowdash", "slowplot", "slowcruise"})
FILE_LIST_KEYS = ("name", "size", "mode", "owner", "group", "mtime")  # of /config/filelist
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".pdf": "application/pdf",
    ".txt": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}
_NAME = re.compile(r"[A-Za-z0-9_\-.]+")
_NAME_MAX = 255  # the longest file name most file systems take (names are ASCII here)
_counter = itertools.count()


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = error_response(status, message)


class ConfigDir:
    """The project's ``config/`` directory and the rules for touching it."""

    def __init__(self, directory: Path, *, secure: bool, file_mode: int, file_gid: int) -> None:
        self.directory = directory
        self.secure = secure
        self.file_mode = file_mode
        self.file_gid = file_gid

    def path(self, name: str, *, generated: bool = False) -> Path:
        """The file ``name`` in ``config/``; `_Refused` if the name breaks a rule.

        ``generated``: the file is read for its content, so ``.py`` content generators placed
        in ``config/`` by the project's owner are allowed (they cannot be uploaded unless
        the project is in secure mode).
        """
        root, dot, ext = name.rpartition(".")
        if len(name) > _NAME_MAX:
            raise _Refused(
                400, f"bad file name {name[:40]!r}...: longer than {_NAME_MAX} characters"
            )
        if not dot or not root or root.startswith(".") or not _NAME.fullmatch(name):
            raise _Refused(
                400,
                f"bad file name {name!r}: use NAME.EXT with letters, digits, '_', '-' and '.', "
                "not starting with '.'",
            )
        extension = "." + ext.lower()
        allowed = SAFE_EXTENSIONS | {".py"} if generated else SAFE_EXTENSIONS
        if not self.secure and extension not in allowed:
            raise _Refused(
                403,
                f"files with extension {extension} are accessible only when "
                "system.our_security_is_perfect is true",
            )
        path = self.directory / name
        if os.path.dirname(os.path.realpath(path)) != os.path.realpath(self.directory):
            raise _Refused(403, f"{name} resolves outside the config directory")
        return path


def config_files_api(server: Server) -> WebApi:
    api = WebApi()
    project = server.project
    config = ConfigDir(
        project.config_dir,
        secure=project.is_secure,
        file_mode=project.config.system.file_mode,
        file_gid=project.config.system.file_gid,
    )

    @api.get("/config/contentlist")
    async def contentlist() -> Any:
        return await trio.to_thread.run_sync(_content_list, config.directory)

    def candidates(filename: str, content_type: str) -> list[str]:
        # the HTML panel asks for "html-NAME" without an extension: try .py, then .html
        names = [filename] if "." in filename else []
        if content_type == "html" and not filename.endswith((".html", ".py")):
            names += [filename + ".py", filename + ".html"]
        return names

    async def missing_content(request: Request, merged: Response | None) -> Response | None:
        """Why nothing answered, said only when nothing else (a user module) did."""
        if merged is not None:
            return merged
        filename = request.parts[-1]
        content_type = request.query.get("content_type", "json")
        if content_type not in ("json", "html"):
            return error_response(400, "query parameter 'content_type': use json or html")
        names = candidates(filename, content_type)
        if not names:
            return error_response(400, f"bad content name {filename!r}: expected NAME.EXT")
        for name in names:
            try:
                config.path(name, generated=True)
            except _Refused as refused:
                return refused.response
        return error_response(404, f"no content {filename!r} in the config directory")

    @api.get("/config/content/{filename}", finalize=missing_content)
    async def content(filename: str, content_type: str = "json") -> Any:
        for name in candidates(filename, content_type):
            try:
                path = config.path(name, generated=True)
            except _Refused:
                continue  # reported by missing_content, unless someone else answers
            if await trio.Path(path).is_file():
                if content_type == "html":
                    return await _html_content(server, path)
                if content_type == "json":
                    return await _json_content(server, path)
        return None

    @api.get("/config/filelist")
    async def filelist(sortby: str = "mtime", reverse: bool = False) -> Any:
        if sortby not in FILE_LIST_KEYS:
            return error_response(
                400, f"query parameter 'sortby': one of {', '.join(FILE_LIST_KEYS)}"
            )
        entries = await trio.to_thread.run_sync(_file_list, config.directory)
        return sorted(entries, key=lambda entry: entry[sortby], reverse=reverse)

    @api.get("/config/file/{filename}")
    async def get_file(filename: str) -> Any:
        try:
            path = config.path(filename)
            body = await trio.to_thread.run_sync(_read_file, path)
        except _Refused as refused:
            return refused.response
        return Response(body, 200, MIME_TYPES.get(path.suffix.lower(), "application/octet-stream"))

    @api.post("/config/file/{filename}")
    async def post_file(request: Request, filename: str, overwrite: str = "") -> Any:
        try:
            path = config.path(filename)
            written = await trio.to_thread.run_sync(
                _write_file, config, path, request.body, overwrite == "yes"
            )
        except _Refused as refused:
            return refused.response
        if not written:
            return Response(
                {
                    "status": "exists",
                    "message": f"{filename} exists; send overwrite=yes to replace it",
                },
                202,
            )
        logger.info("config file %s written (%d bytes)", filename, len(request.body))
        return Response({"status": "ok"}, 201)

    @api.delete("/config/file/{filename}")
    async def delete_file(filename: str) -> Any:
        try:
            path = config.path(filename)
            await trio.to_thread.run_sync(_delete_file, path)
        except _Refused as refused:
            return refused.response
        logger.info("config file %s deleted", filename)
        return {"status": "ok"}

    return api


# ---------------------------------------------------------------------------------------------
# blocking helpers (run in worker threads)


def _listed_files(directory: Path) -> list[Path]:
    """The files of ``config/`` the file API could serve: regular files, not hidden (as the
    reference's ``glob``; this also hides uploads in progress), not resolving outside."""
    try:
        files = list(directory.iterdir())
    except FileNotFoundError:
        return []
    real = os.path.realpath(directory)
    return [
        path
        for path in files
        if not path.name.startswith(".")
        and path.is_file()
        and os.path.dirname(os.path.realpath(path)) == real
    ]


def _content_list(directory: Path) -> list[dict[str, Any]]:
    entries = []
    for path in _listed_files(directory):
        root, ext = path.stem, path.suffix.lower()
        kind, dash, name = root.partition("-")
        if not dash or not kind or not name or ext not in CONTENT_EXTENSIONS:
            continue
        entry: dict[str, Any] = {
            "type": kind,
            "name": name,
            "mtime": int(path.stat().st_mtime),
            "title": name,
            "description": "",
            "config_file": path.name,
            "config_error": "",
            "config_error_line": 0,
        }
        if kind in LAYOUT_TYPES and ext in (".json", ".yaml"):
            try:
                doc = _parse(path)
            except _ParseError as exc:
                entry["config_error"] = (
                    f"Line {exc.line}: {exc.message}" if exc.line else exc.message
                )
                entry["config_error_line"] = exc.line or 0
            else:
                if isinstance(doc, dict):
                    meta = doc.get("meta")
                    if not isinstance(meta, dict):
                        meta = {}
                    entry["title"] = str(meta.get("title") or doc.get("title") or name)
                    entry["description"] = str(meta.get("description") or "")
                else:
                    entry["config_error"] = "not a dict"
        entries.append(entry)
    entries.sort(key=lambda entry: entry["mtime"], reverse=True)
    return entries


def _file_list(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in _listed_files(directory):
        if "." not in path.name:
            continue
        st = path.stat()
        out.append(
            {
                "name": path.name,
                "size": st.st_size,
                "mode": stat.filemode(st.st_mode),
                "owner": _user_name(st.st_uid),
                "group": _group_name(st.st_gid),
                "mtime": st.st_mtime,
            }
        )
    return out


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _Refused(404, f"no file {path.name} in the config directory") from None
    except IsADirectoryError:
        raise _Refused(404, f"{path.name} is not a file") from None
    except PermissionError:
        raise _Refused(403, f"{path.name} is not readable") from None


def _write_file(config: ConfigDir, path: Path, body: bytes, overwrite: bool) -> bool:
    directory = config.directory
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        # directories also need the search bit wherever the file mode grants read
        dir_mode = config.file_mode | ((config.file_mode & 0o444) >> 2)
        _best_effort(os.chmod, directory, dir_mode)
    if path.exists():
        if not os.access(path, os.W_OK):
            raise _Refused(403, f"{path.name} is not writable")
        if not overwrite:
            return False
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, config.file_mode)
            if config.file_gid >= 0:
                _best_effort(os.chown, temporary, -1, config.file_gid)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _Refused(500, f"cannot write {path.name}: {exc.strerror or exc}") from None
    return True


def _delete_file(path: Path) -> None:
    if not path.is_file():
        raise _Refused(404, f"no file {path.name} in the config directory")
    try:
        path.unlink()
    except PermissionError:
        raise _Refused(404, f"{path.name} cannot be deleted (not writable)") from None
    except OSError as exc:
        raise _Refused(500, f"cannot delete {path.name}: {exc.strerror or exc}") from None


def _best_effort(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except OSError as exc:
        logger.warning("config directory: %s%s failed: %s", fn.__name__, args, exc)


class _ParseError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _parse(path: Path) -> Any:
    """A ``.json`` or ``.yaml`` file's content; `_ParseError` with the line on failure."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise _ParseError("the file is empty", None)
    if path.suffix.lower() == ".json":
        too_deep = _ParseError(f"nested more than {MAX_YAML_DEPTH} levels deep", None)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _ParseError(exc.msg, exc.lineno) from None
        except RecursionError:
            raise too_deep from None
        if not _nesting_within(doc, MAX_YAML_DEPTH):
            raise too_deep
        return doc
    try:
        return safe_load_checked(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise _ParseError(str(exc.problem), mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise _ParseError(str(exc), None) from None
    except YamlShapeError as exc:
        raise _ParseError(exc.message, exc.line) from None


def _nesting_within(doc: Any, limit: int) -> bool:
    """Whether JSON data nests at most ``limit`` levels (so that replies can encode it)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth > limit:
                return False
            stack.extend((item, depth + 1) for item in value)
    return True


# ---------------------------------------------------------------------------------------------
# content


async def _json_content(server: Server, path: Path) -> Any:
    ext = path.suffix.lower()
    if ext == ".py":
        return await _generated(server, path)
    if ext not in (".json", ".yaml"):
        return error_response(400, f"{path.name}: content is served from .json, .yaml or .py files")
    try:
        return await trio.to_thread.run_sync(_parse, path)
    except _ParseError as exc:
        where = f" line {exc.line}" if exc.line else ""
        return error_response(400, f"{path.name}{where}: {exc.message}")


async def _html_content(server: Server, path: Path) -> Any:
    if path.suffix.lower() == ".py":
        body = await _generated(server, path)
        if body is None or isinstance(body, Response):
            return body
        return Response(str(body), 200, MIME_TYPES[".html"])
    try:
        body = await trio.to_thread.run_sync(_read_file, path)
    except _Refused as refused:
        return refused.response
    return Response(body, 200, MIME_TYPES[".html"])


async def _generated(server: Server, path: Path) -> Any:
    """Import a content generator afresh and return what its ``_setup`` returns."""
    settings = server.module_settings
    name = f"_content_{next(_counter)}"
    try:
        with trio.fail_after(settings.call_timeout):
            module = await trio.to_thread.run_sync(
                import_user_file, name, path, limiter=settings.user_limiter, abandon_on_cancel=True
            )
            setup = getattr(module, "_setup", None)
            if not callable(setup):
                return error_response(
                    500, f"{path.name}: defines no _setup() to generate the content"
                )
            args = leading_args(setup, server.app)
            if is_async_callable(setup):
                return await guarded(
                    setup(*args), f"{path.name} _setup", settings.watchdog_threshold, _report_slow
                )
            return await trio.to_thread.run_sync(
                setup, *args, limiter=settings.user_limiter, abandon_on_cancel=True
            )
    except trio.TooSlowError:
        return error_response(
            504, f"{path.name}: _setup did not return within {settings.call_timeout:g} s"
        )
    except (Exception, SystemExit) as exc:
        logger.exception("content generator %s failed", path.name)
        return error_response(500, f"{path.name}: {type(exc).__name__}: {exc}")
    finally:
        sys.modules.pop(f"{USER_PACKAGE}.{name}", None)


def _report_slow(step: SlowStep) -> None:
    logger.warning(
        "content generator: async %s held the event loop for %.0f ms",
        step.callback,
        step.seconds * 1000,
    )
