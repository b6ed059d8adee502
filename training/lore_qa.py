"""Offline Q&A from a lore bible: no teacher model, no network.

The bible (training/examples/hollowmere/README.md describes the form) has `## ` sections
and, per character, `## Character knowledge: NAME` with `### ` parts (what they know,
do not know, their opinions, their trade and prices). Facts are plain sentences, so
rules can turn them into questions and first-person answers:

- a price bullet `- A new hinge: four coppers.` -> "How much for a new hinge?" / "Four coppers."
- "Bram thinks Mara is ..." -> "What do you think of Mara?" / "Mara is ..."
- "Bram knows that ..." -> "What do you know about <topic>?" / "I know that ..."
- a sentence of a general section (places, history, customs, travel) -> a question
  about the section's subject, answered with the sentence, for every character.

A sentence whose pronouns cannot be turned to first person safely is skipped, and so is
anything under a heading marked as studio-only or unknown to the townsfolk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: general sections every character may know (the rest are secret or character-specific)
GENERAL = re.compile(
    r"^(Overview|The |History: |Customs|Trades and work|Travel and distances|Other places)"
)
SECRET = re.compile(r"mystery|really going on|Clues|suspects|nobody .* knows|Who knows", re.I)

_IRREGULAR = {"is": "am", "has": "have", "does": "do", "was": "was", "can": "can"}


def sections(text: str) -> list[tuple[str, str, str]]:
    """(## title, ### title or "", body) for every part of a Markdown bible."""
    out, h2, h3, body = [], "", "", []  # type: ignore[var-annotated]
    for line in text.splitlines():
        m = re.match(r"^(#{2,3}) (.+)$", line)
        if m:
            if body:
                out.append((h2, h3, "\n".join(body).strip()))
            body = []
            if m.group(1) == "##":
                h2, h3 = m.group(2).strip(), ""
            else:
                h3 = m.group(2).strip()
        elif h2:
            body.append(line)
    if body:
        out.append((h2, h3, "\n".join(body).strip()))
    return out


def sentences(body: str) -> list[str]:
    prose = " ".join(
        ln.strip() for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("-")
    )
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", prose) if s.strip()]


def _first_person_verb(verb: str) -> str:
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    if verb.endswith("ies"):
        return verb[:-3] + "y"
    if re.search(r"(sh|ch|x|ss|o)es$", verb):
        return verb[:-2]
    if verb.endswith("s") and not verb.endswith("ss"):
        return verb[:-1]
    return verb


def first_person(sentence: str, name: str, pronoun: str) -> str | None:
    """`Bram knows that he ...` -> `I know that I ...`; None when not safely convertible."""
    subj = {"he": ("He", "he", "himself"), "she": ("She", "she", "herself")}
    if pronoun not in subj:
        return None
    cap, lo, refl = subj[pronoun]
    m = re.match(rf"^(?:{re.escape(name)}|{cap})\s+(\w+)\s+(.*)$", sentence)
    if not m:
        return None
    verb, rest = m.group(1), m.group(2)
    if verb == "does" and rest.startswith("not "):
        head = "I do"
    else:
        head = f"I {_first_person_verb(verb)}"
    if re.search(rf"\b{re.escape(name)}\b", rest):
        return None  # the name again mid-sentence: too easy to get wrong
    if (
        pronoun == "she"
        and re.search(r"\b(Mara|Wren|Nell|Agnes|Edith)\b", rest)
        and re.search(r"\bher\b", rest)
    ):
        return None  # "her" may be the other woman
    if (
        pronoun == "he"
        and re.search(r"\b(Bram|Pike|Tobias|Harlan|Colm|Jory|Reed|Ezra)\b", rest)
        and re.search(r"\b(him|his)\b", rest)
    ):
        return None
    rest = re.sub(rf"\b{lo} (\w+)", lambda m: "I " + _first_person_verb(m.group(1)), rest)
    rest = re.sub(rf"\b{refl}\b", "myself", rest)
    if pronoun == "he":
        rest = re.sub(r"\bhis\b", "my", rest)
        rest = re.sub(r"\bhim\b", "me", rest)
    else:  # "her" before a noun is "my"; before a particle or at the end it is "me"
        rest = re.sub(
            r"\bher\b(?=\s+(?:extra|to|for|in|and|a|the|with|at|on|off|out|up|back|not)\b|[.,;!?]|$)",
            "me",
            rest,
        )
        rest = re.sub(r"\bher\b", "my", rest)
    rest = re.sub(rf"\b{re.escape(name)}'s\b", "my", rest)
    return f"{head} {rest}"


def _topic(sentence: str, fallback: str) -> str:
    names = re.findall(r"(?<!^)(?<![.!?] )\b((?:the )?[A-Z][a-z]+(?: [A-Z][a-z]+)*)", sentence)
    names = [n for n in names if n not in ("I",)]
    if names:
        return names[0]
    for key in (
        "mill",
        "fire",
        "bell",
        "forge",
        "archive",
        "river",
        "bridge",
        "fen",
        "horses",
        "iron",
        "roofs",
        "map",
    ):
        if re.search(rf"\b{key}\b", sentence, re.I):
            return f"the {key}"
    return fallback


_CONTEXT = re.compile(r"^(It|He|She|They|This|That|These|Those|His|Her|Their|There|Both)\b")


def _needs_context(sentence: str) -> bool:
    """A sentence that leans on the one before ("It burned ...") or is too short to stand."""
    return bool(_CONTEXT.match(sentence)) or len(sentence.split()) < 6


def _subject(title: str) -> str:
    """A section title as the object of "What can you tell me about ...?"."""
    if title == "Overview":
        return "Hollowmere"
    m = re.match(r"History: (.+)$", title)
    if m:
        rest = m.group(1)
        return rest if rest.startswith("the ") or rest[0].isupper() else "the " + rest
    words = title.split()
    if words[0] in ("The", "Customs", "Trades", "Travel", "Other"):
        words[0] = words[0].lower()
    return " ".join(words)


def lore_examples(
    bible: str, characters: Mapping[str, tuple[str, str]], source: str = "bible.md"
) -> list[dict[str, Any]]:
    """`characters` maps id -> (first name as the bible writes it, pronoun he/she/they)."""
    rows: list[dict[str, Any]] = []

    def add(cid: str, user: str, reply: str, where: str) -> None:
        rows.append(
            {
                "character": cid,
                "strategy": "lore",
                "user": user,
                "assistant": reply[0].upper() + reply[1:],
                "provenance": {"file": source, "section": where},
            }
        )

    by_name = {name: cid for cid, (name, _) in characters.items()}
    for h2, h3, body in sections(bible):
        where = f"{h2} / {h3}" if h3 else h2
        if SECRET.search(h2) or SECRET.search(h3):
            continue
        m = re.match(r"Character knowledge: (\w+)", h2)
        if m:
            cid = by_name.get(m.group(1))
            if cid is None or h3.startswith("Sample lines"):
                continue
            name, pronoun = characters[cid]
            for bullet in re.findall(r"^- ([^:\n]+): (.+)$", body, re.M):
                item, price = bullet[0].strip(), bullet[1].strip()
                add(cid, f"How much for {item[0].lower() + item[1:]}?", price, where)
            for s in sentences(body):
                op = re.match(
                    rf"^(?:{name}|He|She) thinks (.+?) (is|are|was|talks|keeps|sells|bakes|has|asks|knows|could|will|worries|pays|never|can)\b(.*)$",
                    s,
                )
                if op and "opinions" in h3:
                    # "... and teases her about it" is the speaker's own doing: cut it off
                    said = re.split(
                        r",? and (?:that |teases|tells|calls|likes|worries|wishes)", op.group(3)
                    )[0]
                    add(
                        cid,
                        f"What do you think of {op.group(1)}?",
                        f"{op.group(1)} {op.group(2)}{said.rstrip('.')}.",
                        where,
                    )
                    continue
                fp = first_person(s, name, pronoun)
                if fp is None:
                    continue
                if "does not know" in h3:
                    add(cid, f"Do you know anything about {_topic(s, 'that')}?", fp, where)
                elif "knows" in h3:
                    add(cid, f"What do you know about {_topic(s, 'it')}?", fp, where)
                elif "trade" in h3:
                    add(
                        cid,
                        "What work do you take on?"
                        if "will not" not in s
                        else f"Would you do anything for {_topic(s, 'me')}?",
                        fp,
                        where,
                    )
                else:
                    add(cid, f"Tell me about {_topic(s, 'yourself')}.", fp, where)
        elif GENERAL.match(h2) and not h3:
            subject = _subject(h2)
            for cid, (name, _) in characters.items():
                for s in sentences(body):
                    if re.search(rf"\b{name}\b", s) or _needs_context(s):
                        continue  # about the speaker in the third person, or needs context
                    add(cid, f"What can you tell me about {subject}?", s, where)
    return rows
