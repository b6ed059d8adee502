"""Which version of each character speaks, kept current while the daemon runs.

At start-up the versions deployed in this daemon's environment replace the file cast;
then every `registry_poll_s` the daemon picks up deployments and rollbacks made by any
process (a CLI, an admin request, another replica). A reply resolves its character
once, when it starts, and finishes on that version whatever is deployed meanwhile.
A/B experiments choose per player between registered versions and overrides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from personae.daemon.adapters import AdapterCache, adapter_roots
from personae.daemon.characters import Character, GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest, LLMEngine
from personae.daemon.errors import ClientError
from personae.daemon.runtime import (
    Deployment,
    DeploymentWatcher,
    Experiments,
    Gate,
    Registry,
    VersionInfo,
)
from personae.daemon.settings import Settings

log = logging.getLogger("personae.daemon")

SMOKE_QUESTION = "Hello! Who are you?"


@dataclass(frozen=True, slots=True)
class Casting:
    """The character a reply is spoken by, and where that version came from."""

    character: Character
    version: str | None  # registry version; None = the character file
    experiment: str | None = None
    variant: str | None = None


class Deployments:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Engine,
        cast: Mapping[str, Character],
        adapters: AdapterCache,
        experiments: Experiments,
        llm: LLMEngine,
        serve: Callable[[Character], None],
    ) -> None:
        """`cast` is the live cast (by id) that `serve` changes: a deployed version is
        served from then on."""
        s = settings
        self._cast = cast
        self._adapters = adapters
        self._experiments = experiments
        self._llm = llm
        self._serve = serve
        self.environment = s.environment
        self.registry = Registry(
            database,
            adapters_dir=adapter_roots(s),
            gate=Gate(thresholds=dict(s.deploy_min_metrics), smoke=self.smoke),
        )
        self._watcher = DeploymentWatcher(self.registry, environment=self.environment)
        self._versions: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- keeping the cast current ---

    def start(self) -> list[Deployment]:
        """Apply what serves in this environment now (blocking; at start-up)."""
        current = list(self._watcher.current().values())
        for d in current:
            self.apply(d)
        return current

    def poll(self) -> list[Deployment]:
        """Apply changes made since the last call by any process (blocking)."""
        changes = self._watcher.poll()
        for d in changes:
            self.apply(d)
        return changes

    def apply(self, d: Deployment) -> None:
        if d.environment != self.environment:
            return
        with self._lock:
            if self._versions.get(d.character_id) == d.version.version and d.action == "deploy":
                return
            character = d.version.character
            # the adapter loads before the switch, so no reply waits on it
            self._adapters.preload(character)
            self._serve(character)
            self._versions[d.character_id] = d.version.version
        log.info("%s now serves %s (%s)", d.character_id, d.version.version, d.action)

    def serving_version(self, character_id: str) -> str | None:
        return self._versions.get(character_id)

    # --- per reply ---

    def cast(self, character_id: str, player_id: str) -> Casting:
        """The version that speaks this reply: the serving one, or the player's A/B variant."""
        base = self._cast[character_id]
        version = self._versions.get(character_id)
        assigned = self._experiments.variant_for(character_id, player_id)
        if assigned is None:
            return Casting(base, version)
        experiment, variant = assigned
        character = base
        if variant.version is not None:
            character = self.registry.get(character_id, variant.version).character
            version = variant.version
        if variant.overrides:
            character = apply_overrides(character, variant.overrides)
        return Casting(character, version, experiment.name, variant.name)

    # --- the validation gate's smoke generation ---

    def smoke(self, info: VersionInfo) -> str:
        """A short greedy reply from the version (adapter loaded), for the deploy gate."""
        ch = info.character
        name = self._adapters.acquire(ch)
        try:
            messages = [
                ChatMessage("system", ch.render_system_prompt()),
                ChatMessage("user", SMOKE_QUESTION),
            ]
            params = GenerationParams(temperature=0.0, max_tokens=16, stop=ch.generation.stop)
            request = GenerationRequest(messages=messages, params=params, adapter=name)
            return "".join(self._llm.generate(request, threading.Event())).strip()
        finally:
            self._adapters.release(name)


def apply_overrides(character: Character, overrides: dict[str, Any] | Any) -> Character:
    """A variant's changes to a character (prompt, voice, generation...), validated."""
    data = character.model_dump(mode="json")
    for key, value in dict(overrides).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        return Character.model_validate(data)
    except ValidationError as exc:
        raise ClientError(
            f"variant overrides for {character.id!r}: {exc}", code="invalid_variant"
        ) from exc
