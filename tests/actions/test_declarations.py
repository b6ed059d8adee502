"""Character files' actions, triggers and goals: what loads, what is refused and why;
arguments from words; the schema validator."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from personae.daemon.actions.arguments import extract, numbers
from personae.daemon.actions.declarations import fill
from personae.daemon.actions.matching import mask
from personae.daemon.actions.schema import validate
from personae.daemon.characters import Character, default_cast_dir, load_cast

PRICE = {"type": "integer", "minimum": 1, "maximum": 500}
ITEM = {"type": "string", "enum": ["sword", "knife"], "x-aliases": {"sword": ["blade"]}}
SCHEMA = {"type": "object", "required": ["item"], "properties": {"item": ITEM, "price": PRICE}}


def character(**extra: Any) -> Character:
    return Character.model_validate({"id": "x", "name": "X", "description": "d", **extra})


def action(**over: Any) -> dict[str, Any]:
    return {"name": "sell", "description": "sell", "examples": ["sell me"], **over}


def test_the_default_cast_declares_its_examples() -> None:
    cast = load_cast([default_cast_dir()])
    assert {a.name for a in cast["bram"].actions} == {"sell", "repair"}
    assert [a.name for a in cast["wren"].actions] == ["deliver_letter"]
    assert cast["wren"].actions[0].requires_consent
    assert [a.name for a in cast["mara"].actions] == ["look_up"]
    assert cast["bram"].trigger("customer_enters") is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"actions": [action(parameters={"type": "object", "properties": {"n": {"type": "array"}}})]},
         "type must be one of"),
        ({"actions": [action(parameters={"type": "object", "properties": {"s": {"type": "string"}}})]},
         "needs an enum"),
        ({"actions": [action(parameters={"type": "object", "pattern": "x"})]},
         "unsupported schema keyword 'pattern'"),
        ({"actions": [action(examples=[])]}, "at least 1 item"),
        ({"actions": [action(), action()]}, "action 'sell' is declared twice"),
        ({"actions": [action(note="for {{p.price}}", parameters=SCHEMA)]},
         "{{p.price}} is not a required parameter"),
        ({"triggers": [{"name": "t"}]}, "exactly one of line or instruction"),
        ({"triggers": [{"name": "t", "line": "hi {{p.who}}"}]}, "{{p.who}} is not a required"),
        ({"goals": [{"name": "g", "line": "hi"}]}, "needs intents or triggers"),
        ({"goals": [{"name": "g", "intents": ["a"], "actions": [{"name": "nope"}]}]},
         "names unknown action 'nope'"),
        ({"actions": [action(parameters=SCHEMA)],
          "goals": [{"name": "g", "intents": ["a"],
                     "actions": [{"name": "sell", "arguments": {"item": "axe"}}]}]},
         "must be one of sword, knife"),
        ({"goals": [{"name": "g", "triggers": ["t"], "line": "x"}]}, "unknown trigger 't'"),
    ],
)  # fmt: skip
def test_bad_declarations_are_refused_at_load_naming_the_fault(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        character(**extra)


def test_arguments_come_from_the_words_and_are_never_guessed() -> None:
    assert extract(SCHEMA, "I'll give you twenty five coins for the blade") == {
        "item": "sword",
        "price": 25,
    }
    assert extract(SCHEMA, "Two knives please") == {"item": "knife", "price": 2}
    assert extract(SCHEMA, "a sword or a knife for 3") == {"price": 3}  # two items: ask
    assert extract(SCHEMA, "the sword, 3 or 4 coins") == {"item": "sword"}  # two prices: ask
    assert extract(SCHEMA, "something nice") == {}
    assert numbers("a hundred and twenty") == [120.0]


def test_the_validator_names_what_is_wrong() -> None:
    assert validate(SCHEMA, {"item": "sword", "price": 3}) is None
    assert validate(SCHEMA, {"price": 3}) == "missing required parameter 'item'"
    assert validate(SCHEMA, {"item": "sword", "price": 0}) == "parameter 'price' must be at least 1"
    assert (
        validate(SCHEMA, {"item": "sword", "price": 2.5}) == "parameter 'price' is not an integer"
    )
    assert validate(SCHEMA, {"item": "sword", "price": True}) == (
        "parameter 'price' is not an integer"
    )
    assert validate(SCHEMA, {"item": "sword", "x": 1}).startswith("unknown parameter 'x'")


def test_placeholders_are_filled_and_masks_hide_topics() -> None:
    assert fill("Hi {{p.name}}, {{ p.n }} coins", {"name": "Jo", "n": 3.0}) == "Hi Jo, 3 coins"
    assert mask("Sell me two Swords for 30", ("sword",)) == "sell me it it for it"


def test_actions_triggers_and_goals_round_trip_through_a_card() -> None:
    from personae.daemon.runtime import export_card, import_card

    for ch in load_cast([default_cast_dir()]).values():
        card = export_card(ch)
        assert card["data"]["extensions"]["personae"]["actions"]
        back = import_card(card).character
        assert (back.actions, back.triggers, back.goals) == (ch.actions, ch.triggers, ch.goals)


def test_a_card_with_a_bad_action_is_refused() -> None:
    from personae.daemon.runtime import CardError, export_card, import_card

    card = export_card(load_cast([default_cast_dir()])["bram"])
    card["data"]["extensions"]["personae"]["actions"][0]["parameters"]["pattern"] = "x"
    with pytest.raises(CardError, match="unsupported schema keyword 'pattern'"):
        import_card(card)


def test_only_lines_phrased_as_requests_can_ask_for_an_action() -> None:
    from personae.daemon.actions.matching import asks

    cast = load_cast([default_cast_dir()])
    bram, wren, mara = cast["bram"], cast["wren"], cast["mara"]
    assert asks(bram, "Bram, can you fix my sword?")
    assert asks(bram, "I'll pay ninety for the axe")
    assert asks(wren, "Hey Wren, bring this to the mill")  # greeting and name skipped
    assert asks(mara, "Dig through the archive for me")  # her own example's first verb
    assert not asks(mara, "Mara, did the flood reach the archive?")
    assert not asks(wren, "Who sent you that letter?")
    assert not asks(bram, "My father sold swords")


def test_goal_log_claims_once_goals_once_and_counts_repeated_ones(tmp_path) -> None:
    from personae.daemon.actions.goals import GoalLog
    from personae.daemon.store import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'goals.db'}")
    log = GoalLog(engine)
    assert log.claim("bram", "p1", "apprentice", once=True)
    assert not log.claim("bram", "p1", "apprentice", once=True)
    assert log.claim("bram", "p2", "apprentice", once=True)  # per player
    assert log.claim("bram", "p1", "greet", once=False)
    assert log.claim("bram", "p1", "greet", once=False)
    assert log.fired("bram", "p1") == {"apprentice": 1, "greet": 2}
    # a new process on the same file remembers
    assert not GoalLog(open_database(f"sqlite:///{tmp_path / 'goals.db'}")).claim(
        "bram", "p1", "apprentice", once=True
    )
