"""What every session shares: the cast, the engines, the router and the worker threads.

Built once by the app factory (or by a test, with fake engines) and passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from personae.daemon.actions.planner import Planner
from personae.daemon.adapters import AdapterCache, adapter_roots, character_adapter
from personae.daemon.admission import Admission
from personae.daemon.characters import Character, default_cast_dir, load_cast
from personae.daemon.deployments import Deployments
from personae.daemon.engines import registry
from personae.daemon.engines.base import Embedder, LLMEngine, STTEngine, TTSEngine, VADEngine
from personae.daemon.errors import ConfigError, EngineError, PersonaeError
from personae.daemon.models import Progress, no_progress
from personae.daemon.monitoring import ConsistencyConfig, ConsistencyMonitor, Metrics
from personae.daemon.routing import Router
from personae.daemon.runtime import CharacterRuntime, Experiments
from personae.daemon.runtime.lore import estimate_tokens
from personae.daemon.session.conversation import Conversation
from personae.daemon.session.end_of_turn import EndOfTurnModel, load_end_of_turn
from personae.daemon.settings import Settings

log = logging.getLogger("personae.daemon")
T = TypeVar("T")


@dataclass(slots=True)
class Engines:
    vad: VADEngine
    stt: STTEngine
    embedder: Embedder
    llm: LLMEngine
    #: by engine name ("piper", "espeak"); characters pick one in their voice config
    tts: Mapping[str, TTSEngine]
    #: ends server-VAD turns at a short pause that sounds finished; None = silence rules only
    end_of_turn: EndOfTurnModel | None = None


@dataclass(slots=True)
class Service:
    settings: Settings
    cast: dict[str, Character]
    engines: Engines
    router: Router
    #: per character and player: emotion, relationship, memory, lore, turn log
    runtime: CharacterRuntime
    experiments: Experiments
    database: Engine
    adapters: AdapterCache
    metrics: Metrics
    #: per-character consistency of replies against the character's reference lines
    consistency: ConsistencyMonitor
    #: which version of each character serves; A/B variants
    deployments: Deployments = field(init=False)
    #: turns prepared and recorded alike for realtime sessions and the OpenAI API
    conversation: Conversation = field(init=False)
    #: one pool per stage so a queue of LLM requests never starves STT or TTS
    pools: dict[str, ThreadPoolExecutor] = field(default_factory=dict)
    #: replies generating at once, and those waiting for a slot (daemon-wide)
    admission: Admission = field(init=False)
    #: declared actions, triggers and goals: what a turn asks of the game
    actions: Planner = field(init=False)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        engines: Engines | None = None,
        cast: dict[str, Character] | None = None,
        progress: Progress = no_progress,
    ) -> Service:
        cast = (
            cast
            if cast is not None
            else load_cast(settings.characters_dirs or (default_cast_dir(),))
        )
        engines = engines or build_engines(settings, cast, progress)
        for ch in cast.values():
            check_voice(engines, ch)
        progress("routing profiles", 0, 0)
        router = Router(
            embedder=engines.embedder,
            characters=cast,
            switch_similarity=settings.route_switch_similarity,
            switch_margin=settings.route_switch_margin,
        )
        progress("database", 0, 0)
        database, runtime = open_runtime(settings, engines.embedder)
        metrics = Metrics()
        service = cls(
            settings=settings,
            cast=cast,
            engines=engines,
            router=router,
            runtime=runtime,
            experiments=Experiments(database),
            database=database,
            adapters=AdapterCache(
                engines.llm,
                capacity=settings.adapter_cache_size,
                resolve=lambda ch: character_adapter(adapter_roots(settings), ch),
                on_lookup=lambda hit: metrics.adapter_cache(hit=hit),
                on_load=lambda name: metrics.adapter_swap(),
            ),
            metrics=metrics,
            consistency=ConsistencyMonitor(
                embedder=engines.embedder,
                config=ConsistencyConfig(
                    threshold=settings.consistency_threshold,
                    trait_threshold=settings.consistency_threshold,
                    window=settings.consistency_window,
                    min_replies=min(5, settings.consistency_window),
                ),
                metrics=metrics,
            ),
        )
        service.deployments = Deployments(
            settings=settings,
            database=database,
            cast=service.cast,
            adapters=service.adapters,
            experiments=service.experiments,
            llm=engines.llm,
            serve=service.set_character,
        )
        service.conversation = Conversation(
            settings=settings,
            cast=service.cast,
            deployments=service.deployments,
            runtime=runtime,
            experiments=service.experiments,
            consistency=service.consistency,
            run=service.run,
        )
        service.actions = Planner(
            settings=settings,
            embedder=engines.embedder,
            database=database,
            trust=lambda ch, player: (
                runtime.state.get(ch.id, player, runtime.temperament(ch.id)).relationship.trust
            ),
        )
        metrics.watch_prompt_tokens(engines.llm.prompt_tokens)
        service.admission = Admission.from_settings(settings)
        service.pools = {
            "store": ThreadPoolExecutor(4, thread_name_prefix="store"),
            "adapters": ThreadPoolExecutor(2, thread_name_prefix="adapters"),
            "vad": ThreadPoolExecutor(2, thread_name_prefix="vad"),
            "stt": ThreadPoolExecutor(2, thread_name_prefix="stt"),
            "router": ThreadPoolExecutor(2, thread_name_prefix="router"),
            "llm": ThreadPoolExecutor(8, thread_name_prefix="llm"),
            "tts": ThreadPoolExecutor(2, thread_name_prefix="tts"),
        }
        service.load_adapters(progress)
        progress("deployments", 0, 0)
        service.deployments.start()
        return service

    def load_adapters(self, progress: Progress = no_progress) -> None:
        """Load every adapter the cast refers to; a bad one stops start-up with its name."""
        wanted = [ch for ch in self.cast.values() if ch.adapter is not None]
        for i, ch in enumerate(wanted):
            progress("adapters", i, len(wanted))
            try:
                self.adapters.preload(ch)
            except PersonaeError as exc:
                raise ConfigError(f"adapter of character {ch.id!r}: {exc}") from exc
        progress("adapters", len(wanted), len(wanted))

    def check_voice(self, character: Character) -> None:
        """ConfigError unless a loaded TTS engine can speak the character's voice."""
        check_voice(self.engines, character)

    def set_character(self, character: Character) -> None:
        """Serve a new version of a character (or a new character) from now on."""
        check_voice(self.engines, character)
        self.router.update(character)
        self.cast[character.id] = character

    async def run(self, stage: str, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking engine call on its stage's threads, mapping engine faults."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pools[stage], lambda: fn(*args))
        except PersonaeError:
            raise
        except (OSError, RuntimeError, ValueError, SQLAlchemyError) as exc:
            raise EngineError(str(exc) or type(exc).__name__, engine=stage) from exc

    async def stream(
        self, stage: str, make: Callable[[threading.Event], Iterator[T]], *, maxsize: int = 64
    ) -> AsyncIterator[T]:
        """Iterate a blocking generator from a worker thread; leaving early cancels it."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue(maxsize)
        cancel = threading.Event()

        def put(kind: str, value: object) -> None:
            fut = asyncio.run_coroutine_threadsafe(queue.put((kind, value)), loop)
            while not cancel.is_set():
                with contextlib.suppress(TimeoutError):
                    fut.result(timeout=0.1)
                    return
            fut.cancel()

        def work() -> None:
            try:
                for item in make(cancel):
                    if cancel.is_set():
                        break
                    put("item", item)
            except BaseException as exc:
                put("error", exc)
            finally:
                put("end", None)

        future = loop.run_in_executor(self.pools[stage], work)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "item":
                    yield value  # type: ignore[misc]
                elif kind == "error":
                    exc = value
                    if isinstance(exc, PersonaeError):
                        raise exc
                    raise EngineError(str(exc) or type(exc).__name__, engine=stage) from exc  # type: ignore[arg-type]
                else:
                    break
        finally:
            cancel.set()
            # drain so a producer blocked on a full queue sees the cancel promptly
            while not queue.empty():
                queue.get_nowait()
            with contextlib.suppress(BaseException):
                await asyncio.shield(future)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
        self.database.dispose()


def open_runtime(settings: Settings, embedder: Embedder) -> tuple[Engine, CharacterRuntime]:
    from personae.daemon.store import open_database
    from personae.daemon.store.engine import default_database_url

    url = settings.database_url or default_database_url(settings.cache_dir)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = open_database(url, busy_timeout_s=settings.database_busy_timeout_s)
    return engine, CharacterRuntime(
        engine,
        count_tokens=estimate_tokens,
        embed=embedder.embed,
        embed_model=getattr(embedder, "model_name", embedder.name),
        memory_budget_tokens=settings.memory_budget_tokens,
        lore_budget_tokens=settings.lore_budget_tokens,
    )


def check_voice(engines: Engines, character: Character) -> None:
    """ConfigError unless a loaded TTS engine can speak the character's voice."""
    if character.voice.engine not in engines.tts:
        raise ConfigError(
            f"character {character.id!r} uses TTS engine {character.voice.engine!r}, "
            "which is not loaded"
        )
    try:
        engines.tts[character.voice.engine].check_voice(character.voice)
    except ConfigError as exc:
        raise ConfigError(f"character {character.id!r}: {exc}") from None


def build_engines(settings: Settings, cast: Mapping[str, Character], progress: Progress) -> Engines:
    """The real engines named in settings, models prepared on first use."""
    steps = ["vad", "stt", "embedder", "llm"]
    built: dict[str, object] = {}
    for i, kind in enumerate(steps):
        name = getattr(settings, f"{kind}_engine")
        progress(f"loading {kind} ({name})", i, len(steps))
        built[kind] = registry.create(kind, name, settings)  # type: ignore[arg-type]
    tts_names = sorted({ch.voice.engine for ch in cast.values()})
    tts = {}
    for name in tts_names:
        progress(f"loading tts ({name})", len(steps), len(steps))
        tts[name] = registry.create("tts", name, settings)
    progress("engines ready", len(steps), len(steps))
    return Engines(
        vad=built["vad"],  # type: ignore[arg-type]
        stt=built["stt"],  # type: ignore[arg-type]
        embedder=built["embedder"],  # type: ignore[arg-type]
        llm=built["llm"],  # type: ignore[arg-type]
        tts=tts,
        end_of_turn=load_end_of_turn(settings),
    )
