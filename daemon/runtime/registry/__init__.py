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

    records        VersionInfo, Deployment, name and metric checks
    adapter_files  finding and re-hashing a version's adapter in the store
    validation     the gate's checks over one version
    versions       Versions: register, metrics, queries, validate
    deployments    Registry (Versions + deploy, rollback, serving, history, subscribe)
    watcher        DeploymentWatcher: polling for other processes' changes
"""

from personae.daemon.runtime.registry.deployments import Registry
from personae.daemon.runtime.registry.records import Deployment, VersionInfo
from personae.daemon.runtime.registry.watcher import DeploymentWatcher

__all__ = ["Deployment", "DeploymentWatcher", "Registry", "VersionInfo"]
