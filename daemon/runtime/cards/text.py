"""Card text ↔ our text: `{{char}}`/`{{user}}` macros, example dialogues, system prompts.

A card's system prompt becomes our `str.format` template: `{{char}}`,
`{{description}}`, `{{personality}}`, `{{scenario}}` map to our fields, `{{original}}`
to our default template, other macros stay literal.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Iterable

from personae.daemon.characters import Character, ExampleLine
from personae.daemon.characters.model import DEFAULT_SYSTEM_TEMPLATE


class Macros:
    """`{{char}}`/`<BOT>` become the character's name, `{{user}}`/`<USER>` the player's."""

    def __init__(self, name: str, user: str) -> None:
        self._map = {"char": name, "bot": name, "user": user}
        self._re = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)

    def __call__(self, text: str) -> str:
        return self._re.sub(lambda m: self._map[(m.group(1) or m.group(2)).lower()], text).strip()


_SPEAKER = re.compile(r"^\s*(\{\{\s*(user|char)\s*\}\}|<(USER|BOT)>)\s*:\s?", re.IGNORECASE)


def parse_examples(text: str, name: str, user_name: str) -> tuple[ExampleLine, ...]:
    """`<START>` blocks of `{{user}}: ...` / `{{char}}: ...` lines, as user/character pairs."""
    sub = Macros(name, user_name)
    named = re.compile(rf"^\s*{re.escape(name)}\s*:\s?", re.IGNORECASE)
    pairs: list[ExampleLine] = []
    for block in re.split(r"<START>", text, flags=re.IGNORECASE):
        turns: list[list[str]] = []  # [role, text]
        for line in block.splitlines():
            m = _SPEAKER.match(line)
            role = None
            if m:
                role = "user" if (m.group(2) or m.group(3) or "").lower() == "user" else "char"
                line = line[m.end() :]
            elif named.match(line):
                role, line = "char", line[named.match(line).end() :]  # type: ignore[union-attr]
            if role:
                turns.append([role, line])
            elif turns and line.strip():
                turns[-1][1] += "\n" + line
        for a, b in itertools.pairwise(turns):
            if a[0] == "user" and b[0] == "char":
                pairs.append(ExampleLine(user=sub(a[1]), character=sub(b[1])))
    return tuple(pairs)


def examples_to_card(examples: Iterable[ExampleLine]) -> str:
    return "".join(
        f"<START>\n{{{{user}}}}: {e.user}\n{{{{char}}}}: {e.character}\n" for e in examples
    )


def prompt_from_card(prompt: str, user_name: str = "the player") -> str:
    """A card system prompt as our `str.format` template."""
    if not prompt.strip():
        return DEFAULT_SYSTEM_TEMPLATE
    fields = {
        "char": "{name}",
        "description": "{description}",
        "personality": "{personality}",
        "scenario": "{scenario}",
        "original": DEFAULT_SYSTEM_TEMPLATE,
        "user": _escape(user_name),
    }
    out = []
    pos = 0
    for m in re.finditer(r"\{\{\s*(\w+)\s*\}\}", prompt):
        out.append(_escape(prompt[pos : m.start()]))
        out.append(fields.get(m.group(1).lower(), _escape(m.group(0))))
        pos = m.end()
    out.append(_escape(prompt[pos:]))
    return "".join(out)


def prompt_to_card(character: Character) -> str:
    """Our template as a card system prompt (empty for the default template)."""
    if character.system_prompt == DEFAULT_SYSTEM_TEMPLATE:
        return ""
    macros = {
        "name": "{{char}}",
        "description": "{{description}}",
        "personality": "{{personality}}",
        "scenario": "{{scenario}}",
        "speaking_style": character.speaking_style,
    }
    out = []
    for literal, field_name, _spec, _conv in string.Formatter().parse(character.system_prompt):
        out.append(literal)
        if field_name is not None:
            out.append(macros.get(field_name, ""))
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
