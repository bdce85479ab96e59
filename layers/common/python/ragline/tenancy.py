"""The tenancy use case: API keys, created, listed, revoked, and turned into an identity.

A key is ``rgl_<id>_<secret>``: ``id`` (12 hex digits) is public, for listings and
revocation; ``secret`` is 256 random bits. Only the SHA-256 digest of the whole key is
stored (:func:`key_digest`, the one place a key is hashed): a random key of that length
cannot be guessed from its digest, so no slow password hash is needed, and a lookup is
one indexed read. A key is shown once, by :meth:`Keys.create`.

:func:`authenticate` is what an authorizer calls (on AWS the Lambda authorizer, locally
the gateway of ``ragline dev``): it reads the store on every call, so a revoked or
expired key is refused from the next request on; an authorizer that caches its answers
refuses it once its cache entry ends.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from ragline.errors import NotFoundError, UnauthorizedError
from ragline.identity import SCOPES, Identity, check_scopes, check_tenant
from ragline.store import get_store

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ragline.config import Settings
    from ragline.store import Store
    from ragline.store.records import KeyRecord

KEY_PREFIX = "rgl_"
_ID_BYTES = 6
_SECRET_BYTES = 32
MAX_KEY_CHARS = 128


def key_digest(api_key: str) -> str:
    """The SHA-256 digest (hex) under which a key is stored and looked up."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def key_id(api_key: str) -> str | None:
    """The public id of a well-formed key, or None."""
    if not api_key.startswith(KEY_PREFIX):
        return None
    found, _, secret = api_key[len(KEY_PREFIX) :].partition("_")
    return found if found and secret else None


def new_key() -> str:
    """A fresh key: ``rgl_<12 hex digits>_<43 URL-safe characters>``."""
    return f"{KEY_PREFIX}{secrets.token_hex(_ID_BYTES)}_{secrets.token_urlsafe(_SECRET_BYTES)}"


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its stored record: the only time the key itself is at hand."""

    key: str
    record: KeyRecord


class Keys:
    """Creates, lists and revokes API keys, and authenticates requests with them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        return cls(get_store(settings))

    def authenticate(self, api_key: str | None, *, now: datetime | None = None) -> Identity:
        """The identity a key carries; UnauthorizedError (401) when it is missing,
        malformed, unknown, revoked or expired, its message saying which (the reason the
        deployed authorizer's Deny and the local gateway's 401 carry). ``api_key`` is the
        key, or an ``Authorization`` header's value carrying it (``Bearer <key>``, as OpenAI
        clients send it)."""
        api_key = bearer_key(api_key)
        if not api_key:
            raise UnauthorizedError(
                "missing API key: send it in the x-api-key header "
                "(or as Authorization: Bearer <key>)"
            )
        if len(api_key) > MAX_KEY_CHARS or key_id(api_key) is None:
            raise UnauthorizedError(
                f"malformed API key: a ragline key looks like {KEY_PREFIX}<id>_<secret>"
            )
        record = self.store.key_by_digest(key_digest(api_key))
        if record is None:
            raise UnauthorizedError("unknown API key")
        if record.revoked_at is not None:
            raise UnauthorizedError("this API key was revoked")
        if record.expires_at is not None and record.expires_at <= (now or datetime.now(UTC)):
            raise UnauthorizedError("this API key has expired")
        return Identity(record.tenant, frozenset(record.scopes), record.id)

    def create(
        self,
        tenant: str,
        scopes: Iterable[str] = SCOPES,
        *,
        name: str = "",
        expires_at: datetime | None = None,
        key: str | None = None,
    ) -> CreatedKey:
        """A new key for ``tenant`` (created if new) with these scopes. ``key`` registers
        a key made earlier (``ragline dev`` keeps its development key across databases)."""
        granted = check_scopes(scopes)
        if not granted:
            raise ValueError("a key needs at least one scope")
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must carry a time zone")
        key = key or new_key()
        public = key_id(key)
        if public is None:
            raise ValueError(f"a key looks like {KEY_PREFIX}<id>_<secret>")
        self.store.ensure_tenant(check_tenant(tenant))
        record = self.store.insert_key(
            public,
            tenant,
            key_digest(key),
            [s for s in SCOPES if s in granted],
            name=name,
            expires_at=expires_at,
        )
        return CreatedKey(key, record)

    def list(self, tenant: str | None = None) -> list[KeyRecord]:
        """The keys of ``tenant`` (None: every tenant's): ids, scopes and dates, no secrets."""
        return self.store.list_keys(tenant)

    def revoke(self, key_id: str, *, tenant: str | None = None) -> None:
        """Revoke a key now; NotFoundError when no live key has this id (in ``tenant``)."""
        if not self.store.revoke_key(key_id, tenant=tenant):
            raise NotFoundError(f"no live API key with id {key_id}")


@lru_cache(maxsize=4)
def get_keys(settings: Settings) -> Keys:
    """The process's keys use case, created once."""
    return Keys.from_settings(settings)


def bearer_key(value: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header's value (the scheme's name in
    any case); any other value is taken as the key itself."""
    if value is None:
        return None
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value


def authenticate(api_key: str | None, settings: Settings | None = None) -> Identity:
    """The identity of ``api_key`` (401 when it is missing, unknown, revoked or expired):
    what an authorizer calls."""
    from ragline.config import get_settings

    return get_keys(settings or get_settings()).authenticate(api_key)
