"""`personae characters ...` and `personae experiments ...`: versions, deployments and A/B
tests of a running daemon, through its admin REST API (so changes take effect at once)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_HTTP = "http://127.0.0.1:8765"
Url = Annotated[str, typer.Option("--url", help="Daemon base URL", envvar="PERSONAE_URL")]
Key = Annotated[str | None, typer.Option("--key", help="Admin API key", envvar="PERSONAE_API_KEY")]

characters = typer.Typer(
    no_args_is_help=True, help="Characters: versions, deploy, rollback, cards."
)
experiments = typer.Typer(no_args_is_help=True, help="A/B experiments between character versions.")


class AdminError(Exception):
    pass


def call(
    url: str, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
) -> Any:
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
        typer.secho(f"error {exc.code}: {detail}", fg="red", err=True)
        raise typer.Exit(1) from None
    except urllib.error.URLError as exc:
        typer.secho(
            f"cannot reach {url}: {exc.reason}. Is `personae serve` running?", fg="red", err=True
        )
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


@characters.command("list")
def list_characters(url: Url = DEFAULT_HTTP, key: Key = None) -> None:
    """Characters the daemon serves, with the deployed version and adapter."""
    data = call(url, "GET", "/v1/admin/characters", key=key)
    for c in data["characters"]:
        adapter = f"{c['adapter']['name']}/{c['adapter']['version']}" if c["adapter"] else "-"
        typer.echo(
            f"{c['id']:<12} {c['name']:<16} version {c['serving_version'] or 'file':<10} adapter {adapter}"
        )


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


@characters.command("import")
def import_card(
    card: Path,
    out: Annotated[Path, typer.Option(help="Folder of character files")] = Path("characters"),
) -> None:
    """Convert a Character Card V2/V3 (JSON or PNG) into a personae character file."""
    try:
        from personae.daemon.runtime.cards import read_card_file, write_imported
    except ImportError:
        typer.secho(
            "card import needs the daemon: pip install 'personae[daemon]'", fg="red", err=True
        )
        raise typer.Exit(2) from None
    imported = read_card_file(card)
    out.mkdir(parents=True, exist_ok=True)
    path = write_imported(imported, out)
    typer.echo(f"{imported.character.id}: {path}")


@characters.command("export")
def export_card(
    character_file: Path,
    out: Annotated[Path, typer.Option(help="card.json or card.png")],
    spec: Annotated[str, typer.Option(help="v2 or v3")] = "v2",
) -> None:
    """Write a character file as a Character Card (JSON, or PNG with the card embedded)."""
    try:
        from personae.daemon.characters import load_character
        from personae.daemon.runtime.cards import export_card as export
        from personae.daemon.runtime.cards import write_card_json, write_card_png
    except ImportError:
        typer.secho(
            "card export needs the daemon: pip install 'personae[daemon]'", fg="red", err=True
        )
        raise typer.Exit(2) from None
    card = export(load_character(character_file), spec=spec)
    (write_card_png if out.suffix == ".png" else write_card_json)(out, card)
    typer.echo(f"wrote {out}")


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
