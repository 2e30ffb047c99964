"""Sessions: `nox` runs tests, lint and typecheck; `nox -s bench` runs the benchmarks."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

RUFF = "ruff==0.17.6"
MYPY = ["mypy==2.4.1", "types-PyYAML", "types-pyserial"]


def _apt_install(session: nox.Session, command: str, package: str) -> bool:
    """Install a Debian package with apt-get when ``command`` is missing and we are root with
    apt-get (retrying after ``apt-get update``); whether ``command`` is there afterwards."""
    if shutil.which(command) is not None:
        return True
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        session.log(f"{command} is not installed: installing {package} with apt-get")
        apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", package]
        session.run(*install, external=True, env=apt_env, success_codes=[0, 100])
        if shutil.which(command) is None:  # stale package lists
            session.run("apt-get", "update", "-q", external=True, env=apt_env)
            session.run(*install, external=True, env=apt_env, success_codes=[0, 100])
    return shutil.which(command) is not None


def _browser_ready(session: nox.Session) -> None:
    """Playwright drives Debian's Chromium (never `playwright install`, which downloads one)."""
    if not _apt_install(session, "chromium", "chromium"):
        session.warn(
            "chromium is not installed (Debian/Ubuntu: sudo apt-get install chromium); "
            "the browser tests skip, or fail when SLOWDASH_TRIO_REQUIRE_SERVICES=1"
        )


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite against an editable install (the browser tests need chromium)."""
    session.install("-e", ".[test]")
    _browser_ready(session)
    session.run("pytest", *session.posargs, env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session
def screenshots(session: nox.Session) -> None:
    """The browser tests, saving their screenshots into docs/images/ for the docs."""
    session.install("-e", ".[test]")
    _browser_ready(session)
    env = {"PYTHONDONTWRITEBYTECODE": "1", "SLOWDASH_TRIO_SCREENSHOTS": "docs/images"}
    session.run("pytest", "tests/browser", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: the rule list is explicit in pyproject.toml (ASYNC included)."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the three import packages."""
    session.install("-e", ".[test]", *MYPY)
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; prints medians and ratios against the baselines measured in the same run.

    The load client is wrk: installed with apt-get when missing and running as root, else the
    benchmarks fall back to a pure-Python client (and say so). ``nox -s bench -- --help``.
    """
    session.install("-e", ".[test]")
    if not _apt_install(session, "wrk", "wrk"):
        session.warn(
            "wrk is not installed (Debian/Ubuntu: sudo apt-get install wrk); the benchmarks "
            "fall back to a pure-Python client, whose own CPU use lowers the figures"
        )
    session.run("python", "benchmarks/run_all.py", *session.posargs, env=dict(os.environ))
    # the control library against the original SlowPy (its client and its SCPI server),
    # installed here only as the baseline: slowdash-trio never imports it
    session.install("slowpy==0.4.0")
    session.run("python", "benchmarks/scpi_bench.py", env=dict(os.environ))
    # the stores against SlowPy's DataStore_SQLite (same baseline package)
    session.run("python", "benchmarks/store_bench.py", env=dict(os.environ))
    # /api/data on a 9.7-million-row SQLite table against sqlite3 floors (generates the table)
    session.run("python", "benchmarks/query_bench.py", env=dict(os.environ))
    # the browser dashboard in Chromium (on query_bench's database): a 7-day plot's load time
    # and the page's main-thread time while 16 channels stream at 10 Hz
    _browser_ready(session)
    session.run("python", "benchmarks/dashboard_bench.py", "--reuse", env=dict(os.environ))
    # live streaming to 50 WebSocket clients against a bare hypercorn+quart-trio broadcast
    session.run("python", "benchmarks/stream_bench.py", env=dict(os.environ))


@nox.session
def soak(session: nox.Session) -> None:
    """A server under a bounded, realistic load for 10 minutes: its memory, open files and
    threads must stay flat (fails when one grows). Not a default session.

    ``nox -s soak -- --minutes 1`` for a quick run; ``-- --help`` for the options.
    """
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/soak.py", *session.posargs, env=dict(os.environ))
