"""OpenAI Realtime's session shapes (GA and beta), folded into personae's one session.

An OpenAI client configures audio as `audio.input.format` / `audio.output.voice` (GA)
or `input_audio_format` / `voice` / `modalities` (beta); personae keeps one session
model whose canonical fields are its own (`input_sample_rate`, `output_modalities`,
...). The OpenAI spellings are accepted on the way in (`fold`), and the session's
effective configuration is shown in both on the way out (`views`). Which event names a
client gets is `Dialect`'s business; the events are the same models.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: OpenAI's PCM rate: `audio/pcm` in GA, `pcm16` in beta, always 24 kHz there
OPENAI_PCM_RATE = 24000


class Dialect(enum.StrEnum):
    """How a session's client spells events: personae's own, OpenAI GA or OpenAI beta."""

    PERSONAE = "personae"
    OPENAI = "openai"
    OPENAI_BETA = "openai-beta"

    @property
    def openai(self) -> bool:
        return self is not Dialect.PERSONAE


#: GA event names and their beta spellings (same events, same fields)
BETA_NAMES = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioFormat(_Model):
    """GA `audio/pcm` with its `rate`; personae reads any rate from 8 to 48 kHz."""

    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"] = "audio/pcm"
    rate: int | None = Field(None, ge=8000, le=48000)


class Transcription(_Model):
    """`audio.input.transcription` (beta: `input_audio_transcription`): acknowledged.

    personae always transcribes with its own STT engine (routing needs the text); the
    settings are kept and shown, not used."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    delay: str | None = None
    keywords: list[str] | None = None
    languages: list[str] | None = None


class ServerVAD(_Model):
    """The daemon detects when the player starts and stops talking.

    `semantic_vad` is accepted as OpenAI spells it: personae's endpointing already ends
    a turn sooner once its transcript reads as finished (docs/protocol.md)."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = Field(None, gt=0.0, lt=1.0)
    silence_duration_ms: int | None = Field(None, ge=100, le=5000)
    prefix_padding_ms: int | None = Field(None, ge=0, le=2000)
    #: start a response when a turn ends (off: the client sends response.create)
    create_response: bool = True
    #: speech over a character's reply cancels that reply (barge-in)
    interrupt_response: bool = True
    #: OpenAI's; acknowledged, not honoured (a warning says so), so never shown
    idle_timeout_ms: int | None = Field(None, exclude=True)
    eagerness: Literal["low", "medium", "high", "auto"] | None = Field(None, exclude=True)


class AudioInput(_Model):
    format: AudioFormat | None = None
    #: None: push-to-talk
    turn_detection: ServerVAD | None = None
    transcription: Transcription | None = None
    noise_reduction: dict[str, Any] | None = None


class AudioOutput(_Model):
    format: AudioFormat | None = None
    voice: str | dict[str, Any] | None = None
    speed: float | None = Field(None, ge=0.25, le=1.5)


class AudioConfig(_Model):
    input: AudioInput | None = None
    output: AudioOutput | None = None


BetaAudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]

#: OpenAI session fields personae accepts without honouring them: each is answered
#: with an `npc.warning` naming it (docs/protocol.md, "OpenAI compatibility")
ACKNOWLEDGED = {
    "tools": "characters do not call tools",
    "tool_choice": "characters do not call tools",
    "parallel_tool_calls": "characters do not call tools",
    "temperature": "each character's generation parameters apply",
    "max_output_tokens": "each character's max_tokens applies",
    "max_response_output_tokens": "each character's max_tokens applies",
    "tracing": "personae keeps no OpenAI traces",
    "truncation": "the prompt window is the daemon's history_turns",
    "include": "transcription logprobs are not produced",
    "prompt": "prompt templates are not supported; use instructions",
    "reasoning": "character models do not reason",
    "input_audio_noise_reduction": "input audio is not filtered",
    "client_secret": "not used",
    "expires_at": "sessions do not expire",
}

#: values of acknowledged fields that ask for nothing (no warning for them)
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "tools": ([],),
    "tool_choice": ("auto", "none"),
    "parallel_tool_calls": (False,),
    "max_output_tokens": ("inf",),
    "max_response_output_tokens": ("inf",),
    "tracing": (None,),
    "truncation": ("auto",),
    "include": ([],),
    "prompt": (None,),
    "input_audio_noise_reduction": (None,),
}


def _set(out: dict[str, Any], name: str, value: Any, source: str) -> None:
    """One canonical field from one spelling; two spellings that disagree are an error."""
    if name in out and out[name] != value:
        raise ValueError(f"{source} ({value!r}) contradicts {name} ({out[name]!r})")
    out[name] = value


def _rate(fmt: AudioFormat | str, where: str) -> int:
    if isinstance(fmt, str):  # beta
        if fmt != "pcm16":
            raise ValueError(
                f"{where} {fmt!r} is not supported: personae reads PCM16 ('pcm16') only"
            )
        return OPENAI_PCM_RATE
    if fmt.type != "audio/pcm":
        raise ValueError(
            f"{where}.type {fmt.type!r} is not supported: personae reads PCM16 ('audio/pcm') only"
        )
    return fmt.rate or OPENAI_PCM_RATE


def fold(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], Dialect | None]:
    """Canonical session fields from the OpenAI spellings a client set.

    `fields` holds what the client set (parsed OpenAI fields by their names); returns
    (canonical updates, warnings {field: why not honoured}, the dialect they speak or
    None when they are personae's own). Raises ValueError naming a field that cannot
    be honoured or that contradicts another.
    """
    out: dict[str, Any] = {}
    warnings: dict[str, str] = {}
    dialect: Dialect | None = None
    if "type" in fields or "audio" in fields or "object" in fields:
        dialect = Dialect.OPENAI
    beta = {"modalities", "voice", "input_audio_format", "output_audio_format"}
    if beta & fields.keys() or "input_audio_transcription" in fields:
        dialect = Dialect.OPENAI_BETA if dialect is None else dialect
    if "instructions" in fields or "model" in fields:
        dialect = dialect or Dialect.OPENAI
    audio: AudioConfig | None = fields.get("audio")
    ain = audio.input if audio else None
    aout = audio.output if audio else None
    if fields.get("modalities") is not None:
        _set(out, "output_modalities", fields["modalities"], "modalities")
    if ain is not None and ain.format is not None:
        _set(out, "input_sample_rate", _rate(ain.format, "audio.input.format"), "audio.input")
    if fields.get("input_audio_format") is not None:
        rate = _rate(fields["input_audio_format"], "input_audio_format")
        _set(out, "input_sample_rate", rate, "input_audio_format")
    if aout is not None and aout.format is not None:
        _set(out, "output_sample_rate", _rate(aout.format, "audio.output.format"), "audio.output")
    if fields.get("output_audio_format") is not None:
        rate = _rate(fields["output_audio_format"], "output_audio_format")
        _set(out, "output_sample_rate", rate, "output_audio_format")
    if ain is not None and "turn_detection" in ain.model_fields_set:
        _set(out, "turn_detection", ain.turn_detection, "audio.input.turn_detection")
    if ain is not None and "transcription" in ain.model_fields_set:
        _set(out, "transcription", ain.transcription, "audio.input.transcription")
    if "input_audio_transcription" in fields:
        _set(out, "transcription", fields["input_audio_transcription"], "input_audio_transcription")
    if aout is not None and "voice" in aout.model_fields_set:
        _set(out, "voice", aout.voice, "audio.output.voice")
    if "voice" in fields:
        _set(out, "voice", fields["voice"], "voice")
    td = out.get("turn_detection")
    if td is not None and td.idle_timeout_ms is not None:
        warnings["turn_detection.idle_timeout_ms"] = "no response is made on idle"
    if td is not None and td.eagerness not in (None, "auto"):
        warnings["turn_detection.eagerness"] = "turn ends follow silence_duration_ms"
    voice = out.get("voice")
    if isinstance(voice, dict):  # a custom voice {"id": ...}: personae's names are ids
        out["voice"] = voice.get("id")
    if ain is not None and ain.noise_reduction is not None:
        warnings["audio.input.noise_reduction"] = "input audio is not filtered"
    if aout is not None and aout.speed is not None and aout.speed != 1.0:
        warnings["audio.output.speed"] = "each character's voice keeps its own rate"
    for name, why in ACKNOWLEDGED.items():
        if name in fields and fields[name] not in _DEFAULTS.get(name, ()):
            warnings[name] = why
    return out, warnings, dialect


def views(session: dict[str, Any], model: str | None, transcription: Any) -> dict[str, Any]:
    """The effective session in OpenAI's GA and beta spellings, from personae's fields."""
    td = session.get("turn_detection")
    voice = session.get("voice")
    rate_in, rate_out = session["input_sample_rate"], session["output_sample_rate"]
    pcm_in = {"type": "audio/pcm", "rate": rate_in}
    pcm_out = {"type": "audio/pcm", "rate": rate_out}
    beta: dict[str, Any] = {}
    # beta's pcm16 is 24 kHz: named only when that is the rate
    if rate_in == OPENAI_PCM_RATE:
        beta["input_audio_format"] = "pcm16"
    if rate_out == OPENAI_PCM_RATE:
        beta["output_audio_format"] = "pcm16"
    return {
        "type": "realtime",
        "object": "realtime.session",
        "model": model,
        "audio": {
            "input": {"format": pcm_in, "turn_detection": td, "transcription": transcription},
            "output": {"format": pcm_out, "voice": voice},
        },
        # beta spellings
        "modalities": session["output_modalities"],
        "input_audio_transcription": transcription,
        **beta,
    }


#: response.create fields personae accepts without honouring them
RESPONSE_ACKNOWLEDGED = {
    "audio": "a reply is spoken in the session's audio format and voice",
    "voice": "a reply is spoken in the session's voice (or its character's own)",
    "output_audio_format": "a reply is spoken in the session's audio format",
    "tools": "characters do not call tools",
    "tool_choice": "characters do not call tools",
    "temperature": "each character's generation parameters apply",
    "max_output_tokens": "each character's max_tokens applies",
    "max_response_output_tokens": "each character's max_tokens applies",
    "input": "a reply answers the whole conversation",
    "prompt": "prompt templates are not supported; use instructions",
}


def response_warnings(fields: dict[str, Any], *, conversation: str | None) -> dict[str, str]:
    """{field: why not honoured} for the OpenAI fields a response.create set."""
    out = {
        name: why
        for name, why in RESPONSE_ACKNOWLEDGED.items()
        if name in fields and fields[name] not in _DEFAULTS.get(name, ())
    }
    if conversation not in (None, "auto"):
        out["conversation"] = "every reply joins the session's conversation"
    return out
