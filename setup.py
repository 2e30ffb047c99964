"""Build hook: the browser libraries come from the npm registry, not from the source tree.

pyproject.toml holds the metadata; this file only replaces ``build_py``. Before the usual
build it runs ``npm ci`` (when node_modules is missing or older than package-lock.json) and
copies uPlot into ``slowdash_trio/static/vendor/``, so a wheel carries it and an editable
install (PEP 660 runs ``build_py`` too) serves it from the tree.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import ExecError, PlatformError

ROOT = Path(__file__).resolve().parent
LOCKFILE = ROOT / "package-lock.json"
NODE_MODULES = ROOT / "node_modules"
STAMP = NODE_MODULES / ".slowdash-trio-npm-ci"  # holds the hash of the lockfile installed
VENDOR = ROOT / "slowdash_trio" / "static" / "vendor"
NODE_MAJOR = 20
# (file in node_modules, name in slowdash_trio/static/vendor/)
VENDOR_FILES = [
    ("uplot/dist/uPlot.esm.js", "uPlot.esm.js"),
    ("uplot/dist/uPlot.min.css", "uPlot.min.css"),
    ("uplot/LICENSE", "uPlot.LICENSE"),
]
NEED_NODE = (
    f"slowdash-trio's browser files need Node.js {NODE_MAJOR}+ and npm to build: {{problem}}. "
    "Please install or upgrade it (Debian/Ubuntu: apt-get install nodejs npm; elsewhere: "
    "https://nodejs.org/) and run the install again."
)


def _lock_hash() -> str:
    return hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()


def _needs_npm_ci() -> bool:
    try:
        return STAMP.read_text().strip() != _lock_hash()
    except OSError:
        return True


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PlatformError(NEED_NODE.format(problem=f"`{name}` is not on PATH"))
    return path


def _check_node() -> None:
    node = _tool("node")
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise PlatformError(NEED_NODE.format(problem=f"`node --version` failed ({exc})")) from exc
    if major < NODE_MAJOR:
        raise PlatformError(NEED_NODE.format(problem=f"this Node.js is {version}"))


def npm_ci() -> None:
    """``npm ci`` in the project root; raises with npm's own output when it fails."""
    _check_node()
    npm = _tool("npm")
    command = [npm, "ci", "--no-audit", "--no-fund"]
    print("slowdash-trio: installing the browser libraries: " + " ".join(command[1:]))
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0:
        output = "\n".join(part for part in (done.stdout, done.stderr) if part.strip())
        raise ExecError(
            f"`npm ci` failed (exit status {done.returncode}) in {ROOT}; its output:\n{output}\n"
            "slowdash-trio's browser libraries come from the npm registry: check the network "
            "or the npm registry setting (npm config get registry)"
        )
    STAMP.write_text(_lock_hash() + "\n")


def copy_vendor_files() -> None:
    """node_modules/... -> slowdash_trio/static/vendor/ (only files whose content changed)."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    for source_name, target_name in VENDOR_FILES:
        source = NODE_MODULES / source_name
        if not source.is_file():
            raise ExecError(f"{source} is missing after `npm ci`; remove node_modules and retry")
        target = VENDOR / target_name
        data = source.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)


class BuildPyWithBrowserFiles(build_py):
    """build_py that first fetches (npm ci) and copies the browser libraries."""

    def run(self) -> None:
        if _needs_npm_ci():
            npm_ci()
        copy_vendor_files()
        # package data is listed lazily; drop a list made before the copy
        self.__dict__.pop("data_files", None)
        super().run()


setup(cmdclass={"build_py": BuildPyWithBrowserFiles})
