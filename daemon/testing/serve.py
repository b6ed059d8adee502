"""`python -m personae.daemon.testing.serve`: the daemon's own `personae serve`, with fakes.

`launcher.Daemon` runs this in a child process. Without `--fakes` it is exactly
`personae serve`. With `--fakes` it first registers the fake engines by name
(`fakes.register_fakes`): settings then choose them (`PERSONAE_STT_ENGINE=fake`
starts in seconds, `PERSONAE_LLM_ENGINE=echo` shows what reached a character's
prompt), and `--fake-voices` speaks the cast's piper, espeak and kokoro voices with the fake.

    PERSONAE_PORT=8765 PERSONAE_VAD_ENGINE=fake PERSONAE_STT_ENGINE=fake \\
    PERSONAE_EMBEDDER_ENGINE=fake PERSONAE_LLM_ENGINE=fake PERSONAE_WARMUP=0 \\
        python -m personae.daemon.testing.serve --fakes --fake-voices
"""

from __future__ import annotations

import argparse
import sys

from personae.daemon.testing.fakes import FakeOptions, register_fakes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fakes", action="store_true", help="register the fake engines by name")
    ap.add_argument("--fake-voices", action="store_true", help="the cast's voices spoken by fakes")
    ap.add_argument("--token-delay-s", type=float, default=0.0, help="the fake LLM's pace")
    ap.add_argument("--tts-ms-per-char", type=float, default=60.0, help="the fake TTS's pace")
    ap.add_argument(
        "--llm-parallel", type=int, default=0, help="replies the fake LLM serves at once"
    )
    args = ap.parse_args(argv)
    if args.fakes:
        options = FakeOptions(
            token_delay_s=args.token_delay_s,
            tts_ms_per_char=args.tts_ms_per_char,
            llm_parallel=args.llm_parallel,
        )
        register_fakes(options, voices=args.fake_voices)
    from personae.sdk.cli import main as cli

    sys.argv = ["personae", "serve"]
    cli()


if __name__ == "__main__":
    main()
