"""Strategy B: narrative about a character, retold by the character in the first person.

Passages are narrative paragraphs (no speech) that name the character. The rule-based
rewriter works offline for the common case, past-tense narration of one person:
"Bram crouched, ran his thumb along the crack" -> "I crouched, ran my thumb along the
crack". It refuses passages it cannot do safely (another person of the same pronouns
nearby, so "he" would be ambiguous). The teacher path asks an OpenAI-compatible model
for the same. Either way, `third_person_problems` rejects outputs that still speak of
the character in the third person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from personae.training.dialogue import Attributor, Speaker
from personae.training.ingest import Chapter
from personae.training.quotes import find_quotes, is_dash_line

#: user turns for retold passages: what a player might ask to hear this
PROMPTS = (
    "What happened?",
    "Tell me about that.",
    "What were you doing?",
    "And then what?",
    "How did it go?",
    "What did you do?",
)

_SUBJ = {"he": "he", "she": "she"}
_FORMS = {
    "he": {"he": "I", "him": "me", "his": "my", "himself": "myself"},
    "she": {"she": "I", "her": "my", "hers": "mine", "herself": "myself"},
}
_BE = {
    "is": "am",
    "was": "was",
    "has": "have",
    "does": "do",
    "doesn't": "don't",
    "isn't": "am not",
    "hasn't": "haven't",
}


def passages(chapter: Chapter, speaker: Speaker, attributor: Attributor) -> list[tuple[int, str]]:
    """(offset, paragraph) of narrative paragraphs that name the character."""
    out = []
    pos = 0
    for para in chapter.text.split("\n\n"):
        start = pos
        pos += len(para) + 2
        if find_quotes(para) or is_dash_line(para) or len(para) < 60:
            continue
        if any(sid == speaker.id for _, sid in attributor.mentions(para)):
            out.append((start, para))
    return out


def _name_re(names: Iterable[str]) -> re.Pattern[str]:
    alts = "|".join(
        (r"(?i:the)\s+" + re.escape(n[4:])) if n.lower().startswith("the ") else re.escape(n)
        for n in sorted(names, key=len, reverse=True)
    )
    return re.compile(rf"\b(?:{alts})(?P<poss>['’]s)?\b")


_FIRST_PERSON = re.compile(r"\b(?:I|me|my|mine|myself|we|us|our|ours|ourselves)\b")
# what a name-for-pronoun swap makes of "Holmes and I": "I and I", "me and me", "my my"
_GARBLED = re.compile(r"\b(I|me|my)\s+(?:and\s+|or\s+)?(I|me|my)\b", re.IGNORECASE)


def rule_rewrite(
    text: str, speaker: Speaker, others: Sequence[Speaker], *, narrator: str | None = None
) -> str | None:
    """First-person retelling, or None when the passage is not safe to rewrite by rule.

    A first-person source needs none for its narrator (their passages are theirs as they
    stand) and cannot be rewritten by rule for anyone else: "Holmes and I" has two
    first persons once Holmes tells it.
    """
    if narrator is not None and speaker.id == narrator:
        return text if _FIRST_PERSON.search(text) else None
    if _FIRST_PERSON.search(text):
        return None  # someone else already says "I" here
    if speaker.pronouns not in _FORMS:
        return None
    same = [o for o in others if o.id != speaker.id and o.pronouns in (speaker.pronouns, "they")]
    if same and _name_re([n for o in same for n in o.names]).search(text):
        return None  # "he" could be someone else
    names = _name_re(speaker.names)
    if not names.search(text):
        return None

    first = names.match(text.lstrip())
    if not first or first.group("poss"):
        return None  # the passage must be about the character: their name opens it

    def name_sub(m: re.Match[str]) -> str:
        before = text[: m.start()].rstrip()
        at_start = not before or before.endswith((".", "!", "?", ";", ":"))
        if m.group("poss"):
            return "My" if at_start else "my"
        if at_start or re.search(
            r"\b(and|then|while|when|as|but|because|until|so|that|if)$", before, re.I
        ):
            return "I"
        return "me"

    out = names.sub(name_sub, text)
    forms = _FORMS[speaker.pronouns]

    def pron_sub(m: re.Match[str]) -> str:
        word = m.group(0)
        low = word.lower()
        if low == "her":  # "her" is object or possessive: possessive when a noun follows
            nxt = out[m.end() :].lstrip()
            rep = (
                "my"
                if re.match(r"[a-z]", nxt)
                and not re.match(
                    r"(and|to|at|with|from|in|on|as|that|the|a|an|himself|herself|up|down|out|off|back|away)\b",
                    nxt,
                )
                else "me"
            )
        else:
            rep = forms[low]
        start = m.start() == 0 or out[: m.start()].rstrip().endswith((".", "!", "?", ";", ":"))
        return rep[0].upper() + rep[1:] if start or rep == "I" else rep

    out = re.sub(r"\b(" + "|".join(forms) + r")\b", pron_sub, out, flags=re.IGNORECASE)
    # agreement: "I is" -> "I am", "I has" -> "I have"
    out = re.sub(
        r"\bI (is|was|has|does|doesn't|isn't|hasn't)\b", lambda m: "I " + _BE[m.group(1)], out
    )
    out = re.sub(r"\bmy own self\b", "myself", out)
    return None if _GARBLED.search(out) else out


def third_person_problems(text: str, speaker: Speaker, *, narrator: bool = False) -> list[str]:
    """Why `text` is not a first-person telling by `speaker` (empty: it is one). The
    narrator's own passages speak of others as "he" as much as they like."""
    narrative = text
    for q in reversed(find_quotes(text)):
        narrative = narrative[: q.start] + narrative[q.end :]
    problems = []
    m = _name_re(speaker.names).search(narrative)
    if m:
        problems.append(f"names the character in the third person ({m.group(0)!r})")
    if speaker.pronouns in _SUBJ and not narrator:
        first = len(re.findall(r"\b(I|me|my|myself)\b", narrative))
        third = len(re.findall(rf"\b{_SUBJ[speaker.pronouns]}\b", narrative, re.IGNORECASE))
        if third > first:
            problems.append(f"more '{_SUBJ[speaker.pronouns]}' than first-person words")
    if not re.search(r"\b(I|me|my|myself|we|us|our)\b", narrative):
        problems.append("no first-person words")
    if _GARBLED.search(narrative):
        problems.append(f"garbled first person ({_GARBLED.search(narrative).group(0)!r})")  # type: ignore[union-attr]
    return problems


def teacher_messages(
    passage: str, speaker: Speaker, character_name: str, style: str
) -> list[dict[str, str]]:
    return [
        {
            "role": "system",
            "content": "You rewrite passages of a story as first-person recollections by one character. "
            "Keep every fact, add none. Reply with the rewritten passage only.",
        },
        {
            "role": "user",
            "content": f"Character: {character_name} (speaking style: {style or 'natural'}).\n"
            f"Rewrite this passage as {character_name} telling it in the first person, past tense:\n\n{passage}",
        },
    ]


def prompt_for(offset: int) -> str:
    return PROMPTS[offset % len(PROMPTS)]
