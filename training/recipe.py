"""The recipe: one YAML or TOML file that describes a whole training run.

Relative paths in a recipe are relative to the recipe file, so a recipe and its
sources can travel together. Every section has defaults; the smallest recipe names
its sources and its characters:

    name = "hollowmere"
    sources = ["hollowmere.md"]

    [[characters]]
    id = "bram"
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from personae.daemon.characters import Character, default_cast_dir, load_character
from personae.training.errors import RecipeError

Pronouns = Literal["he", "she", "they"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CharacterTarget(_Section):
    #: character id; the character file is `file`, else `<cast_dir>/<id>.toml`
    id: str
    file: Path | None = None
    #: how the text refers to the character besides the name and the file's aliases
    aliases: tuple[str, ...] = ()
    #: third-person pronouns in the text, for pronoun continuity and rewriting
    pronouns: Pronouns = "they"
    #: fewer usable examples than this is an error naming the character
    min_examples: int = Field(5, ge=1)


class DialogueStrategy(_Section):
    enabled: bool = True
    #: narrative paragraphs before a line that may become its user turn
    context_paragraphs: int = Field(2, ge=0, le=10)
    #: use a spaCy NER model for names when one is installed (`ner_model = "en_core_web_sm"`)
    ner_model: str | None = None
    #: id of the book's first-person narrator, whose lines are tagged "said I"; a character
    #: of the recipe or any other id (then that speaker is known only as "I")
    narrator: str | None = None


class RewriteStrategy(_Section):
    enabled: bool = True
    #: "rules" works offline; "teacher" asks the teacher endpoint (rules as fallback off)
    mode: Literal["rules", "teacher"] = "rules"
    max_passages: int = Field(40, ge=0)


class QAStrategy(_Section):
    enabled: bool = False
    questions_per_chunk: int = Field(2, ge=1, le=10)
    max_chunks: int = Field(20, ge=0)
    #: share of an answer's content words that must occur in its source chunk
    min_support: float = Field(0.5, ge=0.0, le=1.0)


class ScriptStrategy(_Section):
    """Dialogue from .script/.yarn sources: speakers are written, nothing is guessed."""

    enabled: bool = True


class LoreStrategy(_Section):
    """Offline Q&A from a lore bible (training/lore_qa.py): no teacher, no network."""

    enabled: bool = False
    #: the bible (Markdown); not listed in `sources`, where prose attribution would read it
    bible: Path | None = None


class Strategies(_Section):
    dialogue: DialogueStrategy = DialogueStrategy()
    rewrite: RewriteStrategy = RewriteStrategy()
    qa: QAStrategy = QAStrategy()
    script: ScriptStrategy = ScriptStrategy()
    lore: LoreStrategy = LoreStrategy()


class TeacherConfig(_Section):
    """Any OpenAI-compatible chat endpoint: vLLM, llama.cpp server, personae's own."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "teacher"
    #: name of the environment variable holding the API key (never the key itself)
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    temperature: float = Field(0.3, ge=0.0, le=2.0)


class DatasetConfig(_Section):
    val_fraction: float = Field(0.15, ge=0.1, le=0.2)
    seed: int = 0
    #: examples longer than this (in base-model tokens, whole conversation) are split at
    #: sentence boundaries into pieces that fit
    max_tokens: int = Field(256, ge=16)
    min_reply_chars: int = Field(2, ge=1)
    max_reply_chars: int = Field(600, ge=10)
    #: held-out evaluation files (`eval/*.toml`); an example whose user turn or reply
    #: overlaps one of their questions (training/heldout.py) is dropped and counted
    heldout: tuple[Path, ...] = ()
    #: tokens of the character's lore placed before each example's player line, as the
    #: daemon places it at serving time (a system message just before the player's
    #: words, `lore_budget_tokens`); 0 = none. Trained with it, the adapter learns to
    #: answer from the lore its prompt will carry instead of ignoring it.
    lore_budget_tokens: int = Field(0, ge=0)


class LoraConfigSection(_Section):
    r: int = Field(16, ge=1, le=256)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    #: "nf4" = QLoRA (4-bit NF4 base through bitsandbytes): CUDA only
    quantization: Literal["none", "nf4"] = "none"


class TrainConfig(_Section):
    epochs: float = Field(3.0, gt=0)
    #: stop after this many optimizer steps (-1: run the epochs)
    max_steps: int = -1
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(256, ge=16)
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    eval_steps: int = Field(10, ge=1)
    early_stopping_patience: int = Field(3, ge=1)
    packing: bool = False
    assistant_only_loss: bool = True
    seed: int = 0
    #: CPU threads torch may use; 0 = leave torch's default
    threads: int = Field(0, ge=0)
    #: compute precision of the forward/backward pass (the LoRA weights stay fp32):
    #: "auto" = bf16 autocast where the hardware has it (CUDA with bf16, or a CPU with
    #: AVX512-BF16/AMX, about 1.4x faster on this project's 2-core CI machine), else fp32
    precision: Literal["auto", "fp32", "bf16"] = "auto"


class EvalConfig(_Section):
    enabled: bool = True
    #: replies generated per character and condition for the attribution test
    prompts: int = Field(8, ge=1)
    max_new_tokens: int = Field(40, ge=4)
    #: folder of <character>.toml question sets (`personae eval`); None = skip that part
    questions: Path | None = None
    #: questions per character from those sets, spread over their kinds; 0 = all
    questions_per_character: int = Field(12, ge=0)


class OutputConfig(_Section):
    #: the run directory (artifacts, state, report); relative to the recipe
    run_dir: Path = Path("runs/default")
    #: adapter store root (`<adapters_dir>/<id>/<version>/`); None = the daemon's default
    adapters_dir: Path | None = None
    version: str = "v1"


class Recipe(_Section):
    name: str
    sources: tuple[Path, ...]
    characters: tuple[CharacterTarget, ...]
    #: where `<id>.toml` character files are looked up; None = the daemon's default cast
    cast_dir: Path | None = None
    #: a transformers model dir; None = the daemon's bundled SmolLM2-135M-Instruct
    base_model: Path | None = None
    strategies: Strategies = Strategies()
    teacher: TeacherConfig | None = None
    dataset: DatasetConfig = DatasetConfig()
    lora: LoraConfigSection = LoraConfigSection()
    train: TrainConfig = TrainConfig()
    evaluation: EvalConfig = EvalConfig()
    output: OutputConfig = OutputConfig()
    #: folder of the recipe file: relative paths are resolved against it
    root: Path = Path(".")

    @field_validator("sources")
    @classmethod
    def _some_sources(cls, v: tuple[Path, ...]) -> tuple[Path, ...]:
        if not v:
            raise ValueError("name at least one source file")
        return v

    @field_validator("characters")
    @classmethod
    def _unique(cls, v: tuple[CharacterTarget, ...]) -> tuple[CharacterTarget, ...]:
        if not v:
            raise ValueError("name at least one target character")
        ids = [c.id for c in v]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"character listed twice: {', '.join(sorted(dup))}")
        return v

    @model_validator(mode="after")
    def _teacher_when_needed(self) -> Recipe:
        s = self.strategies
        if (
            s.qa.enabled or (s.rewrite.enabled and s.rewrite.mode == "teacher")
        ) and not self.teacher:
            raise ValueError(
                "strategies.qa or strategies.rewrite.mode='teacher' needs a [teacher] section"
            )
        return self

    # --- resolved paths -------------------------------------------------------------
    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.root / p).resolve()

    @property
    def source_paths(self) -> list[Path]:
        return [self.path(p) for p in self.sources]

    @property
    def run_dir(self) -> Path:
        return self.path(self.output.run_dir)

    def character_file(self, target: CharacterTarget) -> Path:
        if target.file is not None:
            return self.path(target.file)
        cast = self.path(self.cast_dir) if self.cast_dir else default_cast_dir()
        for suffix in (".toml", ".yaml", ".yml", ".json"):
            candidate = cast / f"{target.id}{suffix}"
            if candidate.is_file():
                return candidate
        raise RecipeError(
            f"characters[{target.id!r}]: no character file {target.id}.toml in {cast}; "
            "set `file` or `cast_dir`"
        )

    def load_characters(self) -> dict[str, Character]:
        out: dict[str, Character] = {}
        for t in self.characters:
            path = self.character_file(t)
            ch = load_character(path)
            if ch.id != t.id:
                raise RecipeError(f"characters[{t.id!r}]: {path} defines id {ch.id!r}")
            out[t.id] = ch
        return out

    def target(self, character_id: str) -> CharacterTarget:
        return next(t for t in self.characters if t.id == character_id)

    def fingerprint(self, *sections: str) -> str:
        """A stable digest of some sections, so a stage reruns when its inputs change."""
        import hashlib

        data = self.model_dump(mode="json", include=set(sections) if sections else None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_recipe(path: Path, **overrides: object) -> Recipe:
    """Read a YAML or TOML recipe; errors name the file and the setting."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise RecipeError(f"{path}: a recipe is a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot parse: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping at the top level")
    data = {**data, **overrides, "root": path.parent.resolve()}
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise RecipeError(f"{path}: {problems}") from exc
