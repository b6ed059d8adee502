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
    PrivateAttr,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    field_serializer,
    model_serializer,
    model_validator,
)

from personae.sdk import openai_shape
from personae.sdk.openai_shape import (
    AudioConfig,
    BetaAudioFormat,
    Dialect,
    ServerVAD,
    Transcription,
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


def _input_only() -> Any:
    # an OpenAI spelling, folded into personae's fields on input, never dumped as is
    return Field(None, exclude=True)


class SessionConfig(_Model):
    """Partial on `session.update`: fields left out keep their value.

    OpenAI Realtime's GA (`type`, `audio.input.format`, `audio.output.voice`, ...) and
    beta (`modalities`, `input_audio_format`, `voice`, ...) spellings are accepted and
    folded into these fields (`openai_shape.fold`)."""

    #: characters in the scene, who can hear the player; None = every loaded character
    characters: list[CharacterId] | None = None
    #: always answer with this character (the player is talking to them)
    pinned_character: CharacterId | None = None
    #: None = push-to-talk: the client commits the audio buffer itself
    turn_detection: ServerVAD | None = ServerVAD()
    input_sample_rate: SampleRate = 16000
    output_sample_rate: SampleRate = 24000
    #: ["text"] turns voice off; ["text", "audio"] (or OpenAI's ["audio"]) speaks every reply
    output_modalities: list[Literal["text", "audio"]] = Field(
        default_factory=lambda: ["text", "audio"], min_length=1
    )
    #: stable player identity, for per-player character state
    player_id: str | None = Field(None, max_length=128)
    #: scene direction added to every reply's instructions (OpenAI's `instructions`)
    instructions: str | None = Field(None, max_length=4000)
    #: a character id: every reply is spoken in that character's voice (None: each
    #: character speaks in its own)
    voice: str | None = Field(None, max_length=64)
    #: OpenAI's transcription settings: acknowledged, shown to OpenAI clients only
    #: (personae's STT engine transcribes every turn)
    transcription: Transcription | None = Field(None, exclude=True)
    #: a character id (pins it), a scene name or "personae" (routing): the URL's
    #: `model`; shown to OpenAI clients only
    model: str | None = Field(None, max_length=128, exclude=True)
    #: False: no `npc.*` events, for strict OpenAI clients
    npc_events: bool = True
    #: False: no `npc.viseme` events (mouth shapes and word timings of reply audio)
    visemes: bool = True
    #: the client cancels the character's echo itself (a browser's or console's AEC,
    #: headphones): the daemon's echo check is skipped
    client_echo_cancellation: bool = False

    # OpenAI's spellings, folded into the fields above (see openai_shape)
    type: Literal["realtime"] | None = _input_only()
    object: Literal["realtime.session"] | None = _input_only()
    audio: AudioConfig | None = _input_only()
    modalities: list[Literal["text", "audio"]] | None = _input_only()
    input_audio_format: BetaAudioFormat | None = _input_only()
    output_audio_format: BetaAudioFormat | None = _input_only()
    input_audio_transcription: Transcription | None = _input_only()
    tools: list[Any] | None = _input_only()
    tool_choice: Any = _input_only()
    parallel_tool_calls: bool | None = _input_only()
    temperature: float | None = _input_only()
    max_output_tokens: int | Literal["inf"] | None = _input_only()
    max_response_output_tokens: int | Literal["inf"] | None = _input_only()
    tracing: Any = _input_only()
    truncation: Any = _input_only()
    include: list[str] | None = _input_only()
    prompt: Any = _input_only()
    reasoning: Any = _input_only()
    input_audio_noise_reduction: Any = _input_only()
    client_secret: Any = _input_only()
    expires_at: int | None = _input_only()

    #: OpenAI fields accepted but not honoured: {field: why}; the session warns
    _warnings: dict[str, str] = PrivateAttr(default_factory=dict)
    #: the OpenAI spelling the update used (None: personae's own)
    _dialect: Dialect | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fold_openai(self) -> SessionConfig:
        spelled = {k: getattr(self, k) for k in self.model_fields_set if k in _OPENAI_SPELLINGS}
        if not spelled:
            return self
        canonical, warnings, dialect = openai_shape.fold(spelled)
        for name, value in canonical.items():
            if name in self.model_fields_set and getattr(self, name) != value:
                raise ValueError(f"{name} ({getattr(self, name)!r}) contradicts {value!r}")
            setattr(self, name, value)  # marks it set: a partial update applies it
        for name in spelled:  # folded: only the canonical field stands
            self.__dict__[name] = None
            self.__pydantic_fields_set__.discard(name)
        if type(self) is SessionConfig:  # a client's update, not the server's view
            self._warnings, self._dialect = warnings, dialect
        return self

    @property
    def openai_warnings(self) -> dict[str, str]:
        return self._warnings

    @property
    def dialect(self) -> Dialect | None:
        return self._dialect


_OPENAI_SPELLINGS = frozenset(
    name
    for name, info in SessionConfig.model_fields.items()
    if info.exclude and name not in ("transcription", "model")
)


class Session(SessionConfig):
    id: str
    protocol_version: int = PROTOCOL_VERSION


class OpenAISession(Session):
    """The session as sessions that speak OpenAI's shape are shown it: personae's
    fields, and the effective configuration in OpenAI's GA and beta spellings."""

    @model_serializer(mode="wrap")
    def _with_openai_views(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        transcription = self.transcription.model_dump() if self.transcription else None
        return {**data, **openai_shape.views(data, self.model, transcription)}


class ResponseOptions(_Model):
    #: answer as this character (skips routing); unknown ids get an error
    character: CharacterId | None = None
    output_modalities: list[Literal["text", "audio"]] | None = None
    #: extra instruction for this one response ("greet the player")
    instructions: str | None = Field(None, max_length=2000)
    #: OpenAI's: echoed in the response (`response.done`)
    metadata: dict[str, str] | None = None
    #: OpenAI's "auto" / "none": every reply joins the conversation ("none" warns)
    conversation: str | None = None
    #: OpenAI beta's spelling of output_modalities
    modalities: list[Literal["text", "audio"]] | None = _input_only()
    # OpenAI's, accepted and not honoured: each set one is answered with a warning
    audio: AudioConfig | None = _input_only()
    voice: str | dict[str, Any] | None = _input_only()
    output_audio_format: BetaAudioFormat | None = _input_only()
    tools: list[Any] | None = _input_only()
    tool_choice: Any = _input_only()
    temperature: float | None = _input_only()
    max_output_tokens: int | Literal["inf"] | None = _input_only()
    max_response_output_tokens: int | Literal["inf"] | None = _input_only()
    input: list[Any] | None = _input_only()
    prompt: Any = _input_only()

    _warnings: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _fold_openai(self) -> ResponseOptions:
        if self.modalities is not None:
            if self.output_modalities not in (None, self.modalities):
                raise ValueError("modalities contradicts output_modalities")
            self.output_modalities = self.modalities
        spelled = {k for k in self.model_fields_set if k in _RESPONSE_SPELLINGS - {"modalities"}}
        self._warnings = openai_shape.response_warnings(
            {k: getattr(self, k) for k in spelled}, conversation=self.conversation
        )
        for name in spelled | {"modalities"}:
            self.__dict__[name] = None
            self.__pydantic_fields_set__.discard(name)
        return self

    @property
    def openai_warnings(self) -> dict[str, str]:
        return self._warnings


_RESPONSE_SPELLINGS = frozenset(
    name for name, info in ResponseOptions.model_fields.items() if info.exclude
)


class ContentPart(_Model):
    #: "text" is OpenAI beta's spelling of an assistant's "output_text"
    type: Literal["input_text", "output_text", "input_audio", "text"] = "input_text"
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
    #: checked by the daemon (0 to the audio sent): a precise error, not invalid_event
    audio_end_ms: int


#: the `error.code` of a truncate the daemon refuses (nothing is changed): no reply by
#: that id, a content part other than 0, or a position outside the audio sent of it
TruncateErrorCode = Literal["item_not_found", "invalid_content_index", "audio_end_ms_out_of_range"]


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


class GameTrigger(_Event):
    """The game tells a character that something happened: it says the trigger's line
    (parameters filled in) or replies to its instruction, and runs the goals it starts."""

    type: Literal["game.trigger"] = "game.trigger"
    character: CharacterId
    #: a trigger declared in the character's file
    trigger: str = Field(min_length=1, max_length=64)
    #: checked against the trigger's declared JSON Schema
    parameters: dict[str, Any] = Field(default_factory=dict)


class GameActionResult(_Event):
    """What became of an `npc.action` (kind "game"): the character remembers it."""

    type: Literal["game.action_result"] = "game.action_result"
    #: the `action_id` of the `npc.action`
    action_id: str = Field(min_length=1, max_length=64)
    status: Literal["done", "refused", "failed"]
    reason: str = Field("", max_length=1000)


class NpcFeedback(_Event):
    """The player rated a reply (thumbs, stars): feeds A/B experiment metrics."""

    type: Literal["npc.feedback"] = "npc.feedback"
    response_id: str | None = None
    character: CharacterId
    #: -1.0 (bad) .. 1.0 (good)
    score: float = Field(ge=-1.0, le=1.0)
    comment: str | None = Field(None, max_length=1000)


class NpcConverse(_Event):
    """Characters in the scene talk to each other: an exchange of `lines` lines on
    `topic`, the first named character speaking first (see docs/characters.md)."""

    type: Literal["npc.converse"] = "npc.converse"
    #: who takes part: two or more characters in the scene, the first opens
    characters: list[CharacterId] = Field(max_length=16)
    #: what they talk about (scene direction, never spoken as is)
    topic: str = Field(max_length=1000)
    #: how many lines in all, 1..`exchange_max_lines`
    lines: int = 4


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
    | NpcFeedback
    | NpcConverse
    | GameTrigger
    | GameActionResult,
    Field(discriminator="type"),
]


# ------------------------------------------------------------------- server events


class SessionCreated(_Event):
    type: Literal["session.created"] = "session.created"
    #: an OpenAISession for OpenAI clients
    session: SerializeAsAny[Session]


class SessionUpdated(_Event):
    type: Literal["session.updated"] = "session.updated"
    session: SerializeAsAny[Session]


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


class TranscriptionDelta(_Event):
    """Partial transcript of the player's turn while they speak: text that extends the
    deltas before it; `...transcription.completed` has the whole turn."""

    type: Literal["conversation.item.input_audio_transcription.delta"] = (
        "conversation.item.input_audio_transcription.delta"
    )
    item_id: str
    content_index: int = 0
    delta: str


class NpcRoute(_Event):
    """Who answers the player's turn, and why."""

    type: Literal["npc.route"] = "npc.route"
    item_id: str | None
    character: CharacterId
    #: "pinned", "requested", "addressed" (named in the utterance), "continued" (a
    #: follow-up: the last speaker answers again), "similarity" (the closest profile)
    #: or "only" (a scene of one); "handoff": a line with no name goes to whom the
    #: last line of an exchange between characters named ("Ask Mara.")
    reason: Literal[
        "pinned", "requested", "addressed", "continued", "similarity", "only", "handoff"
    ]
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
    #: an openai_events.OpenAIResponse for OpenAI clients
    response: SerializeAsAny[ResponseInfo]


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


VisemeName = Literal[
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"
]  # fmt: skip


class Viseme(_Model):
    """One mouth shape (the 15 Oculus/Meta visemes) on the reply's audio timeline."""

    viseme: VisemeName
    start_ms: int
    duration_ms: int


class WordTiming(_Model):
    """Where a spoken word starts and ends on the reply's audio timeline."""

    text: str
    start_ms: int
    duration_ms: int


class NpcViseme(_ResponsePart):
    """Mouth shapes and words that start in the reply audio chunk sent right after it.

    Times are on the reply's audio timeline, as `response.output_audio.delta`'s
    `offset_ms`. Sent with the audio, so a barge-in that drops audio drops these too:
    no viseme starts past the audio the client was sent."""

    type: Literal["npc.viseme"] = "npc.viseme"
    visemes: list[Viseme]
    words: list[WordTiming] = Field(default_factory=list)


class NpcAction(_ResponsePart):
    """A stage direction in the reply: shown or animated, never spoken.

    `*waves*`, `(laughs)`, `<action>bows</action>` are actions; `[angry]` or
    `<emotion>warm</emotion>` are emotions. `audio_start_ms` is where in the reply's
    audio it belongs (the start of the sentence that holds it).

    kind "game" is an action declared in the character's file for the game to execute:
    `name`, `arguments` (valid against its schema) and `action_id`, which the game
    answers with `game.action_result`; `text` then describes it.
    """

    type: Literal["npc.action"] = "npc.action"
    kind: Literal["action", "emotion", "game"]
    text: str
    audio_start_ms: int = 0
    #: kind "game": the declared action's name, its arguments, and the id to answer with
    name: str | None = None
    arguments: dict[str, Any] | None = None
    action_id: str | None = None


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


class NpcExchangeStarted(_Event):
    """An exchange between characters (`npc.converse`) starts; its lines follow as
    ordinary responses, one character after another."""

    type: Literal["npc.exchange.started"] = "npc.exchange.started"
    exchange_id: str
    characters: list[CharacterId]
    topic: str
    lines: int


class NpcExchangeLine(_Event):
    """One line of an exchange is over (after its `response.done`)."""

    type: Literal["npc.exchange.line"] = "npc.exchange.line"
    exchange_id: str
    #: 0-based position of the line in the exchange
    index: int
    character: CharacterId
    response_id: str
    #: the response's status: "completed", "cancelled" or "failed"
    status: Literal["completed", "cancelled", "failed"]
    #: what the listeners heard of it (all of it unless it was cut)
    text: str
    #: the LoRA adapter the line was generated with ("bram@v1"); None = the base model
    adapter: str | None = None


class NpcExchangeDone(_Event):
    """The exchange is over: "finished" (every line said), "interrupted" (the player
    spoke, typed or cancelled) or "error" (a line failed; an `error` event says why)."""

    type: Literal["npc.exchange.done"] = "npc.exchange.done"
    exchange_id: str
    reason: Literal["finished", "interrupted", "error"]
    #: lines the listeners heard, whole or in part
    lines_spoken: int
    #: the character the last line named, who answers the player's next unnamed line
    handoff: CharacterId | None = None


class ResponseDone(_Event):
    type: Literal["response.done"] = "response.done"
    response: SerializeAsAny[ResponseInfo]


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
    | TranscriptionDelta
    | TranscriptionCompleted
    | NpcRoute
    | ResponseCreated
    | OutputTextDelta
    | OutputTextDone
    | OutputAudioDelta
    | OutputAudioDone
    | NpcSentence
    | NpcViseme
    | NpcAction
    | NpcEmotion
    | NpcAlert
    | NpcExchangeStarted
    | NpcExchangeLine
    | NpcExchangeDone
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
