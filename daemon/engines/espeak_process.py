"""The espeak-ng child process: libespeak-ng runs here, never in the daemon.

`python -m personae.daemon.engines.espeak_process LIBRARY` serves requests on stdin:
each a 4-byte big-endian length and a JSON object {text, voice, wpm, pitch, words};
each answer a length-prefixed JSON header ({ok, rate, phonemes, word_ipa, bytes} or
{ok: false, error}) followed by `bytes` of int16 audio. The parent (`tts_espeak`)
kills and restarts it when it hangs or dies.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import BinaryIO

HEADER = struct.Struct(">I")


def read_message(stream: BinaryIO) -> dict | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (n,) = HEADER.unpack(head)
    return json.loads(stream.read(n))


def write_message(stream: BinaryIO, message: dict, payload: bytes = b"") -> None:
    data = json.dumps(message).encode("utf-8")
    stream.write(HEADER.pack(len(data)) + data + payload)
    stream.flush()


def serve(library: str) -> None:
    # The protocol owns the real stdout; anything the C library prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from personae.daemon.engines.espeak_lib import EspeakLib

    lib = EspeakLib(library)
    stdin = sys.stdin.buffer
    while (request := read_message(stdin)) is not None:
        try:
            lib.set_voice(request["voice"], wpm=request["wpm"], pitch=request["pitch"])
            result = lib.synthesize(request["text"])
            word_ipa = [lib.phonemize(w) for w in request.get("words", [])]
        except (ValueError, RuntimeError) as exc:
            write_message(out, {"ok": False, "error": str(exc)})
            continue
        header = {"ok": True, "rate": result.sample_rate, "phonemes": result.phonemes,
                  "word_ipa": word_ipa, "bytes": len(result.pcm)}  # fmt: skip
        write_message(out, header, result.pcm)


if __name__ == "__main__":
    serve(sys.argv[1])
