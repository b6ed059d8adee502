"""One lock for espeak-ng inside this process.

Piper and Kokoro both phonemize through piper-tts's espeak-ng bridge, a C library with
one global voice: a caller sets the voice and reads phonemes while holding this lock,
so one engine never reads phonemes in the other's voice.
"""

from __future__ import annotations

import threading

ESPEAK_LOCK = threading.Lock()
