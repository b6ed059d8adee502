"""The registry's values — a character version, a deployment — and their rows.

Names and metrics are checked here, before anything is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from personae.daemon.characters import Character, VoiceConfig
from personae.daemon.runtime.errors import RegistryError
from personae.daemon.store.models import CharacterVersionRow, DeploymentRow, to_epoch

VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
ENVIRONMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
STATUSES = ("registered", "validated", "rejected")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: int
    character_id: str
    version: str
    base_model: str
    adapter_name: str | None
    adapter_version: str | None
    adapter_sha256: str | None
    voice: VoiceConfig
    prompt: str
    character: Character
    card: Mapping[str, Any] | None
    metrics: Mapping[str, float]
    status: str
    gate: Mapping[str, Any] | None
    notes: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Deployment:
    id: int
    character_id: str
    environment: str
    version: VersionInfo
    #: the version that served before this change (None for the first deployment)
    previous_version: str | None
    action: str  # "deploy" | "rollback"
    actor: str | None
    reason: str | None
    created_at: float


def version_info(row: CharacterVersionRow) -> VersionInfo:
    return VersionInfo(
        id=row.id,
        character_id=row.character_id,
        version=row.version,
        base_model=row.base_model,
        adapter_name=row.adapter_name,
        adapter_version=row.adapter_version,
        adapter_sha256=row.adapter_sha256,
        voice=VoiceConfig.model_validate(row.voice),
        prompt=row.prompt,
        character=Character.model_validate(row.character),
        card=row.card,
        metrics=dict(row.metrics),
        status=row.status,
        gate=row.gate,
        notes=row.notes,
        created_at=to_epoch(row.created_at),
    )


def deployment(s: Session, row: DeploymentRow) -> Deployment:
    version = version_info(s.get_one(CharacterVersionRow, row.version_id))
    previous = (
        s.get_one(CharacterVersionRow, row.previous_version_id).version
        if row.previous_version_id is not None
        else None
    )
    return Deployment(
        id=row.id,
        character_id=row.character_id,
        environment=row.environment,
        version=version,
        previous_version=previous,
        action=row.action,
        actor=row.actor,
        reason=row.reason,
        created_at=to_epoch(row.created_at),
    )


def check_name(what: str, value: str, pattern: re.Pattern[str]) -> None:
    if not pattern.match(value) or ".." in value:
        raise RegistryError(f"invalid {what} {value!r}", code="invalid_request")


def clean_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"metric {k!r} is not a number: {v!r}") from exc
        if not math.isfinite(f):
            raise RegistryError(f"metric {k!r} is not finite: {v!r}")
        out[str(k)] = f
    return out
