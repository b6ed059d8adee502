"""Attribution scoring, exports, the character file writer and the CLI (no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from personae.daemon.characters import VoiceConfig, default_cast_dir, load_cast, load_character
from personae.training.cli import app
from personae.training.evaluate import StyleClassifier, attribution_report
from personae.training.export import export_axolotl, export_hosted
from personae.training.recipe import LoraConfigSection, TrainConfig
from personae.training.store import character_toml

from .conftest import write_recipe

LINES = {
    "bram": [
        "Iron doesn't lie.",
        "Shut the door.",
        "Fire's hungry tonight.",
        "Good iron rings.",
        "Honest work, honest pay.",
    ],
    "wren": [
        "Oi, guess what I heard!",
        "Keep your hair on, boss.",
        "Proper sucking bog, innit?",
        "I'm the clever people.",
        "Row, Toby, row!",
    ],
}


def test_classifier_and_attribution_report_compare_conditions() -> None:
    clf = StyleClassifier(LINES)
    assert clf.predict(
        ["The iron is hungry, shut the fire door.", "Oi boss, guess what, innit!"]
    ) == ["bram", "wren"]

    def generate(adapter: str | None, messages: list[dict[str, str]]) -> str:
        # adapters speak in character; the prompt-only model speaks like nobody in particular
        if adapter == "bram":
            return "Iron and fire. Honest work."
        if adapter == "wren":
            return "Oi boss, guess what I heard, innit!"
        return (
            "Iron doesn't lie."
            if "Bram" in messages[0]["content"]
            else "Iron and honest work, I think."
        )

    prompts = {
        cid: [
            [
                {"role": "system", "content": f"You are {cid.title()}."},
                {"role": "user", "content": "Hello?"},
            ]
        ]
        * 3
        for cid in LINES
    }
    report = attribution_report(LINES, prompts, generate, {"bram": "bram", "wren": "wren"})
    assert report["accuracy"] == {"adapter": 1.0, "prompt_only": 0.5}
    assert report["per_character"]["wren"] == {"adapter": 1.0, "prompt_only": 0.0}
    assert report["replies_per_condition"] == 6 and report["samples"]


def _dataset(tmp_path: Path) -> tuple[Path, Path]:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": f"Q{i}"},
                {"role": "assistant", "content": f"A{i}"},
            ]
        }
        for i in range(3)
    ]
    for name in ("train.jsonl", "val.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "train.jsonl", tmp_path / "val.jsonl"


def test_axolotl_export(tmp_path: Path) -> None:
    train, val = _dataset(tmp_path)
    config = export_axolotl(
        tmp_path / "ax",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        train_file=train,
        val_file=val,
        lora=LoraConfigSection(),
        train=TrainConfig(),
    )
    assert "&id" not in config.read_text()  # plain YAML, no anchors
    data = yaml.safe_load(config.read_text())
    assert data["adapter"] == "lora" and data["lora_r"] == 16 and data["lora_alpha"] == 32
    assert data["lora_target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert data["datasets"][0]["type"] == "chat_template" and data["datasets"][0][
        "roles_to_train"
    ] == ["assistant"]
    assert (tmp_path / "ax" / data["datasets"][0]["path"]).is_file() and (
        tmp_path / "ax" / "val.jsonl"
    ).is_file()
    q = export_axolotl(
        tmp_path / "q",
        base_model="b",
        train_file=train,
        val_file=val,
        lora=LoraConfigSection(quantization="nf4"),
        train=TrainConfig(),
    )
    assert yaml.safe_load(q.read_text())["adapter"] == "qlora"


def test_hosted_export(tmp_path: Path) -> None:
    train, val = _dataset(tmp_path)
    paths = export_hosted(tmp_path / "hosted", train_file=train, val_file=val)
    assert [p.name for p in paths] == ["train.jsonl", "validation.jsonl"]
    row = json.loads(paths[0].read_text().splitlines()[0])
    assert row == {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Q0"},
            {"role": "assistant", "content": "A0"},
        ]
    }


def test_character_file_round_trips_with_adapter_and_voice(tmp_path: Path) -> None:
    for ch in load_cast([default_cast_dir()]).values():
        voice = VoiceConfig(rate=1.2, pitch=1.18)
        (tmp_path / f"{ch.id}.toml").write_text(character_toml(ch, voice=voice, version="v3"))
        back = load_character(tmp_path / f"{ch.id}.toml")
        assert back.model_copy(update={"voice": ch.voice, "adapter": ch.adapter}) == ch
        assert back.voice == voice and back.adapter is not None and back.adapter.version == "v3"


def test_cli_stages_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    recipe = write_recipe(tmp_path)
    result = runner.invoke(app, ["ingest", str(recipe), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["extract", str(recipe), "-q"])
    assert result.exit_code == 0, result.output
    counts = json.loads((tmp_path / "run/state.json").read_text())["extract"]["counts"]
    assert (
        counts["dialogue:bram"] > 15
        and counts["dialogue:wren"] > 15
        and counts["dialogue:mara"] > 10
    )
    # a stage run again is skipped, a missing earlier stage is named
    assert runner.invoke(app, ["extract", str(recipe)]).exit_code == 0
    (tmp_path / "x").mkdir()
    other = write_recipe(tmp_path / "x")
    result = runner.invoke(app, ["extract", str(other), "-q"])
    assert result.exit_code == 2 and "run the ingest stage first" in result.output

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "b"\nsources = []\ncharacters = []\n')
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and "sources" in result.output and "characters" in result.output

    (tmp_path / "y").mkdir()
    missing = write_recipe(tmp_path / "y", sources=(tmp_path / "gone.epub",))
    result = runner.invoke(app, ["ingest", str(missing)])
    assert result.exit_code == 2 and "gone.epub" in result.output and "not found" in result.output
    assert not (tmp_path / "y" / "run" / "ingest").exists()


def test_character_who_never_speaks_is_named_and_extraction_is_kept(tmp_path: Path) -> None:
    from personae.training.dataset import approx_token_counter, build_character_dataset
    from personae.training.errors import CharacterDataError
    from personae.training.pipeline import Pipeline
    from personae.training.recipe import load_recipe

    nobody = tmp_path / "nobody.toml"
    nobody.write_text('id = "nobody"\nname = "Zebedee"\ndescription = "Never in the story."\n')
    recipe = write_recipe(tmp_path)
    recipe.write_text(
        recipe.read_text().replace(
            '[[characters]]\nid = "wren"',
            f'[[characters]]\nid = "nobody"\nfile = "{nobody}"\n\n[[characters]]\nid = "wren"',
        )
    )
    p = Pipeline(load_recipe(recipe), show_progress=False)
    p.ingest()
    p.extract()
    with pytest.raises(
        CharacterDataError, match=r"'nobody' \(Zebedee\) has no usable lines in hollowmere.md"
    ):
        build_character_dataset(
            p.characters["nobody"],
            p.examples(),
            p.recipe.dataset,
            approx_token_counter,
            sources=["hollowmere.md"],
        )
    assert (p.run / "extract/dialogue.jsonl").is_file() and p.run.is_done(
        "extract", p.run.state()["extract"]["fingerprint"]
    )
