"""Character files: TOML, YAML or JSON with the same fields."""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from personae.daemon.characters.model import Character
from personae.daemon.errors import ConfigError

log = logging.getLogger(__name__)

SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def _parse(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        if path.suffix == ".json":
            return json.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}") from exc
    raise ConfigError(f"{path}: not a character file (expected {', '.join(SUFFIXES)})")


def _validate(path: Path, data: object) -> Character:
    try:
        return Character.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid character: {exc}") from exc


def load_character(path: Path) -> Character:
    return _validate(path, _parse(path))


def looks_like_character(data: object) -> bool:
    """A mapping with a character's own keys; an adapter's `adapter_config.json`, a
    `manifest.json` or a `voice.json` beside a character file is not one."""
    return isinstance(data, dict) and (
        data.get("format") == "personae/v1" or ("id" in data and "name" in data)
    )


def _parse_or_none(path: Path) -> object:
    """JSON in a characters folder is often a tool's file (tokenizer, trainer state):
    unreadable JSON there is skipped like any other non-character file."""
    try:
        return _parse(path)
    except ConfigError:
        return None


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
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            data = _parse(path) if path.suffix != ".json" else _parse_or_none(path)
            if not looks_like_character(data):
                # a trained adapter's folder holds JSON and TOML that are not characters
                log.warning("%s: not a character file (no id and name), skipped", path)
                continue
            ch = _validate(path, data)
            if ch.id in cast:
                raise ConfigError(
                    f"character id {ch.id!r} defined twice: {origin[ch.id]} and {path}"
                )
            cast[ch.id] = ch
            origin[ch.id] = path
    if not cast:
        raise ConfigError("no characters found in " + ", ".join(map(str, dirs)))
    return cast
