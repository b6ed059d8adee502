"""The Unity package's hygiene (style item 15), its edit-mode tests run outside Unity,
and its Unity layer type-checked against a stand-in of the UnityEngine API."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.clients.test_csharp import CORE
from tests.clients.tools import ROOT, require_binary

UNITY = ROOT / "clients/unity"
CSHARP = ROOT / "tests/clients/csharp"


def asmdefs() -> dict[str, dict]:
    found = {}
    for path in UNITY.rglob("*.asmdef"):
        data = json.loads(path.read_text())
        assert path.stem == data["name"], f"{path} declares {data['name']}"
        found[data["name"]] = data
    return found


def test_package_layout_and_manifest() -> None:
    manifest = json.loads((UNITY / "package.json").read_text())
    assert manifest["name"] == "com.personae.client"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["dependencies"] == {}, "the package depends on nothing (no NuGet, no packages)"
    for folder in ("Runtime", "Editor", "Tests", "Samples~", "Documentation~"):
        assert (UNITY / folder).is_dir(), folder
    for sample in manifest["samples"]:
        assert (UNITY / sample["path"]).is_dir(), sample
        assert list((UNITY / sample["path"]).glob("*.unity")), "the sample has a scene"
    assert list((UNITY / "Documentation~").glob("*.md"))


def test_assembly_definitions_reference_each_other_by_name() -> None:
    defs = asmdefs()
    assert {"Personae.Core", "Personae.Runtime", "Personae.Editor", "Personae.Tests"} <= set(defs)
    for name, data in defs.items():
        for ref in data["references"]:
            assert not ref.startswith("GUID:"), f"{name} references {ref} by GUID"
    assert defs["Personae.Core"]["noEngineReferences"] is True
    assert defs["Personae.Runtime"]["references"] == ["Personae.Core"]
    assert defs["Personae.Editor"]["includePlatforms"] == ["Editor"]
    assert "Personae.Runtime" in defs["Personae.Editor"]["references"]
    tests = defs["Personae.Tests"]
    assert "UNITY_INCLUDE_TESTS" in tests["defineConstraints"]
    assert "nunit.framework.dll" in tests["precompiledReferences"]
    assert {"Personae.Core", "Personae.Runtime"} <= set(tests["references"])


def test_every_asset_has_a_unique_meta() -> None:
    guids: dict[str, Path] = {}
    for path in sorted(UNITY.rglob("*")):
        rel = path.relative_to(UNITY)
        if path.suffix == ".meta" or rel.parts[0] == "Documentation~" or rel == Path("Samples~"):
            continue
        meta = path.with_name(path.name + ".meta")
        assert meta.is_file(), f"{rel} has no .meta"
        guid = re.search(r"^guid: ([0-9a-f]{32})$", meta.read_text(), re.M)
        assert guid, f"{meta.name} has no guid"
        assert guid[1] not in guids, f"{rel} and {guids[guid[1]]} share a guid"
        guids[guid[1]] = rel
    for meta in UNITY.rglob("*.meta"):
        assert Path(str(meta)[: -len(".meta")]).exists(), f"orphan {meta.relative_to(UNITY)}"
    scene = next((UNITY / "Samples~").rglob("*.unity")).read_text()
    scripts = re.findall(r"m_Script: \{fileID: 11500000, guid: (\w+), type: 3\}", scene)
    assert scripts and all(g in guids for g in scripts), "the sample scene names a missing script"
    used = {guids[g].name for g in scripts}
    assert {"PersonaeClient.cs", "PersonaeVoice.cs", "PersonaeMicrophone.cs"} <= used
    assert len(re.findall(r"characterId: (\w+)", scene)) == 2, "two characters, one voice each"


def test_no_async_void_and_async_methods_take_a_cancellation_token() -> None:
    for path in UNITY.rglob("*.cs"):
        source = path.read_text()
        assert not re.search(r"\basync\s+void\b", source), f"async void in {path.name}"
        for match in re.finditer(
            r"public (?:async )?Task(?:<[^>]+>)? (\w+Async)\(([^)]*)\)", source
        ):
            assert "CancellationToken" in match[2], (
                f"{path.name}: {match[1]} takes no CancellationToken"
            )


def _mcs(*args: str) -> None:
    mcs = require_binary("mcs", "mono-mcs")
    build = subprocess.run([mcs, *args], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr


@pytest.fixture(scope="module")
def core_dll(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unity") / "Personae.Core.dll"
    _mcs("-target:library", "-warnaserror+", f"-out:{out}", *map(str, sorted(CORE.glob("*.cs"))))
    return out


def test_edit_mode_tests_pass_outside_unity(core_dll: Path) -> None:
    exe = core_dll.with_name("unittests.exe")
    tests = sorted(str(p) for p in (UNITY / "Tests").rglob("*.cs"))
    _mcs(
        f"-r:{core_dll}", "-r:System.Core.dll", f"-out:{exe}", str(CSHARP / "NUnitLite.cs"), *tests
    )
    mono = require_binary("mono", "mono-runtime")
    run = subprocess.run([mono, str(exe)], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    failed = [line for line in lines if line.get("outcome") == "failed"]
    assert run.returncode == 0 and not failed, failed or run.stderr
    assert lines[-1]["passed"] >= 10


def test_unity_layer_type_checks_against_the_api(core_dll: Path) -> None:
    """Runtime/Unity, Editor and the sample compile against UnityEngine stand-ins (no Unity here)."""
    out = core_dll.parent
    stubs = out / "UnityStubs.dll"
    _mcs("-target:library", f"-out:{stubs}", str(CSHARP / "UnityStubs.cs"))
    runtime = out / "Personae.Runtime.dll"
    refs = [f"-r:{core_dll}", f"-r:{stubs}"]
    for define in ([], ["-define:ENABLE_LEGACY_INPUT_MANAGER"]):
        sources = map(str, sorted((UNITY / "Runtime/Unity").glob("*.cs")))
        _mcs("-target:library", "-warnaserror+", *define, *refs, f"-out:{runtime}", *sources)
    editor = sorted(str(p) for p in (UNITY / "Editor").glob("*.cs"))
    _mcs(
        "-target:library", "-warnaserror+", *refs, f"-r:{runtime}", f"-out:{out / 'E.dll'}", *editor
    )
    sample = sorted(str(p) for p in (UNITY / "Samples~").rglob("*.cs"))
    _mcs(
        "-target:library", "-warnaserror+", *refs, f"-r:{runtime}", f"-out:{out / 'S.dll'}", *sample
    )
