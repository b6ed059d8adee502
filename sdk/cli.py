"""The `personae` command: serve, chat, characters, prepare, train, bench.

Only `chat` and `characters` work with the SDK alone; the rest import the daemon or
training packages when run and say which extra to install if they are missing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Annotated, Any

import typer

from personae.sdk import cli_admin, cli_keys
from personae.sdk.client import DEFAULT_URL, Reply, connect
from personae.sdk.framing import Framing

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(cli_admin.characters, name="characters")
app.add_typer(cli_admin.experiments, name="experiments")
app.add_typer(cli_keys.keys, name="keys")


def _need(module: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        typer.secho(f"{exc}. Install it with: pip install 'personae[{extra}]'", fg="red", err=True)
        raise typer.Exit(2) from None


def _progress_printer() -> Any:
    """A Progress callback that draws one status line per step (rich when present)."""
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


@app.command()
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
    _need("personae.daemon.app", "daemon")
    if config is not None:
        os.environ["PERSONAE_CONFIG"] = str(config)
    import uvicorn

    from personae.daemon.app import create_app
    from personae.daemon.service import Service
    from personae.daemon.settings import Settings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    typer.secho("personae: preparing models and characters", fg="cyan", err=True)
    service = Service.create(settings, progress=_progress_printer())
    if settings.warmup:
        from personae.daemon.warmup import warm_up

        warm_up(service, progress=_progress_printer())
    names = ", ".join(f"{c.name} ({c.id})" for c in service.cast.values())
    typer.secho(f"personae: cast {names}", fg="cyan", err=True)
    scheme = "wss" if ssl_certfile else "ws"
    typer.secho(
        f"personae: listening on {scheme}://{settings.host}:{settings.port}/v1/realtime",
        fg="green",
        err=True,
    )
    uvicorn.run(
        create_app(settings, service=service),
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_frame_bytes,
        log_level="warning",
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )


@app.command()
def prepare() -> None:
    """Prepare the embedded models once (join whisper, cache the float32 base, export the
    router's embedder to ONNX)."""
    _need("personae.daemon.models.whisper", "daemon")
    from personae.daemon.models.embedder_onnx import onnx_embedder_dir
    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.models.whisper import whisper_dir
    from personae.daemon.settings import Settings

    settings = Settings()
    progress = _progress_printer()
    typer.echo(f"cache: {settings.cache_dir}", err=True)
    whisper_dir(settings, progress)
    base_model_dir(settings, progress)
    if settings.embedder_engine == "onnx":
        onnx_embedder_dir(settings, progress)
    typer.secho("models ready", fg="green", err=True)


def _read_wav(path: Path) -> tuple[bytes, int]:
    """PCM16 mono bytes and rate of a 16-bit WAV (stereo is averaged)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise typer.BadParameter(f"{path}: expected 16-bit PCM WAV")
        frames, rate, channels = w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()
    if channels == 1:
        return frames, rate
    import array

    samples = array.array("h", frames)
    mono = array.array(
        "h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels))
    )
    return mono.tobytes(), rate


def _write_wav(path: Path, pcm16: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)


def _play(path: Path) -> None:
    for player in (
        ["aplay", "-q"],
        ["paplay"],
        ["afplay"],
        ["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"],
    ):
        try:
            subprocess.run([*player, str(path)], check=True, timeout=120, capture_output=True)
            return
        except (FileNotFoundError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
            continue


@app.command()
def chat(
    text: Annotated[
        str | None, typer.Argument(help="What the player says (omit with --wav)")
    ] = None,
    wav: Annotated[Path | None, typer.Option(help="A WAV file of the player speaking")] = None,
    character: Annotated[
        str | None, typer.Option(help="Answer as this character (skips routing)")
    ] = None,
    scene: Annotated[
        str | None, typer.Option(help="Comma-separated character ids in the scene")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the reply audio")] = Path("reply.wav"),
    url: Annotated[str, typer.Option(help="Daemon WebSocket URL")] = DEFAULT_URL,
    framing: Annotated[Framing, typer.Option(help="Wire framing")] = Framing.MSGPACK,
    play: Annotated[bool, typer.Option(help="Play the reply where an audio device exists")] = True,
) -> None:
    """Say something to the cast (typed or a WAV); print who answers and what they say."""
    if (text is None) == (wav is None):
        raise typer.BadParameter("give either TEXT or --wav")

    async def run() -> Reply:
        fields: dict[str, Any] = {}
        if scene:
            fields["characters"] = [s.strip() for s in scene.split(",") if s.strip()]
        if character:
            fields["pinned_character"] = character
        if wav is not None:
            pcm, rate = _read_wav(wav)
            fields["input_sample_rate"] = rate
        async with await connect(url, framing=framing, **fields) as session:
            if wav is not None:
                return await session.speak(pcm)
            return await session.say(text or "", character=character)

    try:
        reply = asyncio.run(run())
    except OSError as exc:
        typer.secho(
            f"cannot reach the daemon at {url}: {exc}. Is `personae serve` running?",
            fg="red",
            err=True,
        )
        raise typer.Exit(1) from None
    if reply.transcript is not None:
        typer.echo(f"heard:  {reply.transcript}")
    if reply.route is not None:
        scores = ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(reply.route.scores.items(), key=lambda kv: -kv[1])
        )
        typer.echo(
            f"route:  {reply.route.character} ({reply.route.reason}{'; ' + scores if scores else ''})"
        )
    typer.echo(f"{reply.character}: {reply.text}")
    if reply.status != "completed":
        typer.secho(f"(reply {reply.status}: {reply.response.status_reason})", fg="yellow")
    if reply.audio:
        _write_wav(out, reply.audio, reply.sample_rate)
        typer.echo(f"audio:  {out} ({len(reply.audio) / 2 / reply.sample_rate:.1f} s)")
        if play:
            _play(out)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Train characters from source material (see `personae train --help`)."""
    _need("personae.training.cli", "training")
    from personae.training.cli import app as training_app

    training_app(args=ctx.args, prog_name="personae train")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Benchmark in bench/")] = "voice_to_voice",
) -> None:
    """Run a benchmark from the repository's bench/ folder."""
    script = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    if not script.is_file():
        available = sorted(p.stem for p in script.parent.glob("*.py") if not p.stem.startswith("_"))
        raise typer.BadParameter(f"no benchmark {name!r}; available: {', '.join(available)}")
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args]))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
