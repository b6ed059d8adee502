"""Replies end on a complete sentence: trimmed at the budget, never a fragment sent."""

from __future__ import annotations

import re

import pytest

from personae.daemon.session.finishing import Finisher, complete, trail_off
from personae.daemon.session.splitter import SentenceSplitter


def run(text: str, budget: int, *, grace: int = 4, early: bool = False) -> tuple[Finisher, list]:
    """Feed `text` a word (a "token") at a time, as an engine asked for budget + grace
    would: it stops at budget + grace words, or when the finisher has enough."""
    words = re.findall(r"\S+\s*", text)
    splitter = SentenceSplitter(first_words=5 if early else 0)
    f = Finisher(splitter, budget, grace, early_first=early)
    out: list[tuple[str, str]] = []
    for word in words[: budget + grace]:
        out += f.push(word)
        if f.enough:
            break
    ran_out = f.needs_count() and f.ran_out(len(f.raw.split()))
    return f, out + f.finish(ran_out)


def test_complete_sentences() -> None:
    assert complete("The mill stands north.")
    assert complete('He said "go home!"')
    assert complete("Aye. *nods*")
    assert complete("Well…")
    assert not complete("That same merchant fell in")
    assert not complete("Aye, the")
    assert not complete("*wipes the bench. Then")


def test_a_reply_past_its_budget_stops_at_the_next_sentence_end() -> None:
    text = "Leave it on the bench. Bent steel can be saved. Broken steel cannot. Come back."
    f, out = run(text, budget=7)
    assert f.text == "Leave it on the bench. Bent steel can be saved."
    assert f.cut and f.reason == "length"
    assert [piece for piece, _ in out] == ["Leave it on the bench.", "Bent steel can be saved."]


def test_an_unfinished_tail_is_dropped_and_never_released() -> None:
    text = "The mill is north. It burned long ago. That same merchant fell in the river and never"
    f, out = run(text, budget=10, grace=4)
    assert f.text == "The mill is north. It burned long ago."
    assert f.cut and f.reason == "length"
    assert f.at_budget == "The mill is north. It burned long ago. That same "  # 10 words
    released = "".join(delta for _, delta in out)
    assert released == f.text and "merchant" not in released


def test_one_unfinished_sentence_trails_off_after_its_whole_words() -> None:
    text = "That same merchant fell in the river by the old mill and then the"
    f, out = run(text, budget=8, grace=4)  # 12 words: "...old mill and"
    assert f.text == "That same merchant fell in the river by the old mill…"
    assert f.cut and complete(f.text)
    assert [piece for piece, _ in out] == [f.text]


def test_an_early_first_piece_stays_and_the_rest_trails_off() -> None:
    # the first piece went to TTS before its sentence ended; the reply then ran out
    text = "Well now, the forge burns hot and my hammer is ready for the blade of"
    f, out = run(text, budget=10, grace=3, early=True)
    pieces = [piece for piece, _ in out]
    assert pieces[0] == "Well now,"
    assert f.text == "Well now, the forge burns hot and my hammer is ready…"
    assert "".join(delta for _, delta in out) == f.text
    assert complete(f.text) and f.cut


def test_a_reply_that_ends_on_its_own_is_never_trimmed() -> None:
    f, _ = run("Mind the sparks. What do you need?", budget=40)
    assert f.text == "Mind the sparks. What do you need?" and not f.cut
    assert f.reason == "stop"
    # ended without a closing mark (end of sequence): closed, not cut
    f, _ = run("Mind the sparks. Aye", budget=40)
    assert f.text == "Mind the sparks. Aye." and not f.cut


def test_within_budget_but_the_engine_stopped_at_its_limit() -> None:
    # an engine whose deltas merge tokens: its own count says the limit was reached
    splitter = SentenceSplitter()
    f = Finisher(splitter, 4, 2, early_first=False)
    for d in ["Aye. ", "The mill lies north of"]:
        f.push(d)
    assert f.needs_count()
    assert not f.ran_out(None)  # two deltas: by deltas it ended on its own
    assert f.ran_out(6)  # the engine counted six tokens: its limit
    f.finish(True)
    assert f.text == "Aye." and f.cut


def test_a_verbatim_line_has_no_budget() -> None:
    f = Finisher(SentenceSplitter(), None, 24, early_first=False)
    out = f.push("A line the writer wrote, which may run long and long and long")
    assert not f.enough and not f.needs_count()
    out += f.finish(False)
    assert f.text == "A line the writer wrote, which may run long and long and long."


@pytest.mark.parametrize(
    ("fragment", "said"),
    [
        ("That same merchant fell in", "That same merchant fell…"),  # "in" may be cut mid-word
        ("That same merchant fell in ", "That same merchant fell…"),  # "in" leans on the next
        ("The river, the mill, and the ", "The river, the mill…"),
        ("Merch", "Merch…"),
    ],
)
def test_trail_off(fragment: str, said: str) -> None:
    assert trail_off(fragment) == said
