"""Which goals fired for which player, in the store's `goal_runs` table.

A "once" goal is claimed with one INSERT: the primary key (character, player, goal)
makes a second claim fail, also from another session, replica or after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from personae.daemon.store.models import GoalRunRow, to_datetime
from personae.daemon.store.sessions import Sessions


class GoalLog:
    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._sessions = Sessions(engine)
        self._clock = clock

    def claim(self, character_id: str, player_id: str, goal: str, *, once: bool) -> bool:
        """Record that `goal` fires now; False (nothing written) when it is a "once"
        goal that already fired for this player."""
        now = to_datetime(self._clock())
        try:
            with self._sessions.begin() as s:
                row = s.get(GoalRunRow, (character_id, player_id, goal))
                if row is None:
                    s.add(
                        GoalRunRow(
                            character_id=character_id,
                            player_id=player_id,
                            goal=goal,
                            count=1,
                            first_at=now,
                            last_at=now,
                        )
                    )
                elif once:
                    return False
                else:
                    row.count += 1
                    row.last_at = now
        except IntegrityError:  # another session claimed it first
            return not once and self.claim(character_id, player_id, goal, once=once)
        return True

    def fired(self, character_id: str, player_id: str) -> dict[str, int]:
        """How many times each goal of `character_id` fired for `player_id`."""
        with self._sessions() as s:
            rows = s.scalars(
                select(GoalRunRow).where(
                    GoalRunRow.character_id == character_id, GoalRunRow.player_id == player_id
                )
            )
            return {r.goal: r.count for r in rows}
