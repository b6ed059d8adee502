"""personae beside Pipecat: the same spoken questions, the same models, first audio for each.

Pipecat (`pipecat-ai` 1.14.0 from PyPI, in its own virtual environment
`bench/.pipecat-venv`, made on the first run) runs the cascade its documentation builds
for a local agent: Silero VAD and Smart Turn v3.2 (its defaults), faster-whisper with
personae's whisper-base files, Piper with personae's voice, and an OpenAI-compatible LLM:
personae's own `/v1/chat/completions` on the daemon started here, so both cascades
use the same SmolLM2 engine and Bram's adapter (bench/_pipecat_cascade.py).

personae gets the same audio over its realtime socket with server VAD, in one session
with Bram, as a player's microphone sends it (real time, then a quiet room). For both,
the clock starts at the last byte of speech, so the silence each waits for before it
ends the turn counts. The two run in turn, voice by voice, on the same daemon, never
at once. Questions: a conversation with Bram (his trade, the town, follow-ups), spoken
by Piper and espeak-ng voices, clean and with noise at 15 dB SNR.

    personae bench vs_pipecat [--voices piper,en-us+m3,en+f3,en-gb+m2] [--questions 6] [--noise-db 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from personae.daemon.testing.launcher import Daemon
from personae.sdk import connect
from personae.sdk import protocol as p

HERE = Path(__file__).parent
VENV = HERE / ".pipecat-venv"
PIPECAT = "pipecat-ai[whisper,openai,piper]==1.14.0"
RESULTS = HERE / "results"
QUESTIONS = [
    "Bram, can you fix my sword before nightfall?",
    "How much would that cost me?",
    "Where do you get your iron from?",
    "Have you seen the lights on the old mill?",
    "Who do you think is carrying them?",
    "Is the bridge safe to cross after dark?",
    "What does Mara keep in the archive?",
    "Thank you. I will come back tomorrow.",
]
MARKS = {
    "conversation.item.input_audio_transcription.completed": "stt",
    "response.output_text.delta": "first_token",
    "response.output_audio.delta": "first_audio_chunk",
}
STAGES = ("stt", "first_token", "first_audio_chunk")


def pipecat_python() -> Path:
    """The Pipecat venv's interpreter; made with its PyPI packages on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"setting up {VENV} ({PIPECAT}) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        constraints = HERE.parent / "constraints.txt"
        subprocess.run(
            [str(python), "-m", "pip", "-q", "install", "-c", str(constraints), PIPECAT],
            check=True,
        )
    return python


def speak(text: str, voice: str, noise_db: float | None, seed: int) -> bytes:
    """The question in `voice` (16 kHz PCM16), with white noise at `noise_db` SNR."""
    sys.path.insert(0, str(HERE))
    from _speech import speak as tts

    audio = tts(text, voice=voice)
    if noise_db is not None:
        rng = np.random.default_rng(seed)
        power = float(np.mean(audio**2))
        audio = audio + rng.normal(0, np.sqrt(power / 10 ** (noise_db / 10)), audio.size)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def personae_turns(url: str, turns: list[dict], sounds: list[bytes]) -> list[dict]:
    """One session with Bram, server VAD; each question once the last reply has come."""
    step = 16000 * 2 // 10
    out = []
    async with await connect(url, characters=["bram"]) as session:
        quiet = asyncio.Event()

        async def room() -> None:  # the microphone keeps sending a quiet room
            while True:
                await quiet.wait()
                await session.append_audio(bytes(step))
                await asyncio.sleep(0.1)

        feeder = asyncio.create_task(room())
        try:
            for turn, audio in zip(turns, sounds, strict=True):
                quiet.clear()
                for i in range(0, len(audio), step):
                    await session.append_audio(audio[i : i + step])
                    await asyncio.sleep(0.1)
                quiet.set()
                t0, marks = time.perf_counter(), {"id": turn["id"]}
                while "done" not in marks:
                    try:
                        event = await session.next_event(timeout=60)
                    except TimeoutError:
                        marks["timeout"] = True
                        break
                    now = (time.perf_counter() - t0) * 1000
                    key = MARKS.get(event.type)
                    if key and key not in marks:
                        marks[key] = now
                    if isinstance(event, p.Error):
                        marks["error"] = event.error.code
                    if isinstance(event, p.ResponseDone) and "first_audio_chunk" in marks:
                        marks["done"] = now
                await asyncio.sleep(1.0)
                out.append(marks)
        finally:
            feeder.cancel()
    return out


def pipecat_turns(python: Path, llm_url: str, turns: list[dict], tmp: Path) -> list[dict]:
    from personae.daemon.engines.tts_piper import bundled_voice_path
    from personae.daemon.models.whisper import whisper_dir
    from personae.daemon.settings import Settings

    voice = bundled_voice_path()
    job = {
        "llm_url": llm_url,
        "model": "bram",
        "whisper_dir": str(whisper_dir(Settings())),
        "piper_voice": voice.stem,
        "piper_dir": str(voice.parent),
        "turns": turns,
    }
    (tmp / "job.json").write_text(json.dumps(job))
    run = subprocess.run(
        [str(python), str(HERE / "_pipecat_cascade.py"), str(tmp / "job.json")],
        capture_output=True,
        text=True,
        timeout=120 + 70 * len(turns),
        env={**os.environ, "HF_HUB_OFFLINE": "1", "LOGURU_LEVEL": "WARNING"},
    )
    if run.returncode:
        raise SystemExit(f"the Pipecat cascade failed:\n{run.stderr[-3000:]}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(samples: list[dict]) -> dict:
    got = [s for s in samples if "first_audio_chunk" in s]
    return {
        "turns": len(samples),
        "answered": len(got),
        **{
            stage: {
                "p50": pct([s[stage] for s in got if stage in s], 50),
                "p95": pct([s[stage] for s in got if stage in s], 95),
            }
            for stage in STAGES
        },
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(results)
    data = [
        [s["first_audio_chunk"] / 1000 for s in results[n] if "first_audio_chunk" in s]
        for n in names
    ]
    ax.boxplot(data, orientation="horizontal", showfliers=True)
    for i, values in enumerate(data, 1):
        ax.scatter(
            values,
            np.full(len(values), i) + np.random.uniform(-0.15, 0.15, len(values)),
            s=10,
            alpha=0.6,
        )
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel("end of speech to first reply audio (s)")
    ax.set_title("Same audio, same models: personae vs Pipecat 1.14")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--voices", default="piper,en-us+m3,en+f3,en-gb+m2")
    ap.add_argument("--questions", type=int, default=len(QUESTIONS), help="questions per voice")
    ap.add_argument("--noise-db", type=float, default=15.0, help="SNR of the noisy copies (dB)")
    ap.add_argument("--out", type=Path, default=RESULTS / "vs_pipecat")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    python = pipecat_python()
    results: dict[str, list[dict]] = {"personae": [], "pipecat": []}
    with tempfile.TemporaryDirectory() as tmp_name, Daemon(state_dir=Path(tmp_name)) as d:
        tmp = Path(tmp_name)
        for v, voice in enumerate(args.voices.split(",")):
            for noisy in (False, True):
                turns = []
                for i, text in enumerate(QUESTIONS[: args.questions]):
                    pcm = tmp / f"{v}-{int(noisy)}-{i}.pcm"
                    pcm.write_bytes(speak(text, voice, args.noise_db if noisy else None, seed=i))
                    turns.append(
                        {"id": f"{voice}/{'noisy' if noisy else 'clean'}/{i}", "pcm": str(pcm)}
                    )
                label = f"{voice}, {'noise' if noisy else 'clean'}"
                # alternate which goes first, so neither always meets a warmer machine
                order = (
                    ("personae", "pipecat") if (2 * v + noisy) % 2 == 0 else ("pipecat", "personae")
                )
                for system in order:
                    print(f"{label}: {system} ...", file=sys.stderr)
                    if system == "personae":
                        sounds = [Path(t["pcm"]).read_bytes() for t in turns]
                        got = asyncio.run(personae_turns(d.ws, turns, sounds))
                    else:
                        got = pipecat_turns(python, f"{d.http}/v1", turns, tmp)
                    results[system] += got
    load = os.getloadavg()
    data = {
        "machine": f"{os.cpu_count()} cores",
        "load_after": load,
        "summary": {name: summary(s) for name, s in results.items()},
        "samples": results,
    }
    a, b = (data["summary"][n]["first_audio_chunk"] for n in ("personae", "pipecat"))
    data["ratio_p50"] = a["p50"] / b["p50"]
    data["ratio_p95"] = a["p95"] / b["p95"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    plot(results, args.out.with_suffix(".png"))
    print(f"\nend of speech -> stage (ms), p50 / p95; load average after: {load[0]:.1f}")
    for name, s in data["summary"].items():
        cells = "  ".join(f"{st} {s[st]['p50']:.0f}/{s[st]['p95']:.0f}" for st in STAGES)
        print(f"{name:<9} {s['answered']}/{s['turns']} answered  {cells}")
    print(
        f"first audio, personae / Pipecat: p50 {data['ratio_p50']:.2f}x, p95 {data['ratio_p95']:.2f}x"
    )


if __name__ == "__main__":
    main()
