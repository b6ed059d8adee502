"""A turn prepared and recorded the same way for the realtime session and the OpenAI API.

    casting ─► player_said ─► context_for ─► build_messages ─► GenerationRequest
                                                   ... the reply ... ─► character_said

Both front ends speak with the version deployed for the player (or their A/B variant),
with the same context and prompt, and log what was said to the same turn log. The
store calls block, so they run on the "store" threads through `run` (`Service.run`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personae.daemon.characters import Character, GenerationParams
from personae.daemon.deployments import Casting, Deployments
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.monitoring import ConsistencyMonitor, Observation
from personae.daemon.runtime import CharacterRuntime, CharacterState, Experiments, PromptContext
from personae.daemon.session.prompt import Turn, build_messages
from personae.daemon.settings import Settings

#: runs a blocking call on a stage's worker threads: `run(stage, fn, *args)`
Run = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class PreparedTurn:
    """What a character answers from."""

    request: GenerationRequest
    #: the character's state, voice and what the prompt's context was made of
    context: PromptContext


class Conversation:
    def __init__(
        self,
        *,
        settings: Settings,
        cast: Mapping[str, Character],
        deployments: Deployments,
        runtime: CharacterRuntime,
        experiments: Experiments,
        consistency: ConsistencyMonitor,
        run: Run,
    ) -> None:
        self._settings = settings
        self._cast = cast  # the live cast: deployments change it in place
        self._deployments = deployments
        self._runtime = runtime
        self._experiments = experiments
        self._consistency = consistency
        self._run = run

    # --- preparing a reply ---

    async def casting(self, character_id: str, player_id: str) -> Casting:
        """The version that speaks this reply to this player (deployed, or their A/B
        variant). Resolved once: the reply finishes on it whatever is deployed meanwhile."""
        return await self._run("store", self._deployments.cast, character_id, player_id)

    async def prepare(
        self,
        character: Character,
        history: Sequence[Turn],
        player_id: str,
        *,
        instructions: str | None = None,
        params: GenerationParams | None = None,
        adapter: str | None = None,
        seed: int | None = None,
    ) -> PreparedTurn:
        """The request for `character`'s reply to `history`: its state, memories and lore
        for this player in the prompt. `history` is read again once the context is in."""
        s = self._settings
        names = self.names()
        recent = [t.text for t in history[-2 * s.history_turns :]]
        context = await self._run("store", self._runtime.context_for, character, player_id, recent)
        messages = build_messages(
            character,
            history,
            names=names,
            max_turns=s.history_turns,
            instructions=instructions,
            context=context.context,
            context_late=s.prompt_context_late,
        )
        request = GenerationRequest(
            messages=messages,
            params=params if params is not None else character.generation,
            adapter=adapter,
            seed=seed,
        )
        return PreparedTurn(request, context)

    def primer(self, character: Character, history: Sequence[Turn]) -> list[ChatMessage]:
        """`character`'s next prompt as far as it is known before the player speaks again
        (no context, no new words): the prefix `prepare` will build on."""
        s = self._settings
        return build_messages(character, history, names=self.names(), max_turns=s.history_turns)

    def names(self) -> dict[str, str]:
        return {cid: c.name for cid, c in self._cast.items()}

    # --- recording what was said and what happened ---

    async def player_said(
        self, listeners: Sequence[str], player_id: str, text: str, *, session_id: str
    ) -> None:
        """The listeners heard the player: logged, its tone felt, remembered if notable."""
        await self._run(
            "store",
            lambda: self._runtime.player_said(listeners, player_id, text, session_id=session_id),
        )

    async def character_said(
        self, casting: Casting, player_id: str, text: str, *, session_id: str
    ) -> None:
        """Log a reply, with the version (and variant) that made it."""
        await self._run(
            "store", self._said, casting.character.id, casting, player_id, text, session_id, None
        )

    async def record_reply(
        self,
        speaker: str,
        casting: Casting,
        player_id: str,
        text: str,
        *,
        session_id: str,
        latency_ms: float,
    ) -> Observation | None:
        """Log `speaker`'s reply as the player heard it, score its consistency and feed
        its A/B experiment (turns, consistency, latency)."""
        return await self._run(
            "store", self._record_reply, speaker, casting, player_id, text, session_id, latency_ms
        )

    def _record_reply(
        self,
        speaker: str,
        casting: Casting,
        player_id: str,
        text: str,
        session_id: str,
        latency_ms: float,
    ) -> Observation | None:
        observation = self._consistency.observe(casting.character, text)
        self._said(speaker, casting, player_id, text, session_id, latency_ms)
        if casting.experiment is not None and casting.variant is not None:
            record = self._experiments.record
            record(casting.experiment, casting.variant, "turns", 1.0, player_id=player_id)
            if observation is not None:
                record(
                    casting.experiment,
                    casting.variant,
                    "consistency",
                    observation.score,
                    player_id=player_id,
                )
            record(
                casting.experiment, casting.variant, "latency_ms", latency_ms, player_id=player_id
            )
        return observation

    def _said(
        self,
        speaker: str,
        casting: Casting,
        player_id: str,
        text: str,
        session_id: str,
        latency_ms: float | None,
    ) -> None:
        self._runtime.character_said(
            speaker,
            player_id,
            text,
            session_id=session_id,
            version=casting.version,
            variant=casting.variant,
            latency_ms=latency_ms,
        )

    async def overheard(
        self, listeners: Sequence[str], player_id: str, text: str, *, importance: float
    ) -> None:
        """The listeners heard a character say `text` (a line of an exchange between
        characters): each remembers it, for this player."""
        await self._run(
            "store",
            lambda: self._runtime.memory.remember_many(
                list(listeners),
                text,
                player_id=player_id,
                kind="conversation",
                importance=importance,
            ),
        )

    async def game_event(
        self,
        perceivers: Sequence[str],
        player_id: str,
        name: str,
        description: str,
        data: Mapping[str, Any] | None,
    ) -> dict[str, CharacterState]:
        """A game event the perceivers witnessed; their states after it, by character."""
        return await self._run(
            "store", self._runtime.game_event, perceivers, player_id, name, description, data
        )

    async def feedback(self, character_id: str, player_id: str, score: float) -> None:
        """The player's rating of a reply, for the A/B experiment they are part of."""
        await self._run("store", self._feedback, character_id, player_id, score)

    def _feedback(self, character_id: str, player_id: str, score: float) -> None:
        assigned = self._experiments.variant_for(character_id, player_id)
        if assigned is not None:
            experiment, variant = assigned
            self._experiments.record(
                experiment.name, variant.name, "feedback", score, player_id=player_id
            )
