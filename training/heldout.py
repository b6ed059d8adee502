"""Keep held-out evaluation questions out of the training data.

An example overlaps a held-out question when its user turn (or reply) is the question
after normalisation, is near it by difflib ratio, or shares a large part of the
question's word 4-grams (or of its content words, for short questions). The dataset
stage drops such examples and counts them; `overlaps()` is what the test asserts on.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from personae.training.errors import RecipeError

#: thresholds: a ratio this high, or this share of the question's 4-grams / content words
RATIO = 0.85
SHARED_4GRAMS = 0.4
SHARED_WORDS = 0.75
_STOP = frozenset(
    "a an the and or but of to in on at for with by from is are was were be been am do does "
    "did you your i me my we our it its this that there here what who whom which how why "
    "when where can could would should will shall have has had not no yes so if then than "
    "as about into up down out over off too very just".split()
)


def normalise(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower().replace("’", "'")).strip()


def _grams(words: list[str], n: int = 4) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class HeldOut:
    id: str
    text: str

    @property
    def norm(self) -> str:
        return normalise(self.text)


def load_heldout(paths: Iterable[Path]) -> list[HeldOut]:
    """Every question and earlier user turn of evaluation files (`eval/*.toml`)."""
    out: list[HeldOut] = []
    for path in paths:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RecipeError(f"{path}: cannot read the held-out set: {exc}") from exc
        for q in data.get("questions", []):
            out.append(HeldOut(q["id"], q["question"]))
            for k, turn in enumerate(q.get("history", [])):
                if isinstance(turn, dict) and turn.get("user"):
                    out.append(HeldOut(f"{q['id']}/history{k}", turn["user"]))
    return out


class OverlapChecker:
    def __init__(self, heldout: list[HeldOut]) -> None:
        self.items = [
            (h, h.norm, h.norm.split(), _grams(h.norm.split())) for h in heldout if h.norm
        ]
        self.exact = {norm: h for h, norm, _, _ in self.items}

    def match(self, text: str) -> HeldOut | None:
        """The held-out question that `text` (or one of its sentences) overlaps, if any."""
        norm = normalise(text)
        if not norm:
            return None
        candidates = [norm] + [
            normalise(s) for s in re.split(r"(?<=[.!?])\s+", text) if normalise(s) != norm
        ]
        for cand in candidates:
            if cand in self.exact:
                return self.exact[cand]
            words = cand.split()
            grams = _grams(words)
            content = {w for w in words if w not in _STOP}
            for h, hnorm, hwords, hgrams in self.items:
                if hgrams and len(hgrams & grams) >= SHARED_4GRAMS * len(hgrams):
                    return h
                hcontent = {w for w in hwords if w not in _STOP}
                if (
                    len(hcontent) >= 3
                    and len(hcontent & content) >= SHARED_WORDS * len(hcontent)
                    and len(content) <= 2 * len(hcontent)
                ):
                    return h
                if (
                    abs(len(cand) - len(hnorm)) <= 0.3 * len(hnorm)
                    and SequenceMatcher(None, cand, hnorm).ratio() >= RATIO
                ):
                    return h
        return None

    def overlaps(self, examples: Iterable[dict]) -> list[tuple[str, str]]:
        """(example text, held-out id) for every example turn that overlaps."""
        found = []
        for ex in examples:
            for text in (ex.get("user", ""), ex.get("assistant", "")):
                h = self.match(text)
                if h is not None:
                    found.append((text, h.id))
        return found
