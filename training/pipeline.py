"""The stages of a run, each runnable alone, each resumable.

    ingest -> extract (dialogue, rewrite, qa) -> dataset -> fit (per character) -> evaluate
                                                                         export (on demand)

A stage is skipped when the run directory records it done with the same fingerprint
(its recipe sections and its inputs); `force=True` reruns it. Teacher-driven strategies
append each item as it arrives, so a teacher that goes down mid-way loses nothing and
the next run asks only for what is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from personae.daemon.adapters.files import WEIGHTS_FILE
from personae.daemon.characters import Character
from personae.training.dialogue import Attributor, Speaker, dialogue_examples, extract_all
from personae.training.errors import CharacterDataError, SourceError, TeacherError, TrainingError
from personae.training.guard import stage
from personae.training.ingest import Chapter, ingest_file
from personae.training.ingest.readers import SCENE_SUFFIXES
from personae.training.ingest.scenes import read_scenes
from personae.training.recipe import Recipe
from personae.training.rundir import (
    RunDir,
    append_jsonl,
    read_jsonl,
    write_atomic,
    write_json,
    write_jsonl,
)

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

    def _skip(self, stage: str, fp: str, force: bool) -> bool:
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
        fp = _digest([_file_digest(p) for p in sources])
        if self._skip("ingest", fp, force):
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
        chapters = self.chapters()
        fp = _digest(
            [
                self.recipe.fingerprint("characters", "strategies", "teacher"),
                self.run.state().get("ingest", {}).get("fingerprint", ""),
                *self._lore_digest(),
            ]
        )
        if self._skip("extract", fp, force):
            return self.run.state()["extract"]["counts"]
        counts: Counter[str] = Counter()
        counts.update(self._scripted_and_lore())
        targets = {t.id for t in self.recipe.characters}
        attributor = self.attributor(chapters)
        per_chapter = extract_all(chapters, attributor)
        s = self.recipe.strategies

        if s.dialogue.enabled:
            rows = []
            methods: Counter[str] = Counter()
            for ch, utts in zip(chapters, per_chapter, strict=True):
                methods.update(u.method for u in utts)
                rows += dialogue_examples(
                    ch, utts, targets, context_paragraphs=s.dialogue.context_paragraphs
                )
            write_jsonl(self.run / "extract/dialogue.jsonl", rows)
            counts.update(f"dialogue:{r['character']}" for r in rows)
            utter = [u for us in per_chapter for u in us]
            write_json(
                self.run / "extract/attribution.json",
                {
                    "utterances": len(utter),
                    "attributed": sum(1 for u in utter if u.speaker),
                    "by_method": dict(methods),
                    "by_speaker": dict(Counter(u.speaker or "(unattributed)" for u in utter)),
                },
            )
        if s.rewrite.enabled:
            counts.update(self._rewrite(chapters, attributor))
        if s.qa.enabled:
            counts.update(self._qa(chapters))
        self.run.mark_done("extract", fp, counts=dict(counts))
        self.say("extract: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return dict(counts)

    def _lore_digest(self) -> list[str]:
        """The lore bible is read at extract (not ingest): its content reruns the stage."""
        lore = self.recipe.strategies.lore
        if not lore.enabled or lore.bible is None or not self.recipe.path(lore.bible).is_file():
            return []
        return [_file_digest(self.recipe.path(lore.bible))]

    def _scripted_and_lore(self) -> Counter[str]:
        """Examples whose speakers are explicit (scripts) and offline lore Q&A."""
        from personae.training.ingest.scenes import Scene
        from personae.training.lore_qa import lore_examples
        from personae.training.scripted import scripted_examples

        s = self.recipe.strategies
        counts: Counter[str] = Counter()
        names = {
            cid: (c.name.split()[0], self.recipe.target(cid).pronouns)
            for cid, c in self.characters.items()
        }
        scenes_path = self.run / "ingest/scenes.jsonl"
        if s.script.enabled and scenes_path.is_file():
            speakers = {cid: cid for cid in names} | {
                n.lower(): cid for cid, (n, _) in names.items()
            }
            rows = scripted_examples(
                (Scene.from_dict(d) for d in read_jsonl(scenes_path)), speakers
            )
            write_jsonl(self.run / "extract/script.jsonl", rows)
            counts.update(f"script:{r['character']}" for r in rows)
        if s.lore.enabled:
            if s.lore.bible is None:
                raise TrainingError("strategies.lore.enabled needs strategies.lore.bible (a path)")
            bible = self.recipe.path(s.lore.bible)
            if not bible.is_file():
                raise SourceError(f"{bible}: lore bible not found (recipe strategies.lore.bible)")
            rows = lore_examples(bible.read_text(encoding="utf-8"), names, source=bible.name)
            write_jsonl(self.run / "extract/lore.jsonl", rows)
            counts.update(f"lore:{r['character']}" for r in rows)
        return counts

    def _rewrite(self, chapters: list[Chapter], attributor: Attributor) -> Counter[str]:
        from personae.training import rewrite

        cfg = self.recipe.strategies.rewrite
        out_path = self.run / "extract/rewrite.jsonl"
        done = {r["id"]: r for r in read_jsonl(out_path)} if out_path.is_file() else {}
        everyone = list(attributor.speakers.values())
        todo = []
        for sp in self.speakers():
            found = [
                (ch, off, p) for ch in chapters for off, p in rewrite.passages(ch, sp, attributor)
            ]
            todo += [(sp, ch, off, p) for ch, off, p in found[: cfg.max_passages]]
        counts: Counter[str] = Counter()
        teacher = None
        if cfg.mode == "teacher":
            from personae.training.teacher import Teacher

            teacher = Teacher(self.recipe.teacher)  # type: ignore[arg-type]
        try:
            with self.progress() as bar:
                task = bar.add_task(f"rewrite ({cfg.mode})", total=len(todo))
                for sp, ch, off, para in todo:
                    item_id = f"{sp.id}:{ch.index}:{off}"
                    if item_id not in done:
                        character = self.characters[sp.id]
                        if teacher is not None:
                            text = teacher.chat(
                                rewrite.teacher_messages(
                                    para, sp, character.name, character.speaking_style
                                )
                            )
                        else:
                            text = rewrite.rule_rewrite(
                                para, sp, everyone, narrator=attributor.narrator
                            )
                        problems = (
                            ["not rewritable by rule"]
                            if text is None
                            else rewrite.third_person_problems(
                                text, sp, narrator=sp.id == attributor.narrator
                            )
                        )
                        row = {
                            "id": item_id,
                            "character": sp.id,
                            "strategy": "rewrite",
                            "user": rewrite.prompt_for(off),
                            "assistant": text or "",
                            "accepted": not problems,
                            "problems": problems,
                            "provenance": {
                                "file": ch.source,
                                "chapter": ch.index,
                                "chapter_title": ch.title,
                                "offset": off,
                            },
                        }
                        append_jsonl(out_path, row)  # saved at once: a failure later loses nothing
                        done[item_id] = row
                    counts[
                        f"rewrite:{sp.id}"
                        if done[item_id]["accepted"]
                        else f"rewrite rejected:{sp.id}"
                    ] += 1
                    bar.advance(task)
        finally:
            if teacher is not None:
                teacher.close()
        return counts

    def _qa(self, chapters: list[Chapter]) -> Counter[str]:
        from personae.training import qa
        from personae.training.teacher import Teacher, parse_json_reply

        cfg = self.recipe.strategies.qa
        out_path = self.run / "extract/qa.jsonl"
        done = {r["id"] for r in read_jsonl(out_path)} if out_path.is_file() else set()
        counts: Counter[str] = Counter()
        for r in read_jsonl(out_path) if out_path.is_file() else []:
            counts[
                f"qa:{r['character']}" if r["accepted"] else f"qa rejected:{r['character']}"
            ] += 1
        with Teacher(self.recipe.teacher) as teacher, self.progress() as bar:  # type: ignore[arg-type]
            jobs = [
                (sp, ch, off, text)
                for sp in self.speakers()
                for ch, off, text in qa.chunks(chapters, sp.names)[: cfg.max_chunks]
            ]
            task = bar.add_task("grounded Q&A (teacher)", total=len(jobs))
            for sp, ch, off, text in jobs:
                chunk_id = f"{sp.id}:{ch.index}:{off}"
                if any(d.startswith(chunk_id + "#") for d in done):
                    bar.advance(task)
                    continue
                character = self.characters[sp.id]
                reply = teacher.chat(
                    qa.teacher_messages(
                        text, character.name, character.speaking_style, cfg.questions_per_chunk
                    )
                )
                try:
                    pairs = parse_json_reply(reply)
                    if not isinstance(pairs, list):
                        raise ValueError("not a list")
                except ValueError as exc:
                    raise TeacherError(
                        f"teacher endpoint {self.recipe.teacher.base_url} (recipe teacher.base_url) "  # type: ignore[union-attr]
                        f"did not return the JSON list asked for ({exc}): {reply[:200]}"
                    ) from exc
                for i, pair in enumerate(pairs):
                    q, a = str(pair.get("question", "")), str(pair.get("answer", ""))
                    share, missing = qa.support(a, text, sp.names)
                    accepted = bool(q and a) and share >= cfg.min_support and not missing
                    append_jsonl(
                        out_path,
                        {
                            "id": f"{chunk_id}#{i}",
                            "character": sp.id,
                            "strategy": "qa",
                            "user": q,
                            "assistant": a,
                            "accepted": accepted,
                            "support": round(share, 3),
                            "unsupported_names": missing,
                            "provenance": {
                                "file": ch.source,
                                "chapter": ch.index,
                                "chapter_title": ch.title,
                                "offset": off,
                            },
                        },
                    )
                    counts[f"qa:{sp.id}" if accepted else f"qa rejected:{sp.id}"] += 1
                bar.advance(task)
        return counts

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
        from personae.training.base import load_tokenizer, resolve_base
        from personae.training.dataset import (
            build_character_dataset,
            chat_token_counter,
            write_character_dataset,
        )

        fp = _digest(
            [
                self.recipe.fingerprint("dataset", "characters"),
                self.run.state().get("extract", {}).get("fingerprint", ""),
                *(_character_digest(c) for c in self.characters.values()),
            ]
        )
        if self._skip("dataset", fp, force):
            return {
                cid: json.loads((self.run / f"dataset/{cid}/card.json").read_text())
                for cid in self.characters
            }
        examples, overlapping = self._without_heldout(self.examples())
        counter = chat_token_counter(load_tokenizer(resolve_base(self.recipe.base_model)))
        cards = {}
        errors = []
        for t in self.recipe.characters:
            ch = self.characters[t.id]
            try:
                ds = build_character_dataset(
                    ch,
                    examples,
                    self.recipe.dataset,
                    counter,
                    min_examples=t.min_examples,
                    sources=[p.name for p in self.recipe.source_paths],
                )
            except CharacterDataError as exc:
                errors.append(str(exc))
                continue
            if overlapping[t.id]:
                ds.dropped["overlaps a held-out question"] += overlapping[t.id]
            cards[t.id] = write_character_dataset(self.run / f"dataset/{t.id}", ds, ch)
            c = cards[t.id]["examples"]
            self.say(f"dataset {t.id}: {c['train']} train, {c['val']} validation")
        if errors:
            # the datasets that could be built are on disk; the stage stays not-done
            raise CharacterDataError("; ".join(errors))
        self.run.mark_done("dataset", fp, examples={k: v["examples"] for k, v in cards.items()})
        return cards

    def _without_heldout(
        self, examples: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], Counter[str]]:
        """Drop examples that overlap a held-out question (dataset.heldout files)."""
        from personae.training.heldout import OverlapChecker, load_heldout

        dropped: Counter[str] = Counter()
        if not self.recipe.dataset.heldout:
            return examples, dropped
        paths = []
        for p in self.recipe.dataset.heldout:
            found = sorted(self.recipe.path(p.parent).glob(p.name))
            if not found:
                raise SourceError(
                    f"{self.recipe.path(p)}: no held-out file (recipe dataset.heldout)"
                )
            paths += found
        checker = OverlapChecker(load_heldout(paths))
        kept, removed = [], []
        for ex in examples:
            hit = checker.overlaps([ex])
            if hit:
                dropped[ex["character"]] += 1
                removed.append({**ex, "heldout": hit[0][1]})
            else:
                kept.append(ex)
        write_jsonl(self.run / "dataset/heldout_dropped.jsonl", removed)
        self.say(f"dataset: {len(removed)} examples overlap held-out questions, dropped")
        return kept, dropped

    # --- fit -------------------------------------------------------------------------
    def adapters_dir(self) -> Path:
        if self.recipe.output.adapters_dir is not None:
            return self.recipe.path(self.recipe.output.adapters_dir)
        from personae.daemon.settings import Settings

        return Settings().resolved_adapters_dir

    @stage("fit")
    def fit(self, only: list[str] | None = None, force: bool = False) -> dict[str, Path]:
        import torch
        from transformers import AutoModelForCausalLM

        from personae.training.base import resolve_base
        from personae.training.fit import fit_adapter
        from personae.training.store import (
            check_adapter,
            check_recipe_against_base,
            install_adapter,
        )
        from personae.training.voice import choose_voices

        base_dir = resolve_base(self.recipe.base_model)
        probe = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
        check_recipe_against_base(self.recipe.lora, probe)  # before any time is spent
        voices = choose_voices(list(self.characters.values()))
        store = self.adapters_dir()
        installed: dict[str, Path] = {}
        ids = only or [t.id for t in self.recipe.characters]
        for cid in ids:
            if cid not in self.characters:
                raise TrainingError(
                    f"{cid!r} is not a character of this recipe ({', '.join(self.characters)})"
                )
            data = self.run / f"dataset/{cid}"
            if not (data / "train.jsonl").is_file():
                raise TrainingError(f"{data}/train.jsonl is missing: run the dataset stage first")
            stage = f"fit:{cid}"
            fp = _digest(
                [
                    self.recipe.fingerprint("lora", "train", "output"),
                    _file_digest(data / "train.jsonl"),
                    _file_digest(data / "val.jsonl"),
                ]
            )
            target = store / cid / self.recipe.output.version
            if not force and self.run.is_done(stage, fp) and (target / WEIGHTS_FILE).is_file():
                self.say(f"[dim]fit {cid}: done already, adapter at {target}[/dim]")
                installed[cid] = target
                continue
            self.say(f"fit {cid}: training (progress below; interrupt and rerun to resume)")
            result = fit_adapter(
                base_dir=base_dir,
                train_file=data / "train.jsonl",
                val_file=data / "val.jsonl",
                out_dir=self.run / f"fit/{cid}",
                lora=self.recipe.lora,
                train=self.recipe.train,
                show_progress=self.show_progress,
            )
            check = check_adapter(result.adapter_dir, probe, cast_mates=dict(installed))
            target = install_adapter(
                adapter_dir=result.adapter_dir,
                store=store,
                character=self.characters[cid],
                version=self.recipe.output.version,
                base_dir=base_dir,
                lora=self.recipe.lora,
                voice=voices[cid],
                metrics=result.metrics,
                check=check,
            )
            self.run.mark_done(stage, fp, adapter=str(target), metrics=result.metrics)
            installed[cid] = target
            self.say(
                f"fit {cid}: eval loss {result.metrics['eval_loss']} after {result.metrics['steps']} steps, {result.metrics['train_seconds']} s -> {target}"
            )
        return installed

    # --- evaluate --------------------------------------------------------------------
    @stage("evaluate")
    def evaluate(self, force: bool = False) -> dict[str, Any]:
        from personae.daemon.engines.llm_transformers import TransformersLLM
        from personae.training.base import resolve_base
        from personae.training.evaluate import (
            BASE,
            OTHERS,
            attribution_report,
            engine_generator,
            other_speakers_lines,
            perplexity_report,
        )

        store = self.adapters_dir()
        version = self.recipe.output.version
        adapters = {t.id: store / t.id / version for t in self.recipe.characters}
        missing = [str(p) for p in adapters.values() if not (p / WEIGHTS_FILE).is_file()]
        if missing:
            raise TrainingError(
                f"no trained adapter at {', '.join(missing)}: run the fit stage first"
            )
        fp = _digest(
            [
                self.recipe.fingerprint("evaluation"),
                *(_file_digest(p / WEIGHTS_FILE) for p in adapters.values()),
            ]
        )
        if self._skip("evaluate", fp, force):
            return json.loads((self.run / "eval/report.json").read_text())
        base_dir = resolve_base(self.recipe.base_model)
        started = time.monotonic()
        val_files = {cid: self.run / f"dataset/{cid}/val.jsonl" for cid in adapters}
        self.say("evaluate: perplexity on held-out lines")
        ppl = perplexity_report(base_dir, adapters, val_files)
        # kept whatever happens next
        write_json(self.run / "eval/report.json", {"perplexity": ppl, "attribution": None})

        cfg = self.recipe.evaluation
        train_lines = {
            cid: [
                r["messages"][-1]["content"]
                for r in read_jsonl(self.run / f"dataset/{cid}/train.jsonl")
            ]
            for cid in adapters
        }
        prompts: dict[str, list[list[dict[str, str]]]] = {}
        for cid in adapters:
            rows = list(read_jsonl(val_files[cid])) + list(
                read_jsonl(self.run / f"dataset/{cid}/train.jsonl")
            )
            prompts[cid] = [r["messages"][:2] for r in rows[: cfg.prompts]]
        self.say(
            f"evaluate: generating {sum(map(len, prompts.values())) * 2} replies for the attribution test"
        )
        llm = TransformersLLM(model_dir=base_dir)
        for cid, path in adapters.items():
            llm.load_adapter(cid, path)
        if len(train_lines) == 1:
            # the classifier needs someone to tell the character from
            others = other_speakers_lines(
                self.chapters(), self.attributor, set(adapters), limit=400
            )
            if len(others) >= 10:
                train_lines[OTHERS] = others
            else:
                (cid,) = adapters
                generate = engine_generator(llm, max_new_tokens=cfg.max_new_tokens, seed=1)
                train_lines[BASE] = [
                    generate(None, r["messages"][:2])
                    for r in list(read_jsonl(self.run / f"dataset/{cid}/train.jsonl"))[
                        : max(10, cfg.prompts)
                    ]
                ]
            self.say(f"evaluate: one character, compared against {next(reversed(train_lines))}")
        with self.progress() as bar:
            task = bar.add_task("attribution replies", total=2 * sum(map(len, prompts.values())))
            attribution = attribution_report(
                train_lines,
                prompts,
                engine_generator(llm, max_new_tokens=cfg.max_new_tokens),
                {cid: cid for cid in adapters},
                on_reply=lambda: bar.advance(task),
            )
        questions = None
        if cfg.questions is not None:  # the same scoring as `personae eval`
            from personae.training.evaluation.stage import question_eval

            self.say("evaluate: the question sets, three conditions")
            questions = question_eval(
                llm,
                self.recipe.load_characters(),
                adapters,
                train_lines,
                self.recipe.path(cfg.questions),
                self.run / "eval/questions",
                per_character=cfg.questions_per_character or None,
            )
        report = {
            "perplexity": ppl,
            "attribution": attribution,
            "questions": questions,
            "seconds": round(time.monotonic() - started, 1),
        }
        write_json(self.run / "eval/report.json", report)
        self.run.mark_done("evaluate", fp)
        self.write_report()
        return report

    # --- report ----------------------------------------------------------------------
    def write_report(self) -> Path:
        state = self.run.state()
        lines = [f"# Run report: {self.recipe.name}", ""]
        if "ingest" in state:
            lines.append(
                f"Sources: {', '.join(p.name for p in self.recipe.source_paths)}: {state['ingest']['chapters']} chapters, {state['ingest']['words']} words."
            )
        if "extract" in state:
            lines += ["", "## Extracted examples", "", "| kind | count |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(state["extract"]["counts"].items())]
            att = self.run / "extract/attribution.json"
            if att.is_file():
                a = json.loads(att.read_text())
                lines += [
                    "",
                    f"Dialogue: {a['utterances']} paragraphs of speech, {a['attributed']} "
                    f"attributed, {a['utterances'] - a['attributed']} left out as unsure "
                    "(not guessed).",
                ]
        for t in self.recipe.characters:
            fit = state.get(f"fit:{t.id}")
            if fit:
                m = fit["metrics"]
                lines += [
                    "",
                    f"## {t.id}",
                    "",
                    f"Adapter: `{fit['adapter']}`; {m['train_examples']} train / {m['val_examples']} validation examples, {m['steps']} steps in {m['train_seconds']} s; validation loss {m['eval_loss']}.",
                    "",
                    f"![loss](fit/{t.id}/loss.png)",
                ]
        rep = self.run / "eval/report.json"
        if rep.is_file():
            r = json.loads(rep.read_text())
            lines += [
                "",
                "## Evaluation",
                "",
                "| character | held-out lines | perplexity base | perplexity adapter | attribution adapter | attribution prompt-only |",
                "|---|---|---|---|---|---|",
            ]
            attribution = r.get("attribution") or {"per_character": {}, "accuracy": {}}
            for cid, p in r["perplexity"].items():
                a = attribution["per_character"].get(cid, {})
                lines.append(
                    f"| {cid} | {p['lines']} | {p['base']} | {p.get('adapter', '-')} | {a.get('adapter', '-')} | {a.get('prompt_only', '-')} |"
                )
            acc = attribution["accuracy"]
            lines += [
                "",
                f"Attribution accuracy over all characters: adapter {acc.get('adapter', '-')}, prompt-only {acc.get('prompt_only', '-')}"
                + (f" (against {attribution['against']})." if attribution.get("against") else "."),
            ]
        if (self.run / "eval/questions/report.md").is_file():
            lines += ["", "Question sets: [eval/questions/report.md](eval/questions/report.md)."]
        path = self.run / "report.md"
        write_atomic(path, "\n".join(lines) + "\n")
        return path

    def all(self, force: bool = False) -> dict[str, Any]:
        self.ingest(force)
        self.extract(force)
        self.dataset(force)
        adapters = self.fit(force=force)
        report = self.evaluate(force) if self.recipe.evaluation.enabled else None
        self.write_report()
        return {"adapters": adapters, "report": report}


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _character_digest(c: Character) -> str:
    return hashlib.sha256(c.model_dump_json().encode()).hexdigest()


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
