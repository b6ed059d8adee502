"""Shared helpers for the client tests: system tools, sample events, WAV files."""

from __future__ import annotations

import shutil
import socket
import types
import typing
import wave
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from personae.sdk import protocol as p

ROOT = Path(__file__).resolve().parents[2]
CI_SCRIPT = "scripts/ci-clients.sh"


def require_binary(name: str, package: str) -> str:
    """The path of a system tool the test needs; a clear failure (never a skip) if missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed (Debian package {package}); run {CI_SCRIPT} as root",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_wav(path: Path, pcm16: bytes, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)
    return path


def _sample(tp: Any, name: str) -> Any:
    """A valid value for a field, with every optional part filled in."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _sample(get_args(tp)[0], name)
    if origin is Literal:
        return get_args(tp)[0]
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _sample(inner[0], name)
    if origin is list:
        return [_sample(get_args(tp)[0], name)]
    if origin is dict:
        return {"bram": _sample(get_args(tp)[1], name), "mara": _sample(get_args(tp)[1], name)}
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sample_fields(tp)
    if tp is bool:
        return False  # differs from every boolean default, so a dropped field shows
    if tp is int:
        return 16000 if "sample_rate" in name else 250
    if tp is float:
        return 0.5
    if tp is bytes:
        return b"\x01\x00\xff\x7f"
    if tp is str:
        return "bram"
    if tp is Any:
        return "x"
    raise TypeError(f"no sample for {name}: {tp!r}")


def sample_fields(model: type[BaseModel]) -> dict[str, Any]:
    return {
        name: _sample(field.annotation, name)
        for name, field in model.model_fields.items()
        if name != "type" and not field.exclude
    }


def sample_server_events() -> list[BaseModel]:
    """One instance of every server event in the protocol, every field set."""
    members = get_args(get_args(p.ServerEvent)[0])
    events = []
    for model in members:
        fields = sample_fields(model)
        fields["event_id"] = "evt_sample"
        events.append(model.model_validate(fields))
    return events
