"""docs/settings.md is generated from the settings model and kept in step with it."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from personae.daemon import settings_doc
from personae.daemon.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_committed_page_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == settings_doc.render(), (
        "docs/settings.md is out of date: run `personae config docs > docs/settings.md`"
    )


def test_every_field_is_described_with_its_variable() -> None:
    page = settings_doc.render()
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} has no description"
        assert f"| `{name}` | `PERSONAE_{name.upper()}` |" in page


def test_config_docs_prints_the_page(personae: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(personae, ["config", "docs"])
    assert result.exit_code == 0
    assert result.stdout == settings_doc.render()
