"""The REST API (API Gateway v1) in front of the query function.

Access control is an API key per client with a usage plan (throttling and a daily
quota); `GET /health` and `GET /swagger` stay open for uptime checks and the browser.

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

from typing import TYPE_CHECKING

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge
from stacks.request_models import cdk_request_models

if TYPE_CHECKING:
    from stacks.settings import DeploymentSettings

STAGE = "v1"
# Routes that need no API key: uptime probes and the Swagger UI opened in a browser.
OPEN_ROUTES = {("GET", "/health"), ("GET", "/swagger")}


class Api(Construct):
    """REST API, stage with access logs and throttling, API key and usage plan."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploymentSettings,
        handler: lambda_.IFunction,
    ) -> None:
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
        self._routes(settings, apigw.LambdaIntegration(handler, allow_test_invoke=False))
        self.api_key = self.api.add_api_key("ApiKey", description="ragline default client key")
        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan",
            description="ragline clients: throttling and a daily quota per API key",
            throttle=apigw.ThrottleSettings(
                rate_limit=settings.api_throttle_rate, burst_limit=settings.api_throttle_burst
            ),
            quota=apigw.QuotaSettings(limit=settings.api_quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        self.usage_plan.add_api_key(self.api_key)
        self._acknowledge(settings)

    def _rest_api(self, settings: DeploymentSettings) -> apigw.RestApi:
        """The regional REST API and its stage: access logs, error logs, throttling."""
        return apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{settings.stack_name}-api",
            description="ragline: ask questions over your documents, with citations",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
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

    def _routes(self, settings: DeploymentSettings, integration: apigw.Integration) -> None:
        """Every route on the one integration; bodies and path parameters validated."""
        body_validator = self.api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True
        )
        params_validator = self.api.add_request_validator(
            "ParametersValidator", validate_request_body=False, validate_request_parameters=True
        )
        models = cdk_request_models(settings.max_question_chars)
        root = self.api.root
        for path, schema in models.items():
            model = self.api.add_model(
                schema.title or path.strip("/").capitalize(),
                content_type="application/json",
                schema=schema,
            )
            self._add(
                root.add_resource(path.strip("/")),
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
        self._add(root.add_resource("health"), "GET", "/health", integration)
        self._add(root.add_resource("swagger"), "GET", "/swagger", integration)

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
        return resource.add_method(
            method,
            integration,
            api_key_required=(method, path) not in OPEN_ROUTES,
            request_validator=request_validator,
            request_models=request_models,
            request_parameters=request_parameters,
        )

    def _acknowledge(self, settings: DeploymentSettings) -> None:
        acknowledge(
            self.api,
            "AwsSolutions-APIG4",
            "Clients authenticate with API keys bound to a usage plan (throttle + quota); "
            "/health and /swagger are deliberately open and serve no document data. IAM or "
            "Cognito authorizers are left to deployments that put ragline behind their own "
            "identity provider.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "No Cognito user pool: API keys identify the clients, see AwsSolutions-APIG4.",
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
