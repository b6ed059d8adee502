"""A voice config for each trained character.

A character file that sets its own voice keeps it. Otherwise a voice is chosen from the
character's speaking style and made distinct from the rest of the cast: one bundled
Piper voice sounds like several people when its pitch and rate differ, so cast members
are spread over pitch (low, middle, high) and the style sets the rate.
"""

from __future__ import annotations

from collections.abc import Sequence

from personae.daemon.characters import Character, VoiceConfig

_FAST = ("fast", "quick", "rapid", "cheeky", "slangy", "breathless", "excitable", "teasing")
_SLOW = ("slow", "gruff", "measured", "deliberate", "blunt", "weary", "calm", "grave")
_LOW = ("gruff", "deep", "old", "big", "growl", "grave", "booming")
_HIGH = ("young", "child", "girl", "boy", "bright", "squeak", "cheeky")
#: pitch steps far enough apart to tell voices apart (about three semitones)
_PITCHES = (0.86, 1.0, 1.18, 0.93, 1.09, 1.27)


def _score(text: str, words: Sequence[str]) -> int:
    text = text.lower()
    return sum(w in text for w in words)


def choose_voices(cast: Sequence[Character]) -> dict[str, VoiceConfig]:
    """Voice per character id: the file's own voice when it sets one, else a distinct one."""
    default = VoiceConfig()
    out: dict[str, VoiceConfig] = {}
    free = [c for c in cast if c.voice == default]
    for c in cast:
        if c.voice != default:
            out[c.id] = c.voice
    taken = {round(v.pitch, 2) for v in out.values()}
    pitches = [p for p in _PITCHES if round(p, 2) not in taken]

    def lowness(c: Character) -> int:
        text = " ".join((c.description, c.personality, c.speaking_style))
        return _score(text, _LOW) - _score(text, _HIGH)

    # the lowest-sounding character gets the lowest free pitch, and so on
    ordered = sorted(free, key=lowness, reverse=True)
    by_pitch = sorted(pitches[: len(ordered)]) if len(ordered) <= len(pitches) else pitches
    for i, c in enumerate(ordered):
        style = " ".join((c.personality, c.speaking_style))
        rate = 1.0 + 0.12 * min(2, _score(style, _FAST)) - 0.08 * min(2, _score(style, _SLOW))
        out[c.id] = VoiceConfig(
            engine=default.engine,
            voice=default.voice,
            rate=round(max(0.7, min(1.4, rate)), 2),
            pitch=by_pitch[i % len(by_pitch)],
        )
    return out
