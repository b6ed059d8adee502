"""Running the validation gate over a version: adapter file, metric thresholds, smoke."""

from __future__ import annotations

from collections.abc import Callable

from personae.daemon.runtime.errors import AdapterIntegrityError
from personae.daemon.runtime.gate import Gate, GateCheck, GateReport, Threshold
from personae.daemon.runtime.registry.records import VersionInfo


def run_gate(
    info: VersionInfo,
    gate: Gate,
    *,
    verify_adapter: Callable[[VersionInfo], None],
    clock: Callable[[], float],
) -> GateReport:
    """Every check's verdict; the smoke generation runs only when the others passed."""
    checks: list[GateCheck] = []
    try:
        verify_adapter(info)
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
    return GateReport(info.character_id, info.version, tuple(checks), clock())
