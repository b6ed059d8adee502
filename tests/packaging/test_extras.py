"""Every third-party import is declared by the extra that enables the code importing it.

`pip install personae` is the SDK alone, `personae[daemon]` the daemon with its
default engines, `personae[training]` the training package; an engine that needs
more names its extra in the engine registry (`registry.extra`). A module's imports
must be declared by the base dependencies plus the extras that enable it: what it
imports itself, and what the personae modules it imports at load time import in turn. An import guarded by `except ImportError` must
be declared by the extra its message names; one whose guard names no extra is
optional.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib.metadata import packages_distributions

import pytest

from personae.daemon.engines import registry
from tests.packaging.imports import FOLDERS, OPTIONAL, ROOT, Use, modules, resolve, uses_of

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
MODULES = modules()
USES = {name: uses_of(name, path) for name, path in MODULES.items()}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def declared(extra: str | None) -> frozenset[str]:
    """Distributions `pip install personae[extra]` installs directly (None: the base)."""
    lines = list(PROJECT["dependencies"])
    if extra is not None:
        assert extra in PROJECT["optional-dependencies"], f"no extra {extra!r} in pyproject.toml"
        lines += PROJECT["optional-dependencies"][extra]
    return frozenset(canonical(re.match(r"[A-Za-z0-9._-]+", line)[0]) for line in lines)


def engine_extras() -> dict[str, set[str]]:
    """Engine modules -> the extras that enable them, from the registry."""
    found: dict[str, set[str]] = {}
    for kind, engines in registry.ENGINES.items():
        for name, target in engines.items():
            module = target.partition(":")[0]
            if module in MODULES:
                found.setdefault(module, {"daemon"}).add(registry.extra(kind, name))
    return found


ENGINE_EXTRAS = engine_extras()


def home(module: str) -> set[str]:
    """The extras that enable `module`."""
    if module in ENGINE_EXTRAS:
        return ENGINE_EXTRAS[module]
    folder = next(f for f, name in FOLDERS.items() if module.startswith(name))
    return set() if folder == "sdk" else {folder}


def loads(module: str) -> list[str]:
    """The personae modules that importing `module` runs, itself included."""
    seen: list[str] = []
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for use in USES[current]:
            if use.first_party and not use.lazy and use.guard is None:
                todo += resolve(use.target, MODULES)
        todo += resolve(current.rpartition(".")[0], MODULES)  # its packages run first
    return seen


@cache
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()


def distributions(use: Use) -> list[str]:
    found = _distributions().get(use.top)
    assert found, f"{use.top} is imported but no installed distribution provides it"
    return [canonical(d) for d in found]


def problems(module: str) -> list[str]:
    out = []
    enabled = home(module)
    for source in loads(module):
        for use in USES[source]:
            if not use.third_party or use.guard == OPTIONAL:
                continue
            extras = set(enabled)
            if source != module:
                if use.lazy:
                    continue  # checked as that module's own import
                extras = enabled  # its guard names an extra; importing `module` needs it
            elif use.guard:
                if module in ENGINE_EXTRAS and use.guard not in enabled:
                    out.append(
                        f"{module}:{use.line} asks for personae[{use.guard}] for {use.top}, "
                        f"but the registry enables it with {sorted(enabled)}"
                    )
                extras = {use.guard}
            wanted = set().union(declared(None), *(declared(e) for e in extras))
            if not wanted & set(distributions(use)):
                through = "" if source == module else f" (through {source}:{use.line})"
                line = f":{use.line}" if source == module else ""
                names = ", ".join(f"[{e}]" for e in sorted(extras)) or " alone"
                out.append(
                    f"{module}{line} imports {use.top}{through}, which personae{names} "
                    f"does not declare ({' or '.join(distributions(use))})"
                )
    return list(dict.fromkeys(out))


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_every_import_is_declared_by_the_extra_that_enables_it(folder) -> None:
    found = [p for m in MODULES if m.startswith(FOLDERS[folder] + ".") for p in problems(m)]
    assert not found, "\n".join(found)


def test_every_registered_engine_names_an_extra_that_exists() -> None:
    for kind, engines in registry.ENGINES.items():
        for name in engines:
            extra = registry.extra(kind, name)
            assert extra in PROJECT["optional-dependencies"], (kind, name, extra)


def test_the_analysis_sees_lazy_guarded_and_transitive_imports() -> None:
    """The rules above, on modules whose imports are known."""
    piper = [u for u in USES["personae.daemon.engines.tts_piper"] if u.third_party]
    assert any(u.top == "piper" and u.guard == "piper" and u.lazy for u in piper)
    assert any(u.top == "onnxruntime" and not u.lazy and u.guard is None for u in piper)
    assert ENGINE_EXTRAS["personae.daemon.engines.tts_piper"] == {"daemon", "piper"}
    fit = [u for u in USES["personae.training.fit"] if u.third_party]
    assert any(u.top == "bitsandbytes" and u.guard == OPTIONAL for u in fit)
    # the app loads the session, which loads numpy: the daemon's extra must declare it
    assert "personae.daemon.session.session" in loads("personae.daemon.app")
    assert {"personae.daemon", "personae.daemon.engines"} <= set(
        loads("personae.daemon.engines.registry")
    )


def test_an_engine_whose_package_is_missing_names_its_extra(tmp_path, monkeypatch) -> None:
    from personae.daemon.errors import ModelNotFoundError

    (tmp_path / "engine_needing_more.py").write_text("import surely_not_installed_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "ENGINES", {k: dict(v) for k, v in registry.ENGINES.items()})
    monkeypatch.setattr(registry, "EXTRAS", {k: dict(v) for k, v in registry.EXTRAS.items()})
    registry.register("tts", "needs-more", "engine_needing_more:TTS", extra="piper")
    with pytest.raises(ModelNotFoundError, match=r"surely_not_installed_here .*personae\[piper\]"):
        registry.engine_class("tts", "needs-more")
    # a module of the engine's own package that is missing is a mistake, not an extra
    registry.register("tts", "typo", "engine_needing_mor:TTS")
    with pytest.raises(ModuleNotFoundError):
        registry.engine_class("tts", "typo")
