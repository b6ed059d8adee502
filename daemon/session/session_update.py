"""`session.update` applied: the fields the client sent, checked before they change.

    requested ─► player_id the key may act for
    dialect   ─► a client that spoke OpenAI's shape keeps it (beta's, if so)
    applied   ─► what the fields imply (openai_session.changes), characters checked,
                 the new config

The session switches its dialect between `requested` and `applied`, so that an update
refused for its characters is answered in the shape the client spoke.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from personae.daemon.auth import Principal
from personae.daemon.session import openai_session
from personae.sdk import protocol as p
from personae.sdk.openai_shape import Dialect

if TYPE_CHECKING:
    from personae.daemon.service import Service


def requested(update: p.SessionConfig, principal: Principal) -> dict[str, Any]:
    """The fields the update set; a player_id must be one the key may act for."""
    changes = {k: getattr(update, k) for k in update.model_fields_set}
    if changes.get("player_id"):
        principal.require_player(changes["player_id"])
    return changes


def dialect(update: p.SessionConfig, current: Dialect) -> Dialect:
    """The session's dialect after the update."""
    if update.dialect is Dialect.OPENAI_BETA or (update.dialect and not current.openai):
        return update.dialect
    return current


def applied(
    service: Service,
    config: p.Session,
    update: p.SessionConfig,
    changes: dict[str, Any],
    *,
    dialect: Dialect,
    check: Callable[[list[str]], None],
) -> tuple[p.Session, dict[str, Any]]:
    """The session's new config and all it changes; `check` refuses characters."""
    changes = changes | openai_session.changes(service, config, update, dialect)
    check(list(changes.get("characters") or []))
    if changes.get("pinned_character"):
        check([changes["pinned_character"]])
    if dialect.openai and not isinstance(config, p.OpenAISession):
        config = p.OpenAISession(**dict(config))
    return config.model_copy(update=changes), changes
