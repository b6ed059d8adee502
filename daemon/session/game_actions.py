"""A session's side of actions, triggers and goals (the plans come from daemon/actions/).

    player line ─► for_player ─► Plan ─► reply: npc.action (kind "game") + fitting words
    game.trigger ─► trigger: checked (character present, trigger declared, parameters
                    valid) before anything is written ─► Plan ─► queued or interrupting
    game.action_result ─► result: remembered by the character, in the session's history
    game.event ─► perceived: the characters it names (or the scene) feel and remember it

The actions sent and not yet answered are kept per session (bounded), so a result
names an action this session announced.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personae.daemon.actions.planner import Plan, PlannedAction
from personae.daemon.errors import ClientError
from personae.daemon.session.prompt import Turn
from personae.daemon.session.reply import emotion_event
from personae.sdk import protocol as p

if TYPE_CHECKING:
    from personae.daemon.service import Service
    from personae.daemon.session.outbox import Outbox

#: actions announced and not yet answered, per session; the oldest are forgotten
PENDING_ACTIONS = 64


@dataclass(frozen=True, slots=True)
class TriggerJob:
    character: str
    plan: Plan
    interrupt: bool


class SessionActions:
    def __init__(
        self,
        service: Service,
        *,
        scene: Callable[[], list[str]],
        player_id: Callable[[], str],
        remember: Callable[[Turn], None],
        outbox: Outbox,
    ) -> None:
        self._service = service
        self._scene = scene
        self._player_id = player_id
        self._remember = remember
        self._outbox = outbox
        self._pending: OrderedDict[str, tuple[str, PlannedAction]] = OrderedDict()

    async def for_player(self, character_id: str, text: str) -> Plan:
        """The plan for `character_id`'s reply to the player's `text`."""
        svc = self._service
        ch = svc.cast[character_id]
        return await svc.run("router", svc.actions.for_line, ch, text, self._player_id())

    def announced(self, character_id: str, plan: Plan) -> None:
        """The plan's actions are about to be sent: their results are now expected."""
        for action in plan.actions:
            self._pending[action.id] = (character_id, action)
            while len(self._pending) > PENDING_ACTIONS:
                self._pending.popitem(last=False)

    async def trigger(self, event: p.GameTrigger) -> TriggerJob:
        """`event` checked and planned; a ClientError (nothing written) when it is bad."""
        svc = self._service
        ch = svc.cast[event.character]  # the session checked it is known and allowed
        if event.character not in self._scene():
            raise ClientError(
                f"character {event.character!r} is not in the scene "
                f"({', '.join(self._scene()) or 'nobody'})",
                code="character_absent",
            )
        spec = ch.trigger(event.trigger)
        if spec is None:
            declared = ", ".join(t.name for t in ch.triggers) or "none"
            raise ClientError(
                f"character {ch.id!r} has no trigger {event.trigger!r} (declared: {declared})",
                code="unknown_trigger",
            )
        problem = spec.problem(event.parameters)
        if problem is not None:
            raise ClientError(
                f"trigger {event.trigger!r} of {ch.id!r}: {problem}", code="invalid_parameters"
            )
        plan = await svc.run(
            "store", svc.actions.for_trigger, ch, spec, event.parameters, self._player_id()
        )
        return TriggerJob(ch.id, plan, interrupt=spec.priority == "interrupt")

    async def perceived(self, event: p.GameEvent) -> None:
        """A game event, perceived by the characters it names (or the whole scene)."""
        perceivers = [c for c in (event.characters or self._scene())]
        states = await self._service.conversation.game_event(
            perceivers, self._player_id(), event.name, event.description, event.data
        )
        self._remember(Turn("game", f"{event.name}: {event.description}".strip(": ")))
        for cid, state in states.items():
            self._outbox.control(emotion_event(cid, state))

    async def result(self, event: p.GameActionResult) -> None:
        """The game's answer to an action: the character remembers what became of it."""
        found = self._pending.pop(event.action_id, None)
        if found is None:
            raise ClientError(
                f"no action {event.action_id!r} awaits a result in this session",
                code="unknown_action",
            )
        character_id, action = found
        text = _outcome(action, event.status, event.reason)
        states = await self._service.conversation.game_event(
            [character_id], self._player_id(), f"action {action.name}", text, _feeling(event)
        )
        self._remember(Turn("game", text))
        for cid, state in states.items():
            self._outbox.control(emotion_event(cid, state))


def with_plan(options: p.ResponseOptions, plan: Plan) -> p.ResponseOptions:
    """The reply's options with the plan's note joined to its instructions."""
    if not plan.instructions:
        return options
    joined = " ".join(x for x in (options.instructions, plan.instructions) if x)
    return options.model_copy(update={"instructions": joined})


def _outcome(action: PlannedAction, status: str, reason: str) -> str:
    shown = ", ".join(f"{k} {v}" for k, v in action.arguments.items())
    what = f"{action.description}" + (f" ({shown})" if shown else "")
    verdict = {"done": "it was done", "refused": "it was refused", "failed": "it failed"}[status]
    return f"You tried to {what}: {verdict}" + (f", because {reason}." if reason else ".")


def _feeling(event: p.GameActionResult) -> Mapping[str, object]:
    # a refusal or failure is felt; the tone of the reason's words decides the rest
    if event.status == "done":
        return {"importance": 0.6}
    return {"importance": 0.8}
