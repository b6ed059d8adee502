"""The testing kit (`personae.daemon.testing`): it ships in the package, so it loads
without pytest; bench/ and tests/ both use it and neither imports the other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from personae.daemon.engines import registry
from personae.daemon.settings import Settings
from personae.daemon.testing import FakeOptions, register_fakes
from personae.daemon.testing.fakes import EchoLLM, ProbeLLM, RegisteredTTS
from personae.daemon.testing.launcher import setting_env

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "daemon" / "testing"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_bench_imports_nothing_from_tests() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] == "tests"
        )
        for path in (ROOT / "bench").glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_test_loads_a_bench_file() -> None:
    loaders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if path != Path(__file__)
        and ("spec_from_file_location" in path.read_text() or "bench" in imported_modules(path))
    ]
    assert loaders == []


def test_every_kit_module_loads_without_pytest() -> None:
    modules = sorted(f"personae.daemon.testing.{p.stem}" for p in KIT.glob("*.py"))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'pytest' or m.startswith('_pytest')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "[]"


@pytest.fixture
def registered():
    saved = {kind: dict(names) for kind, names in registry.ENGINES.items()}
    yield
    for kind, names in saved.items():
        registry.ENGINES[kind].clear()
        registry.ENGINES[kind].update(names)


def test_fakes_are_registered_by_name(registered) -> None:
    register_fakes(FakeOptions(token_delay_s=0.25, tts_ms_per_char=10.0), voices=True)
    settings = Settings()
    for kind in ("vad", "stt", "embedder", "tts", "llm"):
        assert "fake" in registry.available(kind)
    llm = registry.create("llm", "fake", settings)
    assert isinstance(llm, ProbeLLM) and llm.token_delay_s == 0.25
    assert isinstance(registry.create("llm", "echo", settings), EchoLLM)
    tts = registry.create("tts", "piper", settings)  # the cast's voice, spoken by the fake
    assert isinstance(tts, RegisteredTTS) and tts.ms_per_char == 10.0


def test_settings_reach_the_daemon_as_its_variables(monkeypatch, tmp_path) -> None:
    given = {
        "audio_lead_ms": 0,
        "warmup": False,
        "rate_per_s": 1000.0,
        "characters_dirs": [tmp_path],
        "keys_file": tmp_path / "keys.json",
    }
    for name, value in given.items():
        monkeypatch.setenv(*setting_env(name, value))
    settings = Settings()
    assert (settings.audio_lead_ms, settings.warmup, settings.rate_per_s) == (0, False, 1000.0)
    assert settings.characters_dirs == (tmp_path,)
    assert settings.keys_file == tmp_path / "keys.json"
