"""What counts as a person's name in a speech tag, and who a pronoun may stand for.

Speaker names come from the recipe and the character files; beyond those, a name is
learnt only from a confident pattern: capitalised words (with a title) in at least
`MIN_TAGS` speech tags that are not a place or a title alone. A pronoun is not resolved
past an unnamed person the narrative has just brought in.
"""

from __future__ import annotations

import re

#: words that make a capitalised pair a place, not a person ("Baker Street")
PLACES = {
    "Street",
    "Road",
    "Lane",
    "Square",
    "Place",
    "Row",
    "Bridge",
    "Hill",
    "Park",
    "Court",
    "House",
    "Lodge",
    "Hall",
    "Station",
    "Terrace",
    "Gardens",
    "Avenue",
    "Theatre",
    "Office",
}
#: a title alone is not a name ("Mr", "Lord St")
TITLES = (
    r"(?:Mr|Mrs|Miss|Ms|Dr|Doctor|Lord|Lady|Sir|Captain|Major|Colonel|Inspector|Mister|Madame|St)"
)
STRANGER = "\0stranger"
UNSURE = ""  # a pronoun that stops the search: someone else may be meant
PERSON = {
    "he": "man|fellow|gentleman|boy|servant|coachman|driver|porter|stranger|Indian",
    "she": "woman|lady|girl|maid|landlady|servant|stranger",
}
#: an unnamed person brought in by the narrative ("a small, dark, brisk man")
STRANGERS = {
    g: re.compile(rf"\b[Aa]n?\s+(?:[\w-]+,?\s+){{0,4}}(?:{w})\b") for g, w in PERSON.items()
}
#: "She was a blonde young lady" describes someone already there
PREDICATE = re.compile(r"\b(?:was|is|were|be|been|as|like|seemed|looked)\s+$")


def bare(name: str) -> list[str]:
    """A name's words without its title: "Mr. Athelney Jones" -> ["Athelney", "Jones"]."""
    words = name.replace(".", " ").split()
    while len(words) > 1 and re.fullmatch(TITLES, words[0]):
        words = words[1:]
    return words


#: a name must appear in this many speech tags before it becomes a speaker
MIN_TAGS = 2
