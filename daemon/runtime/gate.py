"""The validation gate a character version passes before it is deployed."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from personae.daemon.runtime.registry.records import VersionInfo


@dataclass(frozen=True, slots=True)
class Threshold:
    """Bounds a metric must meet; `min` for scores, `max` for latencies and error rates."""

    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs min or max")

    def check(self, value: float) -> bool:
        return (
            math.isfinite(value)
            and (self.min is None or value >= self.min)
            and (self.max is None or value <= self.max)
        )

    def __str__(self) -> str:
        parts = [
            f">= {self.min}" if self.min is not None else "",
            f"<= {self.max}" if self.max is not None else "",
        ]
        return " and ".join(p for p in parts if p)


SmokeFn = Callable[["VersionInfo"], str]


@dataclass(frozen=True, slots=True)
class Gate:
    """What a version must pass before it is deployed.

    `thresholds`: metric name → Threshold, or a bare float meaning a minimum.
    `smoke`: generates a reply with the version (adapter loaded, prompt, voice) and
    returns its text; an exception or fewer than `min_smoke_chars` characters fails.
    """

    thresholds: Mapping[str, Threshold | float] = field(default_factory=dict)
    smoke: SmokeFn | None = None
    min_smoke_chars: int = 1

    def __post_init__(self) -> None:
        norm = {
            k: v if isinstance(v, Threshold) else Threshold(min=float(v))
            for k, v in self.thresholds.items()
        }
        object.__setattr__(self, "thresholds", norm)


@dataclass(frozen=True, slots=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class GateReport:
    character_id: str
    version: str
    checks: tuple[GateCheck, ...]
    checked_at: float

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checked_at": self.checked_at,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
        }
