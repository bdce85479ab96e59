"""Who is calling: a tenant and the scopes its API key grants.

A leaf. The key lookup that produces an :class:`Identity` is the ``tenancy`` use case;
on AWS an authorizer passes the identity to the query function in
``requestContext.authorizer`` (string values only, as API Gateway allows), and locally
the gateway of ``ragline dev`` plays that authorizer, so the handler reads it the same
way in both places (:meth:`Identity.from_authorizer`).

A deployed API may identify its callers another way instead (``api_auth`` in the CDK
context): IAM (SigV4), whose signed principal is mapped to a tenant and scopes by
configuration (:meth:`Authentication.from_iam`), or a Cognito user pool, whose token's
claims name them (:meth:`Authentication.from_claims`). :class:`Authentication` reads
the request context of the one way configured and no other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ragline.errors import ForbiddenError, InvalidRequestError, UnauthorizedError

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


# How the API identifies its callers: the key authorizer (ragline's API keys, the default),
# IAM (SigV4-signed requests), or a Cognito user pool's tokens.
AUTH_MODES = ("key", "iam", "cognito")
DEFAULT_TENANT_CLAIM = "custom:tenant"
# A Cognito token grants a scope through its ``scope`` claim (a resource server named
# ``ragline``: ``ragline/query``) or a group (``ragline-query``). Other values are other
# applications' and grant nothing here.
SCOPE_CLAIM_PREFIX = "ragline/"
GROUP_PREFIX = "ragline-"
GROUPS_CLAIM = "cognito:groups"
_ASSUMED_ROLE = re.compile(
    r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$"
)
_ROLE = re.compile(
    r"^arn:(?P<partition>[^:]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<role>[^/]+)$"
)


def principal_key(arn: str) -> str:
    """The role an IAM principal acts as, in the form roles are mapped under: a role's
    ARN without its path (a role's name is unique in its account), an assumed-role
    session's ARN as its role's; any other ARN (a user's) as it is."""
    found = _ROLE.fullmatch(arn) or _ASSUMED_ROLE.fullmatch(arn)
    if found is None:
        return arn
    return f"arn:{found['partition']}:iam::{found['account']}:role/{found['role']}"


def _claim_words(value: Any) -> list[str]:
    """A claim's values: API Gateway passes a list claim as a string (``[a b]``, or
    comma-separated); a list is taken as it is."""
    if isinstance(value, list):
        return [str(item) for item in value]
    if not isinstance(value, str):
        return []
    return value.strip("[]").replace(",", " ").split()


@dataclass(frozen=True)
class Authentication:
    """How the API's callers are identified (``mode``, one of :data:`AUTH_MODES`), and
    what that needs: ``principals`` (IAM principal, as :func:`principal_key` forms it ->
    its identity) and ``tenant_claim`` (the Cognito claim naming the tenant)."""

    mode: str = "key"
    principals: tuple[tuple[str, Identity], ...] = ()
    tenant_claim: str = DEFAULT_TENANT_CLAIM

    def __post_init__(self) -> None:
        if self.mode not in AUTH_MODES:
            raise ValueError(f"unknown authentication {self.mode!r}: one of {AUTH_MODES}")

    @classmethod
    def iam(cls, grants: Mapping[str, tuple[str, Iterable[str]]]) -> Authentication:
        """IAM mode from ``{principal ARN: (tenant, scopes)}``; InvalidRequestError names
        a bad tenant or scope."""
        principals = []
        for arn, (tenant, scopes) in grants.items():
            if not arn.startswith("arn:"):
                raise InvalidRequestError(f"{arn!r} is not an IAM principal ARN")
            identity = Identity(check_tenant(tenant), check_scopes(scopes))
            if not identity.scopes:
                raise InvalidRequestError(f"the IAM principal {arn} is granted no scope")
            # A role is mapped under its pathless form; any other ARN (a user, one
            # assumed-role session) as it is, so a session's grant covers no other session.
            principals.append((principal_key(arn) if _ROLE.fullmatch(arn) else arn, identity))
        return cls("iam", tuple(principals))

    def identify(self, request_context: Mapping[str, Any] | None) -> Identity:
        """The caller's identity from a request's ``requestContext``, read the way this
        API identifies callers: UnauthorizedError (401) when the request carries no
        credential the authorizer accepted, ForbiddenError (403) when it carries one that
        names no tenant of ours. Never a default tenant."""
        context = request_context or {}
        authorizer = context.get("authorizer")
        authorizer = authorizer if isinstance(authorizer, Mapping) else None
        if self.mode == "iam":
            caller = context.get("identity")
            return self.from_iam(caller if isinstance(caller, Mapping) else None)
        if self.mode == "cognito":
            claims = authorizer.get("claims") if authorizer else None
            return self.from_claims(claims if isinstance(claims, Mapping) else None)
        identity = Identity.from_authorizer(authorizer)
        if identity is None:
            raise UnauthorizedError("missing API key: send it in the x-api-key header")
        return identity

    def from_iam(self, caller: Mapping[str, Any] | None) -> Identity:
        """The identity of a SigV4-signed request's principal (``requestContext.identity``
        ``userArn``): its own mapping, else its role's (an assumed-role session)."""
        arn = caller.get("userArn") if caller else None
        if not isinstance(arn, str) or not arn:
            raise UnauthorizedError("no IAM principal: sign the request with SigV4")
        mapped = dict(self.principals)
        identity = mapped.get(arn) or mapped.get(principal_key(arn))
        if identity is None:
            raise ForbiddenError(
                f"the IAM principal {arn} is mapped to no tenant (the stack's iam_principals)"
            )
        return identity

    def from_claims(self, claims: Mapping[str, Any] | None) -> Identity:
        """The identity of a Cognito token's claims (``requestContext.authorizer.claims``,
        checked by API Gateway against the user pool): the tenant from
        ``tenant_claim``, the scopes from ``scope`` (``ragline/<scope>``) and the groups
        (``ragline-<scope>``)."""
        if not claims:
            raise UnauthorizedError("no token: send a Cognito token in the Authorization header")
        tenant = claims.get(self.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise ForbiddenError(f"the token has no {self.tenant_claim!r} claim naming a tenant")
        if not _TENANT.fullmatch(tenant):
            raise ForbiddenError(f"the token's {self.tenant_claim!r} claim is no tenant name")
        granted = {
            word.removeprefix(SCOPE_CLAIM_PREFIX)
            for word in _claim_words(claims.get("scope"))
            if word.startswith(SCOPE_CLAIM_PREFIX)
        } | {
            word.removeprefix(GROUP_PREFIX)
            for word in _claim_words(claims.get(GROUPS_CLAIM))
            if word.startswith(GROUP_PREFIX)
        }
        return Identity(tenant, frozenset(granted & set(SCOPES)))


# In-process callers (the command line, ``ragline eval``, tests) act as the operator: the
# default tenant with every scope. Requests through the API never do: the handler passes
# the identity its authorizer resolved.
OPERATOR = Identity(DEFAULT_TENANT, frozenset(SCOPES))
