"""One object the session calls per turn: state, memory, lore and the turn log together.

    runtime = CharacterRuntime(engine, count_tokens=llm_token_count, embed=embedder.embed,
                               embed_model="all-MiniLM-L6-v2")
    # a final transcript, heard by the characters in the scene
    runtime.player_said(["mara"], player_id, text, session_id=sid)
    # before generating mara's reply
    ctx = runtime.context_for(mara, player_id, recent_texts)
    build_messages(mara, history, context=ctx.context)   # ctx.voice for TTS,
    outbox.send(npc.emotion(**ctx.emotion_event))        # ctx.emotion_event for the client
    # when the reply is done (or truncated: what was heard)
    runtime.character_said("mara", player_id, heard_text, session_id=sid, version="v3")
    # game.event
    runtime.game_event(perceivers, player_id, event.name, event.description, event.data)

Every call is blocking (run it in a worker thread) and thread-safe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from personae.daemon.characters import Character, VoiceConfig
from personae.daemon.errors import ClientError
from personae.daemon.runtime.lore import Lorebook, LoreEntry, format_lore
from personae.daemon.runtime.memory import (
    PLAYER_SAID,
    CountTokens,
    EmbedFn,
    MemoryStore,
    Recalled,
    format_memories,
)
from personae.daemon.runtime.state import (
    EMOTIONS,
    Appraisal,
    CharacterState,
    StateStore,
    StateUpdate,
    Temperament,
    appraise_text,
    modulate_voice,
)
from personae.daemon.runtime.turns import TurnLog

NO_CHANGE = StateUpdate()


@dataclass(frozen=True, slots=True)
class PromptContext:
    state: CharacterState
    #: lines of the reply's context (`build_messages(context=...)`), in order: lore
    #: marked before_char, the current feelings, memories, then the other lore
    context: tuple[str, ...]
    #: the character's voice with rate and pitch moved by the emotion
    voice: VoiceConfig
    #: payload of the `npc.emotion` event
    emotion_event: Mapping[str, Any]
    memories: tuple[Recalled, ...]
    lore: tuple[LoreEntry, ...]


class CharacterRuntime:
    def __init__(
        self,
        engine: Engine,
        *,
        count_tokens: CountTokens,
        embed: EmbedFn | None = None,
        embed_model: str = "default",
        clock: Callable[[], float] = time.time,
        memory_budget_tokens: int = 160,
        lore_budget_tokens: int = 200,
        temperaments: Mapping[str, Temperament] | None = None,
        lorebooks: Mapping[str, Lorebook] | None = None,
        appraise: Callable[[str], Appraisal] = appraise_text,
        remember_player_lines: bool = True,
    ) -> None:
        self.state = StateStore(engine, clock=clock)
        self.memory = MemoryStore(engine, embed=embed, embed_model=embed_model, clock=clock)
        self.turns = TurnLog(engine, clock=clock)
        self._count = count_tokens
        self._memory_budget = memory_budget_tokens
        self._lore_budget = lore_budget_tokens
        self._temperaments = dict(temperaments or {})
        self._lorebooks = dict(lorebooks or {})
        self._derived: dict[tuple[str, tuple[Any, ...]], Lorebook] = {}
        self._appraise = appraise
        self._remember_lines = remember_player_lines

    def temperament(self, character_id: str) -> Temperament:
        return self._temperaments.get(character_id) or Temperament()

    def set_lorebook(self, character_id: str, book: Lorebook | None) -> None:
        """Use `book` (e.g. `ImportedCard.lorebook`, with every Card option) for the
        character instead of its file's lore; None goes back to the file's lore."""
        if book is None:
            self._lorebooks.pop(character_id, None)
        else:
            self._lorebooks[character_id] = book

    def lorebook(self, character: Character) -> Lorebook:
        """The lorebook set for the character, else the lore of this Character (so a
        newly deployed version with other lore is picked up at once)."""
        book = self._lorebooks.get(character.id)
        if book is None:
            key = (character.id, character.lore)
            book = self._derived.get(key)
            if book is None:
                if len(self._derived) > 256:
                    self._derived.clear()
                book = self._derived[key] = Lorebook.from_character(character)
        return book

    def context_for(
        self,
        character: Character,
        player_id: str,
        recent: Sequence[str],
        *,
        player_name: str = "the player",
    ) -> PromptContext:
        """What goes into the prompt and the voice for the next reply of `character`.

        `recent` is the recent conversation text, oldest first (the lorebook scans it;
        its last line is the memory query).
        """
        state = self.state.get(character.id, player_id, self.temperament(character.id))
        query = recent[-1] if recent else ""
        memories = self.memory.recall(
            character.id,
            player_id,
            query,
            budget_tokens=self._memory_budget,
            count_tokens=self._count,
        )
        lore = self.lorebook(character).select(
            recent,
            count_tokens=self._count,
            budget_tokens=character.lore_budget(self._lore_budget),
        )
        lines = [
            format_lore(lore, "before_char"),
            state.describe(character.name, player_name),
            format_memories(memories),
            format_lore(lore, "after_char"),
        ]
        return PromptContext(
            state=state,
            context=tuple(line for line in lines if line),
            voice=modulate_voice(character.voice, state.emotion),
            emotion_event={"character": character.id, **state.emotion.as_event()},
            memories=tuple(memories),
            lore=tuple(lore),
        )

    def player_said(
        self,
        listeners: Sequence[str],
        player_id: str,
        text: str,
        *,
        session_id: str,
    ) -> dict[str, CharacterState]:
        """The player's final words: logged for every listener, their tone applied to
        each listener's state, and (if notable) remembered."""
        appraisal = self._appraise(text)
        for cid in listeners:
            self.turns.append(
                session_id=session_id,
                character_id=cid,
                player_id=player_id,
                role="player",
                text=text,
            )
        if self._remember_lines and (appraisal.arousal >= 0.2 or abs(appraisal.valence) >= 0.3):
            importance = min(1.0, 0.3 + 0.5 * abs(appraisal.valence) + 0.2 * appraisal.arousal)
            self.memory.remember_many(
                listeners,
                PLAYER_SAID + text,
                player_id=player_id,
                kind="conversation",
                importance=importance,
            )
        return self.state.apply_many(
            list(listeners),
            player_id,
            appraisal.update,
            {cid: self.temperament(cid) for cid in listeners},
        )

    def character_said(
        self,
        character_id: str,
        player_id: str,
        text: str,
        *,
        session_id: str,
        version: str | None = None,
        variant: str | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """A reply as the player heard it, with the version (and A/B variant) that made it."""
        self.turns.append(
            session_id=session_id,
            character_id=character_id,
            player_id=player_id,
            role="character",
            text=text,
            version=version,
            variant=variant,
            latency_ms=latency_ms,
        )

    def game_event(
        self,
        perceivers: Sequence[str],
        player_id: str,
        name: str,
        description: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, CharacterState]:
        """A `game.event` perceived by `perceivers`: remembered by each, and their state
        updated from `data` (see `event_update`) or else their emotions from the words."""
        text = f"{name}: {description}".strip(": ") if description else name
        # the words of an event move feelings, not the relationship: the player may
        # not have caused it (data can say otherwise with trust/affinity)
        felt = StateUpdate(self._appraise(text).update.emotions)
        update, importance = event_update(data or {}, fallback=felt)
        if perceivers:
            self.memory.remember_many(
                list(perceivers), text, player_id=player_id, kind="event", importance=importance
            )
        return self.state.apply_many(
            list(perceivers),
            player_id,
            update,
            {cid: self.temperament(cid) for cid in perceivers},
        )


def event_update(
    data: Mapping[str, Any], *, fallback: StateUpdate = NO_CHANGE
) -> tuple[StateUpdate, float]:
    """The state update and importance a game event's `data` asks for.

    Recognised keys: `emotions` ({emotion: strength 0..1}), `trust` and `affinity`
    (deltas in -1..1), `importance` (0..1, default 0.6). Without `emotions`, `trust`
    and `affinity`, the `fallback` (the tone of the event's text) applies. Bad values
    are a ClientError naming the key.
    """
    try:
        importance = float(data.get("importance", 0.6))
        if not (math.isfinite(importance) and 0.0 <= importance <= 1.0):
            raise ValueError("importance must be in [0, 1]")
        if not any(k in data for k in ("emotions", "trust", "affinity")):
            return fallback, importance
        emotions = data.get("emotions") or {}
        if not isinstance(emotions, Mapping):
            raise ValueError(f"emotions must be an object of {', '.join(EMOTIONS)}")
        update = StateUpdate(
            {str(k): _number(v, f"emotions.{k}") for k, v in emotions.items()},
            trust=_number(data.get("trust", 0.0), "trust"),
            affinity=_number(data.get("affinity", 0.0), "affinity"),
        )
    except (TypeError, ValueError) as exc:
        raise ClientError(f"game.event data: {exc}", code="invalid_event") from exc
    return update, importance


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)
