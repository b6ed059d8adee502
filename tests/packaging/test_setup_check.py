"""scripts/setup.sh installs what is missing, and says so; with everything in place, nothing.

It asks scripts/missing_packages.py, which reads the environment's installed metadata.
The test environment was set up by `scripts/setup.sh --dev`, so asked about the dev
extras it must find nothing missing (a second `make test` or `make run` installs
nothing); asked about what is not there, it names it and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.packaging.imports import ROOT

EXTRAS = "daemon,piper,kokoro,models,llamacpp,training,dev"


def missing(*args: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, ROOT / "scripts" / "missing_packages.py", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split("\t", 1) for line in out.splitlines())


def test_a_set_up_environment_misses_nothing() -> None:
    torch = f"torch=={version('torch').split('+')[0]}"
    assert missing("--extras", EXTRAS, "--editable", str(ROOT), torch) == {}


def test_what_is_missing_is_named_with_the_reason() -> None:
    found = missing("--extras", "daemon", "torch==0.0.1", "surely-not-installed-here>=1")
    assert found == {
        "torch": f"torch {version('torch')} does not satisfy ==0.0.1",
        "surely-not-installed-here": "surely-not-installed-here is not installed",
    }


def test_an_editable_install_of_another_checkout_is_reinstalled(tmp_path) -> None:
    found = missing("--extras", "daemon", "--editable", str(tmp_path))
    assert found["personae"].startswith("installed in editable mode from file://")


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="setup.sh would install espeak-ng")
def test_setup_with_everything_in_place_installs_nothing(tmp_path) -> None:
    """`make run` a second time: no install line, the models found prepared."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # this environment, under another name (a symlinked python would leave the venv)
    personae = Path(sys.executable).with_name("personae")
    for name, target in (("python", sys.executable), ("personae", personae)):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    run = subprocess.run(
        [ROOT / "scripts" / "setup.sh"],
        env={**os.environ, "PERSONAE_VENV": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "installing" not in run.stderr and "creating" not in run.stderr
    assert "python packages up to date" in run.stderr
    assert "models ready" in run.stderr
