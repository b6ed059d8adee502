"""A run that finishes: one-character evaluation, stage errors that name the stage and
the cause, messages that keep their brackets, and a --help page for every command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.training.cli import app
from personae.training.evaluate import OTHERS, attribution_report, other_speakers_lines
from personae.training.ingest import clean_text, split_chapters
from personae.training.pipeline import Pipeline
from personae.training.recipe import load_recipe

from .conftest import STORY, write_recipe

BRAM = ["Iron doesn't lie.", "Shut the door.", "Fire's hungry tonight.", "Good iron rings."]


def test_one_character_is_told_from_the_books_other_speakers(tmp_path: Path) -> None:
    p = Pipeline(load_recipe(write_recipe(tmp_path)), show_progress=False)
    chapters = split_chapters(clean_text(STORY.read_text()), source="hollowmere.md")
    others = other_speakers_lines(chapters, p.attributor, {"bram"}, limit=400)
    assert len(others) > 50 and not set(others) & set(BRAM)
    replies = iter(["Iron doesn't lie, lad.", "Oi! Guess what I heard, innit?"])
    report = attribution_report(
        {"bram": BRAM * 3, OTHERS: others},
        {"bram": [[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]]},
        lambda adapter, messages: next(replies),
        {"bram": "bram"},
    )
    assert set(report["per_character"]) == {"bram"}
    assert report["against"] == OTHERS
    assert set(report["per_character"]["bram"]) == {"adapter", "prompt_only"}


def test_the_attribution_test_says_why_it_cannot_run_with_one_speaker() -> None:
    with pytest.raises(ValueError, match="at least two speakers"):
        attribution_report({"bram": BRAM}, {"bram": []}, lambda a, m: "", {"bram": "bram"})


def test_a_failing_stage_is_an_error_naming_the_stage_and_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path, report=None):  # type: ignore[no-untyped-def]
        raise ValueError("This solver needs samples of at least 2 classes")

    monkeypatch.setattr("personae.training.pipeline.ingest_file", broken)
    result = CliRunner().invoke(app, ["ingest", str(write_recipe(tmp_path)), "-q"])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "ingest stage failed: ValueError: This solver needs samples of at least 2" in out
    assert "Traceback" not in result.output
    assert (tmp_path / "run" / "ingest.error.log").read_text().startswith("Traceback")


def test_the_teacher_error_shows_its_brackets(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, "[strategies.qa]\nenabled = true")
    result = CliRunner().invoke(app, ["ingest", str(recipe)])
    assert result.exit_code == 2 and "needs a [teacher] section" in " ".join(result.output.split())


COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


def test_the_train_commands_are_all_there() -> None:
    assert set(COMMANDS) >= {"run", "ingest", "extract", "dataset", "fit", "evaluate", "export"}


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_train_command_help_shows_its_options(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Options" in result.output and "--help" in result.output
    if command:
        assert "recipe" in result.output.lower()


def test_the_one_character_example_recipe_loads() -> None:
    recipe = load_recipe(STORY.parent / "sign-of-four" / "recipe.toml")
    assert [t.id for t in recipe.characters] == ["holmes"]
    assert recipe.strategies.dialogue.narrator == "watson"
    assert recipe.load_characters()["holmes"].name == "Sherlock Holmes"
