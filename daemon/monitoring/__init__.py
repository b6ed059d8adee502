"""Health of a running daemon: Prometheus metrics and per-character consistency."""

from personae.daemon.monitoring.consistency import (
    Alert,
    ConsistencyConfig,
    ConsistencyMonitor,
    Observation,
)
from personae.daemon.monitoring.metrics import STAGES, Metrics

__all__ = [
    "STAGES",
    "Alert",
    "ConsistencyConfig",
    "ConsistencyMonitor",
    "Metrics",
    "Observation",
]
