"""Who is calling: a tenant and the scopes its API key grants.

A leaf. The key lookup that produces an :class:`Identity` is the ``tenancy`` use case;
on AWS an authorizer passes the identity to the query function in
``requestContext.authorizer`` (string values only, as API Gateway allows), and locally
the gateway of ``ragline dev`` plays that authorizer, so the handler reads it the same
way in both places (:meth:`Identity.from_authorizer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ragline.errors import ForbiddenError, InvalidRequestError

# query: ask and retrieve; read: list and get documents; write: delete documents;
# review: the review queue (to come); admin: manage the keys of its tenant.
SCOPES = ("query", "read", "write", "review", "admin")
DEFAULT_TENANT = "default"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_TENANT = re.compile(TENANT_PATTERN)


def check_tenant(name: str) -> str:
    """``name`` if it can name a tenant (1-63 lower-case letters, digits, ``_``, ``-``)."""
    if not _TENANT.fullmatch(name):
        raise InvalidRequestError(
            f"invalid tenant {name!r}: 1-63 lower-case letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; InvalidRequestError names an unknown one."""
    found = frozenset(scopes)
    unknown = sorted(found - set(SCOPES))
    if unknown:
        raise InvalidRequestError(
            f"unknown scope {', '.join(unknown)}: the scopes are {', '.join(SCOPES)}"
        )
    return found


@dataclass(frozen=True)
class Identity:
    """The caller: its tenant, the scopes its key grants, and the key's public id."""

    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        """ForbiddenError (403) unless the key grants ``scope``. Call it once the resource
        is known to be the tenant's own: another tenant's is a 404 whatever the scopes."""
        if scope not in self.scopes:
            raise ForbiddenError(f"this API key lacks the {scope!r} scope")

    def to_authorizer(self) -> dict[str, str]:
        """The context an authorizer returns (API Gateway passes strings on)."""
        return {
            "principalId": self.key_id or self.tenant,
            "tenant": self.tenant,
            "scopes": " ".join(s for s in SCOPES if s in self.scopes),
            "keyId": self.key_id or "",
        }

    @classmethod
    def from_authorizer(cls, context: Mapping[str, Any] | None) -> Identity | None:
        """The identity an authorizer put in ``requestContext.authorizer``; None if none."""
        if not context or not isinstance(context.get("tenant"), str) or not context["tenant"]:
            return None
        scopes = context.get("scopes")
        named = scopes.split() if isinstance(scopes, str) else []
        return cls(
            tenant=context["tenant"],
            scopes=frozenset(s for s in named if s in SCOPES),
            key_id=context.get("keyId") or None,
        )


# In-process callers (the command line, ``ragline eval``, tests) act as the operator: the
# default tenant with every scope. Requests through the API never do: the handler passes
# the identity its authorizer resolved.
OPERATOR = Identity(DEFAULT_TENANT, frozenset(SCOPES))
