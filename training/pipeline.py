"""The stages of a run, each runnable alone, each resumable.

    ingest -> extract (dialogue, rewrite, qa) -> dataset -> fit (per character) -> evaluate
                                                                         export (on demand)

A stage is skipped when the run directory records it done with the same fingerprint
(its recipe sections and its inputs); `force=True` reruns it. Teacher-driven strategies
append each item as it arrives, so a teacher that goes down mid-way loses nothing and
the next run asks only for what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from personae.daemon.characters import Character
from personae.training.dialogue import Attributor, Speaker
from personae.training.errors import SourceError, TrainingError
from personae.training.guard import stage
from personae.training.ingest import Chapter, ingest_file
from personae.training.ingest.readers import SCENE_SUFFIXES
from personae.training.ingest.scenes import read_scenes
from personae.training.recipe import Recipe
from personae.training.rundir import (
    RunDir,
    read_jsonl,
    write_json,
    write_jsonl,
)
from personae.training.stages import dataset as dataset_stage
from personae.training.stages import evaluate as evaluate_stage
from personae.training.stages import extract as extract_stage
from personae.training.stages import fit as fit_stage
from personae.training.stages import report as report_stage
from personae.training.stages.fingerprint import digest, file_digest

STAGES = ("ingest", "extract", "dataset", "fit", "evaluate")


class Pipeline:
    def __init__(
        self, recipe: Recipe, *, console: Console | None = None, show_progress: bool = True
    ) -> None:
        self.recipe = recipe
        self.run = RunDir(recipe.run_dir)
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress
        self._characters: dict[str, Character] | None = None

    # --- helpers ---------------------------------------------------------------------
    @property
    def characters(self) -> dict[str, Character]:
        if self._characters is None:
            self._characters = self.recipe.load_characters()
        return self._characters

    def progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.show_progress,
            transient=False,
        )

    def say(self, msg: str) -> None:
        if self.show_progress:
            self.console.print(msg)

    def skip(self, stage: str, fp: str, force: bool) -> bool:
        if not force and self.run.is_done(stage, fp):
            self.say(f"[dim]{stage}: done already (run directory {self.run.root}), skipped[/dim]")
            return True
        return False

    def speakers(self) -> list[Speaker]:
        return [
            Speaker.from_character(self.characters[t.id], t.pronouns, t.aliases)
            for t in self.recipe.characters
        ]

    def attributor(self, chapters: list[Chapter]) -> Attributor:
        narrator = self.recipe.strategies.dialogue.narrator
        speakers = self.speakers()
        if narrator and narrator not in {sp.id for sp in speakers}:
            speakers.append(Speaker(narrator, (), "they"))
        return Attributor(
            speakers, extra_names=_ner_names(self.recipe, chapters), narrator=narrator
        )

    def chapters(self) -> list[Chapter]:
        path = self.run / "ingest/chapters.jsonl"
        if not path.is_file():
            raise TrainingError(f"{path} is missing: run the ingest stage first")
        return [Chapter.from_dict(d) for d in read_jsonl(path)]

    # --- ingest ----------------------------------------------------------------------
    @stage("ingest")
    def ingest(self, force: bool = False) -> list[Chapter]:
        sources = self.recipe.source_paths
        for path in sources:
            if not path.is_file():
                raise SourceError(f"{path}: source file not found (recipe sources)")
        fp = digest([file_digest(p) for p in sources])
        if self.skip("ingest", fp, force):
            return self.chapters()
        chapters: list[Chapter] = []
        with self.progress() as bar:
            task = bar.add_task("ingest", total=len(sources))
            reports: dict[str, dict] = {}
            scenes: list = []
            for path in sources:
                report: dict = {}
                if path.suffix.lower() in SCENE_SUFFIXES:
                    found = read_scenes(path)
                    scenes += found
                    reports[path.name] = {
                        "scenes": len(found),
                        "lines": sum(len(sc.lines) for sc in found),
                    }
                    bar.advance(task)
                    continue
                for ch in ingest_file(path, report):
                    chapters.append(Chapter(ch.source, len(chapters), ch.title, ch.text, ch.offset))
                reports[path.name] = report
                bar.advance(task)
        write_jsonl(self.run / "ingest/chapters.jsonl", (c.to_dict() for c in chapters))
        write_jsonl(self.run / "ingest/scenes.jsonl", (sc.to_dict() for sc in scenes))
        write_json(self.run / "ingest/report.json", reports)
        for name, r in reports.items():
            what = (
                f"{r['scenes']} scenes, {r['lines']} lines with written speakers"
                if "scenes" in r
                else _describe_cleaning(r)
            )
            self.say(escape(f"ingest: {name}: {what}"))
        words = sum(len(c.text.split()) for c in chapters)
        self.run.mark_done("ingest", fp, chapters=len(chapters), words=words)
        self.say(f"ingest: {len(sources)} files, {len(chapters)} chapters, {words} words")
        return chapters

    # --- extract ---------------------------------------------------------------------
    @stage("extract")
    def extract(self, force: bool = False) -> dict[str, int]:
        return extract_stage.extract(self, force)

    def examples(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for name in ("dialogue", "rewrite", "qa", "script", "lore"):
            path = self.run / f"extract/{name}.jsonl"
            if path.is_file():
                rows += [r for r in read_jsonl(path) if r.get("accepted", True)]
        return rows

    # --- dataset ---------------------------------------------------------------------
    @stage("dataset")
    def dataset(self, force: bool = False) -> dict[str, dict[str, Any]]:
        return dataset_stage.dataset(self, force)

    # --- fit -------------------------------------------------------------------------
    def adapters_dir(self) -> Path:
        if self.recipe.output.adapters_dir is not None:
            return self.recipe.path(self.recipe.output.adapters_dir)
        from personae.daemon.settings import Settings

        return Settings().resolved_adapters_dir

    @stage("fit")
    def fit(self, only: list[str] | None = None, force: bool = False) -> dict[str, Path]:
        return fit_stage.fit(self, only, force)

    # --- evaluate --------------------------------------------------------------------
    @stage("evaluate")
    def evaluate(self, force: bool = False) -> dict[str, Any]:
        return evaluate_stage.evaluate(self, force)

    # --- report ----------------------------------------------------------------------
    def write_report(self) -> Path:
        return report_stage.write_report(self)

    def all(self, force: bool = False) -> dict[str, Any]:
        self.ingest(force)
        self.extract(force)
        self.dataset(force)
        adapters = self.fit(force=force)
        report = self.evaluate(force) if self.recipe.evaluation.enabled else None
        self.write_report()
        return {"adapters": adapters, "report": report}


def _ner_names(recipe: Recipe, chapters: list[Chapter]) -> list[str]:
    """PERSON names from a spaCy model, when the recipe names one that is installed."""
    model = recipe.strategies.dialogue.ner_model
    if not model:
        return []
    try:
        import spacy

        nlp = spacy.load(model)
    except (ImportError, OSError) as exc:
        raise TrainingError(
            f"strategies.dialogue.ner_model = {model!r} cannot be loaded: {exc}"
        ) from exc
    names: set[str] = set()
    for ch in chapters:
        for ent in nlp(ch.text).ents:
            if ent.label_ == "PERSON" and ent.text[:1].isupper():
                names.add(ent.text.strip())
    return sorted(names)


def _describe_cleaning(r: dict) -> str:
    """One line of what cleaning found and removed in a file."""
    parts = [f"{r.get('paragraphs', 0)} paragraphs", f"{len(r.get('chapters', []))} chapters"]
    g = r.get("gutenberg", {})
    if g.get("header_chars") or g.get("licence_chars"):
        parts.append(
            f"Gutenberg header {g.get('header_chars', 0)} chars and licence "
            f"{g.get('licence_chars', 0)} chars removed"
        )
    if r.get("page_numbers"):
        parts.append(f"{r['page_numbers']} page numbers removed")
    if r.get("running_headers"):
        heads = ", ".join(f"{k!r} x{v}" for k, v in list(r["running_headers"].items())[:3])
        parts.append(f"running headers removed: {heads}")
    if r.get("boilerplate_lines"):
        parts.append(f"{r['boilerplate_lines']} boilerplate lines removed")
    return "; ".join(parts)
