"""`personae characters ...` and `personae experiments ...`: versions, deployments and A/B
tests of a running daemon, through its admin REST API (so changes take effect at once).

`personae characters` alone lists the cast the daemon serves; when no daemon answers,
an installed daemon package lists the cast configured in its character files instead
(it registers itself with `offline_cast`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

DEFAULT_HTTP = "http://127.0.0.1:8765"
Url = Annotated[str, typer.Option("--url", help="Daemon base URL", envvar="PERSONAE_URL")]
Key = Annotated[str | None, typer.Option("--key", help="Admin API key", envvar="PERSONAE_API_KEY")]

characters = typer.Typer(
    invoke_without_command=True,
    help="Characters: the cast (with no command), versions, deploy, rollback, cards.",
)
experiments = typer.Typer(no_args_is_help=True, help="A/B experiments between character versions.")


class AdminError(Exception):
    """The daemon answered with an HTTP error."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"error {status}: {detail}")


class Unreachable(Exception):
    """No daemon answered at the URL."""


class CastEntry(NamedTuple):
    id: str
    name: str
    version: str
    adapter: str


OfflineCast = Callable[[], tuple[str, list[CastEntry]] | None]

#: lists the cast from local character files; set by the daemon package's CLI
_offline_cast: list[OfflineCast] = []


def offline_cast(source: OfflineCast) -> None:
    """Where `personae characters` finds the cast when no daemon answers: `source`
    returns where it looked and the characters found there, or None when it cannot
    look (the daemon extra is not installed)."""
    _offline_cast[:] = [source]


def request(
    url: str, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
) -> Any:
    """The daemon's JSON answer; AdminError for an HTTP error, Unreachable for none."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(
        f"{url.rstrip('/')}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            err = json.load(exc)
            detail = err.get("error", {}).get("message") or err.get("detail") or err
        except json.JSONDecodeError:
            detail = exc.reason
        raise AdminError(exc.code, detail) from None
    except urllib.error.URLError as exc:
        raise Unreachable(
            f"cannot reach {url}: {exc.reason}. Is `personae serve` running?"
        ) from None


def call(
    url: str, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
) -> Any:
    """`request`, with its errors printed as one line and exit status 1."""
    try:
        return request(url, method, path, body, key)
    except (AdminError, Unreachable) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


def _metrics(pairs: list[str]) -> dict[str, float]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise typer.BadParameter(f"metric {pair!r}: expected NAME=NUMBER") from None
        if not sep or not name:
            raise typer.BadParameter(f"metric {pair!r}: expected NAME=NUMBER")
    return out


def _served_cast(data: dict[str, Any]) -> list[CastEntry]:
    return [
        CastEntry(
            c["id"],
            c["name"],
            c["serving_version"] or "file",
            f"{c['adapter']['name']}/{c['adapter']['version']}" if c["adapter"] else "-",
        )
        for c in data["characters"]
    ]


def _print_cast(cast: list[CastEntry]) -> None:
    for c in cast:
        typer.echo(f"{c.id:<12} {c.name:<16} version {c.version:<10} adapter {c.adapter}")


@characters.callback()
def cast(ctx: typer.Context, url: Url = DEFAULT_HTTP, key: Key = None) -> None:
    """The cast: from the daemon at --url, or, when none answers and the daemon package
    is installed, from the configured character files."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        served = _served_cast(request(url, "GET", "/v1/admin/characters", key=key))
    except AdminError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    except Unreachable as exc:
        found = _offline_cast[0]() if _offline_cast else None
        if found is None:
            typer.secho(
                f"{exc} (or install personae[daemon] to list the character files)",
                fg="red",
                err=True,
            )
            raise typer.Exit(1) from None
        where, configured = found
        typer.secho(
            f"no daemon answers at {url}; the cast in the character files of {where}:", err=True
        )
        _print_cast(configured)
        return
    typer.secho(f"the cast served by {url}:", err=True)
    _print_cast(served)


@characters.command("list")
def list_characters(url: Url = DEFAULT_HTTP, key: Key = None) -> None:
    """Characters the daemon serves, with the deployed version and adapter."""
    _print_cast(_served_cast(call(url, "GET", "/v1/admin/characters", key=key)))


@characters.command()
def versions(character: str, url: Url = DEFAULT_HTTP, key: Key = None) -> None:
    """Registered versions of a character."""
    for v in call(url, "GET", f"/v1/admin/characters/{character}/versions", key=key)["versions"]:
        adapter = f"{v['adapter']['name']}/{v['adapter']['version']}" if v["adapter"] else "-"
        metrics = ", ".join(f"{k}={val:g}" for k, val in v["metrics"].items())
        typer.echo(f"{v['version']:<10} {v['status']:<10} adapter {adapter:<24} {metrics}")


@characters.command()
def register(
    character: str,
    version: str,
    adapter: Annotated[
        str | None, typer.Option(help="Adapter as NAME/VERSION in the store")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="A whole character file (toml/yaml/json)")
    ] = None,
    metric: Annotated[list[str], typer.Option(help="NAME=NUMBER, repeatable")] = [],  # noqa: B006
    notes: str = "",
    url: Url = DEFAULT_HTTP,
    key: Key = None,
) -> None:
    """Register a new version (the serving character, with another adapter or from a file)."""
    body: dict[str, Any] = {"version": version, "metrics": _metrics(metric), "notes": notes}
    if adapter:
        name, _, adapter_version = adapter.partition("/")
        body["adapter"] = {"name": name, "version": adapter_version or "latest"}
    if file:
        body["character"] = _read_character(file)
    v = call(url, "POST", f"/v1/admin/characters/{character}/versions", body, key=key)
    typer.echo(f"registered {character} {v['version']} ({v['status']})")


def _read_character(path: Path) -> dict[str, Any]:
    import tomllib

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    if path.suffix == ".json":
        return json.loads(text)
    import yaml  # only for YAML character files

    return yaml.safe_load(text)


@characters.command()
def deploy(
    character: str,
    version: str,
    reason: str | None = None,
    url: Url = DEFAULT_HTTP,
    key: Key = None,
) -> None:
    """Validate a version (metrics, adapter integrity, a smoke reply) and make it serve."""
    d = call(
        url,
        "POST",
        f"/v1/admin/characters/{character}/deploy",
        {"version": version, "reason": reason},
        key=key,
    )
    typer.echo(
        f"{character}: {d['previous_version'] or 'file'} -> {d['version']} ({d['environment']})"
    )


@characters.command()
def rollback(
    character: str,
    to: Annotated[str | None, typer.Option(help="A version that served before")] = None,
    reason: str | None = None,
    url: Url = DEFAULT_HTTP,
    key: Key = None,
) -> None:
    """Go back to the previous version, or to a named one."""
    d = call(
        url,
        "POST",
        f"/v1/admin/characters/{character}/rollback",
        {"to_version": to, "reason": reason},
        key=key,
    )
    typer.echo(f"{character}: {d['previous_version']} -> {d['version']} (rollback)")


@characters.command()
def history(character: str, url: Url = DEFAULT_HTTP, key: Key = None) -> None:
    """Deployment history of a character in the daemon's environment."""
    for d in call(url, "GET", f"/v1/admin/characters/{character}/history", key=key)["history"]:
        typer.echo(
            f"#{d['id']:<5} {d['action']:<9} {d['previous_version'] or '-':>8} -> {d['version']:<8} {d['reason'] or ''}"
        )


@experiments.command("create")
def create_experiment(
    name: str,
    character: Annotated[str, typer.Option(help="Character id")],
    variant: Annotated[list[str], typer.Option(help="NAME=WEIGHT[:VERSION], at least two")],
    description: str = "",
    url: Url = DEFAULT_HTTP,
    key: Key = None,
) -> None:
    """Create and start an A/B experiment: players split by a stable hash of their id."""
    variants = []
    for spec in variant:
        vname, _, rest = spec.partition("=")
        weight, _, version = rest.partition(":")
        try:
            variants.append({"name": vname, "weight": float(weight), "version": version or None})
        except ValueError:
            raise typer.BadParameter(f"variant {spec!r}: expected NAME=WEIGHT[:VERSION]") from None
    exp = call(
        url,
        "POST",
        "/v1/admin/experiments",
        {"name": name, "character": character, "variants": variants, "description": description},
        key=key,
    )
    typer.echo(
        f"{exp['name']} {exp['status']}: "
        + ", ".join(f"{v['name']} {v['weight']:g}" for v in exp["variants"])
    )


@experiments.command()
def results(name: str, url: Url = DEFAULT_HTTP, key: Key = None) -> None:
    """Per-variant metrics (turns, latency, consistency, feedback) with confidence intervals."""
    typer.echo(json.dumps(call(url, "GET", f"/v1/admin/experiments/{name}", key=key), indent=2))


@experiments.command()
def stop(name: str, url: Url = DEFAULT_HTTP, key: Key = None) -> None:
    """Stop assigning players to an experiment."""
    exp = call(url, "POST", f"/v1/admin/experiments/{name}/stop", key=key)
    typer.echo(f"{exp['name']} {exp['status']}")
