"""Actions, triggers and goals as a character file declares them.

    [[actions]]                      # the game executes it; the character says so
    name = "sell"
    description = "sell the player an item from the forge"
    examples = ["I'd like to buy a sword", "How much for that axe? I'll pay 20"]
    requires_consent = false
    parameters = { type = "object", required = ["item"], properties = { ... } }

    [[triggers]]                     # `game.trigger` names one
    name = "customer_enters"
    line = "Welcome, {{p.name}}. Mind the sparks."     # or instruction = "..."
    priority = "queue"                                 # or "interrupt"

    [[goals]]                        # fires on an intent or a trigger, once or always
    name = "first_commission"
    intents = ["I want you to make me something"]
    actions = [{ name = "repair", arguments = { item = "sword" } }]
    instruction = "Tell the player the first job is half price."
    repeat = "once"

`{{p.name}}` in a line, instruction or note is filled from the trigger's (or action's)
parameters; every placeholder must be a required parameter, checked when the file loads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from personae.daemon.actions.schema import SchemaError, check_schema, validate

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PLACEHOLDER = re.compile(r"\{\{\s*p\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"name {v!r} must be 1-64 lowercase letters, digits or '_'")
        return v


def _placeholders_declared(texts: list[str | None], schema: Mapping[str, Any], where: str) -> None:
    required = set(schema.get("required", []))
    for text in texts:
        for name in PLACEHOLDER.findall(text or ""):
            if name not in required:
                raise ValueError(f"{where}: {{{{p.{name}}}}} is not a required parameter")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """`{{p.name}}` replaced by the value (placeholders were checked at load time)."""
    return PLACEHOLDER.sub(lambda m: _spoken(values[m.group(1)]), template)


def _spoken(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ActionSpec(_Spec):
    """Something the character does in the game when the player asks for it."""

    description: str = Field(min_length=1, max_length=500)
    #: a JSON Schema object (the subset in schema.py)
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: player lines that ask for it: the matcher compares the player's words with these
    examples: tuple[str, ...] = Field(min_length=1)
    #: the character agrees first: it does it only for a player it trusts enough
    #: (`action_consent_trust`), and otherwise declines
    requires_consent: bool = False
    #: what the reply's prompt says the character is doing, `{{p.name}}` filled
    #: ("You sell the player a {{p.item}} for {{p.price}} coins."); default from description
    note: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _schema(self) -> ActionSpec:
        try:
            check_schema(self.parameters, f"action {self.name!r} parameters")
        except SchemaError as exc:
            raise ValueError(str(exc)) from None
        _placeholders_declared([self.note], self.parameters, f"action {self.name!r}")
        return self


class TriggerSpec(_Spec):
    """What the character does when the game sends `game.trigger` with this name."""

    #: a JSON Schema object; strings may be free text (the game sends them)
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: said verbatim, `{{p.name}}` filled ...
    line: str | None = Field(None, min_length=1, max_length=1000)
    #: ... or the instruction a generated reply follows
    instruction: str | None = Field(None, min_length=1, max_length=1000)
    #: while the character speaks: wait for the reply to end, or cut it off
    priority: Literal["queue", "interrupt"] = "queue"

    @model_validator(mode="after")
    def _one_kind(self) -> TriggerSpec:
        if (self.line is None) == (self.instruction is None):
            raise ValueError(f"trigger {self.name!r} needs exactly one of line or instruction")
        try:
            check_schema(self.parameters, f"trigger {self.name!r} parameters", extractable=False)
        except SchemaError as exc:
            raise ValueError(str(exc)) from None
        _placeholders_declared(
            [self.line, self.instruction], self.parameters, f"trigger {self.name!r}"
        )
        return self

    def problem(self, parameters: Mapping[str, Any]) -> str | None:
        return validate(self.parameters or {"properties": {}}, parameters)


class GoalAction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class GoalSpec(_Spec):
    """Activated by a player's intent or by a trigger; runs its actions and line."""

    #: player lines that show the intent (the same matcher as actions)
    intents: tuple[str, ...] = ()
    #: names of this character's triggers that activate it
    triggers: tuple[str, ...] = ()
    #: the character's actions it runs, with fixed arguments (validated at load)
    actions: tuple[GoalAction, ...] = ()
    #: said verbatim, or the instruction a generated reply follows (not both)
    line: str | None = Field(None, min_length=1, max_length=1000)
    instruction: str | None = Field(None, min_length=1, max_length=1000)
    #: "once" per player (remembered in the store across restarts) or every time
    repeat: Literal["once", "always"] = "once"

    @model_validator(mode="after")
    def _shape(self) -> GoalSpec:
        if not self.intents and not self.triggers:
            raise ValueError(f"goal {self.name!r} needs intents or triggers to activate it")
        if self.line is not None and self.instruction is not None:
            raise ValueError(f"goal {self.name!r} has both a line and an instruction")
        if not self.actions and self.line is None and self.instruction is None:
            raise ValueError(f"goal {self.name!r} does nothing: give actions, a line or both")
        for text in (self.line, self.instruction):
            if text and PLACEHOLDER.search(text):
                raise ValueError(f"goal {self.name!r}: goals take no {{{{p.*}}}} placeholders")
        return self


def check_references(
    actions: tuple[ActionSpec, ...], triggers: tuple[TriggerSpec, ...], goals: tuple[GoalSpec, ...]
) -> None:
    """Names unique per kind; goals name declared triggers and actions, with valid arguments."""
    for kind, specs in (("action", actions), ("trigger", triggers), ("goal", goals)):
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise ValueError(f"{kind} {spec.name!r} is declared twice")
            seen.add(spec.name)
    by_name = {a.name: a for a in actions}
    trigger_names = {t.name for t in triggers}
    for goal in goals:
        for t in goal.triggers:
            if t not in trigger_names:
                raise ValueError(f"goal {goal.name!r} names unknown trigger {t!r}")
        for ga in goal.actions:
            action = by_name.get(ga.name)
            if action is None:
                raise ValueError(f"goal {goal.name!r} names unknown action {ga.name!r}")
            problem = validate(action.parameters or {"properties": {}}, ga.arguments)
            if problem:
                raise ValueError(f"goal {goal.name!r} action {ga.name!r}: {problem}")
