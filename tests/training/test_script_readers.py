"""Screenplay and Yarn Spinner readers, the script dialogue strategy, the held-out check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae.training.errors import SourceError
from personae.training.heldout import HeldOut, OverlapChecker, load_heldout
from personae.training.ingest.readers import SUPPORTED, read_source
from personae.training.ingest.scenes import PLAYER, read_scenes
from personae.training.ingest.script import parse_script
from personae.training.ingest.yarn import parse_yarn
from personae.training.lore_qa import first_person, lore_examples
from personae.training.recipe import load_recipe
from personae.training.scripted import scripted_examples

from .conftest import EXAMPLES

HOLLOWMERE = EXAMPLES / "hollowmere"
SPEAKERS = {"bram": "bram", "mara": "mara", "wren": "wren"}

SCRIPT = """# a comment
INT. THE FORGE - DAWN

(The fire is new. BRAM works
the bellows.)

PLAYER: Morning. Are you open yet?
BRAM (not looking up): Fire's lit.
So I'm open.

(He grinds.)

BRAM: There. Run your thumb along it.
PLAYER: Sharp.

EXT. THE BRIDGE - NOON
WREN: Oi, boss!
"""

YARN = """// Bram at the forge
title: BramStart
tags: bram
position: 10,20
---
The forge doors stand open. // narration
Bram: Mind the sparks. What do you need? #line:a1
-> I've got work for you.
    Bram: Good. Put it on the bench.
    -> A hoe.
        Bram: Two coppers.
    -> A pot.
        Bram: Three coppers. [[BramWork]]
    <<jump BramWork>>
-> Nothing. <<if $visited>>
    Bram: Look from the door.
<<set $met = true>>
Bram: Come back when you've work.
===
title: Other
---
Mara: Door, Wren.
Wren: Window's closer.
===
"""


def _lines(scene):  # type: ignore[no-untyped-def]
    return [(ln.speaker, ln.text, ln.reply_to) for ln in scene.lines]


# --- screenplay -----------------------------------------------------------------------
def test_screenplay_scenes_speakers_directions_and_continuations() -> None:
    scenes = parse_script(SCRIPT, "forge.script")
    assert [s.title for s in scenes] == ["INT. THE FORGE - DAWN", "EXT. THE BRIDGE - NOON"]
    assert _lines(scenes[0]) == [
        (PLAYER, "Morning. Are you open yet?", None),
        ("bram", "Fire's lit. So I'm open.", 0),  # continuation line joined
        ("bram", "There. Run your thumb along it.", 1),
        (PLAYER, "Sharp.", 2),
    ]
    assert scenes[0].lines[1].note == "not looking up"
    assert scenes[0].lines[1].line_no == 8
    assert _lines(scenes[1]) == [("wren", "Oi, boss!", None)]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("INT. A ROOM\nBram: lower-case speaker\n", 2, "capitals"),
        ("INT. A ROOM\n\nthis is just a stray sentence\n", 3, "not a scene heading"),
        ("INT. A ROOM\n(never closed\nBRAM: Hello.\n", 2, "never closed"),
        ("INT. A ROOM\nBRAM:   \n", 2, "no line"),
    ],
)
def test_malformed_screenplay_names_file_and_line(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    path = tmp_path / "bad.script"
    path.write_text(text)
    with pytest.raises(SourceError, match=rf"bad\.script:{line}: .*{what}"):
        read_scenes(path)


# --- yarn -----------------------------------------------------------------------------
def test_yarn_nodes_options_commands_comments_and_tags() -> None:
    scenes = parse_yarn(YARN, "bram.yarn")
    assert [s.title for s in scenes] == ["BramStart", "Other"]
    assert _lines(scenes[0]) == [
        ("bram", "Mind the sparks. What do you need?", None),
        (PLAYER, "I've got work for you.", 0),
        ("bram", "Good. Put it on the bench.", 1),
        (PLAYER, "A hoe.", 2),
        ("bram", "Two coppers.", 3),
        (PLAYER, "A pot.", 2),  # a sibling option answers the same line as the first
        ("bram", "Three coppers.", 5),  # the jump is gone
        (PLAYER, "Nothing.", 0),  # the <<if>> condition is gone
        ("bram", "Look from the door.", 7),
        ("bram", "Come back when you've work.", 0),  # after the option group
    ]
    assert _lines(scenes[1]) == [("mara", "Door, Wren.", None), ("wren", "Window's closer.", 0)]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("title: A\n---\nBram: hi\n", 1, "never closed"),
        ("tags: x\n---\nBram: hi\n===\n", 1, "title"),
        ("title: A\nBram: hi\n===\n", 3, "before its ---"),
        ("title: A\nthis is not a header\n---\n===\n", 2, "header"),
        ("title: A\n---\nBram: hi\n---\nBram: again\n===\n", 4, "inside a node body"),
        ("title: A\n---\n<<jump B\n===\n", 3, "not closed"),
        ("title: A\n---\n->   \n===\n", 3, "empty option"),
    ],
)
def test_malformed_yarn_names_file_and_line(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    path = tmp_path / "bad.yarn"
    path.write_text(text)
    with pytest.raises(SourceError, match=rf"bad\.yarn:{line}: .*{what}"):
        read_scenes(path)


def test_readers_pick_scripts_by_extension(tmp_path: Path) -> None:
    assert ".script" in SUPPORTED and ".yarn" in SUPPORTED
    (tmp_path / "a.yarn").write_text(YARN)
    assert "Bram: Two coppers." in read_source(tmp_path / "a.yarn")
    (tmp_path / "a.script").write_text(SCRIPT)
    assert "Bram: Fire's lit. So I'm open." in read_source(tmp_path / "a.script")


def test_every_bundled_script_reads() -> None:
    files = sorted((HOLLOWMERE / "scripts").iterdir())
    assert {f.suffix for f in files} == {".script", ".yarn"}
    for f in files:
        scenes = read_scenes(f)
        speakers = {ln.speaker for s in scenes for ln in s.lines}
        assert speakers & set(SPEAKERS), f.name
        assert all(" " not in s and s.islower() for s in speakers if s != PLAYER), speakers


# --- examples from scripts ------------------------------------------------------------
def test_script_examples_pair_a_line_with_what_it_answers() -> None:
    rows = scripted_examples(parse_yarn(YARN, "bram.yarn"), SPEAKERS)
    pairs = [(r["character"], r["user"], r["assistant"]) for r in rows]
    assert ("bram", "A pot.", "Three coppers.") in pairs
    assert ("bram", "I've got work for you.", "Good. Put it on the bench.") in pairs
    assert ("wren", "Door, Wren.", "Window's closer.") in pairs
    # a scene's first line answers nothing and is not an example
    assert all(r["assistant"] != "Mind the sparks. What do you need?" for r in rows)
    # consecutive lines of one speaker are one reply
    rows = scripted_examples(parse_script(SCRIPT, "f.script"), SPEAKERS)
    assert [(r["user"], r["assistant"]) for r in rows] == [
        ("Morning. Are you open yet?", "Fire's lit. So I'm open. There. Run your thumb along it.")
    ]


def test_lore_bible_gives_first_person_answers() -> None:
    assert first_person("Bram knows that he helped carry Harlan out.", "Bram", "he") == (
        "I know that I helped carry Harlan out."
    )
    assert first_person("She does not know what was in Pike's letters.", "Wren", "she") == (
        "I do not know what was in Pike's letters."
    )
    bible = (HOLLOWMERE / "lore/bible.md").read_text()
    rows = lore_examples(bible, {"bram": ("Bram", "he"), "mara": ("Mara", "she")})
    pairs = {(r["character"], r["user"], r["assistant"]) for r in rows}
    assert ("bram", "How much for a gate latch?", "Five coppers.") in pairs
    # studio-only sections never reach a character
    assert not any("really going on" in r["provenance"]["section"] for r in rows)
    assert not any("Clues" in r["provenance"]["section"] for r in rows)


# --- held-out questions ---------------------------------------------------------------
def test_overlap_checker_catches_exact_normalised_and_near_duplicates() -> None:
    checker = OverlapChecker([HeldOut("q1", "Could you put a new edge on my axe?")])
    assert checker.match("Could you put a new edge on my axe?") is not None
    assert checker.match("could you put a new EDGE on my axe") is not None
    assert checker.match("Could you put a fresh edge on my axe, please?") is not None
    assert checker.match("Hello. Could you put a new edge on my old axe?") is not None
    assert checker.match("What do you charge for horseshoes?") is None
    rows = [{"user": "Can you put a new edge on my axe?", "assistant": "Two coppers."}]
    assert checker.overlaps(rows) == [("Can you put a new edge on my axe?", "q1")]


def test_heldout_files_load_questions_and_history() -> None:
    items = load_heldout(sorted((HOLLOWMERE / "eval").glob("*.toml")))
    ids = {h.id for h in items}
    assert {"bram-trade-01", "mara-trade-01", "wren-trade-01"} <= ids
    assert sum(1 for h in items if "/history" not in h.id) == 135
    assert any("/history" in i for i in ids)


def test_hollowmere_dataset_has_400_examples_each_and_no_heldout_overlap(
    tmp_path: Path,
) -> None:
    from personae.training.pipeline import Pipeline

    recipe = load_recipe(
        HOLLOWMERE / "recipe.toml",
        output={"run_dir": str(tmp_path / "run"), "version": "v2"},
    )
    pipe = Pipeline(recipe, show_progress=False)
    pipe.ingest()
    pipe.extract()
    cards = pipe.dataset()
    checker = OverlapChecker(load_heldout(sorted((HOLLOWMERE / "eval").glob("*.toml"))))
    for cid in SPEAKERS:
        assert cards[cid]["examples"]["total"] >= 400, cards[cid]["examples"]
        strategies = set(cards[cid]["by_strategy"]["train"])
        assert {"script", "lore", "dialogue"} <= strategies
        rows = []
        for split in ("train", "val"):
            for line in (tmp_path / f"run/dataset/{cid}/{split}.jsonl").read_text().splitlines():
                m = json.loads(line)["messages"]
                rows.append({"user": m[1]["content"], "assistant": m[2]["content"]})
        assert checker.overlaps(rows) == []
    dropped = (tmp_path / "run/dataset/heldout_dropped.jsonl").read_text().splitlines()
    assert dropped, "the bundled material has near-duplicates the check must catch"
