"""Text to Kokoro tokens: espeak-ng IPA, rewritten into the phoneme set Kokoro v1.0 knows.

Kokoro-82M v1.0 was trained on misaki's phonemes: IPA with one letter per diphthong
(A = eɪ, I = aɪ, W = aʊ, Y = ɔɪ, O = oʊ, Q = əʊ) and single affricates (ʤ, ʧ). espeak-ng
writes plain IPA, so the rewrite below (the same substitutions as misaki's own espeak
fallback) comes first; characters outside the vocabulary are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Kokoro-82M's token ids (its config.json "vocab"); 0 pads both ends of a sequence
_VOCAB_ORDER: tuple[tuple[int, str], ...] = (
    (1, ';:,.!?'), (9, '—…"()“” ̃ʣʥʦʨᵝꭧAI'), (31, 'O'), (33, 'Q'), (35, 'ST'),
    (39, 'W'), (41, 'Yᵊabcdef'), (50, 'hijklmnopqrstuvwxyzɑɐɒæ'), (75, 'βɔɕç'),
    (80, 'ɖðʤə'), (85, 'ɚɛɜ'), (90, 'ɟ'), (92, 'ɡ'), (99, 'ɥ'), (101, 'ɨɪʝ'),
    (110, 'ɯɰŋɳɲɴø'), (118, 'ɸθœ'), (123, 'ɹ'), (125, 'ɾɻ'), (128, 'ʁɽʂʃʈʧ'),
    (135, 'ʊʋ'), (138, 'ʌɣɤ'), (142, 'χʎ'), (147, 'ʒʔ'), (156, 'ˈˌː'), (162, 'ʰ'),
    (164, 'ʲ'), (169, '↓'), (171, '→↗↘'), (177, 'ᵻ'),
)  # fmt: skip
VOCAB: dict[str, int] = {
    ch: start + i for start, chars in _VOCAB_ORDER for i, ch in enumerate(chars)
}
#: tokens per call: the model's 512 positions less the two pads
MAX_TOKENS = 510

_COMMON = {
    "ʔn̩": "tᵊn", "ʔ": "t", "n̩": "ᵊn",
    "aɪ": "I", "aʊ": "W", "eɪ": "A", "ɔɪ": "Y", "dʒ": "ʤ", "tʃ": "ʧ",
    "e": "A", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɚɹ": "əɹ", "ɚ": "əɹ",
    "ʲo": "jo", "ʲə": "jə", "ʲ": "",
}  # fmt: skip
_US = {"oʊ": "O", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə", "ː": ""}
_GB = {"əʊ": "Q", "eə": "ɛː", "iə": "ɪə"}


def _rewriter(table: dict[str, str]) -> re.Pattern[str]:
    keys = sorted(table, key=len, reverse=True)  # longest first: "ɜːɹ" before "ɜː"
    return re.compile("|".join(re.escape(k) for k in keys))


_TABLES = {
    "a": ({**_COMMON, **_US}, _rewriter({**_COMMON, **_US})),
    "b": ({**_COMMON, **_GB}, _rewriter({**_COMMON, **_GB})),
}
#: espeak-ng voice per Kokoro accent (the first letter of a Kokoro voice name)
ESPEAK_VOICE = {"a": "en-us", "b": "en"}

#: Kokoro symbols that stand for several IPA letters, written back as IPA for lip-sync
TO_IPA = {"A": "eɪ", "I": "aɪ", "W": "aʊ", "Y": "ɔɪ", "O": "oʊ", "Q": "əʊ",
          "ʤ": "dʒ", "ʧ": "tʃ", "ᵊ": "ə", "ᵻ": "ɪ"}  # fmt: skip
#: tokens that are stress or length marks: their time belongs to the phone next to them
MARKS = frozenset("ˈˌː")
PAUSES = frozenset(';:,.!?—…"()“” ')
_PAUSE_CHARS = "".join(sorted(PAUSES))


def to_kokoro(ipa: str, accent: str) -> str:
    """espeak-ng IPA -> Kokoro phonemes (unknown characters dropped)."""
    table, pattern = _TABLES[accent]
    out = pattern.sub(lambda m: table[m.group(0)], ipa)
    return "".join(ch for ch in out if ch in VOCAB)


@dataclass(frozen=True, slots=True)
class Clause:
    phonemes: str  # Kokoro phonemes, the clause's punctuation at the end
    last: bool  # ends a sentence


def clauses(raw: list[tuple[str, str, bool]], accent: str) -> list[Clause]:
    """espeak-ng's clauses (IPA, terminator, ends a sentence) in Kokoro phonemes."""
    out = []
    for ipa, terminator, end in raw:
        ipa = re.sub(r"\([^)]+\)", "", ipa)  # (lang) switch flags around foreign words
        phonemes = to_kokoro(ipa.strip() + terminator, accent)
        if phonemes.strip(_PAUSE_CHARS):
            out.append(Clause(phonemes, bool(end)))
    return out


def split_long(phonemes: str, limit: int = MAX_TOKENS) -> list[str]:
    """Pieces of at most `limit` symbols, cut at spaces where possible."""
    pieces = []
    while len(phonemes) > limit:
        cut = phonemes.rfind(" ", 0, limit)
        cut = limit if cut <= 0 else cut + 1
        pieces.append(phonemes[:cut])
        phonemes = phonemes[cut:]
    if phonemes:
        pieces.append(phonemes)
    return pieces


def tokens(phonemes: str) -> list[int]:
    return [VOCAB[ch] for ch in phonemes]
