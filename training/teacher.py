"""The teacher: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, personae).

Failures become one `TeacherError` that names the endpoint and the recipe setting to
fix; transient ones (connection refused, timeouts, 5xx, 429) are retried first.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import httpx

from personae.training.errors import TeacherError
from personae.training.recipe import TeacherConfig


class Teacher:
    def __init__(self, config: TeacherConfig, *, client: httpx.Client | None = None) -> None:
        self.config = config
        headers = {}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise TeacherError(
                    f"teacher.api_key_env: environment variable {config.api_key_env} is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self._client = client or httpx.Client(
            base_url=config.base_url.rstrip("/") + "/", headers=headers, timeout=config.timeout_s
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int = 400) -> str:
        body = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": max_tokens,
        }
        where = f"teacher endpoint {self.config.base_url} (recipe teacher.base_url)"
        last: Exception | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(min(4.0, 0.25 * 2**attempt))
            try:
                r = self._client.post("chat/completions", json=body)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
                last = exc
                continue
            if r.status_code in (429, 500, 502, 503, 504):
                last = TeacherError(f"{where} answered HTTP {r.status_code}")
                continue
            if r.status_code >= 400:
                raise TeacherError(
                    f"{where} refused the request: HTTP {r.status_code} {r.text[:200]}"
                )
            try:
                return str(r.json()["choices"][0]["message"]["content"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise TeacherError(
                    f"{where} sent a reply that is not an OpenAI chat completion: {r.text[:200]}"
                ) from exc
        raise TeacherError(
            f"{where} is unreachable after {self.config.retries + 1} attempts: {last}"
        )


def parse_json_reply(text: str) -> Any:
    """The JSON in a model's reply, tolerating code fences and chatter around it."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1)
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON in the reply")
    return json.loads(text[start : max(text.rfind("]"), text.rfind("}")) + 1])
