"""The built wheel holds every module and every file the daemon reads at run time.

An editable install reads the checkout, so a folder left out of package discovery
(as daemon/session/ once was) goes unnoticed until someone installs the wheel.
scripts/ci-wheel.sh then installs this wheel and holds a conversation with it.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator

import pytest

from tests.packaging.imports import FOLDERS, ROOT


def clone_files() -> list[str]:
    """The files a clone of the checkout has (what scripts/build_wheel.py builds from)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Iterator[zipfile.ZipFile]:
    built = subprocess.run(
        [sys.executable, ROOT / "scripts" / "build_wheel.py", tmp_path_factory.mktemp("dist")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with zipfile.ZipFile(built) as opened:
        yield opened


def installed_path(source: str) -> str:
    """Where a file of the checkout lands in the wheel: daemon/x.py -> personae/daemon/x.py."""
    folder, _, rest = source.partition("/")
    return "/".join([*FOLDERS[folder].split("."), rest])


def test_every_module_is_in_the_wheel(wheel) -> None:
    names = set(wheel.namelist())
    modules = [f for f in clone_files() if f.split("/")[0] in FOLDERS and f.endswith(".py")]
    assert len(modules) > 100
    missing = [m for m in modules if installed_path(m) not in names]
    assert not missing, f"left out of the wheel: {missing}"


def test_the_daemons_data_files_are_in_the_wheel(wheel) -> None:
    """The cast, its adapters, the playground page, the migration template."""
    names = set(wheel.namelist())
    data = [f for f in clone_files() if f.startswith("daemon/") and not f.endswith(".py")]
    assert any(f.endswith(".toml") for f in data) and any("static/" in f for f in data)
    assert any(f.endswith("adapter_model.safetensors") for f in data)
    missing = [f for f in data if installed_path(f) not in names]
    assert not missing, f"left out of the wheel: {missing}"


def test_the_wheel_holds_nothing_else(wheel) -> None:
    """No tests, bench scripts, caches or leftovers of an earlier build."""
    shipped = {installed_path(f) for f in clone_files() if f.split("/")[0] in FOLDERS}
    extra = [
        n
        for n in wheel.namelist()
        if n not in shipped and not n.startswith("personae-") and ".dist-info/" not in n
    ]
    assert not extra, extra


def test_the_wheel_declares_pyprojects_extras_and_commands(wheel) -> None:
    """The commands the daemon and training add to `personae` are entry points."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    provided = re.findall(r"^Provides-Extra: (\S+)$", wheel.read(meta).decode(), re.MULTILINE)
    assert sorted(provided) == sorted(project["optional-dependencies"])
    (listed,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str  # type: ignore[assignment,method-assign]
    entry_points.read_string(wheel.read(listed).decode())
    wanted = {"console_scripts": project["scripts"], **project.get("entry-points", {})}
    assert {g: dict(entry_points[g]) for g in entry_points.sections()} == wanted
