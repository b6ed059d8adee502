"""One typed settings object, built once in the app factory and passed in.

Every field can be set by environment (`PERSONAE_<FIELD>`, nested with `__`) or in a
TOML file named by `PERSONAE_CONFIG`; environment wins over the file. `docs/settings.md`
is generated from the fields here (`personae config docs`), so describe each where it
is declared.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/personae`, else `~/.cache/personae`"""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "personae"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PERSONAE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    # --- network ---
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 to serve a LAN")
    port: int = Field(8765, ge=0, le=65535, description="Port to listen on; 0 = any free port")

    # --- files ---
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Prepared models (joined whisper, float32 base) and other caches",
    )
    characters_dirs: tuple[Path, ...] = Field(
        (), description="Folders of character files; empty = the bundled default cast"
    )
    adapters_dir: Path | None = Field(
        None,
        description="Root of the adapter store (<name>/<version>/); default cache_dir/adapters",
    )

    # --- character state ---
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; None = sqlite:///<cache_dir>/personae.db. "
        "postgresql://user:pass@host/db for several replicas",
    )
    database_busy_timeout_s: float = Field(
        5.0, gt=0, description="SQLite: how long a write waits for another writer's lock"
    )
    environment: str = Field("production", description="Deployment environment this daemon serves")
    memory_budget_tokens: int = Field(160, ge=0, description="Memories placed in each prompt")
    lore_budget_tokens: int = Field(
        200,
        ge=0,
        description="Tokens of lore placed in each prompt, unless a character's adapter names "
        "the budget it was trained with",
    )
    adapter_cache_size: int = Field(50, ge=1, description="Adapters resident in the LLM at once")
    registry_poll_s: float = Field(5.0, gt=0, description="How often deployments are picked up")
    deploy_min_metrics: dict[str, float] = Field(
        default_factory=dict, description="Metric minimums a version needs to be deployed"
    )
    consistency_threshold: float = Field(
        0.2, description="Rolling similarity to reference lines below which a character alerts"
    )
    consistency_window: int = Field(20, ge=1, description="Replies in the consistency window")
    default_player_id: str = Field(
        "player", description="Whose state a session uses when it does not set player_id"
    )

    # --- engines (names from the registry) ---
    vad_engine: str = Field("silero", description="Voice activity detection engine: 'silero'")
    stt_engine: str = Field(
        "faster-whisper", description="Speech recognition engine: 'faster-whisper'"
    )
    stt_model: str = Field(
        "base", description="'base' (bundled), 'tiny.en' (bundled, faster) or a faster-whisper dir"
    )
    stt_compute_type: str = Field(
        "int8", description="CTranslate2 compute type of the whisper weights (int8, float16, ...)"
    )
    stt_beam_size: int = Field(
        1, ge=1, le=10, description="Whisper beam size; 1 = greedy, the fastest"
    )
    stt_window_s: float = Field(
        10.0,
        ge=0.0,
        le=30.0,
        description="Shortest audio window whisper's encoder sees: a turn is padded with "
        "silence to this length instead of whisper's 30 s (about 5x faster for a short "
        "turn, same accuracy in our trials; below 7.5 s whisper starts to loop). "
        "0 = the full 30 s",
    )
    embedder_engine: str = Field(
        "onnx",
        description="'onnx' (the model below exported once into cache_dir, run by ONNX "
        "Runtime: ~3x faster per utterance) or 'sentence-transformers' (torch)",
    )
    embedder_model: str | None = Field(
        None, description="sentence-transformers dir; None = bundled all-MiniLM-L6-v2"
    )
    embedder_int8: bool = Field(
        True,
        description="onnx engine: serve the 8-bit graph (checked to cosine >= 0.99 against "
        "sentence-transformers; ~1.5x faster) rather than the float32 one",
    )
    llm_engine: str = Field(
        "transformers",
        description="Reply engine: 'transformers', 'transformers-batched', 'llamacpp' or 'vllm'",
    )
    llm_model: str | None = Field(
        None, description="transformers model dir; None = bundled SmolLM2-135M-Instruct"
    )
    llm_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="transformers engines: where the model runs; auto = the GPU when torch "
        "sees one, else the CPU",
    )
    llm_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="transformers engines: weight type; auto = float32 on the CPU (the "
        "fastest there), bfloat16 on a GPU that has it, else float16",
    )
    llm_prefix_cache_tokens: int = Field(
        4096,
        ge=0,
        description="transformers engines: prompt tokens whose KV state is kept so later "
        "prompts that begin the same way (a character's system prompt, a conversation's "
        "history) skip their prefill; ~46 KB per token with SmolLM2-135M; 0 = off",
    )
    llm_prime_history: bool = Field(
        True,
        description="once a reply has gone out, prefill its speaker's next prompt as far "
        "as it is known (the history with that reply), so the player's next turn prefills "
        "only the new context and their words; needs prompt_context_late and prefix reuse. "
        "The transformers engine primes in pieces and gives the model up to any reply",
    )
    llm_warm_scene_max: int = Field(
        4,
        ge=0,
        description="when a session starts or its scene changes (session.update "
        "characters), make up to this many of the scene's characters warm in the "
        "background, the most recently heard first: adapter resident, prompt as far as "
        "it is known prefilled, one at a time, never while a reply is being made. The "
        "prefixes live in the engine's LRU prefix cache (llm_prefix_cache_tokens bounds "
        "its memory); 0 = off",
    )
    threads: int = Field(
        0,
        ge=0,
        description="CPU threads per engine; 0 = half the cores each, so the LLM, speech "
        "recognition and synthesis running at once do not fight over every core",
    )

    # --- llama.cpp engine (llm_engine = "llamacpp") and batching ("transformers-batched") ---
    llamacpp_model: str | None = Field(
        None, description="GGUF file for the llamacpp engine; None = the bundled SmolLM2 Q4_1"
    )
    llamacpp_threads: int = Field(
        0,
        ge=0,
        description="llama.cpp threads; 0 = half the cores (on a busy 2-core CPU two "
        "threads spin against each other and run several times slower than one)",
    )
    llamacpp_batch_threads: int = Field(
        0,
        ge=0,
        description="llama.cpp threads for prompt processing; 0 = llamacpp_threads. On 2 "
        "cores, two threads process a whole uncached prompt 1.6x faster when the CPU is "
        "idle, but a next-turn prompt (~25 new tokens) slower, and both slower beside busy "
        "work (bench/prefill_threads.py)",
    )
    llamacpp_prompt_cache: bool = Field(
        True,
        description="reuse a slot's KV state for a prompt that begins like its last one; "
        "llama.cpp clears it when the request's adapter scales differ from the slot's",
    )
    llamacpp_parallel: int = Field(
        4,
        ge=1,
        le=64,
        description="replies llama.cpp decodes at once (server slots); each adapter keeps "
        "its prompt cache in a slot of its own while slots last",
    )
    llm_batch_size: int = Field(
        16,
        ge=1,
        le=256,
        description="transformers-batched: most replies decoded together in one forward",
    )

    # --- vLLM service engine (llm_engine = "vllm"; see docs/deploy.md) ---
    vllm_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL of the vLLM (or other OpenAI-compatible) server, without /v1",
    )
    vllm_model: str | None = Field(
        None,
        description="Base model the server must serve, checked at start-up; "
        "None = HuggingFaceTB/SmolLM2-135M-Instruct (the bundled base)",
    )
    vllm_api_key: SecretStr | None = Field(
        None, description="Bearer token the server expects (vllm serve --api-key)"
    )
    vllm_adapters_dir: str | None = Field(
        None,
        description="The adapter store as the vLLM host sees it (where the shared volume is "
        "mounted there); None = the same path as here",
    )
    vllm_check_adapter_base: bool = Field(
        True,
        description="Refuse adapters whose adapter_config.json names another base model "
        "than the one the server serves",
    )
    vllm_connect_timeout_s: float = Field(
        5.0, gt=0, description="Longest wait to connect to the vLLM server"
    )
    vllm_read_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for the server's next token before a reply fails"
    )
    vllm_retries: int = Field(
        2, ge=0, description="Retries of a request that failed before its first token"
    )
    vllm_startup_wait_s: float = Field(
        120.0, ge=0, description="How long start-up waits for the server (it loads the model first)"
    )
    served_model_name: str | None = Field(
        None,
        description="Name of the base model in this daemon's /v1/models; None = the LLM "
        "folder's name, or HuggingFaceTB/SmolLM2-135M-Instruct for the bundled one",
    )
    warmup: bool = Field(True, description="Run each engine once at start-up")
    stt_early: bool = Field(
        True,
        description="Transcribe while the player speaks: the turn so far at each pause, "
        "so its text is ready when the pause turns out to end the turn; a long turn piece "
        "by piece (stt_piece_min_s), so only its last piece is left when the player stops",
    )
    stt_piece_pause_ms: int = Field(
        250,
        ge=0,
        description="A pause at least this long closes a piece of the turn that is "
        "transcribed on its own while the player goes on (stt_early); shorter pauses "
        "are breaths inside a phrase",
    )
    stt_piece_min_s: float = Field(
        15.0,
        ge=0.0,
        description="Shortest piece of a turn transcribed on its own (stt_early). "
        "Shorter turns are transcribed whole at the pause that ends them (fast enough "
        "with a 10 s window, and pieces mishear names more often); longer ones piece by "
        "piece, so only the last piece is left when the player stops",
    )

    # --- turn taking ---
    vad_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="speech probability above which a VAD frame is speech"
    )
    vad_min_speech_ms: int = Field(150, ge=0, description="speech this long starts a turn")
    vad_silence_ms: int = Field(600, ge=100, description="silence this long ends a turn")
    vad_silence_complete_ms: int = Field(
        300,
        ge=0,
        description="with server VAD and stt_early, silence this long (at least; whole "
        "VAD frames) ends a turn whose transcript, begun at the pause, already reads as a "
        "finished sentence: it ends in . ? or ! (not an ellipsis), not on a word such as "
        "'and', 'um' or 'the', and says more than a greeting or a character's name ('Hey "
        "Mara.' before a pause is a player calling, not done); other turns wait the full "
        "vad_silence_ms. 0, or not shorter than the turn's silence, = off",
    )
    end_of_turn_model: bool = Field(
        False,
        description="with server VAD, ask the end-of-turn model (Smart Turn v3.2, from "
        "pipecat-ai installed --no-deps) at each pause of end_of_turn_pause_ms whether the "
        "player has finished, and end the turn at once when it says so; otherwise the "
        "silence rules end it (vad_silence_ms is the cap). Off by default: measured on "
        "mid-sentence pauses it cut more turns short than the silence rules "
        "(docs/benchmarks.md). Off, with a log line, when pipecat-ai is not installed",
    )
    end_of_turn_pause_ms: int = Field(
        200, ge=32, description="silence after which the end-of-turn model is asked"
    )
    end_of_turn_threshold: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="the end-of-turn model's probability above which a turn is complete",
    )
    end_of_turn_threads: int = Field(
        1, ge=1, le=16, description="onnxruntime threads of the end-of-turn model"
    )
    vad_prefix_ms: int = Field(300, ge=0, description="audio kept from before speech started")
    speculative_reply: bool = Field(
        False,
        description="with stt_early, route and start generating the reply from the "
        "transcript made at the player's pause, sending nothing; kept when the turn ends "
        "there with the same words and prompt, dropped when the player goes on "
        "(daemon/session/speculation.py). Off until measured in the scene benchmark",
    )
    route_switch_similarity: float = Field(
        0.25,
        ge=-1.0,
        le=1.0,
        description="a line with no name goes to another character than the last speaker "
        "only if its similarity to them is at least this (it is about them) ...",
    )
    route_switch_margin: float = Field(
        0.10,
        ge=0,
        le=2.0,
        description="... and exceeds the last speaker's by this much; a follow-up such as "
        "'Why do you say that?' stays with whoever spoke (tuned on all-MiniLM-L6-v2)",
    )
    action_match_threshold: float = Field(
        0.45,
        ge=-1.0,
        le=1.0,
        description="a player's line asks for a character's action (or shows a goal's intent) "
        "only if its similarity to one of the declared example lines is at least this ...",
    )
    action_match_margin: float = Field(
        0.05,
        ge=0,
        le=2.0,
        description="... and beats every other action, intent and the character's small-talk "
        "examples by this much (measured in bench/actions.py; docs/characters.md)",
    )
    action_consent_trust: float = Field(
        0.0,
        ge=-1.0,
        le=1.0,
        description="an action declared requires_consent is done only for a player the "
        "character trusts at least this much (trust runs -1..1 and starts at 0); else it declines",
    )
    history_turns: int = Field(
        8,
        ge=0,
        description="past exchanges sent to the LLM: at least this many, up to 1.5x, as "
        "the window moves half a window at a time so prompt prefixes stay reusable",
    )
    prompt_context_late: bool = Field(
        True,
        description="put each reply's context (mood, memories, lore, instructions) in a "
        "system message just before the player's latest words, so the character's prompt "
        "and the history stay a reusable prefix; false = at the end of the first system "
        "message, for chat templates that accept a system message only first",
    )

    # --- audio out ---
    audio_chunk_ms: int = Field(
        100, ge=10, le=1000, description="length of each reply audio chunk sent to the client"
    )
    tts_first_clause_chars: int = Field(
        16,
        ge=0,
        description="a reply's first piece goes to TTS at a clause boundary (comma, "
        "semicolon, dash) once it is this long, not at the end of its sentence; 0 = off",
    )
    tts_first_piece_early: bool = Field(
        True,
        description="a reply's first piece goes to TTS at its first natural break once it "
        "has two words: a comma or other clause mark, just before a conjunction ('and', "
        "'but', 'so'...), or after tts_first_piece_words words, whichever comes first; "
        "later pieces stay sentence-sized. false = the first piece ends at its clause "
        "(tts_first_clause_chars) or sentence",
    )
    tts_first_piece_words: int = Field(
        5,
        ge=2,
        le=40,
        description="with tts_first_piece_early, the most words a reply's first piece waits "
        "for (one or two more when the last leans on the next, as 'for' or 'the' do)",
    )
    audio_lead_ms: int = Field(
        1000, ge=0, description="how far ahead of real time reply audio may be sent"
    )
    echo_check: bool = Field(
        True,
        description="with server VAD, take the character's own voice coming back through "
        "the player's microphone out of what the VAD hears, so it neither barges in nor "
        "becomes a turn (daemon/session/echo.py). Skipped for sessions that set "
        "client_echo_cancellation",
    )
    echo_max_delay_ms: int = Field(
        1000,
        ge=100,
        le=3000,
        description="longest delay from the reply's scheduled play-out to its echo in the "
        "microphone that the echo check searches (client playback buffer, air, capture)",
    )

    # --- limits ---
    max_frame_bytes: int = Field(1 << 20, ge=1024, description="largest WebSocket frame accepted")
    max_turn_audio_s: float = Field(
        30.0, gt=0, description="longest player turn in audio; more is refused"
    )
    max_text_chars: int = Field(2000, ge=1, description="longest text a player may send at once")
    send_queue_frames: int = Field(
        256,
        ge=8,
        description="reply frames queued for a client before the reply waits for it to read",
    )
    reply_timeout_s: float = Field(60.0, gt=0, description="longest a whole reply may take")
    reply_finish_tokens: int = Field(
        24,
        ge=0,
        le=256,
        description="tokens past a character's max_tokens a reply may take to end its "
        "sentence; if it still has not, it ends at its last complete sentence (the "
        "unfinished tail is never sent or spoken; chat completions say finish_reason "
        "'length')",
    )
    exchange_max_lines: int = Field(
        12,
        ge=1,
        le=100,
        description="most lines one `npc.converse` exchange between characters may ask "
        "for; more is refused with `exchange_lines_out_of_range`",
    )
    reply_slots: int = Field(
        4,
        ge=1,
        description="replies generating at once, all sessions together; more wait for a "
        "slot, and that wait never counts as an engine stall",
    )
    reply_queue: int = Field(
        32,
        ge=0,
        description="replies that may wait for a slot; more are refused at once with "
        "`server_busy` and a retry hint",
    )
    reply_queue_wait_s: float = Field(
        30.0, gt=0, description="longest a reply waits for a slot before `server_busy`"
    )
    engine_stall_s: float = Field(
        15.0, gt=0, description="an engine silent this long mid-reply fails the reply"
    )
    send_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a client that stops reading is closed within about this long: one frame "
        "not accepted (1008) or a ping not answered (1011; pings go at half this interval)",
    )
    max_sessions: int = Field(256, ge=1, description="open sessions, all keys together")
    max_sessions_per_key: int = Field(16, ge=1, description="open sessions of one API key")
    rate_per_s: float = Field(
        20.0, gt=0, description="client events a key may send per second (audio excluded)"
    )
    rate_burst: int = Field(60, ge=1, description="events a key may send at once")
    rate_strikes: int = Field(
        200, ge=1, description="refused events in a row after which the session is closed (1008)"
    )

    # --- connections (below the app: see daemon/connections.py) ---
    max_connections: int = Field(
        512,
        ge=1,
        description="open connections, all addresses together (uvicorn's limit_concurrency); "
        "more get 503",
    )
    max_connections_per_address: int = Field(
        64,
        ge=0,
        description="open connections of one peer address; more are closed as they are "
        "accepted. Behind a reverse proxy every client shares its address: raise it. 0 = none",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a connection whose request head (or WebSocket upgrade) is not complete "
        "this long after it opened, or after its last response, is closed",
    )
    max_header_bytes: int = Field(
        16384, ge=1024, description="largest request head (request line and headers)"
    )
    keep_alive_s: int = Field(
        5, ge=1, description="an idle HTTP keep-alive connection is closed after this long"
    )
    ws_ping_s: float = Field(
        20.0,
        gt=0,
        description="WebSocket ping interval, at most half of `send_timeout_s`; a peer that "
        "does not answer within as long again is closed",
    )
    idle_timeout_s: float = Field(
        600.0,
        gt=0,
        description="a session that receives no frame from its client this long is closed "
        "(1000, reason 'idle')",
    )
    max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="largest HTTP request body; refused with 413 before it is parsed or "
        "the key is checked",
    )

    # --- security ---
    keys_file: Path | None = Field(
        None,
        description="API keys (hashed), managed with `personae keys`; default "
        "cache_dir/keys.json. No keys = local development mode: no authentication",
    )
    require_keys: bool = Field(
        False, description="refuse to start without API keys (no local development mode)"
    )
    trusted_networks: tuple[str, ...] = Field(
        (),
        description="networks (CIDR, e.g. 10.0.0.0/8) whose clients may read /metrics "
        "without a key once keys are required (a Prometheus scraper); /docs and "
        "/openapi.json always need an admin key then",
    )
    moderation: str = Field(
        "blocklist", description="moderation hook by name ('blocklist', 'none') or 'module:factory'"
    )
    moderation_words: tuple[str, ...] = Field(
        (), description="extra words and phrases the block list refuses"
    )
    moderation_words_file: Path | None = Field(
        None, description="a file of blocked words or phrases, one a line"
    )

    @field_validator("trusted_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad one
        return value

    @property
    def resolved_keys_file(self) -> Path:
        return self.keys_file or self.cache_dir / "keys.json"

    @property
    def engine_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 2) // 2)

    @property
    def resolved_adapters_dir(self) -> Path:
        return self.adapters_dir or self.cache_dir / "adapters"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[Any] = [init_settings, env_settings]
        config = config_file()
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)


def config_file() -> Path | None:
    """The TOML settings file, named by PERSONAE_CONFIG."""
    config = os.environ.get("PERSONAE_CONFIG")
    return Path(config) if config else None


def provenance(overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """Where each field's value comes from, in the order `Settings` reads its sources:
    'argument' (`overrides`), 'environment PERSONAE_X', the config file's path, or 'default'."""
    import tomllib

    environ = {name.upper() for name in os.environ}
    config = config_file()
    in_file: dict[str, Any] = {}
    if config is not None and config.is_file():
        in_file = tomllib.loads(config.read_text(encoding="utf-8"))
    out = {}
    for name in Settings.model_fields:
        env = f"PERSONAE_{name.upper()}"
        if name in (overrides or {}):
            out[name] = "argument"
        elif env in environ or any(e.startswith(env + "__") for e in environ):
            out[name] = f"environment {env}"
        elif name in in_file:
            out[name] = f"file {config}"
        else:
            out[name] = "default"
    return out
