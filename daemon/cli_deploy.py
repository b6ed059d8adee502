"""`personae characters add RUN_DIR`: deploy what a training run produced into the
daemon's store: each trained adapter into the adapter store (`<adapters_dir>/<id>/<version>/`)
and its character file into a characters folder, so `personae serve` loads it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from personae.sdk import cli_admin

CHARACTER_FILE = "character.toml"


class DeployError(Exception):
    """A run directory or adapter folder that cannot be deployed; the message says why."""


@dataclass(frozen=True)
class Deployed:
    character: str
    adapter: Path
    character_file: Path


def register() -> None:
    cli_admin.characters.command("add")(add)


def trained_adapters(source: Path) -> list[Path]:
    """The adapter folders of a run directory (its state.json's fit stages), or `source`
    itself when it is one adapter folder (a character.toml beside adapter files)."""
    if (source / CHARACTER_FILE).is_file():
        return [source]
    state_file = source / "state.json"
    if not state_file.is_file():
        raise DeployError(
            f"{source}: neither a training run directory (no state.json) nor an adapter "
            f"folder (no {CHARACTER_FILE})"
        )
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DeployError(f"{state_file}: cannot read: {exc}") from exc
    found = [
        Path(info["adapter"])
        for stage, info in sorted(state.items())
        if stage.startswith("fit:") and isinstance(info, dict) and info.get("adapter")
    ]
    if not found:
        raise DeployError(f"{source}: no trained adapter yet: run `personae train fit` first")
    return found


def deploy(adapter: Path, *, adapters_dir: Path, characters_dir: Path) -> Deployed:
    """Copy one adapter folder into the store and its character file beside the cast."""
    from personae.daemon.adapters.files import CONFIG_FILE, WEIGHTS_FILE
    from personae.daemon.characters import load_character
    from personae.daemon.errors import ConfigError

    for name in (CHARACTER_FILE, CONFIG_FILE, WEIGHTS_FILE):
        if not (adapter / name).is_file():
            raise DeployError(f"{adapter}: {name} is missing; not a trained adapter folder")
    try:
        character = load_character(adapter / CHARACTER_FILE)
    except ConfigError as exc:
        raise DeployError(str(exc)) from exc
    if character.adapter is None:
        raise DeployError(f"{adapter / CHARACTER_FILE}: the character names no adapter")
    target = adapters_dir / character.adapter.name / character.adapter.version
    if target.resolve() != adapter.resolve():
        tmp = target.with_name(f".{target.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(adapter, tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    characters_dir.mkdir(parents=True, exist_ok=True)
    card = characters_dir / f"{character.id}.toml"
    shutil.copyfile(adapter / CHARACTER_FILE, card)
    return Deployed(character.id, target, card)


def add(
    run_dir: Annotated[Path, typer.Argument(help="Training run directory, or one adapter folder")],
    characters_dir: Annotated[
        Path | None,
        typer.Option(
            "--characters-dir",
            help="Folder for the character files (default: the first of PERSONAE_CHARACTERS_DIRS)",
        ),
    ] = None,
    adapters_dir: Annotated[
        Path | None,
        typer.Option("--adapters-dir", help="Adapter store (default: the daemon's)"),
    ] = None,
) -> None:
    """Deploy a trained character: its adapter into the store, its file into the cast."""
    try:
        from personae.daemon.settings import Settings
    except ImportError:
        typer.secho("needs the daemon: pip install 'personae[daemon]'", fg="red", err=True)
        raise typer.Exit(2) from None
    settings = Settings()
    if characters_dir is None:
        if not settings.characters_dirs:
            typer.secho(
                "no characters folder: give --characters-dir, or set PERSONAE_CHARACTERS_DIRS "
                "(the bundled cast is read-only)",
                fg="red",
                err=True,
            )
            raise typer.Exit(2)
        characters_dir = settings.characters_dirs[0]
    store = adapters_dir or settings.resolved_adapters_dir
    try:
        for adapter in trained_adapters(run_dir):
            done = deploy(adapter, adapters_dir=store, characters_dir=characters_dir)
            typer.echo(f"{done.character}: adapter {done.adapter}, character {done.character_file}")
    except (DeployError, OSError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
