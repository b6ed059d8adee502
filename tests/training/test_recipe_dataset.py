"""Recipe files, dataset building (dedup, limits, split, card), voices, rewriting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae.daemon.characters import Character, VoiceConfig, default_cast_dir, load_cast
from personae.training.dataset import (
    approx_token_counter,
    build_character_dataset,
    split_rows,
    write_character_dataset,
)
from personae.training.dialogue import Speaker
from personae.training.errors import CharacterDataError, RecipeError
from personae.training.recipe import DatasetConfig, load_recipe
from personae.training.rewrite import rule_rewrite, third_person_problems
from personae.training.voice import choose_voices

from .conftest import write_recipe

BRAM = Speaker("bram", ("Bram Holloway", "Bram"), "he")
MARA = Speaker("mara", ("Mara Quill", "Mara"), "she")
WREN = Speaker("wren", ("Wren",), "she")


# --- recipe ---------------------------------------------------------------------------
def test_toml_and_yaml_recipes_agree(tmp_path: Path) -> None:
    toml = load_recipe(write_recipe(tmp_path, "[lora]\nr = 8"))
    (tmp_path / "r.yaml").write_text(
        "name: test\nsources: [" + json.dumps(str(toml.sources[0])) + "]\n"
        "characters: [{id: bram, pronouns: he, aliases: [the smith]}, {id: mara, pronouns: she, aliases: [Mara Quill, the archivist]}, {id: wren, pronouns: she}]\n"
        "lora: {r: 8}\noutput: {run_dir: run, adapters_dir: store}\n"
    )
    yaml_ = load_recipe(tmp_path / "r.yaml")
    assert yaml_.model_dump(exclude={"root"}) == toml.model_dump(exclude={"root"})
    assert toml.run_dir == tmp_path / "run"  # relative to the recipe file
    assert set(toml.load_characters()) == {"bram", "mara", "wren"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[lora]\nr = 0", "lora.r"),
        ("[dataset]\nval_fraction = 0.5", "dataset.val_fraction"),
        ("[train]\nlearning_rate = -1", "train.learning_rate"),
        ("[strategies.qa]\nenabled = true", "needs a [teacher] section"),
        ("[lora]\nbogus = 1", "lora.bogus"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, body: str, message: str) -> None:
    path = write_recipe(tmp_path, body)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_recipe_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "none.toml")
    (tmp_path / "r.toml").write_text("name = ")
    with pytest.raises(RecipeError, match="cannot parse"):
        load_recipe(tmp_path / "r.toml")
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(RecipeError, match=r"\.toml, \.yaml"):
        load_recipe(tmp_path / "r.json")


def test_unknown_character_is_named(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path).parent / "recipe.toml")
    bad = recipe.model_copy(
        update={
            "characters": (
                *recipe.characters,
                recipe.characters[0].model_copy(update={"id": "ghost"}),
            )
        }
    )
    with pytest.raises(RecipeError, match=r"'ghost'.*ghost\.toml"):
        bad.load_characters()


# --- dataset --------------------------------------------------------------------------
def _bram() -> Character:
    return load_cast([default_cast_dir()])["bram"]


def _ex(user: str, reply: str, who: str = "bram", strategy: str = "dialogue") -> dict:
    return {
        "character": who,
        "strategy": strategy,
        "user": user,
        "assistant": reply,
        "provenance": {"file": "f", "chapter": 0, "offset": 0},
    }


def test_dataset_rows_dedup_limits_and_system_prompt() -> None:
    ch = _bram()
    examples = [
        _ex("Hello.", "Mind the sparks."),
        _ex("hello", "Mind the sparks!"),  # the same after normalising
        _ex("Hi.", "x"),  # too short (min_reply_chars=2)
        _ex("Hi.", "word " * 200),  # too long, and no sentence to split it at
        _ex("Who?", "Not me.", who="mara"),  # another character's
        *[_ex(f"Question {i}?", f"Answer number {i}.") for i in range(20)],
    ]
    ds = build_character_dataset(ch, examples, DatasetConfig(max_tokens=200), approx_token_counter)
    rows = ds.train + ds.val
    assert len(rows) == 21
    assert dict(ds.dropped) == {
        "duplicate": 1,
        "too short": 1,
        "too long (no sentence or clause that fits)": 1,
    }
    first = rows[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[0]["content"] == ch.render_system_prompt()
    assert 0.1 <= len(ds.val) / len(rows) <= 0.2


def test_lore_goes_where_the_daemon_puts_it_and_counts_against_the_limit() -> None:
    """With `lore_budget_tokens`, a line that brings up a lore key gets the entry the
    daemon would select, as a system message just before the line; other lines none."""
    from personae.daemon.runtime.lore import lore_for
    from personae.daemon.session.prompt import Turn, build_messages

    ch = _bram()
    asked = "What do you charge to sharpen a scythe?"
    examples = [_ex(asked, "Two coppers on the wheel."), _ex("Good day.", "Mind the sparks.")]
    config = DatasetConfig(max_tokens=400, lore_budget_tokens=200)
    rows = {
        r["messages"][-2]["content"]: r
        for r in (lambda d: d.train + d.val)(
            build_character_dataset(ch, examples, config, approx_token_counter)
        )
    }
    msgs = rows[asked]["messages"]
    assert [m["role"] for m in msgs] == ["system", "system", "user", "assistant"]
    assert "two coppers" in msgs[1]["content"]
    served = build_messages(
        ch, [Turn("player", asked)], context=lore_for(ch, [asked], budget_tokens=200)
    )
    assert served[-2].role == "system" and served[-2].content == msgs[1]["content"]
    assert [m["role"] for m in rows["Good day."]["messages"]] == ["system", "user", "assistant"]
    plain = build_character_dataset(
        ch, examples, DatasetConfig(max_tokens=400), approx_token_counter
    )
    plain_tokens = {r["messages"][-2]["content"]: r["tokens"] for r in plain.train + plain.val}
    assert rows[asked]["tokens"] > plain_tokens[asked]
    assert rows["Good day."]["tokens"] == plain_tokens["Good day."]


def test_a_long_speech_is_split_at_sentence_boundaries_not_dropped() -> None:
    speech = " ".join(
        f"Deduction number {i} follows from the mud upon your instep, Mr. Watson."
        for i in range(40)
    )
    config = DatasetConfig(max_tokens=260, max_reply_chars=400)
    ds = build_character_dataset(ch := _bram(), [_ex("How?", speech)], config, approx_token_counter)
    rows = sorted(ds.train + ds.val, key=lambda r: int(r["provenance"]["part"].split("/")[0]))
    replies = [r["messages"][2]["content"] for r in rows]
    assert len(replies) > 3 and " ".join(replies) == speech  # every sentence kept, in order
    assert all(len(r) <= 400 and r.endswith("Mr. Watson.") for r in replies)
    assert all(r["tokens"] <= 260 and r["messages"][1]["content"] == "How?" for r in rows)
    assert dict(ds.split) == {len(rows): 1} and not ds.dropped
    assert ch.id == "bram"


def test_split_is_deterministic_and_order_independent() -> None:
    rows = [{"id": f"{i:04d}"} for i in range(100)]
    train, val = split_rows(rows, val_fraction=0.15, seed=0)
    _, val2 = split_rows(list(reversed(rows)), val_fraction=0.15, seed=0)
    assert {r["id"] for r in val} == {r["id"] for r in val2} and len(val) == 15
    assert not {r["id"] for r in train} & {r["id"] for r in val}
    _, val3 = split_rows(rows, val_fraction=0.15, seed=1)
    assert {r["id"] for r in val3} != {r["id"] for r in val}
    # adding rows moves only new rows into validation
    _, val4 = split_rows(
        [*rows, *({"id": f"new{i}"} for i in range(10))], val_fraction=0.15, seed=0
    )
    assert {r["id"] for r in val4 if not r["id"].startswith("new")} <= {r["id"] for r in val}


def test_character_who_never_speaks_is_an_error_naming_them() -> None:
    with pytest.raises(
        CharacterDataError, match=r"'bram' \(Bram\) has no usable lines in story.txt"
    ):
        build_character_dataset(
            _bram(),
            [_ex("a", "b c", who="mara")],
            DatasetConfig(),
            approx_token_counter,
            sources=["story.txt"],
        )
    with pytest.raises(CharacterDataError, match="min_examples = 5"):
        build_character_dataset(
            _bram(), [_ex("a", "b c")], DatasetConfig(), approx_token_counter, min_examples=5
        )


def test_dataset_files_and_card(tmp_path: Path) -> None:
    ch = _bram()
    examples = [
        _ex(f"Q{i}?", f"Reply {i}.", strategy="dialogue" if i % 2 else "rewrite") for i in range(20)
    ]
    ds = build_character_dataset(ch, examples, DatasetConfig(), approx_token_counter)
    card = write_character_dataset(tmp_path, ds, ch)
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert all(set(r) == {"messages"} for r in train) and len(train) == card["examples"]["train"]
    assert (
        sum(card["by_strategy"]["train"].values()) + sum(card["by_strategy"]["val"].values()) == 20
    )
    assert card["tokens"]["train"]["n"] == len(train)
    md = (tmp_path / "card.md").read_text()
    assert "| dialogue |" in md and "| rewrite |" in md and "## Samples" in md
    meta = [json.loads(line) for line in (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert {m["split"] for m in meta} == {"train", "val"} and all("provenance" in m for m in meta)


# --- rule-based first-person rewriting ---------------------------------------------------
def test_rule_rewriter_common_case() -> None:
    text = (
        "Bram crouched, ran his thumb along the crack, and smelled his thumb. He did not look up."
    )
    out = rule_rewrite(text, BRAM, [BRAM, MARA])
    assert (
        out == "I crouched, ran my thumb along the crack, and smelled my thumb. I did not look up."
    )
    assert third_person_problems(out, BRAM) == []


def test_rule_rewriter_objects_possessives_and_her() -> None:
    out = rule_rewrite(
        "Mara smiled. Bram looked at Mara and handed her the map. Mara's hands shook.",
        MARA,
        [BRAM, MARA],
    )
    assert out == "I smiled. Bram looked at me and handed me the map. My hands shook."


def test_rule_rewriter_refuses_unsafe_passages() -> None:
    # another "she" named in the passage: "her" could be either
    assert rule_rewrite("Mara watched Wren climb. She laughed at her.", MARA, [MARA, WREN]) is None
    # a passage that does not open with the character is not about them
    assert rule_rewrite("The fog lifted. Bram went home.", BRAM, [BRAM]) is None


def test_third_person_check() -> None:
    assert third_person_problems("Bram lifted the hammer.", BRAM)
    assert third_person_problems("He lifted the hammer and he swung it.", BRAM)
    assert third_person_problems("The hammer was lifted.", BRAM) == ["no first-person words"]
    # the character's name inside quoted speech is fine
    assert third_person_problems('I told them, "Bram knows iron."', BRAM) == []


# --- voices ---------------------------------------------------------------------------
def test_voices_keep_the_file_and_make_the_rest_distinct() -> None:
    cast = load_cast([default_cast_dir()])
    voices = choose_voices(list(cast.values()))
    assert voices["bram"] == cast["bram"].voice  # the file sets one
    plain = [c.model_copy(update={"voice": VoiceConfig()}) for c in cast.values()]
    chosen = choose_voices(plain)
    assert len({v.pitch for v in chosen.values()}) == 3
    assert chosen["bram"].pitch < chosen["wren"].pitch  # gruff low, cheeky young high
    assert chosen["wren"].rate > chosen["bram"].rate  # fast and slangy vs blunt
