"""Character files: TOML, YAML or JSON with the same fields."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from personae.daemon.characters.model import Character
from personae.daemon.errors import ConfigError

SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def load_character(path: Path) -> Character:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{path}: not a character file (expected {', '.join(SUFFIXES)})")
        return Character.model_validate(data)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid character: {exc}") from exc


def default_cast_dir() -> Path:
    return Path(str(resources.files("personae.daemon") / "cast"))


def load_cast(dirs: Iterable[Path]) -> dict[str, Character]:
    """Every character file in `dirs`; a duplicate id is an error, not a silent override."""
    cast: dict[str, Character] = {}
    origin: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"characters directory {d} does not exist")
        for path in sorted(d.iterdir()):
            if path.suffix not in SUFFIXES:
                continue
            ch = load_character(path)
            if ch.id in cast:
                raise ConfigError(
                    f"character id {ch.id!r} defined twice: {origin[ch.id]} and {path}"
                )
            cast[ch.id] = ch
            origin[ch.id] = path
    if not cast:
        raise ConfigError("no characters found in " + ", ".join(map(str, dirs)))
    return cast
