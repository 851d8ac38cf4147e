"""The wheel that `pip install` builds: every package of Coffer and its data files, and no
warning from setuptools on the way (a package it "would ignore" is one missing from installs).

Built offline with the venv's own setuptools (`--no-build-isolation`), from a copy of the
source, so that the build leaves no build/ or *.egg-info in the repository.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "resources", "schemas")
DATA_FILES = ("api/data/common-passwords.txt", "api/mail/templates/verify_email.html")
LEFT_OUT = shutil.ignore_patterns(
    ".venv", ".git", "instance", "build", "*.egg-info", "__pycache__", "node_modules", "artifacts"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[str, set[str]]:
    """The build's output (stdout and stderr) and the names in the wheel."""
    work = tmp_path_factory.mktemp("packaging")
    source, wheels = work / "source", work / "wheels"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-v", "-w", str(wheels)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    (wheel,) = wheels.glob("coffer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return output, set(archive.namelist())


def test_the_build_warns_of_no_package_left_unconfigured(built):
    output, _ = built
    for warning in ("not configured", "Package would be ignored", "is not a package"):
        assert warning not in output, output[-4000:]


def test_the_wheel_carries_the_data_files(built):
    _, names = built
    assert set(DATA_FILES) <= names


def test_the_wheel_carries_every_module_of_every_package_and_subpackage(built):
    _, names = built
    modules = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    subpackages = {name.rsplit("/", 1)[0] for name in modules}
    assert {"api/http", "api/mail", "api/query", "api/signing"} <= subpackages
    assert modules - names == set()
