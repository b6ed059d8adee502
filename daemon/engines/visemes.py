"""The one table from IPA phonemes to the 15 Oculus/Meta visemes.

Oculus Lipsync, Meta's Movement SDK, Ready Player Me avatars and most Unity and Unreal
lip-sync tools name their mouth shapes with these 15, so a game maps them to its
blendshapes once. A phone is looked up by its first codepoint (the sound; length and
stress marks were folded onto it by `phones.fold`), which covers every symbol in
Piper's and espeak-ng's IPA inventories.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from personae.daemon.engines.base import Phone
from personae.daemon.engines.phones import PREFIX_MARKS, SUFFIX_MARKS, is_pause

#: the Oculus order (the index is the viseme id those tools use)
VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")

_GROUPS: dict[str, str] = {
    # lips closed
    "PP": "pbmɓʙ",
    # lower lip to teeth (and the bilabial fricatives, which look the same)
    "FF": "fvɸβⱱɱʋ",
    "TH": "θð",
    # tongue tip behind the teeth
    "DD": "tdɾʈɖɗɽʇɺ",
    # back of the tongue, and sounds with no lip shape of their own
    "kk": "kgɡŋqɢɠʛxɣχʁħʕhɦʜʢʡɧcɟçʝʄɰ",
    # rounded, protruded: post-alveolar and retroflex fricatives and affricates
    "CH": "ʃʒʂʐɕʑʧʤ",
    "SS": "szɬɮ",
    "nn": "nlɫɲɳɴɭʎʟ",
    "RR": "rɹɻʀɚɝ",
    "aa": "aɑɐæʌɒɶ",
    "E": "eɛεəɜɞɘœøɤ",
    "ih": "iɪɨjɥyʏᵻɯ",
    "oh": "oɔɵ",
    "ou": "uʊʉwʍ",
    # clicks and the glottal stop close nothing visible
    "sil": "ʔǀǁǂǃʘ",
}

TABLE: dict[str, str] = {c: v for v, chars in _GROUPS.items() for c in chars}


def viseme_of(symbol: str) -> str:
    """The viseme of one folded phone; "sil" for pauses. Raises KeyError for a sound
    the table lacks (a test keeps the table complete for what the engines emit)."""
    if is_pause(symbol):
        return "sil"
    sound = symbol.lstrip("".join(PREFIX_MARKS))
    if not sound or sound[0] in SUFFIX_MARKS:
        return "sil"
    return TABLE[sound[0]]


@dataclass(frozen=True, slots=True)
class VisemeSpan:
    viseme: str
    start_ms: float
    duration_ms: float


def visemes_of(phones: Sequence[Phone] | Iterable[Phone]) -> list[VisemeSpan]:
    """One span per run of phones with the same viseme (the face holds the shape)."""
    out: list[VisemeSpan] = []
    for ph in phones:
        v = _lookup(ph.symbol)
        if out and out[-1].viseme == v:
            last = out[-1]
            out[-1] = VisemeSpan(v, last.start_ms, ph.start_ms + ph.duration_ms - last.start_ms)
        else:
            out.append(VisemeSpan(v, ph.start_ms, ph.duration_ms))
    return out


def _lookup(symbol: str) -> str:
    try:
        return viseme_of(symbol)
    except KeyError:
        # an engine spoke a sound the table lacks: a neutral open mouth, never a crash
        return "E"
