"""`personae keys ...`: API keys for the daemon, written (hashed) to its keys file.

The daemon re-reads the file when it changes, so a created key works and a revoked
key stops working at the next connection, without a restart. The first key turns
local development mode off. Registered into `personae` by `personae.daemon.cli`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

keys = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")

KeysFile = Annotated[
    Path | None,
    typer.Option("--keys-file", help="Keys file (default: the daemon's, cache_dir/keys.json)"),
]


def _store(path: Path | None):
    try:
        from personae.daemon.auth import KeyStore
        from personae.daemon.settings import Settings
    except ImportError as exc:  # the daemon's settings need the daemon extra
        typer.secho(f"{exc}. Install it with: pip install 'personae[daemon]'", fg="red", err=True)
        raise typer.Exit(2) from None
    return KeyStore(path or Settings().resolved_keys_file)


@keys.command()
def create(
    name: Annotated[str, typer.Argument(help="Who the key is for ('quest-server')")],
    character: Annotated[
        list[str] | None,
        typer.Option(
            "--character", "-c", help="A character id or pattern it may use (repeat); default all"
        ),
    ] = None,
    admin: Annotated[bool, typer.Option(help="May deploy, roll back and load adapters")] = False,
    player: Annotated[
        list[str] | None,
        typer.Option(
            "--player",
            "-p",
            help="A player id or pattern whose state it may use (repeat); default all",
        ),
    ] = None,
    keys_file: KeysFile = None,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    store = _store(keys_file)
    try:
        key, record = store.create(
            name,
            characters=tuple(character or ("*",)),
            admin=admin,
            players=tuple(player or ("*",)),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(key)
    scope = ", ".join(record.characters) + (" + admin" if record.admin else "")
    typer.secho(
        f"key {record.id} ({name}; {scope}) written to {store.path}. Keep it now: it "
        "cannot be shown again.",
        fg="green",
        err=True,
    )


@keys.command("list")
def list_keys(keys_file: KeysFile = None) -> None:
    """Every key: id, name, scopes, created, revoked."""
    store = _store(keys_file)
    records = store.records()
    if not records:
        typer.echo(f"no keys in {store.path}: the daemon runs in local development mode")
        return
    for r in records:
        created = dt.datetime.fromtimestamp(r.created_at).isoformat(timespec="seconds")
        state = (
            "active"
            if r.active
            else "revoked "
            + dt.datetime.fromtimestamp(r.revoked_at or 0).isoformat(timespec="seconds")
        )
        scope = ",".join(r.characters) + (" admin" if r.admin else "")
        typer.echo(f"{r.id}  {r.name:<20} {scope:<24} {created}  {state}")


@keys.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `personae keys list`)")],
    keys_file: KeysFile = None,
) -> None:
    """Revoke a key; connections already open keep running, new ones are refused."""
    store = _store(keys_file)
    try:
        store.revoke(key_id)
    except KeyError:
        typer.secho(f"no key {key_id!r} in {store.path}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.secho(f"key {key_id} revoked", fg="green", err=True)
