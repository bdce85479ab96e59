"""How the API identifies its callers (``api_auth``): the method authorizer of its routes.

- ``key`` (the default): the key authorizer, a Lambda TOKEN authorizer on ``x-api-key``
  (``functions/authorizer``; built in stacks/api.py beside its usage plans).
- ``iam``: API Gateway checks the SigV4 signature (``AWS_IAM``); the query function maps
  the signing principal to a tenant and scopes (``iam_principals``, its
  ``RAGLINE_IAM_PRINCIPALS``). A caller also needs ``execute-api:Invoke`` on the API in
  its own IAM policy.
- ``cognito``: a Cognito user pool authorizer, on an existing pool
  (``cognito_user_pool_arn``) or one the stack creates; the query function reads the
  tenant from the token's ``cognito_tenant_claim`` and the scopes from its ``scope`` claim
  and groups (``RAGLINE_TENANT_CLAIM``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from stacks.nag import acknowledge

if TYPE_CHECKING:
    from stacks.settings import DeploymentSettings

AUTHORIZATION_TYPES = {
    "key": apigw.AuthorizationType.CUSTOM,
    "iam": apigw.AuthorizationType.IAM,
    "cognito": apigw.AuthorizationType.COGNITO,
}
CUSTOM_ATTRIBUTE = "custom:"


def query_function_environment(settings: DeploymentSettings) -> dict[str, str]:
    """What the query function needs to read callers the way the API identifies them
    (``ragline.config``: RAGLINE_API_AUTH and the mapping or claim of its mode)."""
    environment: dict[str, str] = {"RAGLINE_API_AUTH": settings.api_auth}
    if settings.api_auth == "iam":
        environment["RAGLINE_IAM_PRINCIPALS"] = settings.iam_principals_variable
    if settings.api_auth == "cognito":
        environment["RAGLINE_TENANT_CLAIM"] = settings.cognito_tenant_claim
    return environment


class UserPoolAuthorizer(Construct):
    """A Cognito user pool authorizer, on the configured pool or a new one.

    A new pool admits the users an administrator creates (no self sign-up), with a strong
    password policy and TOTP multi-factor authentication required, and one app client
    (SRP sign-in, no secret) that cannot write the tenant attribute: a user cannot move
    itself into another tenant, only an administrator (``admin-update-user-attributes``).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: DeploymentSettings
    ) -> None:
        super().__init__(scope, construct_id)
        self.client: cognito.UserPoolClient | None = None
        if settings.cognito_user_pool_arn:
            self.user_pool = cognito.UserPool.from_user_pool_arn(
                self, "UserPool", settings.cognito_user_pool_arn
            )
        else:
            self.user_pool = self._user_pool(settings)
        self.authorizer = apigw.CognitoUserPoolsAuthorizer(
            self,
            "Authorizer",
            cognito_user_pools=[self.user_pool],
            results_cache_ttl=Duration.seconds(settings.authorizer_cache_seconds),
        )

    def _user_pool(self, settings: DeploymentSettings) -> cognito.UserPool:
        attribute = settings.cognito_tenant_claim.removeprefix(CUSTOM_ATTRIBUTE)
        pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=f"{settings.stack_name}-users",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            custom_attributes={attribute: cognito.StringAttribute(min_len=1, max_len=63)},
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(sms=False, otp=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Every standard attribute the client may write, and no custom one: the tenant
        # attribute stays an administrator's to set.
        writable = cognito.ClientAttributes().with_standard_attributes(
            email=True, fullname=True, preferred_username=True
        )
        self.client = pool.add_client(
            "Client",
            auth_flows=cognito.AuthFlow(user_srp=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
            write_attributes=writable,
        )
        acknowledge(
            pool,
            "AwsSolutions-COG8",
            "The Plus feature plan (threat protection) is billed per monthly active user; "
            "users are created by an administrator only and must pass TOTP MFA, so the "
            "default plan is kept and the idle stack costs nothing for its pool.",
        )
        return pool
