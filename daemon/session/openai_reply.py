"""The OpenAI events around a reply, for sessions that speak OpenAI Realtime's shape.

    response.created ─► output_item.added ─► conversation.item.added ─► content_part.added
      ─► output_audio_transcript.delta (spoken) or output_text.delta (text only), audio
      ─► output_audio.done, output_audio_transcript.done ─► content_part.done
      ─► output_item.done ─► conversation.item.done ─► response.done (output, usage)

personae's own clients get personae's events only (`openai` False): text deltas as
`response.output_text.delta` whether or not the reply is spoken.
"""

from __future__ import annotations

from dataclasses import dataclass

from personae.sdk import openai_events as oe
from personae.sdk import protocol as p


@dataclass(frozen=True, slots=True)
class ReplyShape:
    """How one reply is spelled to its client."""

    openai: bool
    speak: bool

    @property
    def part_type(self) -> str:
        return "audio" if self.speak else "text"

    def info(self, **fields: object) -> p.ResponseInfo:
        return oe.OpenAIResponse(**fields) if self.openai else p.ResponseInfo(**fields)  # type: ignore[arg-type]

    def item(self, r_item: str, character: str, text: str, *, done: bool) -> oe.RealtimeItem:
        content = []
        if done:
            key = "transcript" if self.speak else "text"
            kind = "output_audio" if self.speak else "output_text"
            content = [oe.Content(type=kind, **{key: text})]
        return oe.RealtimeItem(
            id=r_item,
            role="assistant",
            status="completed" if done else "in_progress",
            content=content,
            character=character,
        )

    def started(self, info: p.ResponseInfo, item_id: str) -> list[p.BaseModel]:
        if not self.openai:
            return []
        item = self.item(item_id, info.character, "", done=False)
        key = "transcript" if self.speak else "text"
        part = oe.Content(type=self.part_type, **{key: ""})
        ids = {"response_id": info.id, "item_id": item_id, "character": info.character}
        return [
            oe.OutputItemAdded(response_id=info.id, item=item),
            oe.ConversationItemAdded(item=item),
            oe.ContentPartAdded(part=part, **ids),
        ]

    def text_delta(self, delta: str, **ids: str) -> p.BaseModel:
        if self.openai and self.speak:
            return oe.OutputAudioTranscriptDelta(delta=delta, **ids)
        return p.OutputTextDelta(delta=delta, **ids)

    def finished(self, info: p.ResponseInfo, item_id: str) -> list[p.BaseModel]:
        """Everything a completed reply sends before its `response.done`."""
        ids = {"response_id": info.id, "item_id": item_id, "character": info.character}
        text = info.output_text
        if not self.openai:
            return [p.OutputTextDone(text=text, **ids), p.OutputAudioDone(**ids)]
        item = self.item(item_id, info.character, text, done=True)
        out: list[p.BaseModel] = []
        if self.speak:
            out += [p.OutputAudioDone(**ids), oe.OutputAudioTranscriptDone(transcript=text, **ids)]
            part = oe.Content(type="audio", transcript=text)
        else:
            out.append(p.OutputTextDone(text=text, **ids))
            part = oe.Content(type="text", text=text)
        return [
            *out,
            oe.ContentPartDone(part=part, **ids),
            oe.OutputItemDone(response_id=info.id, item=item),
            oe.ConversationItemDone(item=item),
        ]

    def output(self, info: p.ResponseInfo, item_id: str, usage: tuple[int, int] | None) -> None:
        """`response.done`'s `output` and `usage` (OpenAI clients only)."""
        if isinstance(info, oe.OpenAIResponse):
            info.output = [self.item(item_id, info.character, info.output_text, done=True)]
            info.output_modalities = ["audio"] if self.speak else ["text"]
            info.usage = oe.Usage.of(*usage) if usage is not None else None
