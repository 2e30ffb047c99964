"""Browser-test fixtures: Debian's Chromium driven by Playwright's sync API, and servers run as
``python -m slowdash_trio serve`` subprocesses on 127.0.0.1.

Playwright's sync API must not run inside a Trio loop, so browser tests are plain ``def``
functions (pytest-trio's trio_mode only affects ``async def`` tests); the server under test runs
in its own process.

Fixtures:
- ``browser``: the session's Chromium (skips, or fails under SLOWDASH_TRIO_REQUIRE_SERVICES=1,
  when chromium or playwright is missing).
- ``page``: a fresh context and page (1280x800) per test; ``page_errors``: the list of page
  errors and console errors seen on it. A failed test leaves build/screenshots/failed/<test>.png.
- ``web_project(title=..., body=..., files=...)``: a project directory in tmp_path.
- ``serve(project_dir, port=None, env=None)``: a started ``ServerProcess``, stopped at teardown.
- ``screenshot(page, name)``: saves ``name.png`` and returns its path.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, free_port, service_missing, write

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
SERVED = " is served at http://"
FAILED_DIR = ROOT / "build" / "screenshots" / "failed"


# ---------------------------------------------------------------------------------------------
# Chromium and Playwright


def chromium_path() -> str:
    """Debian's real Chromium binary (not the wrapper script), or skip/fail."""
    real = Path("/usr/lib/chromium/chromium")
    if real.is_file() and os.access(real, os.X_OK):
        return str(real)
    found = shutil.which("chromium")
    if found is None:
        service_missing("chromium is not installed (Debian/Ubuntu: apt-get install chromium)")
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (Playwright's sync API)."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright is not installed (pip install 'slowdash-trio[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught page errors and console errors of the test's ``page``, as text."""
    return []


@pytest.fixture
def page(browser: Any, page_errors: list[str], request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new context and page (viewport 1280x800) per test; closed afterwards."""
    context = browser.new_context(viewport=VIEWPORT)
    new_page = context.new_page()
    new_page.on("pageerror", lambda error: page_errors.append(f"page error: {error}"))

    def on_console(message: Any) -> None:
        if message.type == "error":
            where = message.location
            page_errors.append(
                f"console error: {message.text} ({where.get('url')}:{where.get('lineNumber')})"
            )

    new_page.on("console", on_console)
    try:
        yield new_page
    finally:
        report = getattr(request.node, "report_call", None)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        failed_shot = FAILED_DIR / f"{name}.png"  # never into the docs' pictures
        if report is not None and report.failed:
            try:
                FAILED_DIR.mkdir(parents=True, exist_ok=True)
                new_page.screenshot(path=str(failed_shot))
            except Exception as exc:  # the page may be gone; the failure itself matters more
                print(f"no screenshot of the failed test: {exc}")
        else:
            failed_shot.unlink(missing_ok=True)  # a picture of an earlier failure
        context.close()


# ---------------------------------------------------------------------------------------------
# screenshots


def screenshot_dir() -> Path:
    """``$SLOWDASH_TRIO_SCREENSHOTS`` (relative to the repository root), else build/screenshots."""
    configured = os.environ.get("SLOWDASH_TRIO_SCREENSHOTS")
    directory = ROOT / configured if configured else ROOT / "build" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_screenshot(page: Any, name: str) -> Path:
    """The page's viewport saved as ``NAME.png`` in `screenshot_dir`; returns the path."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """``screenshot(page, name) -> Path`` (see `save_screenshot`)."""
    return save_screenshot


# ---------------------------------------------------------------------------------------------
# projects and servers


@pytest.fixture
def web_project(tmp_path: Path) -> Callable[..., Path]:
    """``web_project(title="Browser Test", body="", files=None, name="BrowserTest") -> Path``:
    a project directory with a SlowdashProject.yaml (``body``: more YAML under
    ``slowdash_project:``, written at the left margin) and ``files`` ({relative path: text},
    dedented, e.g. ``{"config/slowplot-x.json": ...}``)."""
    count = 0

    def make(
        title: str = "Browser Test",
        body: str = "",
        files: dict[str, str] | None = None,
        name: str = "BrowserTest",
    ) -> Path:
        nonlocal count
        count += 1
        directory = tmp_path / f"project{count}"
        extra = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        write(
            directory / "SlowdashProject.yaml",
            f"slowdash_project:\n  name: {name}\n  title: {title}\n{extra}\n",
        )
        for relative, text in (files or {}).items():
            write(directory / relative, text)
        return directory

    return make


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    """``python -m slowdash_trio serve`` on 127.0.0.1:``port`` for ``project_dir``.

    `start` waits (30 s at most) for the "... is served at http://..." log line; `stop` sends
    SIGTERM (then SIGKILL after 15 s); `start` again reuses the same port. `log` is everything
    the server printed (stdout and stderr), over all its runs.
    """

    def __init__(
        self, project_dir: Path, port: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.project_dir = Path(project_dir)
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = dict(env or {})
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def log(self) -> str:
        with self._lock:
            return "".join(self._lines)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> ServerProcess:
        if self.running:
            raise RuntimeError(f"the server at {self.url} is already running")
        command = [sys.executable, "-m", "slowdash_trio", "serve"]
        command += ["--port", str(self.port), "--project-dir", str(self.project_dir)]
        proc = subprocess.Popen(
            command,
            cwd=self.project_dir,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        served: list[bool] = []  # the reader appends True on the log line
        done = threading.Event()  # set on that line, or at the end of the output
        reader = threading.Thread(target=self._read, args=(proc, served, done), daemon=True)
        self._proc, self._reader = proc, reader
        reader.start()
        if not done.wait(timeout) or not served or proc.poll() is not None:
            self.stop()
            raise ServerStartError(
                f"the server did not report '{SERVED.strip()}' within {timeout} s "
                f"(exit status {proc.returncode}); its output:\n{self.log}"
            )
        return self

    def _read(self, proc: subprocess.Popen[str], served: list[bool], done: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._lock:
                self._lines.append(line)
            if SERVED in line and not served:
                served.append(True)
                done.set()
        done.set()  # end of output: the process is ending

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait; SIGKILL after ``timeout``. Returns the exit status."""
        proc, reader = self._proc, self._reader
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if reader is not None:
            reader.join(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def __repr__(self) -> str:
        return f"<ServerProcess {self.url} {'running' if self.running else 'stopped'}>"


@pytest.fixture
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[..., ServerProcess]]:
    """``serve(project_dir, port=None, env=None) -> ServerProcess``, started; all stopped at
    teardown (and their output printed when the test failed)."""
    servers: list[ServerProcess] = []

    def start(
        project_dir: Path, port: int | None = None, env: dict[str, str] | None = None
    ) -> ServerProcess:
        server = ServerProcess(project_dir, port=port, env=env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for server in servers:
            print(f"--- output of the server at {server.url} ---\n{server.log}")


@pytest.fixture(scope="session")
def server_class() -> type[ServerProcess]:
    """`ServerProcess` itself, for a server shared by a module's tests (a module-scoped
    fixture starts and stops it; ``from conftest import`` would find tests/conftest.py)."""
    return ServerProcess
