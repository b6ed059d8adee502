"""A/B experiments: variants of a character with a traffic split.

A player's variant is a pure function of the experiment's salt, the variants and their
weights, and the player id: sha256("<salt>\\0<player id>") read as a 64-bit fraction in
[0, 1) and placed on the cumulative weights. It is the same in every process and after
restarts (never Python's `hash()`, which is salted per process), independent between
experiments (each has its own salt), and it needs no table of assignments. Variants
and weights are frozen once the experiment starts, so nobody changes variant midway.

A variant points to a registered character version (adapter, prompt, voice) and/or
carries `overrides` the session applies on top (`{"voice": {...}}`, `{"system_prompt":
...}`). The session records per-variant metrics (`turns`, `latency_ms`,
`consistency`, `feedback`, any name), and `results` summarises them: per metric the
count, mean, standard deviation and a 95% interval, and the difference from the
control (the first variant) with a Welch test p-value.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from personae.daemon.runtime.errors import ExperimentError, UnknownVersionError
from personae.daemon.store.models import (
    CharacterVersionRow,
    ExperimentMetricRow,
    ExperimentRow,
    ExperimentVariantRow,
    to_datetime,
    to_epoch,
)
from personae.daemon.store.sessions import Sessions

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SCALE = float(1 << 64)


def bucket(salt: str, player_id: str) -> float:
    """A stable uniform number in [0, 1) for (salt, player)."""
    digest = hashlib.sha256(f"{salt}\0{player_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(salt: str, player_id: str, weights: Sequence[tuple[str, float]]) -> str:
    """The variant name for `player_id`, given (name, weight) pairs in order."""
    total = sum(w for _, w in weights)
    if not weights or total <= 0:
        raise ExperimentError("an experiment needs variants with positive total weight")
    x = bucket(salt, player_id) * total
    acc = 0.0
    for name, w in weights:
        acc += w
        if x < acc:
            return name
    return weights[-1][0]


@dataclass(frozen=True, slots=True)
class VariantSpec:
    name: str
    weight: float
    #: a registered version of the experiment's character, or None for the serving one
    version: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ExperimentError(f"invalid variant name {self.name!r}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ExperimentError(f"variant {self.name}: weight must be a finite number >= 0")


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float
    version: str | None
    overrides: Mapping[str, Any]
    is_control: bool


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    character_id: str
    salt: str
    status: str  # "draft" | "running" | "stopped"
    description: str
    variants: tuple[Variant, ...]
    created_at: float
    started_at: float | None
    stopped_at: float | None

    def assign(self, player_id: str) -> Variant:
        chosen = assign(self.salt, player_id, [(v.name, v.weight) for v in self.variants])
        return next(v for v in self.variants if v.name == chosen)


@dataclass(frozen=True, slots=True)
class MetricSummary:
    n: int
    mean: float
    std: float
    ci95: tuple[float, float]
    #: difference from the control's mean, and the Welch test p-value (None for the
    #: control itself or too few samples)
    diff: float | None = None
    p_value: float | None = None


@dataclass(frozen=True, slots=True)
class VariantResult:
    name: str
    weight: float
    players: int
    metrics: Mapping[str, MetricSummary]


@dataclass(frozen=True, slots=True)
class Results:
    experiment: str
    status: str
    variants: tuple[VariantResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "status": self.status,
            "variants": [
                {
                    "name": v.name,
                    "weight": v.weight,
                    "players": v.players,
                    "metrics": {
                        k: {
                            "n": m.n,
                            "mean": m.mean,
                            "std": m.std,
                            "ci95": list(m.ci95),
                            "diff": m.diff,
                            "p_value": m.p_value,
                        }
                        for k, m in v.metrics.items()
                    },
                }
                for v in self.variants
            ],
        }


class Experiments:
    """Experiments in the database. Thread-safe, blocking calls; `assign` and
    `running_for` read through a small cache refreshed at most every `cache_s`."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], float] = time.time, cache_s: float = 5.0
    ) -> None:
        self._sessions = Sessions(engine)
        self._clock = clock
        self._cache_s = cache_s
        self._cache: tuple[float, dict[str, Experiment]] | None = None

    def create(
        self,
        name: str,
        *,
        character_id: str,
        variants: Sequence[VariantSpec],
        description: str = "",
        salt: str | None = None,
    ) -> Experiment:
        if not _NAME.match(name):
            raise ExperimentError(f"invalid experiment name {name!r}")
        if len(variants) < 2:
            raise ExperimentError("an experiment needs at least two variants")
        if len({v.name for v in variants}) != len(variants):
            raise ExperimentError("variant names must be unique")
        if sum(v.weight for v in variants) <= 0:
            raise ExperimentError("variant weights must not all be zero")
        now = to_datetime(self._clock())
        try:
            with self._sessions.begin() as s:
                row = ExperimentRow(
                    name=name,
                    character_id=character_id,
                    salt=salt or name,
                    status="draft",
                    description=description,
                    created_at=now,
                )
                s.add(row)
                s.flush()
                for i, v in enumerate(variants):
                    version_id = None
                    if v.version is not None:
                        version_id = s.scalars(
                            select(CharacterVersionRow.id).where(
                                CharacterVersionRow.character_id == character_id,
                                CharacterVersionRow.version == v.version,
                            )
                        ).first()
                        if version_id is None:
                            raise UnknownVersionError(
                                f"variant {v.name}: {character_id} has no version {v.version!r}"
                            )
                    s.add(
                        ExperimentVariantRow(
                            experiment_id=row.id,
                            name=v.name,
                            position=i,
                            weight=v.weight,
                            version_id=version_id,
                            overrides=dict(v.overrides),
                        )
                    )
        except IntegrityError as exc:
            raise ExperimentError(f"experiment {name!r} already exists") from exc
        self._cache = None
        return self.get(name)

    def start(self, name: str) -> Experiment:
        """Start assigning players. One running experiment per character at a time."""
        with self._sessions.begin() as s:
            row = self._row(s, name)
            if row.status != "draft":
                raise ExperimentError(f"experiment {name} is {row.status}; only a draft can start")
            clash = s.scalars(
                select(ExperimentRow.name).where(
                    ExperimentRow.character_id == row.character_id,
                    ExperimentRow.status == "running",
                )
            ).first()
            if clash is not None:
                raise ExperimentError(
                    f"experiment {clash} already runs for {row.character_id}; stop it first"
                )
            row.status, row.started_at = "running", to_datetime(self._clock())
        self._cache = None
        return self.get(name)

    def stop(self, name: str) -> Experiment:
        with self._sessions.begin() as s:
            row = self._row(s, name)
            if row.status != "running":
                raise ExperimentError(
                    f"experiment {name} is {row.status}; only a running one stops"
                )
            row.status, row.stopped_at = "stopped", to_datetime(self._clock())
        self._cache = None
        return self.get(name)

    def get(self, name: str) -> Experiment:
        with self._sessions() as s:
            return self._experiment(s, self._row(s, name))

    def experiments(self, character_id: str | None = None) -> list[Experiment]:
        with self._sessions() as s:
            q = select(ExperimentRow).order_by(ExperimentRow.id)
            if character_id is not None:
                q = q.where(ExperimentRow.character_id == character_id)
            return [self._experiment(s, r) for r in s.scalars(q)]

    def running_for(self, character_id: str) -> Experiment | None:
        """The running experiment of a character, if any (cached)."""
        return self._running().get(character_id)

    def assign(self, name: str, player_id: str) -> Variant:
        return self.get(name).assign(player_id)

    def variant_for(self, character_id: str, player_id: str) -> tuple[Experiment, Variant] | None:
        """What the session calls when a player talks to a character: the running
        experiment's variant for this player, or None (serve the deployed version)."""
        exp = self.running_for(character_id)
        return (exp, exp.assign(player_id)) if exp else None

    def record(
        self,
        name: str,
        variant: str,
        metric: str,
        value: float,
        *,
        player_id: str | None = None,
    ) -> None:
        """Record one observation (a turn = 1, a latency, a feedback score...)."""
        if not math.isfinite(value):
            raise ExperimentError(f"metric {metric} value is not finite")
        if not _NAME.match(metric):
            raise ExperimentError(f"invalid metric name {metric!r}")
        with self._sessions.begin() as s:
            exp = self._row(s, name)
            vid = s.scalars(
                select(ExperimentVariantRow.id).where(
                    ExperimentVariantRow.experiment_id == exp.id,
                    ExperimentVariantRow.name == variant,
                )
            ).first()
            if vid is None:
                raise ExperimentError(f"experiment {name} has no variant {variant!r}")
            s.add(
                ExperimentMetricRow(
                    experiment_id=exp.id,
                    variant_id=vid,
                    player_id=player_id,
                    name=metric,
                    value=float(value),
                    created_at=to_datetime(self._clock()),
                )
            )

    def results(self, name: str) -> Results:
        with self._sessions() as s:
            exp = self._row(s, name)
            variants = list(
                s.scalars(
                    select(ExperimentVariantRow)
                    .where(ExperimentVariantRow.experiment_id == exp.id)
                    .order_by(ExperimentVariantRow.position)
                )
            )
            stats: dict[tuple[int, str], tuple[int, float, float]] = {}
            for vid, metric, n, total, total_sq in s.execute(
                select(
                    ExperimentMetricRow.variant_id,
                    ExperimentMetricRow.name,
                    func.count(),
                    func.sum(ExperimentMetricRow.value),
                    func.sum(ExperimentMetricRow.value * ExperimentMetricRow.value),
                )
                .where(ExperimentMetricRow.experiment_id == exp.id)
                .group_by(ExperimentMetricRow.variant_id, ExperimentMetricRow.name)
            ):
                stats[(vid, metric)] = (int(n), float(total), float(total_sq))
            players: dict[int, int] = {
                vid: int(n)
                for vid, n in s.execute(
                    select(
                        ExperimentMetricRow.variant_id,
                        func.count(func.distinct(ExperimentMetricRow.player_id)),
                    )
                    .where(ExperimentMetricRow.experiment_id == exp.id)
                    .group_by(ExperimentMetricRow.variant_id)
                )
            }
            status = exp.status
        control = variants[0].id if variants else None
        names = sorted({m for (_, m) in stats})
        out = []
        for v in variants:
            metrics = {}
            for m in names:
                if (v.id, m) not in stats:
                    continue
                summary = _summary(*stats[(v.id, m)])
                if v.id != control and (control, m) in stats:
                    summary = _compare(summary, _summary(*stats[(control, m)]))
                metrics[m] = summary
            out.append(VariantResult(v.name, v.weight, int(players.get(v.id, 0)), metrics))
        return Results(name, status, tuple(out))

    # --- internals -------------------------------------------------------------------

    def _running(self) -> dict[str, Experiment]:
        now = time.monotonic()
        if self._cache is None or now - self._cache[0] > self._cache_s:
            with self._sessions() as s:
                rows = s.scalars(select(ExperimentRow).where(ExperimentRow.status == "running"))
                running = {r.character_id: self._experiment(s, r) for r in rows}
            self._cache = (now, running)
        return self._cache[1]

    @staticmethod
    def _row(s: Session, name: str) -> ExperimentRow:
        row = s.scalars(select(ExperimentRow).where(ExperimentRow.name == name)).first()
        if row is None:
            raise ExperimentError(f"no experiment named {name!r}", code="unknown_experiment")
        return row

    @staticmethod
    def _experiment(s: Session, row: ExperimentRow) -> Experiment:
        vrows = s.execute(
            select(ExperimentVariantRow, CharacterVersionRow.version)
            .outerjoin(
                CharacterVersionRow, ExperimentVariantRow.version_id == CharacterVersionRow.id
            )
            .where(ExperimentVariantRow.experiment_id == row.id)
            .order_by(ExperimentVariantRow.position)
        ).all()
        variants = tuple(
            Variant(v.name, v.weight, version, dict(v.overrides), i == 0)
            for i, (v, version) in enumerate(vrows)
        )
        return Experiment(
            name=row.name,
            character_id=row.character_id,
            salt=row.salt,
            status=row.status,
            description=row.description,
            variants=variants,
            created_at=to_epoch(row.created_at),
            started_at=to_epoch(row.started_at) if row.started_at else None,
            stopped_at=to_epoch(row.stopped_at) if row.stopped_at else None,
        )


def _summary(n: int, total: float, total_sq: float) -> MetricSummary:
    mean = total / n
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    std = math.sqrt(var)
    half = 1.96 * std / math.sqrt(n) if n > 1 else 0.0
    return MetricSummary(n, mean, std, (mean - half, mean + half))


def _compare(a: MetricSummary, control: MetricSummary) -> MetricSummary:
    diff = a.mean - control.mean
    p = None
    if a.n > 1 and control.n > 1:
        se = math.sqrt(a.std**2 / a.n + control.std**2 / control.n)
        if se > 0:
            # normal approximation to Welch's t: fine at the sample sizes games produce
            p = math.erfc(abs(diff) / se / math.sqrt(2.0))
        else:
            p = 1.0 if diff == 0 else 0.0
    return MetricSummary(a.n, a.mean, a.std, a.ci95, diff, p)
