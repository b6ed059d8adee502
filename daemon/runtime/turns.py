"""The conversation log: every line said, by whom, and which version and variant said it.

The session appends a player line when a transcript is final and a character line when
a reply is done (or truncated by barge-in: log what was actually heard). `recent`
returns the window the prompt and the lorebook scan use after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from personae.daemon.store.models import TurnRow, to_datetime, to_epoch
from personae.daemon.store.sessions import Sessions

ROLES = ("player", "character")


@dataclass(frozen=True, slots=True)
class Turn:
    id: int
    session_id: str
    character_id: str
    player_id: str
    role: str
    text: str
    created_at: float
    version: str | None = None
    variant: str | None = None
    latency_ms: float | None = None


class TurnLog:
    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._sessions = Sessions(engine)
        self._clock = clock

    def append(
        self,
        *,
        session_id: str,
        character_id: str,
        player_id: str,
        role: str,
        text: str,
        version: str | None = None,
        variant: str | None = None,
        latency_ms: float | None = None,
    ) -> Turn:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        row = TurnRow(
            session_id=session_id,
            character_id=character_id,
            player_id=player_id,
            role=role,
            text=text,
            created_at=to_datetime(self._clock()),
            version=version,
            variant=variant,
            latency_ms=latency_ms,
        )
        with self._sessions.begin() as s:
            s.add(row)
        return _turn(row)

    def recent(self, character_id: str, player_id: str, limit: int = 16) -> list[Turn]:
        """The last `limit` lines between them, oldest first."""
        with self._sessions() as s:
            rows = s.scalars(
                select(TurnRow)
                .where(TurnRow.character_id == character_id, TurnRow.player_id == player_id)
                .order_by(TurnRow.id.desc())
                .limit(limit)
            )
            return [_turn(r) for r in reversed(list(rows))]

    def for_session(self, session_id: str) -> list[Turn]:
        with self._sessions() as s:
            rows = s.scalars(
                select(TurnRow).where(TurnRow.session_id == session_id).order_by(TurnRow.id)
            )
            return [_turn(r) for r in rows]


def _turn(row: TurnRow) -> Turn:
    return Turn(
        id=row.id,
        session_id=row.session_id,
        character_id=row.character_id,
        player_id=row.player_id,
        role=row.role,
        text=row.text,
        created_at=to_epoch(row.created_at),
        version=row.version,
        variant=row.variant,
        latency_ms=row.latency_ms,
    )
