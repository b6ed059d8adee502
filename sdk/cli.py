"""The `personae` command: chat and characters here; serve, prepare, keys, config, train
and bench from the installed daemon and training packages.

The SDK stays light by structure: it never imports the daemon or training. Their
commands arrive through the `personae.cli` entry-point group (see pyproject.toml),
each a `register(app)` that adds commands and imports its heavy modules only when
a command runs, so `personae --help` stays fast and a missing extra is named.
"""

from __future__ import annotations

import asyncio
import subprocess
import wave
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from personae.sdk import cli_admin
from personae.sdk.client import DEFAULT_URL, Reply, connect
from personae.sdk.framing import Framing

#: entry-point group whose `register(app)` functions add the daemon's and training's commands
COMMANDS_GROUP = "personae.cli"

app = typer.Typer(add_completion=False, no_args_is_help=True)
app.add_typer(cli_admin.characters, name="characters")
app.add_typer(cli_admin.experiments, name="experiments")


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"personae {metadata.version('personae')}")
        except metadata.PackageNotFoundError:
            typer.echo("personae (not installed: no version metadata)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the installed version."
        ),
    ] = False,
) -> None:
    """personae: live voice conversations with game characters.

    chat, characters and experiments need only the SDK; the others need the daemon extra (train: the training extra).
    """


_loaded: list[str] = []


def load_commands() -> typer.Typer:
    """Add the commands every installed `personae.cli` entry point registers (once)."""
    if not _loaded:
        for entry in sorted(metadata.entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
            entry.load()(app)
            _loaded.append(entry.name)
    return app


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


def main() -> None:
    load_commands()()


if __name__ == "__main__":
    main()
