"""Following deployments made by any process, by polling the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from personae.daemon.runtime.registry.deployments import Registry
    from personae.daemon.runtime.registry.records import Deployment


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
