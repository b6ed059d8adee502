"""`personae config ...`: the daemon's settings in effect, and their reference page."""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

config = typer.Typer(no_args_is_help=True, help="Settings: what is in effect, and the reference.")

#: the password in a URL such as postgresql://user:password@host/db
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^/@\s]+@")


def _settings_modules() -> Any:
    try:
        from personae.daemon import settings, settings_doc
    except ImportError as exc:  # pydantic-settings comes with the daemon extra
        typer.secho(f"{exc}. Install it with: pip install 'personae[daemon]'", fg="red", err=True)
        raise typer.Exit(2) from None
    return settings, settings_doc


def shown(value: Any) -> str:
    """A settings value as it prints, with secrets masked (SecretStr dumps as stars)."""
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    return json.dumps(value)


@config.command()
def show(
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="TOML settings file (default: PERSONAE_CONFIG)"),
    ] = None,
) -> None:
    """Every setting in effect and where it came from: default, environment or file."""
    settings, _ = _settings_modules()
    if config_file is not None:
        os.environ["PERSONAE_CONFIG"] = str(config_file)
    from pydantic import ValidationError

    file = settings.config_file()
    if file is not None and not file.is_file():
        typer.secho(f"config file {file} does not exist", fg="red", err=True)
        raise typer.Exit(1)
    try:
        current = settings.Settings()
    except (ValidationError, tomllib.TOMLDecodeError) as exc:
        typer.secho(f"invalid settings: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"# config file: {file or 'none (set PERSONAE_CONFIG or --config)'}")
    values = {k: shown(v) for k, v in current.model_dump(mode="json").items()}
    origin = settings.provenance()
    names, texts = max(map(len, values)), min(40, max(map(len, values.values())))
    for name, value in values.items():
        typer.echo(f"{name:<{names}}  {value:<{texts}}  {origin[name]}")


@config.command()
def docs() -> None:
    """Print docs/settings.md, generated from the settings model."""
    _, settings_doc = _settings_modules()
    typer.echo(settings_doc.render(), nl=False)
