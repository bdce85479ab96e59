"""Synthesizing the app for tests: the configurations and what a synthesis yields.

The configurations are given as the CLI would (`-c key=value` strings) on top of
`cdk.json`'s context. Synthesis runs cdk-nag's AwsSolutions checks, so merely getting a
template means no unacknowledged error-level finding; `validation_report` lets tests
check the warnings too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from stacks import build_app

ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
ENDPOINT_MODEL = "Qwen/Qwen2.5-7B-Instruct"
INFERENCE_PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
REASONING_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CRITICAL_ENDPOINT = "critical-llm"

# Name -> context overrides, as strings like `cdk deploy -c key=value` passes them.
CONFIGURATIONS: dict[str, dict[str, str]] = {
    "nat": {},
    "isolated": {
        "network": "isolated",
        "reasoning_llm": f"bedrock:{REASONING_MODEL}",
        "critical_llm": f"sagemaker:{CRITICAL_ENDPOINT}",
    },
    "endpoint": {
        "network": "isolated",
        "sagemaker_model_id": ENDPOINT_MODEL,
        "sagemaker_quantize": "awq",
        "sagemaker_max_instance_count": "3",
        "llm_fallback": "extractive",
    },
    "openai": {
        "embeddings": "openai:text-embedding-3-small",
        "embedding_dimensions": "1536",
        "llm": "openai:gpt-4o-mini",
        "llm_fallback": f"bedrock:{INFERENCE_PROFILE},extractive",
        "waf": "true",
        "architecture": "arm64",
        "tracing": "false",
        "alarm_email": "ops@example.com",
    },
}


@dataclass(frozen=True)
class Synthesized:
    """One synthesized configuration."""

    stack: Stack
    template: Template
    template_path: Path
    validation_report: dict[str, Any]

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
    app: App = build_app(context_for(overrides), outdir=str(outdir))
    stack = next(child for child in app.node.children if isinstance(child, Stack))
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    return Synthesized(
        stack=stack,
        template=Template.from_json(artifact.template),
        template_path=Path(artifact.template_full_path),
        validation_report=json.loads((outdir / "validation-report.json").read_text()),
    )
