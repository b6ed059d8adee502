"""`personae train ...`: the whole pipeline (`run`) or one stage at a time.

Every command takes the recipe file; artifacts go to the recipe's run directory, and
a command run again after an interruption picks up where it stopped.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from personae.daemon.errors import PersonaeError

app = typer.Typer(
    help="Train character adapters from source text (novels, scripts, lore).", no_args_is_help=True
)
console = Console(stderr=True)


def register(root: typer.Typer) -> None:
    """Add `personae train` (entry point `personae.cli`): a sub-app, so each stage's
    --help shows its own options."""
    root.add_typer(app, name="train")
    from personae.training.evaluation import cli as eval_cli

    root.command("eval")(eval_cli.run)


@app.callback()
def _before_any_stage() -> None:
    # OpenMP threads that spin while waiting are ruinous when the CPU is shared: on a
    # busy 2-core machine a training step took 8x longer with the default (active)
    # policy. It must be set before torch loads OpenMP, so before any stage runs.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


RecipeArg = Annotated[Path, typer.Argument(help="Recipe file (.toml or .yaml)")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo the stage even if it is done")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output")]
AdaptersOpt = Annotated[
    Path | None,
    typer.Option("--adapters-dir", help="Adapter store to install into (overrides the recipe)"),
]


def _pipeline(recipe: Path, quiet: bool, adapters_dir: Path | None = None):  # type: ignore[no-untyped-def]
    from personae.training.pipeline import Pipeline
    from personae.training.recipe import load_recipe

    r = load_recipe(recipe)
    if adapters_dir is not None:
        r = r.model_copy(
            update={"output": r.output.model_copy(update={"adapters_dir": adapters_dir.resolve()})}
        )
    return Pipeline(r, console=console, show_progress=not quiet)


def _guard(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except ImportError as exc:
        # \[ keeps rich from reading [training] as markup
        console.print(
            f"[red]error:[/red] {exc}. Install it with: pip install 'personae\\[training]'"
        )
        raise typer.Exit(2) from None
    except PersonaeError as exc:
        # escaped: "[teacher]" in a message is text, not console markup
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: run the same command again to resume[/yellow]")
        raise typer.Exit(130) from None


@app.command()
def run(
    recipe: RecipeArg,
    adapters_dir: AdaptersOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Every stage: ingest, extract, dataset, fit, evaluate."""
    _guard(lambda: _pipeline(recipe, quiet, adapters_dir).all(force))
    console.print(f"report: {_pipeline(recipe, True).run / 'report.md'}")


@app.command()
def ingest(recipe: RecipeArg, force: ForceOpt = False, quiet: QuietOpt = False) -> None:
    """Read, clean and split the sources into chapters."""
    _guard(lambda: _pipeline(recipe, quiet).ingest(force))


@app.command()
def extract(recipe: RecipeArg, force: ForceOpt = False, quiet: QuietOpt = False) -> None:
    """Build examples with the recipe's strategies (dialogue, rewrite, qa)."""
    _guard(lambda: _pipeline(recipe, quiet).extract(force))


@app.command()
def dataset(recipe: RecipeArg, force: ForceOpt = False, quiet: QuietOpt = False) -> None:
    """Chat JSONL per character, split, with a dataset card."""
    _guard(lambda: _pipeline(recipe, quiet).dataset(force))


@app.command()
def fit(
    recipe: RecipeArg,
    character: Annotated[
        list[str] | None, typer.Option("--character", "-c", help="Only these ids")
    ] = None,
    adapters_dir: AdaptersOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train each character's adapter and install it in the adapter store."""
    _guard(lambda: _pipeline(recipe, quiet, adapters_dir).fit(character or None, force))


@app.command()
def evaluate(
    recipe: RecipeArg,
    adapters_dir: AdaptersOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Perplexity and attribution accuracy, adapter against base; writes the report."""
    _guard(lambda: _pipeline(recipe, quiet, adapters_dir).evaluate(force))


class ExportFormat(StrEnum):
    axolotl = "axolotl"
    hosted = "hosted"
    merged = "merged"


@app.command()
def export(
    recipe: RecipeArg,
    format: Annotated[ExportFormat, typer.Option("--format", "-f")] = ExportFormat.hosted,
    character: Annotated[list[str] | None, typer.Option("--character", "-c")] = None,
    adapters_dir: AdaptersOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Axolotl config + dataset, hosted fine-tuning JSONL, or a merged standalone model."""

    def go() -> None:
        from personae.daemon.adapters.files import is_adapter_dir
        from personae.training import export as ex
        from personae.training.base import base_model_ref, resolve_base
        from personae.training.errors import TrainingError

        p = _pipeline(recipe, quiet, adapters_dir)
        for cid in character or [t.id for t in p.recipe.characters]:
            data = p.run / f"dataset/{cid}"
            if not (data / "train.jsonl").is_file():
                raise TrainingError(f"{data}/train.jsonl is missing: run the dataset stage first")
            out = p.run / f"export/{cid}/{format.value}"
            if format is ExportFormat.axolotl:
                path = ex.export_axolotl(
                    out,
                    base_model=base_model_ref(resolve_base(p.recipe.base_model)),
                    train_file=data / "train.jsonl",
                    val_file=data / "val.jsonl",
                    lora=p.recipe.lora,
                    train=p.recipe.train,
                )
            elif format is ExportFormat.hosted:
                path = ex.export_hosted(
                    out, train_file=data / "train.jsonl", val_file=data / "val.jsonl"
                )[0].parent
            else:
                adapter = p.adapters_dir() / cid / p.recipe.output.version
                if not is_adapter_dir(adapter):
                    raise TrainingError(f"no trained adapter at {adapter}: run the fit stage first")
                path = ex.export_merged(
                    out, base_dir=resolve_base(p.recipe.base_model), adapter_dir=adapter
                )
            console.print(f"{cid}: {path}")

    _guard(go)


@app.command()
def report(recipe: RecipeArg) -> None:
    """Write (and print the path of) the run's report.md from what is done so far."""
    path = _guard(lambda: _pipeline(recipe, True).write_report())
    typer.echo(str(path))
