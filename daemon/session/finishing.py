"""Replies that end on a complete sentence, never at the token budget mid-word.

The LLM is asked for the character's `max_tokens` plus a grace of `reply_finish_tokens`.
Once the budget is spent, the reply stops at the next sentence end; if the grace runs
out first, the reply ends at its last complete sentence and the unfinished tail is
dropped. Pieces of text are released (to the client, to TTS, to memory) only once their
sentence is complete, so a dropped tail was never sent or spoken. The one exception is
the reply's early first piece (`tts_first_piece_early`), which is spoken before its
sentence ends, for latency.

A reply that is one unfinished sentence keeps its whole words, less a trailing word that
leans on the next ("and", "the"), and trails off with "…": a character who trails off
is better than silence, and "…" ends a sentence for TTS and for `personae eval`.

A reply that ends on its own (end of sequence, a stop string) is never trimmed; if its
last word has no closing mark it gets a ".".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import GenerationRequest
from personae.daemon.session.splitter import SentenceSplitter, _open_direction

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

#: a sentence's end: a terminator run, then closing quotes, brackets or asterisks
_COMPLETE = re.compile(r"[.!?…]+[\"'”’)\]*]*$")
#: words a trailing-off fragment does not end on: they lean on a word that never came
_DANGLING = frozenset(
    """a an the my your his her its our their this that these those to of for in on at
    with from by into onto about as than some any no every each and but or so because
    yet though although while unless until whereas if when where who which is are was
    were be i you he she we they it not very""".split()
)
TRAIL = "…"


def complete(text: str) -> bool:
    """Whether `text` ends on a complete sentence (terminal mark, closed directions)."""
    text = text.rstrip()
    if not text:
        return False
    if _COMPLETE.search(text):
        return not _open_direction(text)
    # a reply may end on a stage direction: "*nods*", "(laughs)"
    return text[-1] in "*)]>" and not _open_direction(text)


def with_grace(params: GenerationParams, grace: int) -> GenerationParams:
    """What to ask the engine for: the budget plus the grace for the last sentence."""
    return params.model_copy(update={"max_tokens": params.max_tokens + grace})


def graced(request: GenerationRequest, settings: Settings) -> GenerationRequest:
    """`request` as the engine gets it: with the grace for the last sentence."""
    params = with_grace(request.params, settings.reply_finish_tokens)
    return dataclasses.replace(request, params=params)


def for_reply(settings: Settings, params: GenerationParams, *, script: bool) -> Finisher:
    """The finisher of a spoken reply (a verbatim `script` line has no budget)."""
    splitter = SentenceSplitter(
        first_clause_chars=settings.tts_first_clause_chars,
        first_words=settings.tts_first_piece_words if settings.tts_first_piece_early else 0,
    )
    budget = None if script else params.max_tokens
    return Finisher(splitter, budget, settings.reply_finish_tokens, early_first=True)


def trail_off(fragment: str) -> str:
    """One unfinished sentence, cut at its last whole word and trailing off with "…"."""
    words = fragment.split()
    if fragment and not fragment[-1].isspace() and len(words) > 1:
        words = words[:-1]  # the last word may be cut mid-token
    while len(words) > 1 and words[-1].lower().strip("\"'“”‘’,;:—–-") in _DANGLING:
        words.pop()
    text = " ".join(words).rstrip(",;:—–- ")
    return text + TRAIL if text else ""


class Finisher:
    """Sits between the LLM's deltas and everything downstream of them.

    `push` each delta; it returns the (piece, text delta) pairs now safe to send: the
    piece goes to TTS, the text delta (the piece with its leading space) to the client.
    Stop generating once `enough`; then `finish(cut)` releases the rest, where `cut`
    says whether the engine stopped because the budget plus grace ran out.
    `budget` None: no budget (a verbatim line), everything is released as it is.
    """

    def __init__(
        self, splitter: SentenceSplitter, budget: int | None, grace: int, *, early_first: bool
    ) -> None:
        self._splitter = splitter
        self.budget = budget
        self.grace = grace
        self._early_first = early_first
        self.tokens = 0  # deltas seen, about one token each
        self.raw = ""  # everything the LLM said
        self._pending: list[str] = []  # pieces whose sentence is not complete yet
        self.released: list[str] = []
        self.stopped = False  # we stopped the LLM at a sentence end past the budget
        #: what the LLM had said when the budget ran out (None: it ended before)
        self.at_budget: str | None = None
        self.cut = False  # the reply was trimmed or stopped by its budget

    @property
    def text(self) -> str:
        """The reply as released: what was sent, spoken and remembered."""
        return "".join(self._deltas(self.released))

    @property
    def reason(self) -> str:
        """OpenAI's `finish_reason`: "length" when the budget, not the model, ended it."""
        return "length" if self.cut else "stop"

    @property
    def limit(self) -> int | None:
        """The most tokens the engine was asked for."""
        return None if self.budget is None else self.budget + self.grace

    def push(self, delta: str) -> list[tuple[str, str]]:
        self.tokens += 1
        self.raw += delta
        if self.tokens == self.budget:
            self.at_budget = self.raw
        out: list[str] = []
        for piece in self._splitter.push(delta):
            first = not self.released and not out and not self._pending
            if complete(piece) or (first and self._early_first) or self.budget is None:
                out += [*self._pending, piece]
                self._pending = []
            else:
                self._pending.append(piece)
        return self._release(out)

    @property
    def enough(self) -> bool:
        """Past the budget, at a sentence end: stop generating here."""
        if self.budget is None or self.tokens < self.budget or not complete(self.raw):
            return False
        self.stopped = True
        return True

    def needs_count(self) -> bool:
        """Whether `finish` needs to know if the budget ran out (an unfinished tail)."""
        return not self.stopped and not complete(self.raw) and self.budget is not None

    def ran_out(self, reply_tokens: int | None) -> bool:
        """Whether the engine stopped at its limit: by its own count of `raw` when it can
        count (`reply_tokens`), else by deltas (which may merge a few tokens)."""
        limit = self.limit
        if limit is None:
            return False
        if reply_tokens is not None:
            # re-tokenising the text may take a token or two fewer than sampling did
            return reply_tokens >= limit - 2 or self.tokens >= limit
        return self.tokens >= limit - 2

    def finish(self, ran_out: bool = False) -> list[tuple[str, str]]:
        tail = [*self._pending, *self._splitter.flush()]
        self._pending = []
        if self.stopped or not tail:
            self.cut = self.stopped
            return self._release(tail)
        if not ran_out:
            last = tail[-1]
            if last[-1].isalnum():  # ended on its own without a closing mark
                tail[-1] = last + "."
            return self._release(tail)
        self.cut = True
        if any(complete(p) for p in self.released):
            return []  # the unfinished tail is dropped: never sent, never spoken
        # one unfinished sentence: trail off after its whole words
        said = " ".join(self.released)
        spaced = " " if self.raw[-1:].isspace() else ""
        whole = trail_off(" ".join([*self.released, *tail]) + spaced)
        rest = whole[len(said) :].strip() if said and whole.startswith(said) else whole
        if said and not whole.startswith(said):
            rest = TRAIL  # the released first piece stands; it trails off there
        return self._release([rest or TRAIL])

    def _release(self, pieces: list[str]) -> list[tuple[str, str]]:
        deltas = self._deltas(pieces, first=not self.released)
        self.released += pieces
        return list(zip(pieces, deltas, strict=True))

    @staticmethod
    def _deltas(pieces: list[str], *, first: bool = True) -> list[str]:
        out = []
        for i, piece in enumerate(pieces):
            lead = "" if (first and i == 0) or piece == TRAIL else " "
            out.append(lead + piece)
        return out


async def finished(
    deltas: AsyncIterator[str],
    finisher: Finisher,
    count: Callable[[str], Awaitable[int | None]],
) -> AsyncIterator[str]:
    """`deltas` as text that ends on a complete sentence (the chat completions API).

    `count(text)` is the engine's count of a reply's tokens, or None."""
    async for delta in deltas:
        for _, text in finisher.push(delta):
            yield text
        if finisher.enough:
            break
    ran_out = finisher.needs_count() and finisher.ran_out(await count(finisher.raw))
    for _, text in finisher.finish(ran_out):
        yield text
