"""Character versions: registering, metrics, queries, and validation through the gate.

A version is immutable except for its metrics, gate report and status
("registered" → "validated" | "rejected").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from personae.daemon.characters import Character
from personae.daemon.errors import UnknownCharacterError
from personae.daemon.runtime.errors import RegistryError, UnknownVersionError, VersionExistsError
from personae.daemon.runtime.gate import Gate, GateReport
from personae.daemon.runtime.registry.adapter_files import AdapterFiles, adapter_sha256
from personae.daemon.runtime.registry.records import (
    VERSION_NAME,
    VersionInfo,
    check_name,
    clean_metrics,
    version_info,
)
from personae.daemon.runtime.registry.validation import run_gate
from personae.daemon.store.models import CharacterVersionRow, to_datetime
from personae.daemon.store.sessions import Sessions


class Versions:
    """Character versions in the database. Thread-safe, blocking calls.

    `adapters_dir` is the adapter store (`<name>/<version>/`, Settings.resolved_adapters_dir)
    used to find and re-hash adapter files; without it adapter files are not checked.
    `gate` is the default gate of `validate`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        gate: Gate | None = None,
        adapters_dir: Path | Sequence[Path] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = Sessions(engine)
        self._gate = gate or Gate()
        self._adapters = AdapterFiles(adapters_dir)
        self._clock = clock

    def register(
        self,
        character: Character,
        *,
        version: str,
        base_model: str,
        adapter_path: Path | None = None,
        metrics: Mapping[str, float] | None = None,
        card: Mapping[str, Any] | None = None,
        notes: str = "",
    ) -> VersionInfo:
        """Record a new version. The adapter (`adapter_path`, else the character's
        adapter in `adapters_dir`) is checked and hashed now."""
        check_name("version", version, VERSION_NAME)
        sha = None
        ref = character.adapter
        if ref is not None:
            check_name("adapter version", ref.version, VERSION_NAME)
            path = adapter_path or self._adapters.path(ref.name, ref.version)
            if path is not None:
                sha = adapter_sha256(path)
        elif adapter_path is not None:
            raise RegistryError("adapter_path given but the character has no adapter reference")
        row = CharacterVersionRow(
            character_id=character.id,
            version=version,
            base_model=base_model,
            adapter_name=ref.name if ref else None,
            adapter_version=ref.version if ref else None,
            adapter_sha256=sha,
            voice=character.voice.model_dump(mode="json"),
            prompt=character.system_prompt,
            character=character.model_dump(mode="json"),
            card=dict(card) if card is not None else None,
            metrics=clean_metrics(metrics or {}),
            status="registered",
            gate=None,
            notes=notes,
            created_at=to_datetime(self._clock()),
        )
        try:
            with self._sessions.begin() as s:
                s.add(row)
        except IntegrityError as exc:
            raise VersionExistsError(
                f"{character.id} version {version!r} is already registered"
            ) from exc
        return version_info(row)

    def record_metrics(
        self, character_id: str, version: str, metrics: Mapping[str, float]
    ) -> VersionInfo:
        """Merge evaluation metrics into a version (e.g. after an offline eval)."""
        clean = clean_metrics(metrics)
        with self._sessions.begin() as s:
            row = self._row(s, character_id, version)
            row.metrics = {**row.metrics, **clean}
        return version_info(row)

    def get(self, character_id: str, version: str) -> VersionInfo:
        with self._sessions() as s:
            return version_info(self._row(s, character_id, version))

    def versions(self, character_id: str) -> list[VersionInfo]:
        with self._sessions() as s:
            rows = s.scalars(
                select(CharacterVersionRow)
                .where(CharacterVersionRow.character_id == character_id)
                .order_by(CharacterVersionRow.id)
            )
            return [version_info(r) for r in rows]

    def characters(self) -> list[str]:
        with self._sessions() as s:
            return sorted(s.scalars(select(CharacterVersionRow.character_id).distinct()))

    # --- the gate --------------------------------------------------------------------

    def validate(self, character_id: str, version: str, *, gate: Gate | None = None) -> GateReport:
        """Run the gate and record its report and the status; does not deploy."""
        return self._validate(self.get(character_id, version), gate or self._gate)

    def verify_adapter(self, info: VersionInfo) -> None:
        """The adapter file exists, is well formed, and hashes to the registered sha256."""
        self._adapters.verify(info)

    def _validate(self, info: VersionInfo, gate: Gate) -> GateReport:
        report = run_gate(info, gate, verify_adapter=self.verify_adapter, clock=self._clock)
        with self._sessions.begin() as s:
            row = self._row(s, info.character_id, info.version)
            row.gate = report.as_dict()
            row.status = "validated" if report.passed else "rejected"
        return report

    # --- rows ------------------------------------------------------------------------

    def _row(self, s: Session, character_id: str, version: str) -> CharacterVersionRow:
        row = s.scalars(
            select(CharacterVersionRow).where(
                CharacterVersionRow.character_id == character_id,
                CharacterVersionRow.version == version,
            )
        ).first()
        if row is not None:
            return row
        if not self._known(s, character_id):
            raise UnknownCharacterError(f"no versions of character {character_id!r} are registered")
        known = ", ".join(
            v
            for v in s.scalars(
                select(CharacterVersionRow.version)
                .where(CharacterVersionRow.character_id == character_id)
                .order_by(CharacterVersionRow.id)
            )
        )
        raise UnknownVersionError(f"{character_id} has no version {version!r}; known: {known}")

    @staticmethod
    def _known(s: Session, character_id: str) -> bool:
        q = select(CharacterVersionRow.id).where(CharacterVersionRow.character_id == character_id)
        return s.scalars(q.limit(1)).first() is not None
