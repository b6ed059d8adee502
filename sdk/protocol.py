"""personae realtime protocol, version 1: every event, typed, shared by daemon and SDK.

Names follow the OpenAI Realtime API where the meaning is the same; what games need
beyond it lives under `npc.*` and `game.*`. Audio is PCM16 little-endian mono at the
rates the session declares. The same events travel in two framings (see `framing`):
JSON text frames with base64 audio, and msgpack binary frames with raw audio bytes.

Every event the server sends about a response names the `character` speaking, so
several characters can talk in one session. See docs/protocol.md.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializationInfo,
    TypeAdapter,
    field_serializer,
)

PROTOCOL_VERSION = 1
SUBPROTOCOL = "personae.v1"


def new_id(prefix: str) -> str:
    """Short random ids ("resp_3f9a..."), the same shape as the OpenAI API's."""
    return f"{prefix}_{secrets.token_hex(8)}"


def _audio_in(value: Any) -> Any:
    # msgpack carries raw bytes; JSON carries base64 text. Accept either in both.
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("audio must be base64-encoded PCM16") from exc
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


#: PCM16 mono bytes; base64 text when the event is dumped in JSON mode
Audio = Annotated[
    bytes,
    BeforeValidator(_audio_in),
    PlainSerializer(
        lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"
    ),
]

SampleRate = Annotated[int, Field(ge=8000, le=48000)]
CharacterId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Event(_Model):
    event_id: str | None = None


# --------------------------------------------------------------------------- session


class ServerVAD(_Model):
    """The daemon detects when the player starts and stops talking."""

    type: Literal["server_vad"] = "server_vad"
    threshold: float | None = Field(None, gt=0.0, lt=1.0)
    silence_duration_ms: int | None = Field(None, ge=100, le=5000)
    prefix_padding_ms: int | None = Field(None, ge=0, le=2000)
    #: start a response when a turn ends (off: the client sends response.create)
    create_response: bool = True
    #: speech over a character's reply cancels that reply (barge-in)
    interrupt_response: bool = True


class SessionConfig(_Model):
    """Partial on `session.update`: fields left out keep their value."""

    #: characters in the scene, who can hear the player; None = every loaded character
    characters: list[CharacterId] | None = None
    #: always answer with this character (the player is talking to them)
    pinned_character: CharacterId | None = None
    #: None = push-to-talk: the client commits the audio buffer itself
    turn_detection: ServerVAD | None = ServerVAD()
    input_sample_rate: SampleRate = 16000
    output_sample_rate: SampleRate = 24000
    #: ["text"] turns voice off; ["text", "audio"] speaks every reply
    output_modalities: list[Literal["text", "audio"]] = Field(
        default_factory=lambda: ["text", "audio"], min_length=1
    )
    #: stable player identity, for per-player character state
    player_id: str | None = Field(None, max_length=128)


class Session(SessionConfig):
    id: str
    protocol_version: int = PROTOCOL_VERSION


class ContentPart(_Model):
    type: Literal["input_text", "output_text", "input_audio"] = "input_text"
    text: str | None = None


class Item(_Model):
    id: str | None = None
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system"] = "user"
    content: list[ContentPart] = Field(min_length=1)
    #: for assistant items: who said it
    character: CharacterId | None = None

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.content if p.text)


class ResponseOptions(_Model):
    #: answer as this character (skips routing); unknown ids get an error
    character: CharacterId | None = None
    output_modalities: list[Literal["text", "audio"]] | None = None
    #: extra instruction for this one response ("greet the player")
    instructions: str | None = Field(None, max_length=2000)


# ------------------------------------------------------------------- client events


class SessionUpdate(_Event):
    type: Literal["session.update"] = "session.update"
    session: SessionConfig

    @field_serializer("session")
    def _only_what_was_set(self, session: SessionConfig, info: SerializationInfo) -> dict[str, Any]:
        # An update is partial: fields the sender never set must not reset the server's.
        return session.model_dump(mode=info.mode, exclude_unset=True)


class InputAudioBufferAppend(_Event):
    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"
    audio: Audio


class InputAudioBufferCommit(_Event):
    type: Literal["input_audio_buffer.commit"] = "input_audio_buffer.commit"


class InputAudioBufferClear(_Event):
    type: Literal["input_audio_buffer.clear"] = "input_audio_buffer.clear"


class ConversationItemCreate(_Event):
    type: Literal["conversation.item.create"] = "conversation.item.create"
    item: Item


class ConversationItemTruncate(_Event):
    """The client played only `audio_end_ms` of an assistant item (barge-in on its side)."""

    type: Literal["conversation.item.truncate"] = "conversation.item.truncate"
    item_id: str
    content_index: int = 0
    audio_end_ms: int = Field(ge=0)


class ResponseCreate(_Event):
    type: Literal["response.create"] = "response.create"
    response: ResponseOptions = ResponseOptions()


class ResponseCancel(_Event):
    type: Literal["response.cancel"] = "response.cancel"
    response_id: str | None = None


class GameEvent(_Event):
    """Something happened in the game that characters in the scene may react to."""

    type: Literal["game.event"] = "game.event"
    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=2000)
    #: who perceives it; None = every character in the scene
    characters: list[CharacterId] | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class NpcFeedback(_Event):
    """The player rated a reply (thumbs, stars): feeds A/B experiment metrics."""

    type: Literal["npc.feedback"] = "npc.feedback"
    response_id: str | None = None
    character: CharacterId
    #: -1.0 (bad) .. 1.0 (good)
    score: float = Field(ge=-1.0, le=1.0)
    comment: str | None = Field(None, max_length=1000)


ClientEvent = Annotated[
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ConversationItemCreate
    | ConversationItemTruncate
    | ResponseCreate
    | ResponseCancel
    | GameEvent
    | NpcFeedback,
    Field(discriminator="type"),
]


# ------------------------------------------------------------------- server events


class SessionCreated(_Event):
    type: Literal["session.created"] = "session.created"
    session: Session


class SessionUpdated(_Event):
    type: Literal["session.updated"] = "session.updated"
    session: Session


class SpeechStarted(_Event):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str


class SpeechStopped(_Event):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str


class InputAudioBufferCommitted(_Event):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    item_id: str


class InputAudioBufferCleared(_Event):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


class ConversationItemCreated(_Event):
    type: Literal["conversation.item.created"] = "conversation.item.created"
    item: Item


class ConversationItemTruncated(_Event):
    type: Literal["conversation.item.truncated"] = "conversation.item.truncated"
    item_id: str
    content_index: int = 0
    audio_end_ms: int


class TranscriptionCompleted(_Event):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed"
    )
    item_id: str
    content_index: int = 0
    transcript: str


class NpcRoute(_Event):
    """Who answers the player's turn, and why."""

    type: Literal["npc.route"] = "npc.route"
    item_id: str | None
    character: CharacterId
    #: "pinned", "requested", "addressed" (named in the utterance), "continued" (a
    #: follow-up: the last speaker answers again), "similarity" (the closest profile)
    #: or "only" (a scene of one)
    reason: Literal["pinned", "requested", "addressed", "continued", "similarity", "only"]
    #: similarity of the utterance to the closest scene characters (at most 8, best
    #: first, and the last speaker when "continued"), higher is closer; empty when
    #: pinned or requested
    scores: dict[str, float]


class ResponseInfo(_Model):
    id: str
    character: CharacterId
    status: Literal["in_progress", "completed", "cancelled", "failed"] = "in_progress"
    #: why it ended when not completed: "turn_detected", "client_cancelled", "error"
    status_reason: str | None = None
    output_text: str = ""
    #: milliseconds of reply audio actually written to the client
    audio_sent_ms: int = 0
    output_sample_rate: int | None = None


class ResponseCreated(_Event):
    type: Literal["response.created"] = "response.created"
    response: ResponseInfo


class _ResponsePart(_Event):
    response_id: str
    item_id: str
    character: CharacterId
    output_index: int = 0
    content_index: int = 0


class OutputTextDelta(_ResponsePart):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    delta: str


class OutputTextDone(_ResponsePart):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    text: str


class OutputAudioDelta(_ResponsePart):
    type: Literal["response.output_audio.delta"] = "response.output_audio.delta"
    delta: Audio
    #: where this chunk starts in the response's audio, in ms
    offset_ms: int = 0


class OutputAudioDone(_ResponsePart):
    type: Literal["response.output_audio.done"] = "response.output_audio.done"


class NpcSentence(_ResponsePart):
    """A sentence about to be spoken, with where its audio starts: subtitles, lip-sync."""

    type: Literal["npc.sentence"] = "npc.sentence"
    text: str
    audio_start_ms: int
    audio_duration_ms: int


class NpcAction(_ResponsePart):
    """A stage direction in the reply: shown or animated, never spoken.

    `*waves*`, `(laughs)`, `<action>bows</action>` are actions; `[angry]` or
    `<emotion>warm</emotion>` are emotions. `audio_start_ms` is where in the reply's
    audio it belongs (the start of the sentence that holds it).
    """

    type: Literal["npc.action"] = "npc.action"
    kind: Literal["action", "emotion"]
    text: str
    audio_start_ms: int = 0


class NpcEmotion(_Event):
    """How a character feels now: after the player's words, a game event, or a reply."""

    type: Literal["npc.emotion"] = "npc.emotion"
    character: CharacterId
    #: the strongest emotion ("joy", "anger", "fear", "sadness", "surprise", ...)
    dominant: str
    intensity: float
    blend: dict[str, float]
    trust: float | None = None
    affinity: float | None = None


class NpcAlert(_Event):
    """A character is drifting out of character (its rolling score fell below threshold)."""

    type: Literal["npc.alert"] = "npc.alert"
    character: CharacterId
    #: "consistency" (similarity to reference lines) or "traits" (style adherence)
    signal: str
    rolling: float
    threshold: float
    replies: int


class ResponseDone(_Event):
    type: Literal["response.done"] = "response.done"
    response: ResponseInfo


class ErrorInfo(_Model):
    #: "invalid_request_error" (the client's fault) or "server_error"
    type: Literal["invalid_request_error", "server_error"] = "invalid_request_error"
    #: stable machine-readable code, e.g. "malformed_frame", "unknown_event", "unknown_character"
    code: str
    message: str
    #: the `type` of the client event that caused it, when known
    event_type: str | None = None
    #: the client's `event_id`, when it sent one
    event_id: str | None = None
    retryable: bool = False
    #: with `server_busy`: about how long to wait before asking again
    retry_after_ms: int | None = None


class Error(_Event):
    type: Literal["error"] = "error"
    error: ErrorInfo


ServerEvent = Annotated[
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | InputAudioBufferCommitted
    | InputAudioBufferCleared
    | ConversationItemCreated
    | ConversationItemTruncated
    | TranscriptionCompleted
    | NpcRoute
    | ResponseCreated
    | OutputTextDelta
    | OutputTextDone
    | OutputAudioDelta
    | OutputAudioDone
    | NpcSentence
    | NpcAction
    | NpcEmotion
    | NpcAlert
    | ResponseDone
    | Error,
    Field(discriminator="type"),
]

client_event_adapter: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
server_event_adapter: TypeAdapter[ServerEvent] = TypeAdapter(ServerEvent)


def _types(union: Any) -> frozenset[str]:
    return frozenset(m.model_fields["type"].default for m in get_args(get_args(union)[0]))


CLIENT_EVENT_TYPES = _types(ClientEvent)
SERVER_EVENT_TYPES = _types(ServerEvent)
