"""`personae eval`: question sets, scoring, the classifier's lines, the report, and a
real run on the default engine (marked `models`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae.daemon.characters import AdapterRef, default_cast_dir, load_cast
from personae.daemon.testing import FakeLLM
from personae.training.errors import TrainingError
from personae.training.evaluate import OTHERS
from personae.training.evaluation.cli import DEFAULT_QUESTIONS
from personae.training.evaluation.questions import Question, load_questions
from personae.training.evaluation.references import script_lines
from personae.training.evaluation.replies import messages_for
from personae.training.evaluation.report import write_report
from personae.training.evaluation.run import evaluate_cast
from personae.training.evaluation.scoring import score_reply, summarize

MILL = Question(
    id="q-mill",
    kind="town",
    question="Where is the old mill?",
    key_facts=(("north",), ("river bend", "where the river bends")),
    wrong_facts=("south",),
)


@pytest.fixture(scope="module")
def cast():
    return load_cast([default_cast_dir()])


def test_the_cast_sets_load_and_a_subset_spreads_over_the_kinds() -> None:
    for cid in ("bram", "mara", "wren"):
        qs = load_questions(DEFAULT_QUESTIONS / f"{cid}.toml")
        assert qs.character == cid and len(qs.questions) >= 40
        assert set(qs.kinds) >= {
            "trade",
            "town",
            "characters",
            "followup",
            "unknowable",
            "rudeness",
        }
        sub = qs.subset(12)
        assert len(sub.questions) == 12
        assert {q.kind for q in sub.questions} == set(qs.kinds)
        other = qs.subset(12, skip=12)
        assert len(other.questions) == 12 and not set(other.questions) & set(sub.questions)
        assert any(q.history for q in qs.questions if q.kind == "followup")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('character = "bram"\n[[questions]]\nid = "a"\n', "question 1: `question` is missing"),
        ('character = "bram"\n', "no [[questions]]"),
        (
            'character = "bram"\n[[questions]]\nid = "a"\nquestion = "x?"\nkey_facts = "north"\n',
            "key_facts",
        ),
        ('character = "bram"\n[[questions]]\nid = "a"\nquestion = "x?"\n' * 2, "duplicate"),
        ("character = ", "Invalid"),
    ],
)
def test_a_malformed_set_names_its_file_and_question(tmp_path: Path, body: str, says: str) -> None:
    path = tmp_path / "bram.toml"
    path.write_text(body)
    with pytest.raises(TrainingError) as caught:
        load_questions(path)
    assert str(path) in str(caught.value)
    assert says in str(caught.value)


def test_key_facts_and_contradictions() -> None:
    good = score_reply(
        MILL, "North, where the river bends. Mind the road.", character="bram", condition="adapter"
    )
    assert good.facts_stated == 2 and good.hit and not good.contradictions and good.complete
    wrong = score_reply(MILL, "Down south, past the bridge.", character="bram", condition="adapter")
    assert wrong.facts_stated == 0 and not wrong.hit and wrong.contradictions == ["south"]
    half = score_reply(MILL, "Up north somewhere", character="bram", condition="base")
    assert half.facts_stated == 1 and half.hit and not half.complete


def test_speaking_as_the_player_or_another_character() -> None:
    names, others = ["Bram"], ["Mara", "Wren"]
    as_player = score_reply(
        MILL,
        "North.\nPlayer: And then?",
        character="bram",
        condition="prompt",
        names=names,
        others=others,
    )
    assert as_player.as_player and as_player.as_other is None
    as_mara = score_reply(
        MILL,
        "North.\nMara: He means the river bend.",
        character="bram",
        condition="prompt",
        names=names,
        others=others,
    )
    assert as_mara.as_other == "Mara" and not as_mara.as_player
    quoted = score_reply(
        MILL,
        "(Wren says) North, boss.",
        character="bram",
        condition="prompt",
        names=names,
        others=others,
    )
    assert quoted.as_other == "Wren"
    own = score_reply(
        MILL,
        "Bram: North. Mind you, it's a walk.",
        character="bram",
        condition="prompt",
        names=names,
        others=others,
    )
    assert own.as_other is None and not own.as_player


def test_summary_rates() -> None:
    scores = [
        score_reply(MILL, text, character="bram", condition="adapter")
        for text in ("North by the river bend.", "South.", "I don't know", "North.")
    ]
    for s, who in zip(scores, ["bram", "bram", "mara", OTHERS], strict=True):
        s.attributed = who
    s = summarize(scores)
    assert s["replies"] == 4
    assert s["key_facts"] == 0.5 and s["contradictions"] == 0.25
    assert s["attribution"] == 0.5 and s["complete"] == 0.75
    assert s["key_fact_recall"] == round(3 / 8, 3)


def test_the_classifier_learns_from_the_scripts_and_never_from_the_player(cast) -> None:
    lines = script_lines(DEFAULT_QUESTIONS.parent, cast)
    assert set(lines) == {"bram", "mara", "wren", OTHERS}
    assert all(len(lines[c]) > 100 for c in ("bram", "mara", "wren"))
    everything = "\n".join(t for ls in lines.values() for t in ls)
    assert "<<" not in everything and "#line:" not in everything
    scripts = (DEFAULT_QUESTIONS.parent / "scripts").glob("*.script")
    player = [
        line.split(":", 1)[1].strip()
        for f in scripts
        for line in f.read_text().splitlines()
        if line.startswith("PLAYER:")
    ]
    assert player and not set(player) & set(everything.splitlines())


def test_prompts_per_condition(cast) -> None:
    bram = cast["bram"]
    follow = next(q for q in load_questions(DEFAULT_QUESTIONS / "bram.toml").questions if q.history)
    full = messages_for(bram, follow, "prompt")
    assert full[0].content.startswith("You are Bram.") and len(full[0].content) > 100
    assert follow.history[0][1] in "\n".join(m.content for m in full if m.role == "assistant")
    assert full[-1].content.endswith(follow.question)
    base = messages_for(bram, follow, "base")
    assert base[0].content == "You are Bram." and base[-1].content == follow.question


def test_prompt_conditions_carry_the_lore_the_daemon_would_select(cast) -> None:
    """`adapter` and `prompt` see the lore the daemon puts in a prompt for the same
    words (keys matched in the conversation, within the budget); `base` sees none."""
    # an adapter that does not say how it was trained is served the daemon's budget
    bram = cast["bram"].model_copy(update={"adapter": AdapterRef(name="bram", version="v9")})
    entry = next(e for e in bram.lore if "mill" in e.keys)
    asked = Question(id="q-lore", kind="town", question="Who saw the mill burn?", key_facts=())
    for condition in ("adapter", "prompt"):
        msgs = messages_for(bram, asked, condition)
        late = msgs[-2]
        assert late.role == "system" and entry.content in late.content
        assert msgs[-1].content == asked.question
    assert all(entry.content not in m.content for m in messages_for(bram, asked, "base"))
    # the shipped adapter was trained without lore: its condition gets none, as served
    shipped = cast["bram"]
    assert shipped.adapter is not None and shipped.adapter.lore_budget_tokens == 0
    assert all(entry.content not in m.content for m in messages_for(shipped, asked, "adapter"))
    assert any(entry.content in m.content for m in messages_for(shipped, asked, "prompt"))
    unrelated = Question(id="q-none", kind="trade", question="Good morning!", key_facts=())
    assert all(entry.content not in m.content for m in messages_for(bram, unrelated, "prompt"))
    starved = messages_for(bram, asked, "prompt", lore_budget=0)
    assert all(entry.content not in m.content for m in starved)


def test_orchestration_scores_attributes_and_reports(cast, tmp_path: Path) -> None:
    """Fake replies (the orchestration only): a cut reply is trimmed, every condition
    is scored and attributed, the report holds tables and a plot per character."""
    long = "North, by the river bend. " + "and the road goes on " * 30

    def reply(req):
        return long if req.adapter else "Down south."

    llm = FakeLLM(reply=reply)
    sets = {"bram": load_questions(DEFAULT_QUESTIONS / "bram.toml").subset(3)}
    lines = script_lines(DEFAULT_QUESTIONS.parent, cast)
    result = evaluate_cast(llm, cast, sets, adapters={"bram": "bram@v1"}, lines=lines, grace=4)
    summary = result["characters"]["bram"]["summary"]
    assert set(summary) == {"adapter", "prompt", "base"}
    assert summary["adapter"]["cut"] == 3 and summary["adapter"]["complete"] == 1.0
    # the budget alone would have stopped all three mid-sentence; the short ones never
    assert summary["adapter"]["unfinished_at_budget"] == 3
    assert summary["prompt"]["unfinished_at_budget"] == 0
    replies = result["characters"]["bram"]["replies"]["adapter"]
    assert {r["reply"] for r in replies} == {"North, by the river bend."}
    assert all(
        r["attributed"] for rs in result["characters"]["bram"]["replies"].values() for r in rs
    )
    assert llm.requests[0].params.max_tokens == cast["bram"].generation.max_tokens + 4
    written = write_report(result, tmp_path, title="t")
    md = (tmp_path / "report.md").read_text()
    assert "| adapter + prompt | 3 |" in md and "![bram](bram.png)" in md
    assert (tmp_path / "bram.png").stat().st_size > 1000
    assert (
        json.loads((tmp_path / "report.json").read_text())["characters"]["bram"]["questions"] == 3
    )
    assert len(written) == 3
    # old cast against new, side by side (docs/characters.md)
    from personae.training.evaluation.compare import tables

    table = tables({"v1": result, "v2": result}).splitlines()
    assert table[0].count("v1:") == 3 and table[0].count("v2:") == 3
    adapter_hits = f"{summary['adapter']['key_facts'] * 100:.0f}%"
    assert table[2].startswith("| key facts hit | " + adapter_hits)


@pytest.mark.models
def test_personae_eval_on_the_real_engine(tmp_path: Path) -> None:
    """The bundled base and the cast's adapters through the CLI: every reply ends on a
    complete sentence, the report is written."""
    from typer.testing import CliRunner

    from personae.sdk.cli import load_commands

    out = tmp_path / "report"
    result = CliRunner().invoke(
        load_commands(),
        ["eval", "wren", "--questions", "2", "--conditions", "adapter,base", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    wren = report["characters"]["wren"]
    assert set(wren["summary"]) == {"adapter", "base"}
    for replies in wren["replies"].values():
        assert len(replies) == 2
        assert all(r["reply"] and r["complete"] for r in replies)
    assert (out / "wren.png").is_file()


def test_a_run_s_own_lines_train_the_classifier(tmp_path: Path) -> None:
    from personae.training.evaluation.references import run_lines

    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": line}]}
        for line in ("Mind the sparks.", "Bent steel can be saved.")
    ]
    folder = tmp_path / "dataset" / "bram"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_lines(tmp_path, ["bram", "mara"]) == {
        "bram": ["Mind the sparks.", "Bent steel can be saved."]
    }
