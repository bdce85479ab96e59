"""Synthesizing the app for tests: the configurations and what a synthesis yields.

The configurations are given as the CLI would (`-c key=value` strings) on top of
`cdk.json`'s context. Synthesis runs cdk-nag's AwsSolutions checks, so merely getting a
template means no unacknowledged error-level finding; `validation_report` lets tests
check the warnings too.

One synthesis also yields what the compliance checks compare: every cdk-nag finding as
if nothing were acknowledged, and every acknowledgment the stacks made. The stacks'
acknowledgments are held back while the app is built and applied by an aspect that runs
after every other one: it first runs the AwsSolutions rules over the finished tree, then
acknowledges, so the synthesis's own cdk-nag run sees exactly what a deploy would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import jsii
from aws_cdk import App, AspectPriority, Aspects, IAspect, Stack
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

import stacks.nag
from stacks import build_app

ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
ENDPOINT_MODEL = "Qwen/Qwen2.5-7B-Instruct"
INFERENCE_PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
REASONING_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CRITICAL_ENDPOINT = "critical-llm"
RERANK_MODEL = "amazon.rerank-v1:0"

IAM_PRINCIPALS = {
    "arn:aws:iam::123456789012:role/pipelines/etl": {"tenant": "team-a", "scopes": ["query"]},
    "arn:aws:iam::210987654321:user/auditor": {"tenant": "team-b", "scopes": ["read"]},
}
TENANT_COST_ALARMS = {"team-a": 25, "team-b": 2.5}
USER_POOL_ARN = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Example1"

# Name -> context overrides, as strings like `cdk deploy -c key=value` passes them.
CONFIGURATIONS: dict[str, dict[str, str]] = {
    # cdk.json as shipped: `database_access=auto` and models that need no VPC, so the
    # functions run outside it on the RDS Data API.
    "default": {},
    # The functions in the VPC, reaching AWS and hosted models through one NAT gateway.
    "nat": {"database_access": "vpc"},
    # `network=isolated` under the default `auto`, which keeps the functions in the VPC.
    "isolated": {
        "network": "isolated",
        "reasoning_llm": f"bedrock:{REASONING_MODEL}",
        "critical_llm": f"sagemaker:{CRITICAL_ENDPOINT}",
        "dashboard": "false",
    },
    "endpoint": {
        "network": "isolated",
        "sagemaker_model_id": ENDPOINT_MODEL,
        "sagemaker_quantize": "awq",
        "sagemaker_max_instance_count": "3",
        "llm_fallback": "extractive",
        "embeddings_instance_type": "ml.g5.2xlarge",
        "reconcile": "true",
        "reconcile_schedule": "rate(6 hours)",
    },
    # The GPU endpoint that scales to zero: an inference component on managed instances;
    # the functions in the VPC with a NAT gateway, where only the endpoint meter stays out.
    "scale_to_zero": {
        "database_access": "vpc",
        "sagemaker_model_id": ENDPOINT_MODEL,
        "sagemaker_scale_to_zero": "true",
        "sagemaker_max_instance_count": "2",
        "llm_fallback": "extractive",
        "endpoint_meter_minutes": "10",
    },
    # A model server that may live in the VPC (an OpenAI-compatible one on a private
    # address): `auto` keeps the functions in the VPC, beside it.
    "private_server": {
        "llm": "openai:Qwen/Qwen2.5-7B-Instruct",
        "openai_base_url": "http://10.40.1.10:8000/v1",
    },
    "openai": {
        "embeddings": "openai:text-embedding-3-small",
        "embedding_dimensions": "1536",
        "llm": "openai:gpt-4o-mini",
        "llm_fallback": f"bedrock:{INFERENCE_PROFILE},extractive",
        "reranker": f"bedrock:{RERANK_MODEL}",
        "waf": "true",
        "architecture": "arm64",
        "tracing": "false",
        "alarm_email": "ops@example.com",
        "hnsw_ef_search": "300",
        "hnsw_ef_construction": "200",
        "alarm_topic_kms": "true",
        # Two tenants with usage plans of their own; the authorizer's answers kept a minute.
        "tenant_usage_plans": '{"acme": {"rate": 5, "burst": 10, "quota": 1000}, '
        '"globex": {"rate": 50, "burst": 100, "quota": 100000}}',
        "authorizer_cache_seconds": "60",
        # The review console: a private bucket behind CloudFront (off by default).
        "console": "true",
        "review_approval_bar": "0.75",
    },
    # IAM (SigV4) callers, their principals mapped to tenants; two tenants' daily cost alarms.
    "iam": {
        "api_auth": "iam",
        "iam_principals": json.dumps(IAM_PRINCIPALS),
        "tenant_cost_alarms": json.dumps(TENANT_COST_ALARMS),
    },
    # A Cognito user pool the stack creates, the functions in the VPC.
    "cognito": {"api_auth": "cognito", "database_access": "vpc", "authorizer_cache_seconds": "0"},
    # An existing user pool whose tokens name the tenant in a claim of its own.
    "cognito_pool": {
        "api_auth": "cognito",
        "cognito_user_pool_arn": USER_POOL_ARN,
        "cognito_tenant_claim": "tenant_id",
    },
    # The functions outside the VPC, on the RDS Data API; with the reconcile function, so
    # every function that touches the database is there, and without tracing, so no
    # role is granted anything on "*".
    "data-api": {
        "database_access": "data-api",
        "reconcile": "true",
        "tracing": "false",
    },
}


# (construct path, rule) of a cdk-nag finding; (construct path, rule, reason) of an acknowledgment
Finding = tuple[str, str]
Acknowledged = tuple[str, str, str]


@dataclass(frozen=True)
class Synthesized:
    """One synthesized configuration."""

    stack: Stack
    template: Template
    template_path: Path
    validation_report: dict[str, Any]
    # every AwsSolutions finding with no acknowledgment applied, and the acknowledgments
    findings: tuple[Finding, ...]
    acknowledgments: tuple[Acknowledged, ...]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template.to_json()["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, for every resource of ``resource_type``."""
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def logical_id(self, path: str) -> str:
        """The logical id of the CloudFormation resource at construct path ``path``."""
        node = self.stack.node.find_child(path.split("/")[0])
        for part in path.split("/")[1:]:
            node = node.node.find_child(part)
        default = node.node.default_child or node
        resolved: str = self.stack.resolve(default.logical_id)  # type: ignore[attr-defined]
        return resolved


def context_for(overrides: Mapping[str, str]) -> dict[str, Any]:
    """cdk.json's context with ``overrides`` and bundling off (fast, no pip)."""
    return {**CDK_CONTEXT, "bundling": "false", **overrides}


def synthesize(overrides: Mapping[str, str], outdir: Path) -> Synthesized:
    """Build and synthesize the app (cdk-nag included) into ``outdir``."""
    with held_back_acknowledgments() as held:
        app: App = build_app(context_for(overrides), outdir=str(outdir))
    last = _CheckThenAcknowledge(app, held)
    # Runs after every aspect of the stacks (tags, say), on the tree cdk-nag will see.
    Aspects.of(app).add(last, priority=AspectPriority.READONLY + 1)
    stack = next(child for child in app.node.children if isinstance(child, Stack))
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    return Synthesized(
        stack=stack,
        template=Template.from_json(artifact.template),
        template_path=Path(artifact.template_full_path),
        validation_report=json.loads((outdir / "validation-report.json").read_text()),
        findings=tuple(last.findings or ()),
        acknowledgments=tuple((scope.node.path, rule, reason) for scope, rule, reason in held),
    )


@contextmanager
def held_back_acknowledgments() -> Iterator[list[tuple[IConstruct, str, str]]]:
    """Record ``acknowledge`` calls in every stacks module instead of applying them."""
    held: list[tuple[IConstruct, str, str]] = []

    def hold(scope: IConstruct, rule: str, reason: str) -> None:
        held.append((scope, rule, reason))

    original = stacks.nag.acknowledge
    patched = [
        module
        for name, module in sys.modules.items()
        if name.startswith("stacks.") and getattr(module, "acknowledge", None) is original
    ]
    for module in patched:
        module.acknowledge = hold  # type: ignore[attr-defined]
    try:
        yield held
    finally:
        for module in patched:
            module.acknowledge = original  # type: ignore[attr-defined]


@jsii.implements(IAspect)
class _CheckThenAcknowledge:
    """On its first visit: run the AwsSolutions rules, then apply the held acknowledgments."""

    def __init__(self, app: App, held: list[tuple[IConstruct, str, str]]) -> None:
        self.app = app
        self.held = held
        self.findings: list[Finding] | None = None

    def visit(self, node: IConstruct) -> None:
        if self.findings is not None:
            return
        report = AwsSolutionsChecks().validate_scope(self.app)
        self.findings = [
            (resource.construct_path, violation.rule_name)
            for violation in report.violations
            for resource in violation.violating_resources
            if resource.construct_path is not None
        ]
        for scope, rule, reason in self.held:
            stacks.nag.acknowledge(scope, rule, reason)
