"""Who answers a line with no name, on the real embedder and the default cast.

A player talking to Bram says "Why do you say that?": nothing in it is about anyone,
and the closest profile is noise. The router keeps such follow-ups with the last
speaker and moves a line to another character when it is about them. The labelled
lines below are what the thresholds (SWITCH_SIMILARITY, SWITCH_MARGIN) were chosen on,
plus a second set written before that choice was checked against it.
"""

from __future__ import annotations

import pytest

from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.engines import registry
from personae.daemon.routing.router import Router

pytestmark = pytest.mark.models

FOLLOW_UPS = {
    "bram": [
        "Who do you think is carrying them?",
        "How long would that take you?",
        "And what would it cost me?",
        "Why do you say that?",
        "Can you make me one?",
        "Really? Tell me more.",
        "What happened next?",
        "Is that true?",
        "Could you show me how?",
        "When will it be ready?",
        "What do you mean by that?",
        "Have you always lived here?",
        "Do you have any family?",
        "That sounds hard. Are you tired?",
        "What would you do in my place?",
        "Okay, and after that?",
    ],
    "mara": [
        "Is it far from here?",
        "What else do you know about it?",
        "Who drew it?",
        "Can I see it?",
        "How old is it?",
        "Why would anyone hide that?",
        "And where does the path lead?",
        "Do you trust him?",
        "What do you think it means?",
        "Could you read it to me?",
        "How did you find out?",
        "Is there anything else?",
        "Have you been there yourself?",
        "Which way should I go?",
    ],
    "wren": [
        "Who told you that?",
        "Can you take a message for me?",
        "Where did you hear that?",
        "Are you sure about it?",
        "What else are people saying?",
        "How fast can you get there?",
        "Who else knows?",
        "Will you keep it quiet?",
        "What do you want for it?",
        "Did you see him yourself?",
        "When did that happen?",
        "Is that all you've got?",
    ],
}
HELD_OUT_FOLLOW_UPS = {
    "bram": [
        "Is it heavy?",
        "How many have you made?",
        "Would you teach me?",
        "What's the hardest part?",
        "Does it ever break?",
    ],
    "mara": [
        "Who wrote that one?",
        "Is it the only copy?",
        "Can I borrow it?",
        "What year was that?",
        "Who else has asked about it?",
    ],
    "wren": [
        "Who's paying you?",
        "Can you find out more?",
        "How did you get up there?",
        "Is anyone following you?",
        "Then what did they say?",
    ],
}
#: (last speaker, line, who should answer)
NEW_TOPICS = [
    ("bram", "I need an old map of the river.", "mara"),
    ("bram", "Any rumours on the rooftops lately?", "wren"),
    ("mara", "My sword needs sharpening.", "bram"),
    ("mara", "Can someone deliver this letter across town?", "wren"),
    ("wren", "Where are the town records kept?", "mara"),
    ("wren", "I need a horseshoe fixed.", "bram"),
    ("bram", "Is there a book about the town's history?", "mara"),
    ("wren", "Can anyone forge me a new blade?", "bram"),
    ("mara", "Who hears the gossip around here?", "wren"),
    ("bram", "I'm looking for old records of the chapel.", "mara"),
    ("mara", "The anvil by the bridge, is it still hot?", "bram"),
    ("wren", "Do you have charts of the coastline?", "mara"),
    ("bram", "I need a courier to run this message over the rooftops.", "wren"),
    ("mara", "Can you repair my iron gate hinges?", "bram"),
]
HELD_OUT_NEW_TOPICS = [
    ("bram", "Are there any maps of the marshes in the archive?", "mara"),
    ("mara", "My axe head came loose, who can fix it?", "bram"),
    ("wren", "I want to read about the founding of Hollowmere.", "mara"),
    ("bram", "What's the latest gossip in the market?", "wren"),
    ("mara", "I need this note delivered quickly to the docks.", "wren"),
    ("wren", "Can my plough blade be reforged?", "bram"),
]
SCENE = ["bram", "mara", "wren"]


@pytest.fixture(scope="module")
def router(settings) -> Router:
    embedder = registry.create("embedder", settings.embedder_engine, settings)
    return Router(embedder=embedder, characters=load_cast([default_cast_dir()]))


def staying(follow_ups: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """(last speaker, line, who should answer): the last speaker again."""
    return [(who, line, who) for who, lines in follow_ups.items() for line in lines]


def share(router: Router, cases: list[tuple[str, str, str]], *, closest: bool = False):
    """The share of cases routed as labelled; `closest`: by the closest profile alone."""
    right = 0
    for last, line, expected in cases:
        if closest:
            scores = router.scores(line, SCENE)
            who = max(scores, key=scores.__getitem__)
        else:
            who = router.route(line, SCENE, last_speaker=last).character
        right += who == expected
    return right / len(cases)


@pytest.mark.parametrize("follow_ups", [FOLLOW_UPS, HELD_OUT_FOLLOW_UPS], ids=["tuned", "held out"])
def test_follow_ups_stay_with_the_last_speaker(router, follow_ups) -> None:
    stays = staying(follow_ups)
    assert share(router, stays) >= 0.95
    # the closest profile alone sends many of them elsewhere: these lines are the problem
    assert share(router, stays, closest=True) <= 0.8


def test_a_line_about_another_character_goes_to_them(router) -> None:
    moves = NEW_TOPICS + HELD_OUT_NEW_TOPICS
    assert share(router, moves) >= 0.65  # 15 of 20 when the thresholds were chosen


def test_a_name_still_wins_over_continuity(router) -> None:
    decision = router.route("Wren, who told you that?", SCENE, last_speaker="bram")
    assert decision.character == "wren" and decision.reason == "addressed"
