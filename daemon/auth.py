"""API keys: stored hashed, each with scopes; read from a header or the subprotocol.

    store = KeyStore(settings.resolved_keys_file)
    key, record = store.create("quest-server", characters=("mara", "guard-*"))
    principal = store.authenticate(key)      # Principal | None
    principal.may_use("mara")                # scopes: characters (fnmatch patterns), admin

A key is `pk_<id>_<secret>`: the id finds the record, the secret (32 random bytes) is
compared by its SHA-256 in constant time. Only the hash is written, to a JSON file
that only its owner can read; `personae keys` manages it and the daemon re-reads it
when it changes, so a revoked key stops working at the next connection.

Clients present the key in `Authorization: Bearer <key>` or as a WebSocket
subprotocol `personae.key.<key>` next to `personae.v1` (browsers cannot set headers).
A key in the query string is refused: URLs end up in logs and proxies.

Whether keys are required is a property of the running daemon, not of the file: it is
set by `require_keys`, or by the first active key the daemon sees, and never unset while
it runs. Revoking the last key or deleting the file then refuses everyone (fail closed).
Only a daemon that has never seen a key and was not told to require one is in local
development mode: every connection is the `local` principal with every scope, and the
daemon says so loudly at start-up.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from personae.daemon.errors import ClientError, ConfigError

KEY_SUBPROTOCOL_PREFIX = "personae.key."
_KEY = re.compile(r"^pk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})$")
_QUERY_NAMES = frozenset({"key", "api_key", "apikey", "token", "access_token", "authorization"})
_CHARACTER_PATTERN = re.compile(r"^[a-z0-9*?_\-\[\]]{1,64}$")
_PLAYER_PATTERN = re.compile(r"^[^\x00-\x1f]{1,128}$")


class AuthError(ClientError):
    """No usable credentials: the connection is refused (WebSocket close 1008, HTTP 401)."""

    code = "unauthorized"


class ForbiddenError(ClientError):
    """Valid credentials without the scope the request needs (HTTP 403)."""

    code = "forbidden"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is connected and what they may use."""

    key_id: str
    name: str
    #: fnmatch patterns of character ids ("*" = every character)
    characters: tuple[str, ...] = ("*",)
    #: may deploy, roll back and load adapters
    admin: bool = False
    #: fnmatch patterns of the player ids whose state and memory it may read and write
    players: tuple[str, ...] = ("*",)

    def may_use(self, character_id: str) -> bool:
        return any(fnmatch.fnmatchcase(character_id, pat) for pat in self.characters)

    def may_play(self, player_id: str) -> bool:
        return any(fnmatch.fnmatchcase(player_id, pat) for pat in self.players)

    def require_player(self, player_id: str) -> None:
        if not self.may_play(player_id):
            raise ForbiddenError(
                f"key {self.key_id} may not act for player {player_id!r}", code="forbidden_player"
            )

    def visible(self, ids: Iterable[str]) -> list[str]:
        return [c for c in ids if self.may_use(c)]

    def require_admin(self) -> None:
        if not self.admin:
            raise ForbiddenError(f"key {self.key_id} is not an admin key")


#: local development mode: no keys configured, everything allowed
LOCAL = Principal(key_id="local", name="local development", characters=("*",), admin=True)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    #: "sha256:<hex>" of the whole key
    hash: str
    characters: tuple[str, ...] = ("*",)
    admin: bool = False
    created_at: float = 0.0
    revoked_at: float | None = None
    players: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        if not self.characters:
            raise ValueError("a key needs at least one character pattern ('*' for all)")
        bad = [c for c in self.characters if not _CHARACTER_PATTERN.match(c)]
        if bad:
            raise ValueError(f"not a character id pattern: {bad[0]!r}")
        if not self.players:
            raise ValueError("a key needs at least one player pattern ('*' for all)")
        bad = [c for c in self.players if not _PLAYER_PATTERN.match(c)]
        if bad:
            raise ValueError(f"not a player id pattern: {bad[0]!r}")

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(self.id, self.name, self.characters, self.admin, self.players)


def _digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass
class KeyStore:
    """The keys file; thread-safe, re-read when its modification time changes."""

    path: Path
    clock: Any = time.time
    _records: dict[str, KeyRecord] = field(default_factory=dict, init=False, repr=False)
    _stamp: tuple[int, int] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # ------------------------------------------------------------------ reading

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = {
                r["id"]: KeyRecord(
                    **{
                        **r,
                        "characters": tuple(r.get("characters", ("*",))),
                        "players": tuple(r.get("players", ("*",))),
                    }
                )
                for r in data.get("keys", [])
            }
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"keys file {self.path} is unreadable: {exc}") from exc
        self._records, self._stamp = records, stamp

    def records(self) -> list[KeyRecord]:
        with self._lock:
            self._refresh()
            return sorted(self._records.values(), key=lambda r: r.created_at)

    @property
    def enabled(self) -> bool:
        """True when at least one active key exists: authentication is required."""
        return any(r.active for r in self.records())

    def authenticate(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown, malformed or revoked key."""
        m = _KEY.match(key)
        if m is None:
            return None
        with self._lock:
            self._refresh()
            record = self._records.get(m.group(1))
        if record is None or not record.active:
            # compare anyway so a miss costs the same as a wrong secret
            hmac.compare_digest(_digest(key), "sha256:" + "0" * 64)
            return None
        if not hmac.compare_digest(_digest(key), record.hash):
            return None
        return record.principal()

    # ------------------------------------------------------------------ writing

    def create(
        self,
        name: str,
        *,
        characters: Sequence[str] = ("*",),
        admin: bool = False,
        players: Sequence[str] = ("*",),
    ) -> tuple[str, KeyRecord]:
        """A new key; the plaintext is returned once and never stored."""
        key_id = secrets.token_hex(6)
        key = f"pk_{key_id}_{secrets.token_urlsafe(32)}"
        record = KeyRecord(
            id=key_id,
            name=name,
            hash=_digest(key),
            characters=tuple(characters),
            admin=admin,
            created_at=self.clock(),
            players=tuple(players),
        )
        self._update(lambda recs: {**recs, key_id: record})
        return key, record

    def revoke(self, key_id: str) -> KeyRecord:
        revoked: list[KeyRecord] = []

        def change(recs: dict[str, KeyRecord]) -> dict[str, KeyRecord]:
            if key_id not in recs:
                raise KeyError(key_id)
            revoked.append(replace(recs[key_id], revoked_at=self.clock()))
            return {**recs, key_id: revoked[0]}

        self._update(change)
        return revoked[0]

    def _update(self, change: Any) -> None:
        with self._lock:
            self._refresh()
            records = change(dict(self._records))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            payload = {
                "version": 1,
                "keys": [
                    {**asdict(r), "characters": list(r.characters), "players": list(r.players)}
                    for r in records.values()
                ],
            }
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(payload, f, indent=2)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._stamp = None  # re-read next time (mtime granularity)
            self._records = records


# ---------------------------------------------------------------------- credentials


def credentials(
    headers: Mapping[str, str], subprotocols: Sequence[str], query_string: bytes | str = b""
) -> str | None:
    """The key a request presents, from the Authorization header or a subprotocol.

    Raises AuthError (code `key_in_query`) when the query string carries a key, even
    next to a valid header: the URL is already in some log, and the client must learn.
    """
    qs = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    if any(name.lower() in _QUERY_NAMES for name, _ in parse_qsl(qs, keep_blank_values=True)):
        raise AuthError(
            "API keys are not accepted in the query string (URLs are logged); send "
            "'Authorization: Bearer <key>' or the subprotocol 'personae.key.<key>'",
            code="key_in_query",
        )
    auth = headers.get("authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("the Authorization header must be 'Bearer <key>'")
        return value.strip()
    for proto in subprotocols:
        if proto.startswith(KEY_SUBPROTOCOL_PREFIX):
            return proto.removeprefix(KEY_SUBPROTOCOL_PREFIX)
    return None


class Authenticator:
    """Turns a request's credentials into a Principal, or refuses it.

    `required` (the `require_keys` setting) holds from the start; otherwise keys become
    required once the store first holds an active key, and stay required (latched).
    """

    def __init__(self, store: KeyStore, *, required: bool = False) -> None:
        self.store = store
        self._required = required

    @property
    def required(self) -> bool:
        if not self._required and self.store.enabled:
            self._required = True
        return self._required

    @property
    def local_mode(self) -> bool:
        return not self.required

    def principal(
        self,
        headers: Mapping[str, str],
        subprotocols: Sequence[str] = (),
        query_string: bytes | str = b"",
    ) -> Principal:
        key = credentials(headers, subprotocols, query_string)
        if self.local_mode:
            return LOCAL
        if key is None:
            raise AuthError(
                "an API key is required: send 'Authorization: Bearer <key>' or the "
                "subprotocol 'personae.key.<key>'"
            )
        principal = self.store.authenticate(key)  # an empty or missing file: None
        if principal is None:
            raise AuthError("unknown or revoked API key", code="invalid_key")
        return principal


def default_player(principal: Principal, default: str) -> str:
    """The player a client acts for when it names none: the shared default, or for a
    key bound to other players, a player of that key's own."""
    return default if principal.may_play(default) else f"key-{principal.key_id}"


def startup_banner(auth: Authenticator) -> str:
    """What the daemon says at start-up about authentication."""
    if auth.local_mode:
        return (
            "!!! LOCAL DEVELOPMENT MODE: no API keys in "
            f"{auth.store.path}; every client gets full access. Create a key with "
            "`personae keys create NAME` before exposing this daemon to a network. !!!"
        )
    n = sum(r.active for r in auth.store.records())
    return f"API keys required ({n} active in {auth.store.path})"


def is_loopback(host: str) -> bool:
    """A client on this machine (Starlette's TestClient calls itself "testclient")."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("testclient", "localhost")
