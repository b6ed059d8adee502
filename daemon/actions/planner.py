"""One turn's plan: which actions the game is told of, and what the reply says about them.

    player line ─► matcher ─► action: arguments extracted ─► schema ─► consent ─► Plan
                          └─► goal intent ─► claimed in the store (once) ─► Plan
    game.trigger ─► line or instruction, {{p.*}} filled ─► goals it activates ─► Plan

A plan's actions become `npc.action` events (kind "game") at the start of the reply;
its `instructions` join the reply's prompt, so the character says what it does (or
asks for what is missing, or declines); a `script` is spoken verbatim instead of a
generated reply. Every call blocks (embedding, store) and runs on a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from personae.daemon.actions.arguments import extract
from personae.daemon.actions.declarations import ActionSpec, GoalSpec, TriggerSpec, fill
from personae.daemon.actions.goals import GoalLog
from personae.daemon.actions.matching import IntentMatcher, Match
from personae.daemon.actions.schema import validate
from personae.daemon.characters import Character
from personae.daemon.engines.base import Embedder
from personae.daemon.settings import Settings
from personae.sdk.protocol import NpcAction, new_id

#: a character's trust toward a player, -1..1: `trust(character, player_id)`
Trust = Callable[[Character, str], float]


@dataclass(frozen=True, slots=True)
class PlannedAction:
    id: str
    name: str
    arguments: dict[str, Any]
    description: str

    def event(self, *, response_id: str, item_id: str, character: str) -> NpcAction:
        """The `npc.action` (kind "game") that tells the game, as part of a reply."""
        return NpcAction(
            response_id=response_id,
            item_id=item_id,
            character=character,
            kind="game",
            text=self.description,
            name=self.name,
            arguments=self.arguments,
            action_id=self.id,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[PlannedAction, ...] = ()
    #: what the reply's prompt is told (the character does X, or asks, or declines)
    instructions: str | None = None
    #: said verbatim instead of a generated reply
    script: str | None = None
    #: the goals that fired
    goals: tuple[str, ...] = ()
    #: the matcher's decision on the player's line, when there was one
    match: Match | None = None
    #: an action asked for that was not done: (name, why) for logs and tests
    withheld: tuple[str, str] | None = field(default=None)


class Planner:
    def __init__(
        self, *, settings: Settings, embedder: Embedder, database: Engine, trust: Trust
    ) -> None:
        self.matcher = IntentMatcher(
            embedder,
            threshold=settings.action_match_threshold,
            margin=settings.action_match_margin,
        )
        self.goals = GoalLog(database)
        self._trust = trust
        self._consent_trust = settings.action_consent_trust

    # --- a player's line ---

    def for_line(self, ch: Character, text: str, player_id: str) -> Plan:
        m = self.matcher.match(ch, text)
        if m.kind == "goal" and m.name is not None:
            goal = next(g for g in ch.goals if g.name == m.name)
            plan = self._goal(ch, goal, player_id)
            return _with(plan, match=m) if plan is not None else Plan(match=m)
        if m.kind == "action" and m.name is not None:
            action = ch.action(m.name)
            assert action is not None
            return _with(self._action(ch, action, text, player_id), match=m)
        return Plan(match=m)

    def _action(self, ch: Character, action: ActionSpec, text: str, player_id: str) -> Plan:
        schema = action.parameters or {"properties": {}}
        arguments = extract(schema, text)
        problem = validate(schema, arguments)
        what = action.description
        if problem is not None:
            missing = [r for r in schema.get("required", []) if r not in arguments]
            if missing:
                ask = _ask_for(schema["properties"][missing[0]], missing[0])
                note = f"The player wants you to {what}, but has not said {ask}. Ask them."
            else:
                note = f"The player wants you to {what}, but {problem}. Say you cannot do that."
            return Plan(instructions=note, withheld=(action.name, problem))
        if action.requires_consent and self._trust(ch, player_id) < self._consent_trust:
            note = f"The player asks you to {what}. You do not trust them enough: refuse."
            return Plan(instructions=note, withheld=(action.name, "not trusted"))
        planned = PlannedAction(new_id("act"), action.name, arguments, what)
        return Plan(actions=(planned,), instructions=_doing(action, arguments))

    # --- goals ---

    def _goal(self, ch: Character, goal: GoalSpec, player_id: str) -> Plan | None:
        """The goal's plan, claimed in the store; None when a "once" goal already fired."""
        if not self.goals.claim(ch.id, player_id, goal.name, once=goal.repeat == "once"):
            return None
        planned: list[PlannedAction] = []
        notes: list[str] = []
        for ga in goal.actions:
            action = ch.action(ga.name)
            assert action is not None  # checked when the character loaded
            planned.append(
                PlannedAction(new_id("act"), ga.name, dict(ga.arguments), action.description)
            )
            notes.append(_doing(action, ga.arguments))
        if goal.instruction:
            notes.append(goal.instruction)
        return Plan(
            actions=tuple(planned),
            instructions=" ".join(notes) or None,
            script=goal.line,
            goals=(goal.name,),
        )

    # --- a game trigger ---

    def for_trigger(
        self, ch: Character, trigger: TriggerSpec, parameters: Mapping[str, Any], player_id: str
    ) -> Plan:
        """The trigger's line or instruction, and the goals it activates (parameters were
        validated by the caller: `trigger.problem`)."""
        script = fill(trigger.line, parameters) if trigger.line else None
        notes = [fill(trigger.instruction, parameters)] if trigger.instruction else []
        actions: list[PlannedAction] = []
        fired: list[str] = []
        for goal in ch.goals:
            if trigger.name not in goal.triggers:
                continue
            plan = self._goal(ch, goal, player_id)
            if plan is None:
                continue
            actions += plan.actions
            fired += plan.goals
            if plan.script:
                script = f"{script} {plan.script}" if script else plan.script
            if plan.instructions:
                notes.append(plan.instructions)
        return Plan(
            actions=tuple(actions),
            # a verbatim line is spoken as written: notes then only reach later replies
            instructions=" ".join(notes) or None,
            script=script,
            goals=tuple(fired),
        )


def _with(plan: Plan, *, match: Match) -> Plan:
    return Plan(plan.actions, plan.instructions, plan.script, plan.goals, match, plan.withheld)


def _doing(action: ActionSpec, arguments: Mapping[str, Any]) -> str:
    if action.note:
        return fill(action.note, arguments)
    shown = ", ".join(f"{k} {v}" for k, v in arguments.items())
    return f"You agree and {action.description}" + (f" ({shown})." if shown else ".") + (" Say so.")


def _ask_for(prop: Mapping[str, Any], name: str) -> str:
    label = prop.get("description") or name
    enum = prop.get("enum")
    if enum:
        return f"which {label} ({', '.join(map(str, enum))})"
    return f"the {label}"
