"""A character: who they are, how they speak, how they sound, which adapter they wear."""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from personae.daemon.actions.declarations import (
    ActionSpec,
    GoalSpec,
    TriggerSpec,
    check_references,
)

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

DEFAULT_SYSTEM_TEMPLATE = (
    "You are {name}. {description}\n"
    "Personality: {personality}\n"
    "Speaking style: {speaking_style}\n"
    "Scenario: {scenario}\n"
    "Stay in character. Answer in one to three short spoken sentences, no lists, "
    "no stage directions."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationParams(_Strict):
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(60, ge=1, le=1024)
    stop: tuple[str, ...] = ()
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)


class VoiceConfig(_Strict):
    """How a character sounds. `engine` names a TTS engine; the rest is per engine."""

    engine: str = "piper"
    #: engine voice: a Piper model name ("default" = the bundled voice), an espeak-ng
    #: voice such as "en-us+f3", a Kokoro voice or blend such as "bf_lily:0.6,af_sky:0.4"
    voice: str = "default"
    #: speaking rate: 1.0 normal, 1.2 is 20% faster
    rate: float = Field(1.0, gt=0.25, le=4.0)
    #: pitch factor: 1.0 unchanged, 1.15 is about two semitones up
    pitch: float = Field(1.0, gt=0.25, le=4.0)


class AdapterRef(_Strict):
    name: str
    version: str = "latest"
    #: the tokens of lore its training prompts held (the recipe's `[dataset]
    #: lore_budget_tokens`): the daemon serves it prompts built the same way, since an
    #: adapter trained without lore ignores it and contradicts it more often
    #: (docs/characters.md). None: the daemon's `lore_budget_tokens`.
    lore_budget_tokens: int | None = Field(None, ge=0)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("adapter name must be lowercase letters, digits, '-' or '_'")
        return v


class LoreEntry(_Strict):
    keys: tuple[str, ...]
    content: str
    #: over the lore budget, lower priorities are dropped first (Card V2 `priority`)
    priority: int = 0


class ExampleLine(_Strict):
    user: str
    character: str


class Character(_Strict):
    id: str
    name: str
    #: other names players use to address the character ("the smith")
    aliases: tuple[str, ...] = ()
    description: str
    personality: str = ""
    speaking_style: str = ""
    scenario: str = ""
    greeting: str = ""
    examples: tuple[ExampleLine, ...] = ()
    system_prompt: str = DEFAULT_SYSTEM_TEMPLATE
    generation: GenerationParams = GenerationParams()
    voice: VoiceConfig = VoiceConfig()
    adapter: AdapterRef | None = None
    lore: tuple[LoreEntry, ...] = ()
    #: what the character does for the game (daemon/actions/declarations.py)
    actions: tuple[ActionSpec, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    goals: tuple[GoalSpec, ...] = ()
    format: Literal["personae/v1"] = "personae/v1"

    @field_validator("id")
    @classmethod
    def _safe_id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(
                f"character id {v!r} must be 1-64 lowercase letters, digits, '-' or '_'"
            )
        return v

    @model_validator(mode="after")
    def _template_renders(self) -> Character:
        self.render_system_prompt()  # fails at load time, not at the first reply
        check_references(self.actions, self.triggers, self.goals)
        return self

    def action(self, name: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.name == name), None)

    def trigger(self, name: str) -> TriggerSpec | None:
        return next((t for t in self.triggers if t.name == name), None)

    def render_system_prompt(self) -> str:
        """The template with its plain `{field}` placeholders filled. Format specs,
        conversions and attribute or index access are refused: `{name:>300000000}` would
        render a 300 MB prompt, `{name.__class__}` reach into objects."""
        values = {
            "name": self.name,
            "description": self.description,
            "personality": self.personality,
            "speaking_style": self.speaking_style,
            "scenario": self.scenario,
        }
        out: list[str] = []
        try:
            parsed = list(string.Formatter().parse(self.system_prompt))
        except ValueError as exc:
            raise ValueError(f"system_prompt template of {self.id!r}: {exc}") from exc
        for literal, field, spec, conversion in parsed:
            out.append(literal)
            if field is None:
                continue
            if field not in values or spec or conversion:
                shown = "{" + field + (f"!{conversion}" if conversion else "")
                shown += (f":{spec[:20]}" if spec else "") + "}"
                raise ValueError(
                    f"system_prompt template of {self.id!r}: {shown} is not one of "
                    f"{', '.join('{' + k + '}' for k in values)} (no format specs)"
                )
            out.append(values[field])
        return "".join(out).strip()

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the character answers to, for addressing and STT hotwords."""
        return (self.name, *self.aliases)

    def lore_budget(self, default: int) -> int:
        """Tokens of lore for this character's prompts: what its adapter was trained
        with where the adapter says, else `default` (the daemon's setting)."""
        if self.adapter is not None and self.adapter.lore_budget_tokens is not None:
            return self.adapter.lore_budget_tokens
        return default

    def profile_text(self) -> str:
        """What the router embeds to decide who an utterance is for."""
        parts = [self.name, self.description, self.personality, self.scenario]
        parts += [f"{e.user} {e.character}" for e in self.examples]
        # lore keys, not contents: the keys are the words players use for what the
        # character knows; the contents are facts about places every character shares
        # (with the default cast's lorebooks, contents route 11 of 20 lines about another
        # character's trade right, keys 16; tests/engines/test_routing_followups.py)
        parts.append(", ".join(k for e in self.lore for k in e.keys))
        return "\n".join(p for p in parts if p)
