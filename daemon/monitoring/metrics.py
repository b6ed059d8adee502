"""Prometheus metrics for one daemon: a registry per `Metrics`, never the global one.

Several apps (tests, an embedding host) can live in one process without their series
colliding. The session calls the small methods below; `/metrics` calls `render()`.

Series (all prefixed `personae_`):

- `stage_seconds{stage}` histogram: `stt`, `routing`, `first_token`, `first_sentence`,
  `first_audio`, `reply` (each measured from the end of the player's turn, except
  `stt` and `routing`, which time their own stage)
- `time_to_first_audio_seconds` histogram: the same observations as `stage="first_audio"`,
  under the name dashboards look for
- `tokens_per_second{character}` histogram
- `active_sessions` gauge
- `adapter_swaps_total`, `adapter_cache_hits_total`, `adapter_cache_misses_total`
- `errors_total{code}` (the daemon error codes of `personae.daemon.errors`)
- `replies_total{character,status}` (`completed`, `cancelled`, `failed`, ...)
- `consistency_score{character}` and `trait_adherence{character}` gauges: rolling means
  from `ConsistencyMonitor`
- `consistency_alerts_total{character,signal}` (`signal` is `consistency` or `traits`)
- `llm_prompt_tokens{source}` gauge: prompt tokens since start, `reused` from a prompt
  cache or `computed` (prefilled); the share reused is the prefix cache's hit rate

Label values are bounded: stages are a fixed set, characters come from the cast and
error codes from the error classes. Never pass player text or ids as a label.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

STAGES = ("stt", "routing", "first_token", "first_sentence", "first_audio", "reply")

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
_RATE_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 200.0, 500.0)


class Metrics:
    """The daemon's metrics on their own `CollectorRegistry`. Thread-safe (the client is)."""

    def __init__(self, *, namespace: str = "personae") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self._stage = Histogram(
            "stage_seconds",
            "Latency of each pipeline stage, in seconds",
            ["stage"],
            namespace=ns,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        for s in STAGES:  # every stage shows up at 0 from the start, so rates are defined
            self._stage.labels(stage=s)
        self._first_audio = Histogram(
            "time_to_first_audio_seconds",
            "From the end of the player's turn to the first audio chunk sent, in seconds",
            namespace=ns,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._tokens_per_second = Histogram(
            "tokens_per_second",
            "Generation speed of each reply, in tokens per second",
            ["character"],
            namespace=ns,
            buckets=_RATE_BUCKETS,
            registry=r,
        )
        self._sessions = Gauge(
            "active_sessions", "Open realtime sessions", namespace=ns, registry=r
        )
        self._swaps = Counter(
            "adapter_swaps", "Adapters loaded into the model", namespace=ns, registry=r
        )
        self._cache_hits = Counter(
            "adapter_cache_hits",
            "Replies whose adapter was already active in the model",
            namespace=ns,
            registry=r,
        )
        self._cache_misses = Counter(
            "adapter_cache_misses",
            "Replies whose adapter had to be loaded first",
            namespace=ns,
            registry=r,
        )
        self._errors = Counter(
            "errors", "Errors by daemon error code", ["code"], namespace=ns, registry=r
        )
        self._replies = Counter(
            "replies",
            "Replies by character and how they ended",
            ["character", "status"],
            namespace=ns,
            registry=r,
        )
        self._consistency = Gauge(
            "consistency_score",
            "Rolling mean similarity of a character's replies to its reference lines",
            ["character"],
            namespace=ns,
            registry=r,
        )
        self._traits = Gauge(
            "trait_adherence",
            "Rolling mean trait adherence of a character's replies (0..1)",
            ["character"],
            namespace=ns,
            registry=r,
        )
        self._alerts = Counter(
            "consistency_alerts",
            "Times a character's rolling score fell below its threshold",
            ["character", "signal"],
            namespace=ns,
            registry=r,
        )

        self._speculative = Counter(
            "speculative_replies",
            "Replies started before the turn ended: kept, or dropped and why",
            ["outcome", "reason"],
            namespace=ns,
            registry=r,
        )
        self._speculation_waste = Counter(
            "speculation_dropped_seconds",
            "LLM time spent generating speculative replies that were dropped",
            namespace=ns,
            registry=r,
        )
        self._speculation_tokens = Counter(
            "speculation_dropped_tokens",
            "Tokens generated for speculative replies that were dropped",
            namespace=ns,
            registry=r,
        )

        self._prompt_tokens = Gauge(
            "llm_prompt_tokens",
            "Prompt tokens since start: reused from a prompt cache or computed (prefilled)",
            ["source"],
            namespace=ns,
            registry=r,
        )

    def watch_prompt_tokens(self, read: Callable[[], dict[str, int]]) -> None:
        """Report the LLM engine's prompt-token counts, read at each scrape."""
        for source in ("reused", "computed"):
            self._prompt_tokens.labels(source=source).set_function(
                lambda source=source: float(read().get(source, 0))
            )

    # -- called from the session -------------------------------------------------

    def stage(self, stage: str, seconds: float) -> None:
        """One latency observation; `first_audio` also feeds time_to_first_audio_seconds."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        self._stage.labels(stage=stage).observe(max(0.0, seconds))
        if stage == "first_audio":
            self._first_audio.observe(max(0.0, seconds))

    def reply(self, character: str, status: str, *, tokens: int = 0, seconds: float = 0.0) -> None:
        """A reply ended. `tokens` generated in `seconds` of generation give tokens/s."""
        self._replies.labels(character=character, status=status).inc()
        if tokens > 0 and seconds > 0:
            self._tokens_per_second.labels(character=character).observe(tokens / seconds)

    def speculation(
        self, outcome: str, *, reason: str = "", seconds: float = 0.0, tokens: int = 0
    ) -> None:
        """A speculative reply was kept, or dropped (`reason`) after `seconds` of LLM time."""
        self._speculative.labels(outcome=outcome, reason=reason).inc()
        if outcome == "dropped":
            self._speculation_waste.inc(max(0.0, seconds))
            self._speculation_tokens.inc(tokens)

    def error(self, code: str) -> None:
        self._errors.labels(code=code).inc()

    def session_opened(self) -> None:
        self._sessions.inc()

    def session_closed(self) -> None:
        self._sessions.dec()

    def adapter_swap(self) -> None:
        self._swaps.inc()

    def adapter_cache(self, *, hit: bool) -> None:
        (self._cache_hits if hit else self._cache_misses).inc()

    # -- called from ConsistencyMonitor --------------------------------------------

    def consistency(self, character: str, *, score: float, traits: float) -> None:
        self._consistency.labels(character=character).set(score)
        self._traits.labels(character=character).set(traits)

    def consistency_alert(self, character: str, signal: str) -> None:
        self._alerts.labels(character=character, signal=signal).inc()

    # -- read side -------------------------------------------------------------------

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample's current value by its full name (`personae_errors_total`), or None."""
        return self.registry.get_sample_value(name, labels or {})

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type, for `/metrics`."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
