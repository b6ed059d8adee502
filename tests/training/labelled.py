"""Hand-labelled dialogue fixtures.

A labelled text is the plain text with `[[speaker]]` written by hand immediately before
each opening quotation mark (or the dash of a dash-introduced line); `[[-]]` marks quoted
words that nobody speaks (a quoted sign, a quotation inside speech). Stripping the labels
gives the plain text and, for each label, the offset of its opening mark in that text.
"""

from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
_LABEL = re.compile(r"\[\[([a-z-]+)\]\]")


def strip_labels(labelled: str) -> tuple[str, dict[int, str]]:
    """(plain text, {offset of the opening mark in the plain text: speaker id})."""
    out: list[str] = []
    labels: dict[int, str] = {}
    pos = 0
    length = 0
    for m in _LABEL.finditer(labelled):
        chunk = labelled[pos : m.start()]
        out.append(chunk)
        length += len(chunk)
        labels[length] = m.group(1)
        pos = m.end()
    out.append(labelled[pos:])
    return "".join(out), labels


def load(name: str) -> tuple[str, dict[int, str]]:
    return strip_labels((FIXTURES / name).read_text(encoding="utf-8"))


def score(text: str, labels: dict[int, str], predicted: dict[int, str | None], targets: set[str]):
    """Precision and recall of speaker attribution, per quote.

    `predicted` maps the opening-mark offset of each quote the extractor found to the
    speaker it chose (None: abstained). A prediction on a quote labelled `-` (nobody
    speaks) or on no labelled quote is wrong. Recall counts the labelled quotes of
    `targets` that got their right speaker.
    """
    correct = wrong = 0
    errors = []
    for off, sp in predicted.items():
        if sp is None:
            continue
        truth = labels.get(off)
        if truth == sp:
            correct += 1
        else:
            wrong += 1
            errors.append((text[off : off + 50], truth, sp))
    wanted = [o for o, s in labels.items() if s in targets]
    found = sum(1 for o in wanted if predicted.get(o) == labels[o])
    precision = correct / max(1, correct + wrong)
    recall = found / max(1, len(wanted))
    return precision, recall, errors
