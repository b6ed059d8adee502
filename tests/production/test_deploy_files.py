"""deploy/ and the Dockerfile, checked by reading them (no container engine here).

The compose file and the Kubernetes manifests are parsed, and what must agree across
them is checked: every PERSONAE_* variable is a real setting with a valid value, the
daemon reaches vLLM and PostgreSQL by the names and ports they serve on, the adapter
store is one volume mounted where each side's setting says, vLLM serves the base the
daemon expects with runtime LoRA loading on a GPU. The Dockerfile's steps are read:
the README's setup script, models prepared at build, a non-root user, a health check.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from personae.daemon.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def compose_value(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?error} interpolation, with stand-in values."""
    return re.sub(r"\$\{(\w+)(?::?[-?]([^}]*))?\}", lambda m: m[2] or "x", value)


def settings_from(env: dict[str, str]) -> Settings:
    """Settings from the PERSONAE_* variables in `env`; fails on a name or value typo."""
    fields = {}
    for name, value in env.items():
        if name.startswith("PERSONAE_"):
            field = name.removeprefix("PERSONAE_").lower()
            assert field in Settings.model_fields, f"{name} is not a setting"
            fields[field] = value
    return Settings(**fields)


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_daemon_vllm_and_postgres(compose) -> None:
    services = compose["services"]
    assert set(services) == {"daemon", "vllm", "postgres"}
    daemon, vllm, postgres = services["daemon"], services["vllm"], services["postgres"]
    env = {k: compose_value(str(v)) for k, v in daemon["environment"].items()}
    settings = settings_from(env)
    assert settings.llm_engine == "vllm" and settings.require_keys

    # vLLM on a GPU, runtime LoRA loading, serving the base the daemon checks for
    gpu = vllm["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "1"
    args = vllm["command"]
    assert "--enable-lora" in args
    assert flag(args, "--model") == settings.vllm_model
    url = urlsplit(settings.vllm_url)
    assert url.hostname == "vllm" and url.port == int(flag(args, "--port"))

    # one adapter store: the daemon's PERSONAE_ADAPTERS_DIR is vLLM's PERSONAE_VLLM_ADAPTERS_DIR
    def mounts(service: dict[str, Any]) -> dict[str, str]:
        specs = [compose_value(v).split(":") for v in service["volumes"]]
        return {target: source for source, target, *_ in specs}

    store = mounts(daemon)[str(settings.adapters_dir)]
    assert mounts(vllm)[settings.vllm_adapters_dir] == store

    # PostgreSQL by service name, with its user and database
    db = urlsplit(settings.database_url)
    assert db.scheme == "postgresql+psycopg" and db.hostname == "postgres"
    assert db.username == postgres["environment"]["POSTGRES_USER"]
    assert db.path == "/" + postgres["environment"]["POSTGRES_DB"]
    assert daemon["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "vllm": {"condition": "service_healthy"},
    }
    assert "healthcheck" in vllm and "healthcheck" in postgres
    # the keys file is a compose secret, where PERSONAE_KEYS_FILE says
    assert str(settings.keys_file) == "/run/secrets/" + daemon["secrets"][0]
    assert daemon["build"]["dockerfile"] == "Dockerfile"
    assert (DEPLOY / daemon["build"]["context"] / "Dockerfile").is_file()


# --------------------------------------------------------------------------- kubernetes


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    for name in sorted(listed):
        for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"]
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = deployment["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    return spec["template"]["spec"]


def daemon_env(k8s) -> dict[str, str]:
    """The daemon container's environment: ConfigMap, then env (secrets as stand-ins)."""
    container = pod(k8s[("Deployment", "personae-daemon")])["containers"][0]
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env.update(k8s[("ConfigMap", source["configMapRef"]["name"])]["data"])
    secrets = {name: doc for (kind, name), doc in k8s.items() if kind == "Secret"}
    for var in container["env"]:
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]]["stringData"][ref["key"]]
        else:  # $(VAR) refers to a variable defined before it
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], var["value"])
    return env


def test_kubernetes_daemon_replicas_behind_a_sticky_service(k8s) -> None:
    deployment = k8s[("Deployment", "personae-daemon")]
    service = k8s[("Service", "personae")]
    assert deployment["spec"]["replicas"] >= 2
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    spec = pod(deployment)
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]
    settings = settings_from(daemon_env(k8s))
    port = container["ports"][0]
    assert port["containerPort"] == settings.port and settings.host == "0.0.0.0"
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert settings.llm_engine == "vllm" and settings.require_keys


def test_kubernetes_vllm_gets_a_gpu_and_the_shared_adapter_volume(k8s) -> None:
    settings = settings_from(daemon_env(k8s))
    vllm = k8s[("Deployment", "personae-vllm")]
    spec = pod(vllm)
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--enable-lora" in container["args"]
    assert flag(container["args"], "--model") == settings.vllm_model
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "1"

    # the daemon reaches it by its Service
    url = urlsplit(settings.vllm_url)
    service = k8s[("Service", url.hostname)]
    assert service["spec"]["ports"][0]["port"] == url.port
    assert int(flag(container["args"], "--port")) == url.port

    # one ReadWriteMany claim, mounted where each side's setting says
    def claim_mounts(pod_spec: dict[str, Any]) -> dict[str, str]:
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod_spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        return {
            m["mountPath"]: claims[m["name"]]
            for m in pod_spec["containers"][0]["volumeMounts"]
            if m["name"] in claims
        }

    daemon_claim = claim_mounts(pod(k8s[("Deployment", "personae-daemon")]))[
        str(settings.adapters_dir)
    ]
    assert claim_mounts(spec)[settings.vllm_adapters_dir] == daemon_claim
    assert k8s[("PersistentVolumeClaim", daemon_claim)]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_kubernetes_postgres_is_where_the_daemon_looks(k8s) -> None:
    settings = settings_from(daemon_env(k8s))
    db = urlsplit(settings.database_url)
    assert db.password == "change-me"  # from the Secret, through $(POSTGRES_PASSWORD)
    service = k8s[("Service", db.hostname)]
    statefulset = k8s[("StatefulSet", db.hostname)]
    assert service["spec"]["ports"][0]["port"] == db.port
    env = {e["name"]: e.get("value") for e in pod(statefulset)["containers"][0]["env"]}
    assert db.username == env["POSTGRES_USER"] and db.path == "/" + env["POSTGRES_DB"]
    # the keys file the daemon reads is the Secret's, mounted where PERSONAE_KEYS_FILE says
    spec = pod(k8s[("Deployment", "personae-daemon")])
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "keys")
    assert str(settings.keys_file).startswith(mount["mountPath"] + "/")


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_steps() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), " ".join(rest.split())))
    return steps


def test_the_dockerfile_installs_with_the_readmes_script_as_a_non_root_user() -> None:
    steps = dockerfile_steps()
    kinds = [k for k, _ in steps]
    runs = [arg for k, arg in steps if k == "RUN"]
    # the same install as `make run` (README): scripts/setup.sh, which ends by
    # preparing the models, so they are in the image
    assert any(shlex.split(r)[0] == "scripts/setup.sh" for r in runs)
    assert "scripts/setup.sh" in (ROOT / "Makefile").read_text()
    assert 'personae" prepare' in (ROOT / "scripts" / "setup.sh").read_text()
    # runs as a user created in the image, from before the install to the end
    user = next(arg for k, arg in steps if k == "USER")
    assert user not in ("root", "0")
    assert any(k == "RUN" and "useradd" in arg and user in arg for k, arg in steps)
    setup_at = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "setup.sh" in a)
    assert kinds.index("USER") < setup_at
    assert "USER" not in kinds[setup_at:] or all(
        a == user for k, a in steps[setup_at:] if k == "USER"
    )
    env = " ".join(arg for k, arg in steps if k == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "PERSONAE_HOST=0.0.0.0" in env
    port = re.search(r"PERSONAE_PORT=(\d+)", env)
    assert port and f"EXPOSE {port[1]}" in [f"{k} {a}" for k, a in steps]
    health = next(arg for k, arg in steps if k == "HEALTHCHECK")
    assert "/healthz" in health
    cmd = next(arg for k, arg in steps if k == "CMD")
    assert "personae" in cmd and "serve" in cmd


# --------------------------------------------------------------------------- extras


def setup_extras() -> set[str]:
    """The extras scripts/setup.sh installs without --dev: `make run` and the image."""
    script = (ROOT / "scripts" / "setup.sh").read_text()
    extras = re.search(r'^EXTRAS="([\w,]+)"$', script, re.MULTILINE)
    assert extras, "scripts/setup.sh names its extras in one EXTRAS= line"
    return set(extras[1].split(","))


def test_the_image_installs_the_extras_of_every_engine_it_is_configured_with(compose, k8s) -> None:
    from personae.daemon.characters import default_cast_dir, load_cast
    from personae.daemon.engines import registry

    voices = {c.voice.engine for c in load_cast([default_cast_dir()]).values()}
    daemon_env_compose = compose["services"]["daemon"]["environment"]
    configured = {
        "the defaults (make run)": Settings(),
        "compose": settings_from({k: compose_value(str(v)) for k, v in daemon_env_compose.items()}),
        "kubernetes": settings_from(daemon_env(k8s)),
    }
    installed = setup_extras()
    for where, settings in configured.items():
        engines = [
            (kind, getattr(settings, f"{kind}_engine"))
            for kind in ("vad", "stt", "embedder", "llm")
        ]
        for kind, name in [*engines, *(("tts", voice) for voice in voices)]:
            assert name in registry.available(kind), (where, kind, name)
            extra = registry.extra(kind, name)
            assert extra in installed, f"{where}: the {kind} engine {name!r} needs [{extra}]"
