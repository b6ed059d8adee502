"""Hand-labelled dialogue fixtures.

A labelled text is the plain text with `[[speaker]]` written by hand immediately before
each opening quotation mark (or the dash of a dash-introduced line); `[[-]]` marks quoted
words that nobody speaks (a quoted sign, a quotation inside speech). Stripping the labels
gives the plain text and, for each label, the offset of its opening mark in that text.
`[[speaker+]]` marks a paragraph that continues the speech of the paragraph before (a
speech of several paragraphs, where only the last one closes its quote).
"""

from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
_LABEL = re.compile(r"\[\[([a-z-]+)(\+?)\]\]")


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


def continuations(name: str) -> list[int]:
    """Offsets (in the stripped text) of the opening marks labelled as continuations."""
    labelled = (FIXTURES / name).read_text(encoding="utf-8")
    out, removed = [], 0
    for m in _LABEL.finditer(labelled):
        if m.group(2):
            out.append(m.start() - removed)
        removed += len(m.group(0))
    return out


def _key(text: str, offset: int) -> str:
    return re.sub(r"\s+", " ", text[offset : offset + 80])[:28]


def score(
    text: str,
    labels: dict[int, str],
    predicted_text: str,
    predicted: dict[int, str | None],
    targets: set[str],
) -> tuple[float, float, list[tuple[str, str | None, str]]]:
    """Precision and recall of speaker attribution, per quote.

    `labels` are offsets in `text` (the labelled file stripped); `predicted` maps the
    opening-mark offset of each quote the extractor found in `predicted_text` (the
    cleaned text it read) to the speaker it chose, None when it abstained. Quotes are
    matched by their first characters (whitespace normalised), so cleaning that
    re-flows lines does not matter. A prediction on a quote labelled `-` (nobody
    speaks) or on no labelled quote at all is wrong. Recall counts the labelled quotes
    of `targets` that got their right speaker.
    """
    truth: dict[str, list[str]] = {}
    for off in sorted(labels):
        truth.setdefault(_key(text, off), []).append(labels[off])
    correct = wrong = 0
    errors = []
    found = 0
    for off in sorted(predicted):
        key = _key(predicted_text, off)
        expected = truth[key].pop(0) if truth.get(key) else None
        sp = predicted[off]
        if sp is None:
            continue
        if sp == expected:
            correct += 1
            found += expected in targets
        else:
            wrong += 1
            errors.append((key, expected, sp))
    wanted = sum(1 for s in labels.values() if s in targets)
    return correct / max(1, correct + wrong), found / max(1, wanted), errors
