"""What `personae characters` needs the daemon package for: Character Card import and
export, and the cast configured in character files when no daemon answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personae.sdk import cli_admin


def register() -> None:
    cli_admin.characters.command("import")(import_card)
    cli_admin.characters.command("export")(export_card)
    cli_admin.offline_cast(configured_cast)


def configured_cast() -> tuple[str, list[cli_admin.CastEntry]] | None:
    """The cast `personae serve` would load: PERSONAE_CHARACTERS_DIRS, else the bundled
    one; None without the daemon extra (its settings and YAML reader)."""
    try:
        from personae.daemon.characters import default_cast_dir, load_cast
        from personae.daemon.errors import ConfigError
        from personae.daemon.settings import Settings
    except ImportError:
        return None

    dirs = Settings().characters_dirs
    where = ", ".join(map(str, dirs)) if dirs else f"the bundled cast ({default_cast_dir()})"
    try:
        cast = load_cast(dirs or (default_cast_dir(),))
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    return where, [
        cli_admin.CastEntry(
            c.id,
            c.name,
            "file",
            f"{c.adapter.name}/{c.adapter.version}" if c.adapter is not None else "-",
        )
        for c in cast.values()
    ]


def import_card(
    card: Path,
    out: Annotated[Path, typer.Option(help="Folder of character files")] = Path("characters"),
) -> None:
    """Convert a Character Card V2/V3 (JSON or PNG) into a personae character file."""
    try:
        from personae.daemon.runtime.cards import read_card_file, write_imported
        from personae.daemon.runtime.errors import CardError
    except ImportError:
        typer.secho(
            "card import needs the daemon: pip install 'personae[daemon]'", fg="red", err=True
        )
        raise typer.Exit(2) from None
    try:
        imported = read_card_file(card)
        out.mkdir(parents=True, exist_ok=True)
        path = write_imported(imported, out)
    except CardError as exc:  # a refusal is one line that says why, not a traceback
        typer.secho(f"card refused: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{imported.character.id}: {path}")


def export_card(
    character_file: Path,
    out: Annotated[Path, typer.Option(help="card.json or card.png")],
    spec: Annotated[str, typer.Option(help="v2 or v3")] = "v2",
) -> None:
    """Write a character file as a Character Card (JSON, or PNG with the card embedded)."""
    try:
        from personae.daemon.characters import load_character
        from personae.daemon.runtime.cards import export_card as export
        from personae.daemon.runtime.cards import write_card_json, write_card_png
    except ImportError:
        typer.secho(
            "card export needs the daemon: pip install 'personae[daemon]'", fg="red", err=True
        )
        raise typer.Exit(2) from None
    card = export(load_character(character_file), spec=spec)
    (write_card_png if out.suffix == ".png" else write_card_json)(out, card)
    typer.echo(f"wrote {out}")
