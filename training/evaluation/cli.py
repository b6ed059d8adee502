"""`personae eval`: the cast's evaluation sets against a live engine, with a report.

personae eval                                  # the default cast, transformers engine
personae eval bram --questions 12              # a subset, spread over the kinds
personae eval --engine llamacpp --llamacpp-model base.gguf
personae eval --engine vllm --vllm-url http://gpu:8000/v1
personae eval --characters-dir my_cast --question-dir my_cast/eval --lines runs/x
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)

#: the default cast's evaluation sets (training/examples/hollowmere/eval)
DEFAULT_QUESTIONS = Path(__file__).resolve().parent.parent / "examples" / "hollowmere" / "eval"


def run(
    characters: Annotated[
        list[str] | None, typer.Argument(help="Character ids (default: every one with a set)")
    ] = None,
    question_dir: Annotated[
        Path, typer.Option(help="Folder of <character>.toml evaluation sets")
    ] = DEFAULT_QUESTIONS,
    questions: Annotated[
        int | None,
        typer.Option(help="Questions per character, spread over the kinds (default: all)"),
    ] = None,
    skip: Annotated[
        int,
        typer.Option(help="Skip the first N of the spread order (a disjoint subset, for tuning)"),
    ] = 0,
    conditions: Annotated[
        str, typer.Option(help="Comma-separated: adapter, prompt, base")
    ] = "adapter,prompt,base",
    engine: Annotated[
        str | None,
        typer.Option(help="LLM engine: transformers, llamacpp or vllm (default: settings)"),
    ] = None,
    llamacpp_model: Annotated[str | None, typer.Option(help="GGUF base for llamacpp")] = None,
    vllm_url: Annotated[str | None, typer.Option(help="vLLM server URL for vllm")] = None,
    characters_dir: Annotated[
        list[Path] | None,
        typer.Option(help="Cast folder(s) (default: settings, else the bundled cast)"),
    ] = None,
    adapters_dir: Annotated[Path | None, typer.Option(help="Adapter store")] = None,
    lines: Annotated[
        Path | None,
        typer.Option(
            help="A training run directory whose dataset trains the attribution classifier "
            "(default: the dialogue scripts beside the question folder)"
        ),
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="Override every character's")] = None,
    top_p: Annotated[float | None, typer.Option(help="Override every character's")] = None,
    repetition_penalty: Annotated[float | None, typer.Option(help="Override")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Override every character's")] = None,
    out: Annotated[Path, typer.Option(help="Report folder")] = Path("eval-report"),
    title: Annotated[str, typer.Option(help="Report title")] = "Cast evaluation",
) -> None:
    """Ask each character its held-out questions in three conditions (adapter + prompt,
    prompt only, base) and score the replies: key facts, contradictions, attribution,
    complete sentences, speaking as the player or another character, length."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for module, extra in (("sklearn", "training"), ("matplotlib", "training")):
        try:
            __import__(module)
        except ImportError as exc:
            console.print(
                f"[red]error:[/red] {exc}. Install it with: pip install 'personae\\[{extra}]'"
            )
            raise typer.Exit(2) from None
    from personae.daemon.adapters import AdapterCache, adapter_roots, character_adapter
    from personae.daemon.characters import default_cast_dir, load_cast
    from personae.daemon.engines import registry
    from personae.daemon.errors import PersonaeError
    from personae.daemon.settings import Settings
    from personae.training.evaluation.questions import load_questions
    from personae.training.evaluation.references import run_lines, script_lines
    from personae.training.evaluation.report import write_report
    from personae.training.evaluation.run import evaluate_cast

    overrides: dict[str, Any] = {}
    for key, value in (
        ("llm_engine", engine),
        ("llamacpp_model", llamacpp_model),
        ("vllm_url", vllm_url),
        ("characters_dirs", characters_dir),
        ("adapters_dir", adapters_dir),
    ):
        if value is not None:
            overrides[key] = value
    try:
        settings = Settings(**overrides)
        cast = load_cast(settings.characters_dirs or (default_cast_dir(),))
        wanted = characters or sorted(
            cid for cid in cast if (question_dir / f"{cid}.toml").is_file()
        )
        if not wanted:
            raise typer.BadParameter(f"no evaluation set for any character in {question_dir}")
        unknown = [c for c in wanted if c not in cast]
        if unknown:
            raise typer.BadParameter(f"not in the cast: {', '.join(unknown)}")
        sets = {
            cid: load_questions(question_dir / f"{cid}.toml").subset(questions, skip)
            for cid in wanted
        }
        conds = [c.strip() for c in conditions.split(",") if c.strip()]
        bad = [c for c in conds if c not in ("adapter", "prompt", "base")]
        if bad:
            raise typer.BadParameter(f"unknown condition(s): {', '.join(bad)}")
        if lines is not None:
            ref = run_lines(lines, list(cast))
        else:
            ref = script_lines(question_dir.parent, cast)
        console.print(f"loading the {settings.llm_engine} engine")
        llm = registry.create("llm", settings.llm_engine, settings)
        cache = AdapterCache(
            llm,
            capacity=max(1, len(wanted)),
            resolve=lambda ch: character_adapter(adapter_roots(settings), ch),
        )
        adapters = {}
        for cid in wanted:
            has = cast[cid].adapter is not None and "adapter" in conds
            adapters[cid] = cache.acquire(cast[cid]) if has else None
    except PersonaeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    def params(ch: Any) -> Any:
        update = {
            k: v
            for k, v in (
                ("temperature", temperature),
                ("top_p", top_p),
                ("repetition_penalty", repetition_penalty),
                ("max_tokens", max_tokens),
            )
            if v is not None
        }
        return ch.generation.model_copy(update=update)

    total = sum(len(s.questions) for s in sets.values()) * len(conds)
    done = [0]
    started = time.monotonic()

    def progress(cid: str, condition: str, qid: str, text: str) -> None:
        done[0] += 1
        rate = (time.monotonic() - started) / done[0]
        left = rate * (total - done[0])
        console.print(
            f"[{done[0]}/{total}] {cid} {condition} {qid}: {text[:70]!r} (~{left / 60:.0f} min left)"
        )

    result = evaluate_cast(
        llm,
        cast,
        sets,
        adapters=adapters,
        lines=ref,
        conditions=conds,
        params=params,
        grace=settings.reply_finish_tokens,
        lore_budget=settings.lore_budget_tokens,
        on_reply=progress,
    )
    result["meta"] = {
        "engine": settings.llm_engine,
        "questions per character": (questions or "all")
        if not skip
        else f"{questions or 'all'} after the first {skip}",
        "conditions": ", ".join(conds),
        "adapters": ", ".join(
            f"{cid} {cast[cid].adapter.name}/{cast[cid].adapter.version}"  # type: ignore[union-attr]
            for cid in wanted
            if cast[cid].adapter is not None
        ),
        "classifier lines": ", ".join(f"{k} {len(v)}" for k, v in ref.items()),
        "seconds": result["seconds"],
    }
    for path in write_report(result, out, title=title):
        console.print(f"wrote {path}")
    for cid, c in result["characters"].items():
        for condition, s in c["summary"].items():
            console.print(
                f"{cid:6} {condition:8} key facts {s['key_facts']:.0%}  contradictions "
                f"{s['contradictions']:.0%}  attribution {s['attribution']:.0%}  complete "
                f"{s['complete']:.0%}  as player {s['as_player']}"
            )
