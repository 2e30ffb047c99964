"""Packaging and layering: what a user installs, and what a plain script imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from support import ROOT

VENDOR = "slowdash_trio/static/vendor"  # browser libraries that the build copies from npm
SERVER_SIDE = {"slowdash_trio", "quart", "quart_trio", "hypercorn"}


@pytest.mark.parametrize("package", ["slowdash_controls", "slowdash_stores"])
def test_script_packages_do_not_load_the_server(package: str) -> None:
    script = f"import sys, {package}; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert package in loaded
    assert not loaded & SERVER_SIDE


def test_wheel_installs_in_a_fresh_venv_with_all_three_packages(tmp_path: Path) -> None:
    source = tmp_path / "source"  # build from a copy: setuptools writes build/ beside the code
    # a clone has neither node_modules nor the copied browser files: the build makes them
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".nox",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            "node_modules",
        ),
    )
    shutil.rmtree(source / VENDOR, ignore_errors=True)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("slowdash_trio-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in ("uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE"):
            assert archive.getinfo(f"{VENDOR}/{name}").file_size > 0, name
        assert b"export { uPlot as default }" in archive.read(f"{VENDOR}/uPlot.esm.js")
        assert b"MIT License" in archive.read(f"{VENDOR}/uPlot.LICENSE")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if install.returncode != 0:
        # the wheel's dependencies come from the package index, which a user's machine may lack
        if os.environ.get("SLOWDASH_TRIO_REQUIRE_SERVICES") == "1":
            pytest.fail(f"pip install of the wheel failed:\n{install.stderr}")
        pytest.skip(
            f"pip could not install the wheel's dependencies: {install.stderr.strip()[-300:]}"
        )
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import slowdash_trio, slowdash_controls, slowdash_stores, slowdash_trio._server\n"
            "for m in (slowdash_trio, slowdash_controls, slowdash_stores): print(m.__file__)\n"
            "print(slowdash_trio.__version__, slowdash_controls.__version__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the source tree
        check=True,
    )
    lines = check.stdout.split("\n")
    for path in lines[:3]:
        assert path.startswith(str(env_dir)), f"imported from outside the venv: {path}"
    version, controls_version = lines[3].split()
    assert version == controls_version != "0+unknown"
    for marker in (
        "slowdash_trio/py.typed",
        "slowdash_controls/py.typed",
        "slowdash_stores/py.typed",
        f"{VENDOR}/uPlot.esm.js",
        f"{VENDOR}/uPlot.LICENSE",
    ):
        assert list((env_dir / "lib").glob(f"python3*/site-packages/{marker}")), marker
    script = env_dir / "bin" / "slowdash-trio"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"slowdash-trio {version}"
