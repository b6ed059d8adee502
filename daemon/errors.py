"""The daemon's error tree, mapped once to protocol `error` events at the session edge.

PersonaeError
├── ConfigError            bad settings or character files (start-up)
├── ModelNotFoundError     an embedded model package is missing (names the extra)
├── ClientError            the client sent something we refuse (code sent verbatim)
│   ├── UnknownCharacterError
│   └── LimitExceededError
└── EngineError            an engine failed; `retryable` says whether to try again
"""

from __future__ import annotations


class PersonaeError(Exception):
    code: str = "internal_error"
    retryable: bool = False


class ConfigError(PersonaeError):
    code = "config_error"


class ModelNotFoundError(ConfigError):
    code = "model_not_found"


class ClientError(PersonaeError):
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UnknownCharacterError(ClientError):
    code = "unknown_character"


class LimitExceededError(ClientError):
    code = "limit_exceeded"


class EngineError(PersonaeError):
    code = "engine_error"

    def __init__(self, message: str, *, engine: str, retryable: bool = False) -> None:
        super().__init__(f"{engine}: {message}")
        self.engine = engine
        self.retryable = retryable


def missing_extra(package: str, extra: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{package} is not installed; install it with: pip install 'personae[{extra}]'"
    )
