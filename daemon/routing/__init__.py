"""Who answers a player's line: the router and the words it never takes for a name."""

from personae.daemon.routing.router import RouteDecision, Router

__all__ = ["RouteDecision", "Router"]
