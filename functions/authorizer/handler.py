"""Authorizer Lambda: API Gateway's TOKEN authorizer on the ``x-api-key`` header.

The key becomes its tenant and scopes through the tenancy use case (the same
``authenticate`` the local gateway of ``ragline dev`` calls); the query function reads
them from ``requestContext.authorizer``. Scopes are checked there, by the use cases.

- A live key: Allow on every method of the stage (API Gateway caches the answer per key
  and reuses it for any route, so a policy naming one method would deny the others),
  with the context ``tenant``, ``scopes``, ``keyId`` and, when the stack has usage
  plans, ``usageIdentifierKey``: the API Gateway key of the tenant's plan.
- A missing, unknown, revoked or expired key: Deny, with the reason in the context;
  the API's ACCESS_DENIED response turns it into the handler's 401. A bad key is an
  answer, not an error: the function's Errors metric counts real failures only (the
  database unreachable), which API Gateway answers with a 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from ragline.config import get_settings
from ragline.errors import UnauthorizedError
from ragline.tenancy import get_keys

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

settings = get_settings()
logger = Logger(service=f"{settings.service_name}-authorizer")
# Made once per container: the store's connection (or Data API client) serves every
# invocation after the first.
keys = get_keys(settings)


def stage_methods(method_arn: str) -> str:
    """``arn:...:<api>/<stage>/*/*`` from ``arn:...:<api>/<stage>/<METHOD>/<path>``."""
    api, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0]
    if not api.startswith("arn:") or not stage:
        raise ValueError(f"not an API Gateway method ARN: {method_arn!r}")
    return f"{api}/{stage}/*/*"


def policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    """The answer API Gateway expects from a Lambda authorizer."""
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        "context": context,
    }


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    resource = stage_methods(event["methodArn"])
    try:
        identity = keys.authenticate(event.get("authorizationToken"))
    except UnauthorizedError as exc:
        logger.info("API key refused", extra={"reason": str(exc)})
        return policy("anonymous", "Deny", resource, {"message": str(exc)})
    passed = identity.to_authorizer()
    answer = policy(passed.pop("principalId"), "Allow", resource, passed)
    usage_key = settings.usage_plan_key(identity.tenant)
    if usage_key is not None:
        answer["usageIdentifierKey"] = usage_key
    return answer
