"""Kokoro voices and per-character blends.

A voice spec is one voice name ("bf_lily") or a weighted blend of several
("bf_lily:0.6,af_sky:0.4"): the style vectors are mixed in proportion to the weights
(normalised to sum to 1), so a studio can make a voice nobody else has. Each voice file
holds 510 style vectors, one per phoneme count; a call uses the row for its length.
The blend's heaviest voice sets the accent (a = American, b = British) that phonemes
are written in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from personae.daemon.errors import ConfigError

#: the voice a character with `voice = "default"` gets
DEFAULT_VOICE = "af_heart"
_NAME = re.compile(r"^[ab][fm]_[a-z]+$")


@dataclass(frozen=True, slots=True)
class Blend:
    parts: tuple[tuple[str, float], ...]  # (voice, weight), weights summing to 1

    @property
    def accent(self) -> str:
        return max(self.parts, key=lambda p: p[1])[0][0]


def parse_blend(spec: str, available: frozenset[str] | set[str]) -> Blend:
    """'bf_lily:0.6,af_sky:0.4' -> Blend; ConfigError saying exactly what is wrong."""
    spec = DEFAULT_VOICE if spec.strip() in ("", "default") else spec
    weights: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, weight_text = item.strip().partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"Kokoro voice {spec!r}: empty voice name in the blend")
        if name not in available:
            hint = ", ".join(sorted(available))
            raise ConfigError(f"unknown Kokoro voice {name!r} in {spec!r}; available: {hint}")
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise ConfigError(
                f"Kokoro voice {spec!r}: weight {weight_text.strip()!r} of {name!r} "
                "is not a number (write name:weight, e.g. bf_lily:0.6,af_sky:0.4)"
            ) from None
        if not math.isfinite(weight) or weight <= 0:
            raise ConfigError(f"Kokoro voice {spec!r}: weight of {name!r} must be above 0")
        if name in weights:
            raise ConfigError(f"Kokoro voice {spec!r}: {name!r} appears twice")
        weights[name] = weight
    total = sum(weights.values())
    return Blend(tuple((n, w / total) for n, w in weights.items()))


class VoiceBank:
    """The prepared voices of a Kokoro folder, loaded lazily, blends cached."""

    def __init__(self, folder: Path, names: list[str]) -> None:
        self._folder = folder
        self.names = frozenset(n for n in names if _NAME.match(n))
        self._vectors: dict[str, np.ndarray] = {}
        self._blends: dict[Blend, np.ndarray] = {}

    def _vector(self, name: str) -> np.ndarray:
        if name not in self._vectors:
            data = np.fromfile(self._folder / "voices" / f"{name}.bin", dtype=np.float32)
            self._vectors[name] = data.reshape(-1, 256)
        return self._vectors[name]

    def blend(self, spec: str) -> tuple[Blend, np.ndarray]:
        """The parsed spec and its (510, 256) style table."""
        blend = parse_blend(spec, self.names)
        if blend not in self._blends:
            self._blends[blend] = sum(  # type: ignore[assignment]
                w * self._vector(n) for n, w in blend.parts
            ).astype(np.float32)
        return blend, self._blends[blend]
