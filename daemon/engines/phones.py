"""IPA phonemes as the TTS engines emit them: marks folded in, pauses named, words found.

Piper and espeak-ng write one symbol per codepoint ("h ə l ˈ o ʊ"): stress marks,
length marks and diacritics get their own slot (and, in Piper, their own audio
frames). Lip-sync wants one phone per sound, so a stress mark's time goes to the
sound it stresses and a length mark's to the sound it lengthens.

Words: espeak-ng joins some words when it phonemizes a sentence ("of the" ->
"ʌvðə"), so phone groups are not the text's words. `assign_words` aligns each word's
own phonemes to the sentence's phones, which finds where "the" starts inside "ʌvðə".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

import numpy as np

from personae.daemon.engines.base import Phone

#: stress: belongs to the sound after it
PREFIX_MARKS = frozenset("ˈˌ")
#: length, tone, secondary articulation and combining diacritics: the sound before it
SUFFIX_MARKS = frozenset("ːˑʰʲʷˠˤ˞\u0303\u0327\u0329\u032a\u032f\u0361\u0306\u0325\u030a0123456789")
#: symbols that are silence: word gaps, punctuation, Piper's sentence markers
PAUSES = frozenset(" ,.!?;:-–—…\"'()[]^$_\n\t↓↑|‖#")

_WORD = re.compile(r"[\w'’-]*\w[\w'’-]*")


def is_pause(symbol: str) -> bool:
    return not symbol or all(c in PAUSES for c in symbol)


def words_of(text: str) -> list[str]:
    """The spoken words of a sentence, as word timings name them (punctuation dropped)."""
    return _WORD.findall(text)


def fold(phones: Iterable[Phone]) -> list[Phone]:
    """Merge marks into the sounds they modify and runs of pauses into one pause.

    Total time is kept: every input millisecond lands in some output phone."""
    out: list[Phone] = []
    carry = 0.0  # a stress mark's time, waiting for its sound
    carry_start: float | None = None
    for ph in phones:
        sym = ph.symbol
        if sym and all(c in PREFIX_MARKS for c in sym):
            carry_start = ph.start_ms if carry_start is None else carry_start
            carry += ph.duration_ms
            continue
        if sym and all(c in SUFFIX_MARKS for c in sym):
            if out:  # lengthens the sound before it (or the pause: a mark after a gap)
                last = out[-1]
                joined = last.symbol if is_pause(last.symbol) else last.symbol + sym
                out[-1] = Phone(joined, last.start_ms, last.duration_ms + ph.duration_ms,
                                last.word)  # fmt: skip
                continue
            sym = " "  # nothing to lengthen: count it as silence
        start = ph.start_ms if carry_start is None else carry_start
        dur = ph.duration_ms + carry
        carry, carry_start = 0.0, None
        if is_pause(sym):
            if out and is_pause(out[-1].symbol):
                last = out[-1]
                out[-1] = Phone(" ", last.start_ms, last.duration_ms + dur, -1)
            else:
                out.append(Phone(" ", start, dur, -1))
            continue
        out.append(Phone(sym, start, dur, ph.word))
    if carry and out:  # a trailing stress mark (never seen; keeps the sum exact)
        last = out[-1]
        out[-1] = Phone(last.symbol, last.start_ms, last.duration_ms + carry, last.word)
    return out


def _bases(ipa: str) -> str:
    """The sounds of an IPA string: marks and pauses dropped."""
    return "".join(c for c in ipa if c not in PREFIX_MARKS | SUFFIX_MARKS and c not in PAUSES)


def assign_words(phones: Sequence[Phone], word_ipa: Sequence[str]) -> list[Phone]:
    """Set each phone's `word` to the index of the text word it speaks.

    `phones` are folded phones of the whole text (pauses included), `word_ipa` each
    text word phonemized on its own. Phones the alignment cannot place take the word
    of the phone before them in the same run (no pause between), else the next one."""
    sounds = [(i, ph.symbol[0]) for i, ph in enumerate(phones) if not is_pause(ph.symbol)]
    wanted: list[tuple[int, str]] = [(w, c) for w, ipa in enumerate(word_ipa) for c in _bases(ipa)]
    matcher = difflib.SequenceMatcher(
        None, [c for _, c in wanted], [c for _, c in sounds], autojunk=False
    )
    word = [-1] * len(phones)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            word[sounds[block.b + k][0]] = wanted[block.a + k][0]
    _fill_missing_words(phones, word, len(word_ipa))
    # fill the gaps: backwards within a run, then forwards for a run's unplaced start
    for i in range(1, len(phones)):
        if word[i] < 0 and not is_pause(phones[i].symbol) and not is_pause(phones[i - 1].symbol):
            word[i] = word[i - 1]
    for i in range(len(phones) - 2, -1, -1):
        if word[i] < 0 and not is_pause(phones[i].symbol) and not is_pause(phones[i + 1].symbol):
            word[i] = word[i + 1]
    # a word's phones are one stretch: a stray match earlier than its neighbours' words
    # (the aligner pairing a lone sound far away) would give it a wrong onset
    last = -1
    for i, w in enumerate(word):
        if w < 0:
            continue
        if w < last:
            word[i] = last
        last = word[i]
    return [Phone(ph.symbol, ph.start_ms, ph.duration_ms, word[i]) for i, ph in enumerate(phones)]


def _fill_missing_words(phones: Sequence[Phone], word: list[int], n_words: int) -> None:
    """Sounds that matched nothing, between two placed words with a word missing between
    them ("with a man": "a" is ɐ in the sentence but ˈeɪ alone), go to the missing
    word(s), shared in order."""
    placed = set(word)
    i = 0
    while i < len(phones):
        if is_pause(phones[i].symbol) or word[i] >= 0:
            i += 1
            continue
        j = i
        while j < len(phones) and not is_pause(phones[j].symbol) and word[j] < 0:
            j += 1
        before = max((w for w in word[:i] if w >= 0), default=-1)
        after = min((w for w in word[j:] if w >= 0), default=n_words)
        free = [w for w in range(before + 1, after) if w not in placed]
        if free:
            for k in range(i, j):
                word[k] = free[min(len(free) - 1, (k - i) * len(free) // (j - i))]
            placed.update(word[i:j])
        i = j


#: a gap between two words shorter than this, and no quieter than GAP_QUIET_DB under
#: the sentence's speech, is a transition, not a pause
GAP_MAX_MS = 120.0
GAP_QUIET_DB = 20.0


def join_voiced_gaps(phones: Sequence[Phone], audio: np.ndarray, rate: float) -> list[Phone]:
    """Give each voiced word-boundary gap half to the sound before and half to the next.

    Piper's word separator token gets frames of its own, but in running speech they are
    mostly sound (the voice glides from one word into the next), not silence: shown as
    `sil` the mouth would snap shut between every word, and the next word would seem to
    start late. A short gap whose level is near the speech around it is split between its
    neighbours; quiet gaps (real pauses, a stop's closure) stay pauses."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)

    def level(ph: Phone) -> float:
        a, b = int(ph.start_ms * rate / 1000), int((ph.start_ms + ph.duration_ms) * rate / 1000)
        seg = x[a:b]
        return float(np.sqrt(np.mean(seg * seg))) if seg.size else 0.0

    sounds = [level(ph) for ph in phones if not is_pause(ph.symbol) and ph.duration_ms > 0]
    if not sounds:
        return list(phones)
    floor = float(np.median(sounds)) * 10 ** (-GAP_QUIET_DB / 20)
    out = list(phones)
    for i in range(1, len(out) - 1):
        gap, before, after = out[i], out[i - 1], out[i + 1]
        if not is_pause(gap.symbol) or is_pause(before.symbol) or is_pause(after.symbol):
            continue
        if gap.duration_ms > GAP_MAX_MS or level(gap) < floor:
            continue
        half = gap.duration_ms / 2
        out[i - 1] = Phone(before.symbol, before.start_ms, before.duration_ms + half, before.word)
        out[i] = Phone(gap.symbol, gap.start_ms + half, 0.0, -1)
        out[i + 1] = Phone(after.symbol, gap.start_ms + half, after.duration_ms + half, after.word)
    return [ph for ph in out if ph.duration_ms > 0 or not is_pause(ph.symbol)]


def word_spans(phones: Sequence[Phone]) -> dict[int, tuple[float, float]]:
    """word index -> (start ms, end ms) of its phones."""
    spans: dict[int, tuple[float, float]] = {}
    for ph in phones:
        if ph.word < 0:
            continue
        start, end = spans.get(ph.word, (ph.start_ms, ph.start_ms + ph.duration_ms))
        spans[ph.word] = (min(start, ph.start_ms), max(end, ph.start_ms + ph.duration_ms))
    return spans


def shifted(phones: Iterable[Phone], by_ms: float) -> list[Phone]:
    return [Phone(ph.symbol, ph.start_ms + by_ms, ph.duration_ms, ph.word) for ph in phones]
