"""Admin REST: character versions, deployments, rollbacks, experiments, adapter cache.

Mounted under /v1/admin. Every route needs the admin scope (see `require_admin`).
Refusals are typed errors turned into JSON by the app's error handler; nothing is
changed by a refused request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from personae.daemon.auth import is_loopback
from personae.daemon.characters import AdapterRef, Character
from personae.daemon.errors import ClientError, ConfigError
from personae.daemon.runtime import Deployment, VariantSpec, VersionInfo

if TYPE_CHECKING:
    from personae.daemon.service import Service


def require_admin(request: Request) -> None:
    """Admin routes need an admin key; with no keys configured, only local clients."""
    check = getattr(request.app.state, "require_admin", None)
    if check is not None:
        check(request)
        return
    if not is_loopback(request.client.host if request.client else ""):
        raise HTTPException(403, "admin routes are local-only until API keys are configured")


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _service(request: Request) -> Service:
    return request.app.state.service


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterVersion(_Body):
    version: str
    #: the whole character; default: the one serving now
    character: dict[str, Any] | None = None
    #: change only the adapter of the serving character
    adapter: AdapterRef | None = None
    base_model: str = "SmolLM2-135M-Instruct"
    metrics: dict[str, float] = Field(default_factory=dict)
    notes: str = ""


class DeployVersion(_Body):
    version: str
    actor: str | None = None
    reason: str | None = None


class Rollback(_Body):
    to_version: str | None = None
    actor: str | None = None
    reason: str | None = None


class VariantBody(_Body):
    name: str
    weight: float
    version: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class CreateExperiment(_Body):
    name: str
    character: str
    variants: list[VariantBody]
    description: str = ""
    start: bool = True


class Feedback(_Body):
    score: float = Field(ge=-1.0, le=1.0)


def version_json(v: VersionInfo) -> dict[str, Any]:
    return {
        "character": v.character_id,
        "version": v.version,
        "base_model": v.base_model,
        "adapter": {
            "name": v.adapter_name,
            "version": v.adapter_version,
            "sha256": v.adapter_sha256,
        }
        if v.adapter_name
        else None,
        "status": v.status,
        "metrics": dict(v.metrics),
        "gate": v.gate,
        "notes": v.notes,
        "created_at": v.created_at,
    }


def deployment_json(d: Deployment) -> dict[str, Any]:
    return {
        "id": d.id,
        "character": d.character_id,
        "environment": d.environment,
        "version": d.version.version,
        "previous_version": d.previous_version,
        "action": d.action,
        "actor": d.actor,
        "reason": d.reason,
        "created_at": d.created_at,
    }


@router.get("/characters")
async def characters(request: Request) -> dict[str, Any]:
    svc = _service(request)
    return {
        "environment": svc.deployments.environment,
        "characters": [
            {
                "id": c.id,
                "name": c.name,
                "serving_version": svc.deployments.serving_version(c.id),
                "adapter": c.adapter.model_dump() if c.adapter else None,
            }
            for c in svc.cast.values()
        ],
    }


@router.get("/characters/{character_id}/versions")
async def versions(character_id: str, request: Request) -> dict[str, Any]:
    svc = _service(request)
    found = await svc.run("store", svc.deployments.registry.versions, character_id)
    return {"versions": [version_json(v) for v in found]}


@router.post("/characters/{character_id}/versions", status_code=201)
async def register(character_id: str, body: RegisterVersion, request: Request) -> dict[str, Any]:
    svc = _service(request)
    if body.character is not None:
        try:
            character = Character.model_validate({**body.character, "id": character_id})
        except ValidationError as exc:  # a bad character is the client's fault: a 400
            raise ClientError(
                f"not a valid character: {exc.errors(include_url=False)[0]['msg'][:300]}",
                code="invalid_character",
            ) from None
    else:
        current = svc.cast.get(character_id)
        if current is None:
            raise HTTPException(
                404, f"unknown character {character_id!r}: send the whole character"
            )
        character = current
    if body.adapter is not None:
        character = character.model_copy(update={"adapter": body.adapter})
    try:  # a voice this daemon cannot speak is refused now, not at deploy
        svc.check_voice(character)
    except ConfigError as exc:
        raise ClientError(str(exc), code="invalid_voice") from None

    def work() -> VersionInfo:
        return svc.deployments.registry.register(
            character,
            version=body.version,
            base_model=body.base_model,
            metrics=body.metrics,
            notes=body.notes,
        )

    return version_json(await svc.run("store", work))


@router.post("/characters/{character_id}/deploy")
async def deploy(character_id: str, body: DeployVersion, request: Request) -> dict[str, Any]:
    svc = _service(request)
    deps = svc.deployments

    def work() -> Deployment:
        # the gate's smoke generation runs the LLM: this may take a few seconds
        d = deps.registry.deploy(
            character_id,
            body.version,
            environment=deps.environment,
            actor=body.actor,
            reason=body.reason,
        )
        deps.apply(d)
        return d

    return deployment_json(await svc.run("adapters", work))


@router.post("/characters/{character_id}/rollback")
async def rollback(character_id: str, body: Rollback, request: Request) -> dict[str, Any]:
    svc = _service(request)
    deps = svc.deployments

    def work() -> Deployment:
        d = deps.registry.rollback(
            character_id,
            environment=deps.environment,
            to_version=body.to_version,
            actor=body.actor,
            reason=body.reason,
        )
        deps.apply(d)
        return d

    return deployment_json(await svc.run("adapters", work))


@router.get("/characters/{character_id}/history")
async def history(character_id: str, request: Request) -> dict[str, Any]:
    svc = _service(request)
    deps = svc.deployments
    rows = await svc.run("store", deps.registry.history, character_id, deps.environment)
    return {"history": [deployment_json(d) for d in rows]}


@router.post("/experiments", status_code=201)
async def create_experiment(body: CreateExperiment, request: Request) -> dict[str, Any]:
    svc = _service(request)

    def work() -> Any:
        specs = [VariantSpec(v.name, v.weight, v.version, v.overrides) for v in body.variants]
        exp = svc.experiments.create(
            body.name, character_id=body.character, variants=specs, description=body.description
        )
        return svc.experiments.start(body.name) if body.start else exp

    exp = await svc.run("store", work)
    return {
        "name": exp.name,
        "character": exp.character_id,
        "status": exp.status,
        "variants": [
            {"name": v.name, "weight": v.weight, "version": v.version} for v in exp.variants
        ],
    }


@router.post("/experiments/{name}/stop")
async def stop_experiment(name: str, request: Request) -> dict[str, Any]:
    svc = _service(request)
    exp = await svc.run("store", svc.experiments.stop, name)
    return {"name": exp.name, "status": exp.status}


@router.get("/experiments/{name}")
async def experiment_results(name: str, request: Request) -> dict[str, Any]:
    svc = _service(request)
    results = await svc.run("store", svc.experiments.results, name)
    return results.as_dict()


@router.get("/adapters")
async def adapters(request: Request) -> dict[str, Any]:
    svc = _service(request)
    return {**svc.adapters.stats().as_dict(), "names": svc.adapters.resident()}
