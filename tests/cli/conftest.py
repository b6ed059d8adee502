"""The whole `personae` command, as the installed entry points assemble it."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from personae.sdk.cli import load_commands


@pytest.fixture
def personae() -> typer.Typer:
    return load_commands()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
