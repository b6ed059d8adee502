"""The events personae sends only to clients that speak OpenAI Realtime's shape.

They complete OpenAI's GA event set around personae's own events (docs/protocol.md,
"OpenAI compatibility"): the output item and content part a reply is made of, the
transcript of spoken replies, `response.done` with its `output` and `usage`. personae's own clients get none of them; the beta names of
the same events are `openai_shape.BETA_NAMES`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from personae.sdk.protocol import ResponseInfo


class _Event(BaseModel):
    event_id: str | None = None


class Content(BaseModel):
    """One content part of an item: `input_text` / `input_audio` from the player,
    `output_text` / `output_audio` from a character (`text` / `audio` in a response's
    content part events)."""

    type: str
    text: str | None = None
    transcript: str | None = None


class RealtimeItem(BaseModel):
    id: str
    type: Literal["message"] = "message"
    object: Literal["realtime.item"] = "realtime.item"
    status: Literal["completed", "in_progress", "incomplete"] = "completed"
    role: Literal["user", "assistant"]
    content: list[Content] = Field(default_factory=list)
    #: personae's: who said it (assistant items)
    character: str | None = None


class Usage(BaseModel):
    """Tokens of one reply, as the LLM engine counts them (its tokenizer)."""

    total_tokens: int
    input_tokens: int
    output_tokens: int
    input_token_details: dict[str, int]
    output_token_details: dict[str, int]

    @classmethod
    def of(cls, input_tokens: int, output_tokens: int) -> Usage:
        return cls(
            total_tokens=input_tokens + output_tokens,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            input_token_details={"text_tokens": input_tokens, "audio_tokens": 0},
            output_token_details={"text_tokens": output_tokens, "audio_tokens": 0},
        )


class OpenAIResponse(ResponseInfo):
    """`response.created` / `response.done` as OpenAI clients read them."""

    object: Literal["realtime.response"] = "realtime.response"
    output: list[RealtimeItem] = Field(default_factory=list)
    output_modalities: list[str] = Field(default_factory=lambda: ["audio"])
    conversation_id: str | None = None
    metadata: dict[str, Any] | None = None
    usage: Usage | None = None


class ConversationItemAdded(_Event):
    type: Literal["conversation.item.added"] = "conversation.item.added"
    previous_item_id: str | None = None
    item: RealtimeItem


class ConversationItemDone(_Event):
    type: Literal["conversation.item.done"] = "conversation.item.done"
    previous_item_id: str | None = None
    item: RealtimeItem


class _Part(_Event):
    response_id: str
    item_id: str
    character: str
    output_index: int = 0
    content_index: int = 0


class OutputItemAdded(_Event):
    type: Literal["response.output_item.added"] = "response.output_item.added"
    response_id: str
    output_index: int = 0
    item: RealtimeItem


class OutputItemDone(_Event):
    type: Literal["response.output_item.done"] = "response.output_item.done"
    response_id: str
    output_index: int = 0
    item: RealtimeItem


class ContentPartAdded(_Part):
    type: Literal["response.content_part.added"] = "response.content_part.added"
    part: Content


class ContentPartDone(_Part):
    type: Literal["response.content_part.done"] = "response.content_part.done"
    part: Content


class OutputAudioTranscriptDelta(_Part):
    type: Literal["response.output_audio_transcript.delta"] = (
        "response.output_audio_transcript.delta"
    )
    delta: str


class OutputAudioTranscriptDone(_Part):
    type: Literal["response.output_audio_transcript.done"] = "response.output_audio_transcript.done"
    transcript: str


class NpcWarning(_Event):
    """An OpenAI field personae accepted without honouring it (docs/protocol.md)."""

    type: Literal["npc.warning"] = "npc.warning"
    code: Literal["not_supported"] = "not_supported"
    #: the field, as the client spelled it ("session.tools")
    param: str
    message: str


OpenAIServerEvent = (
    ConversationItemAdded
    | ConversationItemDone
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | OutputAudioTranscriptDelta
    | OutputAudioTranscriptDone
    | NpcWarning
)

OPENAI_SERVER_EVENT_TYPES = frozenset(
    m.model_fields["type"].default
    for m in (
        ConversationItemAdded,
        ConversationItemDone,
        OutputItemAdded,
        OutputItemDone,
        ContentPartAdded,
        ContentPartDone,
        OutputAudioTranscriptDelta,
        OutputAudioTranscriptDone,
        NpcWarning,
    )
)
