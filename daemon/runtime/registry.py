"""Versions of characters, a validation gate, deployments per environment, rollback.

A version freezes everything that makes a character sound like itself: the Character
(prompt, voice, generation parameters), the base model, the adapter reference and the
sha256 of its weights file, evaluation metrics, and the card it came from. Versions
are immutable except for their metrics, gate report and status
("registered" → "validated" | "rejected").

Deploying runs the gate — the adapter file still hashes to what was registered,
metric thresholds, and a smoke generation through a callback — and only then appends
a deployment row. The latest row of (character, environment) is what serves; the rows
are the history. Rollback goes to the version that served before the current one
(the history is replayed as a stack: deploy pushes, rollback pops back to its target),
or to a named version that served in that environment before; it skips metrics and
smoke (it is the emergency path) but still checks the adapter file.

Every refusal is a typed `RegistryError` raised before anything is written, so the
serving version is unchanged. The running daemon learns about changes from
`subscribe` (same process) or by polling `changes_since` (other processes, replicas);
a reply that already started keeps the `VersionInfo` it resolved.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from personae.daemon.adapters.files import AdapterFileError, weights_sha256
from personae.daemon.adapters.resolve import AdapterPathError, find_adapter, inside
from personae.daemon.characters import Character, VoiceConfig
from personae.daemon.errors import UnknownCharacterError
from personae.daemon.runtime.errors import (
    AdapterIntegrityError,
    GateFailedError,
    NoPreviousVersionError,
    NotDeployedError,
    RegistryError,
    UnknownVersionError,
    VersionExistsError,
)
from personae.daemon.runtime.gate import Gate, GateCheck, GateReport, SmokeFn, Threshold
from personae.daemon.store.models import (
    CharacterVersionRow,
    DeploymentRow,
    to_datetime,
    to_epoch,
)
from personae.daemon.store.sessions import Sessions

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_ENV = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
STATUSES = ("registered", "validated", "rejected")

__all__ = [
    "Deployment",
    "DeploymentWatcher",
    "Gate",
    "GateCheck",
    "GateReport",
    "Registry",
    "SmokeFn",
    "Threshold",
    "VersionInfo",
]


def _adapter_sha256(path: Path) -> str:
    """The adapter's weights hash; a missing or malformed file is an integrity error."""
    try:
        return weights_sha256(path)
    except AdapterFileError as exc:
        raise AdapterIntegrityError(str(exc)) from exc


# --- values --------------------------------------------------------------------------


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


# --- the registry --------------------------------------------------------------------


class Registry:
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
        self._sessions = Sessions(engine)
        self._gate = gate or Gate()
        # several roots are searched in order (the bundled cast's adapters, then the store)
        if adapters_dir is None:
            self._adapter_roots: tuple[Path, ...] = ()
        elif isinstance(adapters_dir, Path):
            self._adapter_roots = (adapters_dir,)
        else:
            self._adapter_roots = tuple(adapters_dir)
        self._clock = clock
        self._listeners: list[Callable[[Deployment], None]] = []
        self._lock = threading.Lock()

    # --- versions --------------------------------------------------------------------

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
        _check_name("version", version, _VERSION)
        sha = None
        ref = character.adapter
        if ref is not None:
            _check_name("adapter version", ref.version, _VERSION)
            path = adapter_path or self._adapter_path(ref.name, ref.version)
            if path is not None:
                sha = _adapter_sha256(path)
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
            metrics=_metrics(metrics or {}),
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
        return _version(row)

    def record_metrics(
        self, character_id: str, version: str, metrics: Mapping[str, float]
    ) -> VersionInfo:
        """Merge evaluation metrics into a version (e.g. after an offline eval)."""
        clean = _metrics(metrics)
        with self._sessions.begin() as s:
            row = self._row(s, character_id, version)
            row.metrics = {**row.metrics, **clean}
        return _version(row)

    def get(self, character_id: str, version: str) -> VersionInfo:
        with self._sessions() as s:
            return _version(self._row(s, character_id, version))

    def versions(self, character_id: str) -> list[VersionInfo]:
        with self._sessions() as s:
            rows = s.scalars(
                select(CharacterVersionRow)
                .where(CharacterVersionRow.character_id == character_id)
                .order_by(CharacterVersionRow.id)
            )
            return [_version(r) for r in rows]

    def characters(self) -> list[str]:
        with self._sessions() as s:
            return sorted(s.scalars(select(CharacterVersionRow.character_id).distinct()))

    # --- the gate --------------------------------------------------------------------

    def validate(self, character_id: str, version: str, *, gate: Gate | None = None) -> GateReport:
        """Run the gate and record its report and the status; does not deploy."""
        info = self.get(character_id, version)
        report = self._run_gate(info, gate or self._gate)
        with self._sessions.begin() as s:
            row = self._row(s, character_id, version)
            row.gate = report.as_dict()
            row.status = "validated" if report.passed else "rejected"
        return report

    def verify_adapter(self, info: VersionInfo) -> None:
        """The adapter file exists, is well formed, and hashes to the registered sha256."""
        if info.adapter_name is None or info.adapter_sha256 is None:
            return
        path = self._adapter_path(info.adapter_name, info.adapter_version or "latest")
        if path is None:
            return
        found = _adapter_sha256(path)
        if found != info.adapter_sha256:
            raise AdapterIntegrityError(
                f"adapter {info.adapter_name}/{info.adapter_version} of {info.character_id} "
                f"{info.version} changed on disk: sha256 {found[:12]}…, registered "
                f"{info.adapter_sha256[:12]}…"
            )

    def _run_gate(self, info: VersionInfo, gate: Gate) -> GateReport:
        checks: list[GateCheck] = []
        try:
            self.verify_adapter(info)
            checks.append(GateCheck("adapter", True, "ok" if info.adapter_sha256 else "no adapter"))
        except AdapterIntegrityError as exc:
            checks.append(GateCheck("adapter", False, str(exc)))
        for name, threshold in gate.thresholds.items():
            assert isinstance(threshold, Threshold)
            value = info.metrics.get(name)
            if value is None:
                checks.append(GateCheck(f"metric:{name}", False, "missing"))
            else:
                ok = threshold.check(value)
                checks.append(
                    GateCheck(
                        f"metric:{name}", ok, f"{value:g} {'meets' if ok else 'fails'} {threshold}"
                    )
                )
        if gate.smoke is not None and all(c.passed for c in checks):
            try:
                reply = gate.smoke(info)
            except Exception as exc:  # the callback's failure is the gate's verdict
                checks.append(GateCheck("smoke", False, f"{type(exc).__name__}: {exc}"))
            else:
                ok = isinstance(reply, str) and len(reply.strip()) >= gate.min_smoke_chars
                checks.append(
                    GateCheck(
                        "smoke", ok, f"{len(reply.strip()) if isinstance(reply, str) else 0} chars"
                    )
                )
        return GateReport(info.character_id, info.version, tuple(checks), self._clock())

    # --- deployments -----------------------------------------------------------------

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
        _check_name("environment", environment, _ENV)
        info = self.get(character_id, version)
        current = self.serving(character_id, environment)
        if current is not None and current.version.id == info.id:
            return current
        self.verify_adapter(info)  # a corrupt adapter is its own error, not a gate line
        report = self._run_gate(info, gate or self._gate)
        with self._sessions.begin() as s:
            row = self._row(s, character_id, version)
            row.gate = report.as_dict()
            row.status = "validated" if report.passed else "rejected"
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
        """Serve the previous version again, or `to_version` (one that served here before)."""
        _check_name("environment", environment, _ENV)
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
                    current = _version(s.get_one(CharacterVersionRow, current_id))
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
            info = _version(s.get_one(CharacterVersionRow, target_id))
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
            return self._deployment(s, row) if row else None

    def serving_all(self, environment: str) -> dict[str, Deployment]:
        """Every deployed character's current deployment in `environment` (start-up)."""
        with self._sessions() as s:
            rows = s.scalars(
                select(DeploymentRow)
                .where(DeploymentRow.environment == environment)
                .order_by(DeploymentRow.id)
            )
            latest = {r.character_id: r for r in rows}
            return {cid: self._deployment(s, r) for cid, r in sorted(latest.items())}

    def history(self, character_id: str, environment: str) -> list[Deployment]:
        """Every change in `environment`, oldest first."""
        with self._sessions() as s:
            return [
                self._deployment(s, r) for r in self._history_rows(s, character_id, environment)
            ]

    def changes_since(self, after_id: int, environment: str | None = None) -> list[Deployment]:
        """Deployments with an id above `after_id`, oldest first: poll this to pick up
        changes made by other processes (keep the last id you saw)."""
        with self._sessions() as s:
            q = select(DeploymentRow).where(DeploymentRow.id > after_id)
            if environment is not None:
                q = q.where(DeploymentRow.environment == environment)
            return [self._deployment(s, r) for r in s.scalars(q.order_by(DeploymentRow.id))]

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

    # --- internals -------------------------------------------------------------------

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
            deployment = self._deployment(s, row)
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback(deployment)
        return deployment

    def _adapter_path(self, name: str, version: str) -> Path | None:
        """The folder of adapter name/version: the first root that holds it, else where
        the last root (the store) would hold it, so a missing adapter is reported there."""
        if not self._adapter_roots:
            return None
        try:
            found = find_adapter(self._adapter_roots, name, version)
            return found or inside(self._adapter_roots[-1], Path(name, version))
        except AdapterPathError:
            raise AdapterIntegrityError(
                f"adapter {name}/{version} resolves outside the adapter store"
            ) from None

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

    @staticmethod
    def _deployment(s: Session, row: DeploymentRow) -> Deployment:
        version = _version(s.get_one(CharacterVersionRow, row.version_id))
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


def _check_name(what: str, value: str, pattern: re.Pattern[str]) -> None:
    if not pattern.match(value) or ".." in value:
        raise RegistryError(f"invalid {what} {value!r}", code="invalid_request")


def _metrics(metrics: Mapping[str, float]) -> dict[str, float]:
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


def _version(row: CharacterVersionRow) -> VersionInfo:
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


class DeploymentWatcher:
    """Picks up deployments and rollbacks made by any process, by polling.

        watcher = DeploymentWatcher(registry, environment="production")
        serving = watcher.current()        # at start-up: {character_id: Deployment}
        ...
        for d in watcher.poll():           # every few seconds, in a worker thread
            swap(d.character_id, d.version)   # new replies use d.version

    `poll` returns each change once, oldest first, and only the latest per character.
    """

    def __init__(self, registry: Registry, *, environment: str) -> None:
        self._registry = registry
        self._environment = environment
        self._last_id = 0

    def current(self) -> dict[str, Deployment]:
        """What serves now; later `poll` calls report only what changes after this."""
        self._last_id = self._registry.last_deployment_id()
        return self._registry.serving_all(self._environment)

    def poll(self) -> list[Deployment]:
        changes = self._registry.changes_since(self._last_id)
        if changes:
            self._last_id = changes[-1].id
        mine = [d for d in changes if d.environment == self._environment]
        latest = {d.character_id: d for d in mine}
        return sorted(latest.values(), key=lambda d: d.id)
