"""Deployments per environment and rollback: the `Registry` is the version store plus these.

The latest deployment row of (character, environment) is what serves; the rows are
the history, replayed as a stack to find what a rollback returns to.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from personae.daemon.errors import UnknownCharacterError
from personae.daemon.runtime.errors import (
    GateFailedError,
    NoPreviousVersionError,
    NotDeployedError,
    RegistryError,
)
from personae.daemon.runtime.gate import Gate
from personae.daemon.runtime.registry.records import (
    ENVIRONMENT_NAME,
    Deployment,
    check_name,
    deployment,
    version_info,
)
from personae.daemon.runtime.registry.versions import Versions
from personae.daemon.store.models import CharacterVersionRow, DeploymentRow, to_datetime


class Registry(Versions):
    """Character versions and deployments in the database. Thread-safe, blocking calls.

    `adapters_dir` is the adapter store (`<name>/<version>/`, Settings.resolved_adapters_dir)
    used to find and re-hash adapter files; without it adapter files are not checked.
    `gate` is the default gate of `deploy` and `validate`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        gate: Gate | None = None,
        adapters_dir: Path | Sequence[Path] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(engine, gate=gate, adapters_dir=adapters_dir, clock=clock)
        self._listeners: list[Callable[[Deployment], None]] = []
        self._lock = threading.Lock()

    def deploy(
        self,
        character_id: str,
        version: str,
        *,
        environment: str,
        gate: Gate | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Deployment:
        """Gate the version, then make it serve in `environment`.

        Deploying the version that already serves changes nothing and returns the
        current deployment. Raises UnknownVersionError, AdapterIntegrityError or
        GateFailedError with the serving version unchanged.
        """
        check_name("environment", environment, ENVIRONMENT_NAME)
        info = self.get(character_id, version)
        current = self.serving(character_id, environment)
        if current is not None and current.version.id == info.id:
            return current
        self.verify_adapter(info)  # a corrupt adapter is its own error, not a gate line
        report = self._validate(info, gate or self._gate)
        if not report.passed:
            details = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
            raise GateFailedError(
                f"{character_id} {version} failed validation ({details}); "
                f"{environment} still serves {current.version.version if current else 'nothing'}",
                report=report,
            )
        return self._append(character_id, environment, info.id, "deploy", actor, reason)

    def rollback(
        self,
        character_id: str,
        *,
        environment: str,
        to_version: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Deployment:
        """Serve the previous version again, or `to_version` (one that served here before).

        It skips metrics and smoke (it is the emergency path) but still checks the
        adapter file.
        """
        check_name("environment", environment, ENVIRONMENT_NAME)
        with self._sessions() as s:
            rows = self._history_rows(s, character_id, environment)
            if not rows:
                if not self._known(s, character_id):
                    raise UnknownCharacterError(f"no versions of character {character_id!r}")
                raise NotDeployedError(f"{character_id} has never been deployed in {environment}")
            stack = _replay(rows)
            current_id = stack[-1]
            if to_version is None:
                if len(stack) < 2:
                    current = version_info(s.get_one(CharacterVersionRow, current_id))
                    raise NoPreviousVersionError(
                        f"{character_id} in {environment}: no version before "
                        f"{current.version} to roll back to"
                    )
                target_id = stack[-2]
            else:
                target = self._row(s, character_id, to_version)
                served = {r.version_id for r in rows}
                if target.id not in served:
                    raise NotDeployedError(
                        f"{character_id} {to_version} never served in {environment}; "
                        "deploy it instead"
                    )
                if target.id == current_id:
                    raise RegistryError(
                        f"{character_id} {to_version} is already serving in {environment}",
                        code="already_serving",
                    )
                target_id = target.id
            info = version_info(s.get_one(CharacterVersionRow, target_id))
        self.verify_adapter(info)
        return self._append(
            character_id, environment, target_id, "rollback", actor, reason, expect=current_id
        )

    def serving(self, character_id: str, environment: str) -> Deployment | None:
        """What serves now; None if the character was never deployed there."""
        with self._sessions() as s:
            row = s.scalars(
                select(DeploymentRow)
                .where(
                    DeploymentRow.character_id == character_id,
                    DeploymentRow.environment == environment,
                )
                .order_by(DeploymentRow.id.desc())
                .limit(1)
            ).first()
            return deployment(s, row) if row else None

    def serving_all(self, environment: str) -> dict[str, Deployment]:
        """Every deployed character's current deployment in `environment` (start-up)."""
        with self._sessions() as s:
            rows = s.scalars(
                select(DeploymentRow)
                .where(DeploymentRow.environment == environment)
                .order_by(DeploymentRow.id)
            )
            latest = {r.character_id: r for r in rows}
            return {cid: deployment(s, r) for cid, r in sorted(latest.items())}

    def history(self, character_id: str, environment: str) -> list[Deployment]:
        """Every change in `environment`, oldest first."""
        with self._sessions() as s:
            return [deployment(s, r) for r in self._history_rows(s, character_id, environment)]

    def changes_since(self, after_id: int, environment: str | None = None) -> list[Deployment]:
        """Deployments with an id above `after_id`, oldest first: poll this to pick up
        changes made by other processes (keep the last id you saw)."""
        with self._sessions() as s:
            q = select(DeploymentRow).where(DeploymentRow.id > after_id)
            if environment is not None:
                q = q.where(DeploymentRow.environment == environment)
            return [deployment(s, r) for r in s.scalars(q.order_by(DeploymentRow.id))]

    def last_deployment_id(self) -> int:
        """The id of the newest deployment row in any environment (0 if none)."""
        with self._sessions() as s:
            return s.scalar(select(func.max(DeploymentRow.id))) or 0

    def subscribe(self, callback: Callable[[Deployment], None]) -> Callable[[], None]:
        """Call `callback` after each deploy or rollback made through this object (in
        the calling thread, after commit). Returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _append(
        self,
        character_id: str,
        environment: str,
        version_id: int,
        action: str,
        actor: str | None,
        reason: str | None,
        *,
        expect: int | None = None,
    ) -> Deployment:
        with self._sessions.begin() as s:
            _advisory_lock(s, f"deploy:{character_id}:{environment}")
            last = s.scalars(
                select(DeploymentRow)
                .where(
                    DeploymentRow.character_id == character_id,
                    DeploymentRow.environment == environment,
                )
                .order_by(DeploymentRow.id.desc())
                .limit(1)
            ).first()
            if expect is not None and (last is None or last.version_id != expect):
                raise RegistryError(
                    f"{character_id} in {environment} changed while rolling back; try again",
                    code="conflict",
                )
            row = DeploymentRow(
                character_id=character_id,
                environment=environment,
                version_id=version_id,
                previous_version_id=last.version_id if last else None,
                action=action,
                actor=actor,
                reason=reason,
                created_at=to_datetime(self._clock()),
            )
            s.add(row)
            s.flush()
            result = deployment(s, row)
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback(result)
        return result

    @staticmethod
    def _history_rows(s: Session, character_id: str, environment: str) -> list[DeploymentRow]:
        return list(
            s.scalars(
                select(DeploymentRow)
                .where(
                    DeploymentRow.character_id == character_id,
                    DeploymentRow.environment == environment,
                )
                .order_by(DeploymentRow.id)
            )
        )


def _replay(rows: list[DeploymentRow]) -> list[int]:
    """The rollback stack: deploy pushes; rollback returns to its target's place."""
    stack: list[int] = []
    for r in rows:
        if r.action == "rollback" and r.version_id in stack:
            del stack[len(stack) - stack[::-1].index(r.version_id) :]
        elif not stack or stack[-1] != r.version_id:
            stack.append(r.version_id)
    return stack


def _advisory_lock(s: Session, key: str) -> None:
    """Serialise writers of one key across processes on PostgreSQL (SQLite already
    serialises every write transaction with BEGIN IMMEDIATE)."""
    if s.get_bind().dialect.name == "postgresql":
        n = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": n})
