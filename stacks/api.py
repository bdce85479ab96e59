"""The REST API (API Gateway v1) in front of the query function.

Access control: a Lambda authorizer (``functions/authorizer``, TOKEN type on the
``x-api-key`` header) turns a ragline API key into its tenant and scopes on every route
but `GET /health` and `GET /swagger` (uptime checks and the browser; neither serves
document data). API Gateway caches its answer per key for ``authorizer_cache_seconds``
(300 by default), on every route at once: a warm request makes no authorizer call and no
database round trip, and a revoked or expired key is refused at the latest that long
after. Malformed keys fail the authorizer's validation expression and never reach it.
``api_auth`` puts IAM (SigV4) or a Cognito user pool authorizer on those routes instead
(stacks/auth.py); usage plans then do not apply (the stage's throttling does), as only
the key authorizer names a caller's plan.
With the key authorizer, the OpenAI-compatible routes (`POST /v1/chat/completions`,
`GET /v1/models`) take the same keys as OpenAI clients send them, `Authorization: Bearer
<key>`, through a second TOKEN authorizer on that header and the same function (a TOKEN
authorizer reads one header; `ragline dev`'s gateway accepts either header on every
route).

Usage plans (throttling and a daily quota) stay API Gateway's, fed by the authorizer:
the API reads its usage identifier from the authorizer's answer (``apiKeySourceType``
``AUTHORIZER``), which names the API Gateway key of the caller's tenant's plan
(``tenant_usage_plans``) or of the shared one. Those keys are identifiers, not
credentials: the API never reads one from a request.

Request size: API Gateway REST has no body-size setting. Three layers bound it:
1. request validators with JSON schema models (free), generated from the handler's own
   request schemas (`stacks/request_models.py`): no unknown field, strings, lists and
   filters bounded as the handler bounds them;
2. the query handler, which rejects bodies over `RAGLINE_MAX_BODY_BYTES` exactly;
3. optionally (`-c waf=true`, about $7/month when idle) a WAF web ACL that blocks bodies
   over the same byte limit before they reach Lambda, plus AWS's common rule set
   (`stacks/waf.py`, attached by the stack).
The validators are on by default because they cost nothing when idle; the WAF is the
choice for public deployments that also want edge filtering.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.auth import AUTHORIZATION_TYPES, UserPoolAuthorizer, add_token_refusal
from stacks.nag import acknowledge
from stacks.request_models import cdk_request_models
from stacks.reviews import add_review_routes

if TYPE_CHECKING:
    from stacks.settings import DeploymentSettings

STAGE = "v1"
# The streamed answers' route (its own function and integration, see Api._streamed_routes).
STREAM_PATH = "/query/stream"
# The OpenAI-compatible chat route: on the streaming function too, since API Gateway routes
# by path, not by the body's ``stream``; a ``stream: false`` request gets its one JSON body
# through the same integration (the runtime loop posts any proxy response in streaming mode).
CHAT_PATH = "/v1/chat/completions"
# Routes that need no API key: uptime probes and the Swagger UI opened in a browser.
OPEN_ROUTES = {("GET", "/health"), ("GET", "/swagger")}
KEY_HEADER = "x-api-key"
# ragline's key format (ragline.tenancy): API Gateway refuses anything else with a 401
# before the authorizer runs.
KEY_PATTERN = r"^rgl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$"
# The OpenAI-compatible routes (ragline.answer.chat_completions) read the same keys from
# the header OpenAI clients send, ``Authorization: Bearer <key>``: a TOKEN authorizer has
# one identity source, so these routes have one of their own, on the same function.
OPENAI_PREFIX = "/v1/"
BEARER_HEADER = "Authorization"
BEARER_PATTERN = r"^Bearer rgl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$"
# The usage identifier of tenants without a plan of their own (ragline.config).
SHARED_PLAN = "*"
# What guards the data routes, by api_auth (stacks/auth.py), in the acknowledgments' words.
GUARDS = {
    "key": "Lambda authorizer of ragline's API keys",
    "iam": "IAM (SigV4) authorization, its principals mapped to tenants by iam_principals",
    "cognito": "Cognito user pool authorizer, its token's claim naming the tenant",
}


def usage_identifier(stack_name: str, tenant: str) -> str:
    """The value of the API Gateway key of ``tenant``'s usage plan (``*``: the shared
    one): unique per stack, 20 to 128 characters as API Gateway requires, the same on
    every synthesis."""
    digest = hashlib.sha256(f"{stack_name}/{tenant}".encode()).hexdigest()[:24]
    name = "shared" if tenant == SHARED_PLAN else tenant
    return f"ragline-usage-{name}-{digest}"


def usage_plan_keys(settings: DeploymentSettings) -> dict[str, str]:
    """Tenant (``*``: every other one) -> the API Gateway key of its usage plan, as the
    authorizer reads them (``RAGLINE_USAGE_PLAN_KEYS``)."""
    tenants = [SHARED_PLAN, *sorted(settings.tenant_usage_plans)]
    return {tenant: usage_identifier(settings.stack_name, tenant) for tenant in tenants}


def usage_plan_keys_variable(settings: DeploymentSettings) -> str:
    """``usage_plan_keys`` as the authorizer's ``RAGLINE_USAGE_PLAN_KEYS``."""
    return ",".join(f"{tenant}={key}" for tenant, key in usage_plan_keys(settings).items())


class Api(Construct):
    """REST API, stage with access logs and throttling, the key authorizer, usage plans."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploymentSettings,
        handler: lambda_.IFunction,
        authorizer: lambda_.IFunction | None,
        stream_handler: lambda_.IFunction | None = None,
    ) -> None:
        """``authorizer``: the key authorizer's function (``api_auth=key``; None for
        ``iam`` and ``cognito``, whose authorizers stacks/auth.py makes).
        ``stream_handler``: the function behind ``POST /query/stream`` and ``POST
        /v1/chat/completions`` (none: no /query/stream, and the chat route buffered on
        ``handler``)."""
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = self._rest_api(settings)
        # Created here, before the stage, so the execution log has a retention.
        execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{STAGE}",
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api.deployment_stage.node.add_dependency(execution_logs)
        self.api.add_gateway_response(
            "InvalidBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            status_code="400",
            templates={
                # The handler's error shape, so clients parse one format.
                "application/json": '{"message": "invalid request body: '
                '$util.escapeJavaScript($context.error.validationErrorString)", '
                '"statusCode": 400}'
            },
        )
        self.keys = settings.api_auth == "key"  # ragline's keys: usage plans apply
        self.authorization_type = AUTHORIZATION_TYPES[settings.api_auth]
        self.authorizer: apigw.IAuthorizer | None = None
        # The /v1 routes' authorizer: the same keys as OpenAI clients send them (key mode).
        self.bearer_authorizer: apigw.IAuthorizer | None = None
        self.user_pool: UserPoolAuthorizer | None = None
        if authorizer is not None:
            self.authorizer = apigw.TokenAuthorizer(
                self,
                "KeyAuthorizer",
                handler=authorizer,
                identity_source=f"method.request.header.{KEY_HEADER}",
                validation_regex=KEY_PATTERN,
                results_cache_ttl=Duration.seconds(settings.authorizer_cache_seconds),
            )
            self.bearer_authorizer = apigw.TokenAuthorizer(
                self,
                "BearerAuthorizer",
                handler=authorizer,
                identity_source=f"method.request.header.{BEARER_HEADER}",
                validation_regex=BEARER_PATTERN,
                results_cache_ttl=Duration.seconds(settings.authorizer_cache_seconds),
            )
            self._refusals()
        elif settings.api_auth == "cognito":
            self.user_pool = UserPoolAuthorizer(self, "UserPool", settings=settings)
            self.authorizer = self.user_pool.authorizer
            add_token_refusal(self.api)
        streamed = stream_handler is not None
        self._routes(
            settings, apigw.LambdaIntegration(handler, allow_test_invoke=False), streamed=streamed
        )
        if stream_handler is not None:
            self._streamed_routes(settings, stream_handler)
        if self.keys:
            self._usage_plans(settings)
        self._acknowledge(settings)

    def _refusals(self) -> None:
        """A refused key answers 401 in the query handler's error shape: a missing or
        malformed one from API Gateway, an unknown, revoked or expired one with the reason
        the authorizer put in its Deny."""
        self.api.add_gateway_response(
            "MissingKey",
            type=apigw.ResponseType.UNAUTHORIZED,
            status_code="401",
            templates={
                "application/json": '{"message": "missing or malformed API key: send a ragline '
                f"key in the {KEY_HEADER} header (on /v1 routes, as {BEARER_HEADER}: Bearer "
                '<key>)", "statusCode": 401}'
            },
        )
        self.api.add_gateway_response(
            "RefusedKey",
            type=apigw.ResponseType.ACCESS_DENIED,
            status_code="401",
            templates={
                "application/json": '{"message": '
                '"$util.escapeJavaScript($context.authorizer.message)", "statusCode": 401}'
            },
        )

    def _usage_plans(self, settings: DeploymentSettings) -> None:
        """The shared usage plan and one per tenant in ``tenant_usage_plans``, each with the
        API Gateway key the authorizer names (:func:`usage_plan_keys`)."""
        plans = {
            SHARED_PLAN: (
                settings.api_throttle_rate,
                settings.api_throttle_burst,
                settings.api_quota_per_day,
            ),
            **{
                tenant: (plan.rate, plan.burst, plan.quota)
                for tenant, plan in sorted(settings.tenant_usage_plans.items())
            },
        }
        stage = apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)
        values = usage_plan_keys(settings)
        for tenant, (rate, burst, quota) in plans.items():
            shared = tenant == SHARED_PLAN
            key = self.api.add_api_key(
                "ApiKey" if shared else f"TenantKey-{tenant}",
                value=values[tenant],
                description="usage identifier of "
                + ("tenants without a plan of their own" if shared else f"tenant {tenant}")
                + " (named by the authorizer; not a credential)",
            )
            plan = self.api.add_usage_plan(
                "UsagePlan" if shared else f"TenantPlan-{tenant}",
                description="ragline: throttling and a daily quota for "
                + ("every tenant without a plan of its own" if shared else f"tenant {tenant}"),
                throttle=apigw.ThrottleSettings(rate_limit=rate, burst_limit=burst),
                quota=apigw.QuotaSettings(limit=quota, period=apigw.Period.DAY),
                api_stages=[stage],
            )
            plan.add_api_key(key)
            if shared:
                self.api_key, self.usage_plan = key, plan

    def _rest_api(self, settings: DeploymentSettings) -> apigw.RestApi:
        """The regional REST API and its stage: access logs, error logs, throttling."""
        return apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{settings.stack_name}-api",
            description="ragline: ask questions over your documents, with citations",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            # API Gateway writes any log (access or execution) through one role per account
            # and region; it is kept when the stack goes, since other APIs may rely on it.
            cloud_watch_role=settings.api_account_cloudwatch_role,
            cloud_watch_role_removal_policy=(
                RemovalPolicy.RETAIN if settings.api_account_cloudwatch_role else None
            ),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=_access_log_format(),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                throttling_rate_limit=settings.api_throttle_rate,
                throttling_burst_limit=settings.api_throttle_burst,
                tracing_enabled=settings.tracing,
            ),
        )

    def _routes(
        self, settings: DeploymentSettings, integration: apigw.Integration, *, streamed: bool
    ) -> None:
        """Every buffered route on the one integration (``streamed``: all but the chat
        route, which :meth:`_streamed_routes` adds); bodies and path parameters validated."""
        body_validator = self.api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True
        )
        params_validator = self.api.add_request_validator(
            "ParametersValidator", validate_request_body=False, validate_request_parameters=True
        )
        models = cdk_request_models(settings.max_question_chars)
        root = self.api.root
        self._body_validator = body_validator
        self._models: dict[str, apigw.Model] = {}
        for path, schema in models.items():
            model = self.api.add_model(
                schema.title or path.strip("/").capitalize(),
                content_type="application/json",
                schema=schema,
            )
            self._models[path] = model  # /query/stream takes /query's body
            if streamed and path == CHAT_PATH:
                continue
            self._add(
                root.resource_for_path(path),
                "POST",
                path,
                integration,
                request_validator=body_validator,
                request_models={"application/json": model},
            )
        documents = root.add_resource("documents")
        self._add(documents, "GET", "/documents", integration)
        document = documents.add_resource("{id}")
        for method in ("GET", "DELETE"):
            self._add(
                document,
                method,
                "/documents/{id}",
                integration,
                request_validator=params_validator,
                request_parameters={"method.request.path.id": True},
            )
        self._add(root.resource_for_path("/v1/models"), "GET", "/v1/models", integration)
        self._add(root.add_resource("health"), "GET", "/health", integration)
        self._add(root.add_resource("swagger"), "GET", "/swagger", integration)
        add_review_routes(self, integration)

    def _streamed_routes(self, settings: DeploymentSettings, function: lambda_.IFunction) -> None:
        """Through one ``STREAM`` integration (:func:`streamed_integration`), bodies
        validated as on the buffered routes: ``POST /query/stream`` (the /query body,
        answered as server-sent events) and ``POST /v1/chat/completions`` (chunks with
        ``stream: true``, one ``chat.completion`` body without; its Bearer authorizer
        as on ``GET /v1/models``)."""
        query = self.api.root.get_resource("query")
        assert query is not None, "add the /query route first"
        integration = streamed_integration(function, settings.stream_timeout_seconds)
        for resource, path, model in (
            (query.add_resource("stream"), STREAM_PATH, self._models["/query"]),
            (self.api.root.resource_for_path(CHAT_PATH), CHAT_PATH, self._models[CHAT_PATH]),
        ):
            self._add(
                resource,
                "POST",
                path,
                integration,
                request_validator=self._body_validator,
                request_models={"application/json": model},
            )

    def _add(
        self,
        resource: apigw.IResource,
        method: str,
        path: str,
        integration: apigw.Integration,
        *,
        request_validator: apigw.IRequestValidator | None = None,
        request_models: dict[str, apigw.IModel] | None = None,
        request_parameters: dict[str, bool] | None = None,
    ) -> apigw.Method:
        secured = (method, path) not in OPEN_ROUTES
        authorizer = (
            self.bearer_authorizer
            if self.bearer_authorizer is not None and path.startswith(OPENAI_PREFIX)
            else self.authorizer
        )
        return resource.add_method(
            method,
            integration,
            # A usage plan applies only where a key is required: the key authorizer names it.
            api_key_required=secured and self.keys,
            authorizer=authorizer if secured else None,
            authorization_type=(
                self.authorization_type if secured else apigw.AuthorizationType.NONE
            ),
            request_validator=request_validator,
            request_models=request_models,
            request_parameters=request_parameters,
        )

    def _acknowledge(self, settings: DeploymentSettings) -> None:
        acknowledge(
            self.api,
            "AwsSolutions-APIG4",
            f"Every data route has the {GUARDS[settings.api_auth]} (tenant and scopes); only "
            "/health and /swagger are open, deliberately: uptime checks and the browser, and "
            "neither serves document data.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "Only /health and /swagger are without the Cognito user pool authorizer (see "
            "AwsSolutions-APIG4)."
            if settings.api_auth == "cognito"
            else f"No Cognito user pool: the {GUARDS[settings.api_auth]} identifies the "
            "tenants (api_auth; see AwsSolutions-APIG4).",
        )
        if settings.api_account_cloudwatch_role:
            acknowledge(
                self.api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role: the AWS managed policy is the one "
                "API Gateway documents for it, and the service alone can assume the role.",
            )
        if not settings.waf:
            acknowledge(
                self.api.deployment_stage,
                "AwsSolutions-APIG3",
                "WAF is optional (-c waf=true, about $7/month idle) to keep the idle cost near "
                "zero; request validators and the handler's byte limit bound request bodies.",
            )


def streamed_integration(function: lambda_.IFunction, timeout_seconds: int) -> apigw.Integration:
    """A Lambda proxy integration in ``STREAM`` response transfer mode: API Gateway invokes
    the function with ``InvokeWithResponseStream`` (the ``2021-11-15/.../
    response-streaming-invocations`` URI) and passes its body on as it comes, for up to
    ``timeout_seconds`` (a buffered integration stops at 29 s)."""
    return apigw.LambdaIntegration(
        function,
        allow_test_invoke=False,
        response_transfer_mode=apigw.ResponseTransferMode.STREAM,
        timeout=Duration.seconds(timeout_seconds),
    )


def _access_log_format() -> apigw.AccessLogFormat:
    return apigw.AccessLogFormat.custom(
        '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
        '"apiKeyId":"$context.identity.apiKeyId","time":"$context.requestTime",'
        '"method":"$context.httpMethod","path":"$context.resourcePath",'
        '"status":"$context.status","latencyMs":"$context.responseLatency",'
        '"integrationLatencyMs":"$context.integrationLatency",'
        '"responseLength":"$context.responseLength",'
        '"error":"$context.error.message",'
        '"validationError":"$context.error.validationErrorString",'
        '"integrationError":"$context.integrationErrorMessage"}'
    )
