"""`personae keys create/list/revoke` on a keys file the daemon reads."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from personae.daemon.auth import KeyStore
from personae.daemon.cli_keys import keys


def test_create_list_revoke(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    made = runner.invoke(
        keys, ["create", "quest", "-c", "mara", "-c", "guard-*", "--keys-file", str(path)]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    principal = KeyStore(path).authenticate(key)
    assert principal is not None and principal.characters == ("mara", "guard-*")
    listed = runner.invoke(keys, ["list", "--keys-file", str(path)])
    assert principal.key_id in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout
    gone = runner.invoke(keys, ["revoke", principal.key_id, "--keys-file", str(path)])
    assert gone.exit_code == 0
    assert KeyStore(path).authenticate(key) is None
    assert "revoked" in runner.invoke(keys, ["list", "--keys-file", str(path)]).stdout
    assert runner.invoke(keys, ["revoke", "nope", "--keys-file", str(path)]).exit_code == 1
    bad = runner.invoke(keys, ["create", "x", "-c", "../etc", "--keys-file", str(path)])
    assert bad.exit_code != 0


def test_list_says_local_mode(tmp_path: Path) -> None:
    out = CliRunner().invoke(keys, ["list", "--keys-file", str(tmp_path / "none.json")])
    assert "local development mode" in out.stdout


def test_create_binds_players(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    made = CliRunner().invoke(
        keys, ["create", "alice", "-p", "alice", "-p", "alice-*", "--keys-file", str(path)]
    )
    assert made.exit_code == 0, made.output
    principal = KeyStore(path).authenticate(made.stdout.strip().splitlines()[0])
    assert principal is not None and principal.players == ("alice", "alice-*")
    assert principal.may_play("alice-2") and not principal.may_play("bob")
