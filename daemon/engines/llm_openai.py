"""LLM on a vLLM server (or any OpenAI-compatible one that loads LoRA adapters at run time).

    engine = OpenAIServerLLM(url="http://vllm:8000", model="HuggingFaceTB/SmolLM2-135M-Instruct",
                             adapters_dir=store, remote_adapters_dir="/adapters")
    engine.load_adapter("bram-voice@v1", store / "bram-voice" / "v1")  # POST /v1/load_lora_adapter
    for delta in engine.generate(request, cancel): ...                  # model = "bram-voice@v1"

Start-up refuses a server that does not serve the expected base model, and each
adapter that was trained for another base or that the server refuses, with a
ConfigError naming it: a bad deployment stops the daemon before any player speaks.

Adapters are registered under the engine's own name for them ("bram-voice@v1": the same
on every replica, so replicas share one registration); their path is rewritten from
the daemon's adapter store to where the vLLM host mounts it. The engine remembers
what it registered, so a server that restarted (and forgot its runtime adapters) gets
them again: after a connection failure, before the next request, and whenever the
server answers 404 for an adapter it should know.

A request that fails before its first token (connection refused, reset, 5xx) is
retried with backoff; one that fails later is not (the player already heard part of
it) and raises a retryable EngineError. `cancel` closes the stream's socket at once,
even while the server is silent.
"""

from __future__ import annotations

import json
import logging
import posixpath
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from personae.daemon.adapters.files import CONFIG_FILE
from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest, LLMEngine
from personae.daemon.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)

#: the bundled base, under the name `vllm serve` gives it
BUNDLED_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def model_key(name: str) -> str:
    """What two names of one model share: a hub id and a local folder of it agree on
    the last path part ("HuggingFaceTB/SmolLM2-135M-Instruct" ~ ".../smollm2-135m-instruct")."""
    return name.rstrip("/").rsplit("/", 1)[-1].lower()


@dataclass(frozen=True, slots=True)
class RemoteAdapter:
    local_path: Path
    #: the same folder as the server sees it
    remote_path: str


class _Retry(Exception):
    """A failure worth another attempt if no token was sent yet."""


class OpenAIServerLLM(LLMEngine):
    name = "vllm"
    supports_adapters = True

    def __init__(
        self,
        *,
        url: str,
        model: str = BUNDLED_BASE,
        api_key: str | None = None,
        adapters_dir: Path | None = None,
        remote_adapters_dir: str | None = None,
        check_adapter_base: bool = True,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        retries: int = 2,
        startup_wait_s: float = 120.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.expected_model = model
        self._adapters_dir = adapters_dir.resolve() if adapters_dir is not None else None
        self._remote_dir = remote_adapters_dir
        self._check_adapter_base = check_adapter_base
        self._retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        )
        self._adapters: dict[str, RemoteAdapter] = {}
        # registration and re-registration; generation does not hold it
        self._lock = threading.RLock()
        #: the server was unreachable: it may have restarted without our adapters
        self._stale = False
        try:
            #: the server's own name for the base model (what base requests put in `model`)
            self.base_model = self._wait_for_server(startup_wait_s)
        except BaseException:
            self._client.close()
            raise

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIServerLLM:
        key = settings.vllm_api_key
        return cls(
            url=settings.vllm_url,
            model=settings.vllm_model or BUNDLED_BASE,
            api_key=key.get_secret_value() if key is not None else None,
            adapters_dir=settings.resolved_adapters_dir,
            remote_adapters_dir=settings.vllm_adapters_dir,
            check_adapter_base=settings.vllm_check_adapter_base,
            connect_timeout_s=settings.vllm_connect_timeout_s,
            read_timeout_s=settings.vllm_read_timeout_s,
            retries=settings.vllm_retries,
            startup_wait_s=settings.vllm_startup_wait_s,
        )

    def close(self) -> None:
        self._client.close()

    @property
    def adapters(self) -> dict[str, RemoteAdapter]:
        with self._lock:
            return dict(self._adapters)

    # --- the server and its models ---

    def _wait_for_server(self, wait_s: float) -> str:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self._base_from(self._models())
            except _Retry as exc:
                if time.monotonic() >= deadline:
                    raise ConfigError(
                        f"vLLM server at {self.url} did not answer within {wait_s:g} s: {exc}"
                    ) from None
                time.sleep(1.0)

    def _models(self) -> list[dict[str, Any]]:
        """GET /v1/models; _Retry while the server is down or starting."""
        try:
            resp = self._client.get("/v1/models")
        except httpx.TransportError as exc:
            raise _Retry(_describe(exc)) from exc
        if resp.status_code in (401, 403):
            raise ConfigError(
                f"vLLM server at {self.url} refused the API key (HTTP {resp.status_code}); "
                "set PERSONAE_VLLM_API_KEY to the server's --api-key"
            )
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _Retry(f"HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise ConfigError(
                f"{self.url} is not an OpenAI-compatible server: GET /v1/models answered "
                f"HTTP {resp.status_code}"
            )
        try:
            data = resp.json()["data"]
            return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.url}/v1/models is not an OpenAI model list") from exc

    def _base_from(self, models: list[dict[str, Any]]) -> str:
        bases = [m["id"] for m in models if not m.get("parent")]
        want = model_key(self.expected_model)
        for m in models:
            if not m.get("parent") and want in (model_key(m["id"]), model_key(m.get("root") or "")):
                return m["id"]
        raise ConfigError(
            f"vLLM server at {self.url} serves {', '.join(bases) or 'no base model'}, not "
            f"{self.expected_model}, the base the adapters were trained for: start it with "
            f"`vllm serve {self.expected_model} --enable-lora`, or set PERSONAE_VLLM_MODEL"
        )

    # --- adapters ---

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Register adapter `name` on the server (POST /v1/load_lora_adapter).

        Raises ConfigError for an adapter trained on another base or refused by the
        server, EngineError (retryable) when the server cannot be reached.
        """
        local = Path(path)
        self._check_base_of(name, local)
        entry = RemoteAdapter(local_path=local, remote_path=self.remote_path(local))
        with self._lock:
            try:
                listed = self._listed_adapters()
                self._register(name, entry, listed)
            except _Retry as exc:
                self._stale = True
                raise EngineError(
                    f"cannot register adapter {name!r}: server at {self.url} unreachable: {exc}",
                    engine=self.name,
                    retryable=True,
                ) from None
            self._adapters[name] = entry

    def unload_adapter(self, name: str) -> None:
        """Forget adapter `name` here; it stays registered on the server.

        The server is shared by every daemon replica, and another one may be speaking
        with this adapter now: unloading it there would break that reply. vLLM bounds
        the adapters it holds itself (--max-loras on the GPU, --max-cpu-loras in memory),
        loading evicted ones again from disk when asked.
        """
        with self._lock:
            if self._adapters.pop(name, None) is None:
                raise EngineError(f"adapter {name!r} is not loaded", engine=self.name)

    def remote_path(self, local: Path) -> str:
        """Where the server finds a folder of the daemon's adapter store."""
        if self._remote_dir is None or self._adapters_dir is None:
            return str(local)
        resolved = local.resolve()
        if not resolved.is_relative_to(self._adapters_dir):
            return str(local)
        rel = resolved.relative_to(self._adapters_dir).as_posix()
        return posixpath.join(self._remote_dir, rel) if rel != "." else self._remote_dir

    def _check_base_of(self, name: str, local: Path) -> None:
        if not self._check_adapter_base:
            return
        try:
            config = json.loads((local / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            return  # unreadable here: the server validates the folder itself
        trained_on = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        if (
            isinstance(trained_on, str)
            and trained_on
            and model_key(trained_on)
            not in (
                model_key(self.base_model),
                model_key(self.expected_model),
            )
        ):
            raise ConfigError(
                f"adapter {name!r} ({local}) was trained for {trained_on}, but the vLLM server "
                f"at {self.url} serves {self.base_model}"
            )

    def _listed_adapters(self) -> dict[str, str]:
        """Adapters the server has now: name -> path there."""
        return {m["id"]: str(m.get("root") or "") for m in self._models() if m.get("parent")}

    def _register(self, name: str, entry: RemoteAdapter, listed: dict[str, str]) -> None:
        if listed.get(name) == entry.remote_path:
            return  # already there (a daemon restart, or another replica registered it)
        body = {
            "lora_name": name,
            "lora_path": entry.remote_path,
            # replace a same-named adapter with other weights instead of failing
            "load_inplace": name in listed,
        }
        try:
            resp = self._client.post("/v1/load_lora_adapter", json=body)
        except httpx.TransportError as exc:
            raise _Retry(_describe(exc)) from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _Retry(f"HTTP {resp.status_code}: {_error_message(resp)}")
        if resp.status_code >= 400:
            raise ConfigError(
                f"vLLM server at {self.url} refused adapter {name!r} "
                f"({entry.local_path}, seen there as {entry.remote_path}): "
                f"{_error_message(resp)} (HTTP {resp.status_code})"
            )
        log.info("vllm: registered adapter %s", name)

    def _resync(self) -> None:
        """Register again whatever a restarted server forgot; _Retry while it is down."""
        with self._lock:
            models = self._models()
            current = self._base_from(models)
            if model_key(current) != model_key(self.base_model):
                raise ConfigError(f"vLLM server at {self.url} now serves {current}")
            listed = {m["id"]: str(m.get("root") or "") for m in models if m.get("parent")}
            for name, entry in self._adapters.items():
                if listed.get(name) != entry.remote_path:
                    self._register(name, entry, listed)
            self._stale = False

    # --- generation ---

    def warmup(self) -> None:
        """One token from the base model: the server generates, not only lists models."""
        request = GenerationRequest(
            messages=[ChatMessage("user", "Hello.")],
            params=GenerationParams(temperature=0.0, max_tokens=1),
        )
        for _ in self.generate(request, threading.Event()):
            pass

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        adapter = request.adapter
        if adapter is not None and adapter not in self.adapters:
            raise EngineError(f"adapter {adapter!r} is not loaded", engine=self.name)
        params = request.params
        body: dict[str, Any] = {
            "model": adapter or self.base_model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "repetition_penalty": params.repetition_penalty,  # a vLLM sampling extra
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        started = [False]
        for attempt in range(self._retries + 1):
            try:
                if self._stale:
                    self._resync()
                yield from self._stream(body, cancel, started)
                return
            except _Retry as exc:
                if cancel.is_set():
                    return
                if started[0]:
                    raise EngineError(
                        f"connection to {self.url} lost mid-reply: {exc}",
                        engine=self.name,
                        retryable=True,
                    ) from None
                if attempt == self._retries:
                    raise EngineError(
                        f"server at {self.url} unavailable after {attempt + 1} attempts: {exc}",
                        engine=self.name,
                        retryable=True,
                    ) from None
                log.warning("vllm: attempt %d failed (%s); retrying", attempt + 1, exc)
                if cancel.wait(min(4.0, 0.5 * 2**attempt)):
                    return

    def _stream(
        self, body: dict[str, Any], cancel: threading.Event, started: list[bool]
    ) -> Iterator[str]:
        try:
            with self._client.stream("POST", "/v1/chat/completions", json=body) as resp:
                if resp.status_code != 200:
                    resp.read()
                    self._raise_for(resp, body["model"])
                with _CancelWatch(resp, cancel):
                    for line in resp.iter_lines():
                        if cancel.is_set():
                            return
                        if not line.startswith("data:"):
                            continue  # comments, blank separators, other fields
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        delta = _delta(data)
                        if delta:
                            started[0] = True
                            yield delta
        except httpx.TransportError as exc:
            if cancel.is_set():
                return
            self._stale = True
            raise _Retry(_describe(exc)) from exc
        if not cancel.is_set():
            raise _Retry("the stream ended without [DONE]")

    def _raise_for(self, resp: httpx.Response, model: str) -> None:
        status = resp.status_code
        message = _error_message(resp)
        if status == 404 and model != self.base_model:
            # the server forgot an adapter we registered: it restarted
            self._stale = True
            raise _Retry(f"adapter {model!r} unknown to the server (HTTP 404)")
        if status >= 500 or status == 429:
            raise _Retry(f"HTTP {status}: {message}")
        raise EngineError(f"HTTP {status}: {message}", engine=self.name)


class _CancelWatch:
    """Shuts the stream's socket once `cancel` is set, so a silent server cannot hold
    the reply until the read timeout."""

    def __init__(self, resp: httpx.Response, cancel: threading.Event) -> None:
        self._resp = resp
        self._cancel = cancel
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="vllm-cancel", daemon=True)

    def __enter__(self) -> _CancelWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._cancel.wait(0.05):
                if self._done.is_set():
                    return
                stream = self._resp.extensions.get("network_stream")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed
                return


def _delta(data: str) -> str:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise EngineError(f"unreadable stream chunk: {data[:80]!r}", engine="vllm") from exc
    if not isinstance(chunk, dict):
        return ""
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise EngineError(f"server error mid-reply: {message}", engine="vllm", retryable=True)
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""  # e.g. the usage chunk
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else ""


def _error_message(resp: httpx.Response) -> str:
    """The message of an OpenAI-style error body ({"error": {...}} or vLLM's flat one)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return str(body)[:300]


def _describe(exc: httpx.TransportError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
