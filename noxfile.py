"""Sessions: `nox` runs tests, lint and typecheck; `nox -s bench` runs the benchmarks."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

RUFF = "ruff==0.17.6"
MYPY = ["mypy==2.4.1", "types-PyYAML", "types-pyserial"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite against an editable install."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"PYTHONDONTWRITEBYTECODE": "1"})


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
    import shutil

    session.install("-e", ".[test]")
    if shutil.which("wrk") is None:
        if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
            session.log("wrk is not installed: installing it with apt-get")
            apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
            install = ["apt-get", "install", "-y", "-q", "wrk"]
            session.run(*install, external=True, env=apt_env, success_codes=[0, 100])
            if shutil.which("wrk") is None:  # stale package lists
                session.run("apt-get", "update", "-q", external=True, env=apt_env)
                session.run(*install, external=True, env=apt_env, success_codes=[0, 100])
        if shutil.which("wrk") is None:
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
    # live streaming to 50 WebSocket clients against a bare hypercorn+quart-trio broadcast
    session.run("python", "benchmarks/stream_bench.py", env=dict(os.environ))
