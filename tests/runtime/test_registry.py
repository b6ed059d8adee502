"""Registry: versions, the validation gate, deployments per environment, rollback."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from personae.daemon.adapters.files import weights_sha256
from personae.daemon.characters import AdapterRef, Character, VoiceConfig
from personae.daemon.errors import ClientError, UnknownCharacterError
from personae.daemon.runtime.errors import (
    AdapterIntegrityError,
    GateFailedError,
    NoPreviousVersionError,
    NotDeployedError,
    RegistryError,
    UnknownVersionError,
    VersionExistsError,
)
from personae.daemon.runtime.registry import Gate, Registry, Threshold

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def make_adapter(root: Path, name: str, version: str, payload: bytes = b"\x00" * 8) -> Path:
    folder = root / name / version
    folder.mkdir(parents=True)
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [len(payload) // 4], "data_offsets": [0, len(payload)]}}
    ).encode()
    (folder / "adapter_model.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + payload
    )
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    return folder


def mara(version: str, **kw) -> Character:
    return Character(
        id="mara",
        name="Mara",
        description="A smith.",
        adapter=AdapterRef(name="mara", version=version),
        **kw,
    )


@pytest.fixture
def adapters(tmp_path: Path) -> Path:
    root = tmp_path / "adapters"
    for i, v in enumerate(("v1", "v2", "v3")):
        make_adapter(root, "mara", v, bytes([i]) * 8)
    return root


@pytest.fixture
def registry(engine, adapters: Path) -> Registry:
    reg = Registry(engine, adapters_dir=adapters)
    for v, consistency in (("v1", 0.8), ("v2", 0.85), ("v3", 0.9)):
        reg.register(mara(v), version=v, base_model=BASE, metrics={"consistency": consistency})
    return reg


def test_register_records_the_adapter_hash_voice_and_prompt(registry: Registry, adapters) -> None:
    info = registry.get("mara", "v2")
    assert info.adapter_sha256 == weights_sha256(adapters / "mara" / "v2")
    assert len(info.adapter_sha256) == 64 and info.status == "registered"
    assert info.voice == VoiceConfig() and info.character == mara("v2")
    assert info.prompt == mara("v2").system_prompt and info.base_model == BASE
    assert [v.version for v in registry.versions("mara")] == ["v1", "v2", "v3"]
    assert registry.characters() == ["mara"]
    assert registry.record_metrics("mara", "v2", {"latency_ms": 300}).metrics == {
        "consistency": 0.85,
        "latency_ms": 300.0,
    }


def test_register_refuses_duplicates_bad_names_and_missing_adapters(registry: Registry) -> None:
    with pytest.raises(VersionExistsError):
        registry.register(mara("v1"), version="v1", base_model=BASE)
    with pytest.raises(RegistryError, match="invalid version"):
        registry.register(mara("v1"), version="../etc", base_model=BASE)
    with pytest.raises(AdapterIntegrityError, match="does not exist"):
        registry.register(mara("v9"), version="v9", base_model=BASE)
    with pytest.raises(RegistryError, match="not a number"):
        registry.record_metrics("mara", "v1", {"x": "high"})
    assert [v.version for v in registry.versions("mara")] == ["v1", "v2", "v3"]


def test_deploy_history_and_rollbacks(registry: Registry) -> None:
    seen = []
    registry.subscribe(seen.append)
    assert registry.serving("mara", "prod") is None
    d1 = registry.deploy("mara", "v1", environment="prod", actor="ci")
    registry.deploy("mara", "v2", environment="prod")
    registry.deploy("mara", "v3", environment="prod", reason="better consistency")
    registry.deploy("mara", "v1", environment="staging")
    assert registry.serving("mara", "prod").version.version == "v3"
    assert registry.serving("mara", "staging").version.version == "v1"
    assert (
        registry.deploy("mara", "v3", environment="prod").id == registry.serving("mara", "prod").id
    )

    back = registry.rollback("mara", environment="prod", reason="regression")
    assert (back.version.version, back.previous_version, back.action) == ("v2", "v3", "rollback")
    assert registry.rollback("mara", environment="prod").version.version == "v1"
    with pytest.raises(NoPreviousVersionError, match="no version before v1"):
        registry.rollback("mara", environment="prod")
    assert registry.rollback("mara", environment="prod", to_version="v3").version.version == "v3"
    assert registry.rollback("mara", environment="prod").version.version == "v1"

    history = registry.history("mara", "prod")
    assert [(d.action, d.version.version) for d in history] == [
        ("deploy", "v1"),
        ("deploy", "v2"),
        ("deploy", "v3"),
        ("rollback", "v2"),
        ("rollback", "v1"),
        ("rollback", "v3"),
        ("rollback", "v1"),
    ]
    assert history[0].actor == "ci" and history[2].reason == "better consistency"
    assert [d.id for d in seen] == [d.id for d in registry.changes_since(0)]
    assert [d.version.version for d in registry.changes_since(d1.id, "staging")] == ["v1"]
    assert {k: d.version.version for k, d in registry.serving_all("prod").items()} == {"mara": "v1"}


def test_bad_rollbacks_and_unknown_versions_change_nothing(registry: Registry) -> None:
    with pytest.raises(NotDeployedError, match="never been deployed"):
        registry.rollback("mara", environment="prod")
    registry.deploy("mara", "v1", environment="prod")
    with pytest.raises(NoPreviousVersionError) as err:
        registry.rollback("mara", environment="prod")
    assert err.value.code == "no_previous_version" and isinstance(err.value, ClientError)
    with pytest.raises(UnknownVersionError, match="no version 'v7'; known: v1, v2, v3"):
        registry.deploy("mara", "v7", environment="prod")
    with pytest.raises(UnknownVersionError):
        registry.rollback("mara", environment="prod", to_version="v7")
    with pytest.raises(NotDeployedError, match="never served in prod"):
        registry.rollback("mara", environment="prod", to_version="v2")
    with pytest.raises(RegistryError, match="already serving"):
        registry.rollback("mara", environment="prod", to_version="v1")
    with pytest.raises(UnknownCharacterError):
        registry.deploy("ghost", "v1", environment="prod")
    with pytest.raises(UnknownCharacterError):
        registry.rollback("ghost", environment="prod")
    with pytest.raises(RegistryError, match="invalid environment"):
        registry.deploy("mara", "v2", environment="Prod Env")
    assert registry.serving("mara", "prod").version.version == "v1"
    assert len(registry.history("mara", "prod")) == 1


def test_the_gate_checks_metrics_and_a_smoke_generation(registry: Registry) -> None:
    calls = []

    def smoke(info) -> str:
        calls.append(info.version)
        return "Aye, the forge is hot." if info.version != "v3" else "   "

    gate = Gate(thresholds={"consistency": 0.82, "latency_ms": Threshold(max=800)}, smoke=smoke)
    registry.record_metrics("mara", "v2", {"latency_ms": 450})
    registry.record_metrics("mara", "v3", {"latency_ms": 500})
    registry.deploy("mara", "v2", environment="prod", gate=gate)
    assert registry.get("mara", "v2").status == "validated"

    with pytest.raises(GateFailedError) as err:  # v1: consistency 0.8 < 0.82, no latency
        registry.deploy("mara", "v1", environment="prod", gate=gate)
    failed = {c.name: c.detail for c in err.value.report.failures}
    assert failed == {"metric:consistency": "0.8 fails >= 0.82", "metric:latency_ms": "missing"}
    assert "prod still serves v2" in str(err.value)
    assert calls == ["v2"]  # no smoke generation for a version that failed its metrics

    with pytest.raises(GateFailedError, match="smoke: 0 chars"):
        registry.deploy("mara", "v3", environment="prod", gate=gate)

    def broken(info) -> str:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(GateFailedError, match="RuntimeError: CUDA out of memory"):
        registry.deploy("mara", "v3", environment="prod", gate=Gate(smoke=broken))
    assert registry.get("mara", "v3").status == "rejected"
    assert registry.get("mara", "v3").gate["passed"] is False
    assert registry.serving("mara", "prod").version.version == "v2"
    assert len(registry.history("mara", "prod")) == 1

    report = registry.validate("mara", "v3", gate=Gate(thresholds={"consistency": 0.85}))
    assert report.passed and registry.get("mara", "v3").status == "validated"


def test_a_corrupt_or_swapped_adapter_is_refused(registry: Registry, adapters: Path) -> None:
    registry.deploy("mara", "v1", environment="prod")
    registry.deploy("mara", "v2", environment="prod")
    weights = adapters / "mara" / "v3" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])  # truncated
    with pytest.raises(AdapterIntegrityError, match="truncated") as err:
        registry.deploy("mara", "v3", environment="prod")
    assert err.value.code == "adapter_corrupt"
    v1 = adapters / "mara" / "v1" / "adapter_model.safetensors"
    v1.write_bytes(v1.read_bytes()[:-8] + b"\x07" * 8)  # well formed, other weights
    with pytest.raises(AdapterIntegrityError, match="changed on disk"):
        registry.rollback("mara", environment="prod")
    (adapters / "mara" / "v1" / "adapter_config.json").write_text("{nope")
    with pytest.raises(AdapterIntegrityError, match="not valid JSON"):
        registry.rollback("mara", environment="prod")
    assert registry.serving("mara", "prod").version.version == "v2"
    assert [d.version.version for d in registry.history("mara", "prod")] == ["v1", "v2"]


def test_without_an_adapter_store_nothing_is_hashed(engine) -> None:
    reg = Registry(engine)
    info = reg.register(mara("v1"), version="1.0.0", base_model=BASE, card={"spec": "x", "k": [1]})
    assert info.adapter_sha256 is None and info.card == {"spec": "x", "k": [1]}
    plain = Character(id="tobin", name="Tobin", description="An innkeeper.")
    reg.register(plain, version="1", base_model=BASE)
    assert reg.deploy("tobin", "1", environment="dev").version.adapter_name is None


def test_a_watcher_sees_changes_made_elsewhere_once(registry: Registry, engine, adapters) -> None:
    from personae.daemon.runtime.registry import DeploymentWatcher

    registry.deploy("mara", "v1", environment="prod")
    watcher = DeploymentWatcher(registry, environment="prod")
    assert {k: d.version.version for k, d in watcher.current().items()} == {"mara": "v1"}
    assert watcher.poll() == []
    other = Registry(engine, adapters_dir=adapters)  # another process, in effect
    other.deploy("mara", "v2", environment="prod")
    other.deploy("mara", "v3", environment="prod")
    other.deploy("mara", "v2", environment="staging")
    assert [d.version.version for d in watcher.poll()] == ["v3"]  # latest per character
    assert watcher.poll() == []
    other.rollback("mara", environment="prod")
    assert [(d.action, d.version.version) for d in watcher.poll()] == [("rollback", "v2")]


def test_a_reply_keeps_the_version_it_started_with(registry: Registry, engine) -> None:
    from personae.daemon.runtime.turns import TurnLog

    log = TurnLog(engine)
    registry.deploy("mara", "v1", environment="prod")
    started = registry.serving("mara", "prod").version  # resolved when the reply starts
    registry.deploy("mara", "v2", environment="prod")  # lands mid-reply
    log.append(
        session_id="s",
        character_id="mara",
        player_id="p",
        role="character",
        text="first",
        version=started.version,
    )
    nxt = registry.serving("mara", "prod").version
    log.append(
        session_id="s",
        character_id="mara",
        player_id="p",
        role="character",
        text="second",
        version=nxt.version,
    )
    registry.rollback("mara", environment="prod")
    log.append(
        session_id="s",
        character_id="mara",
        player_id="p",
        role="character",
        text="third",
        version=registry.serving("mara", "prod").version.version,
    )
    assert [(t.text, t.version) for t in log.for_session("s")] == [
        ("first", "v1"),
        ("second", "v2"),
        ("third", "v1"),
    ]
    assert started.character == mara("v1")  # the snapshot is complete and immutable
