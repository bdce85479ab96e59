"""What the stack hands every construct that runs a ragline function, built once.

The settings, the network the functions may join, the ragline layer, the variables every
function reads, the OpenAI key's secret and the ARNs of the endpoints this stack creates:
each construct takes one ``ConstructInputs`` and, as arguments of its own, only what it
alone depends on (the database, the model endpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_secretsmanager as secretsmanager

    from stacks.network import Network
    from stacks.settings import DeploymentSettings


@dataclass(frozen=True)
class ConstructInputs:
    """The shared inputs of the stack's function-running constructs (read-only)."""

    settings: DeploymentSettings
    network: Network
    layer: lambda_.ILayerVersion
    # The functions' environment variables (``ragline.config``), in the order given.
    environment: Mapping[str, str]
    # The OpenAI API key's secret, when a model or reranker is an OpenAI one.
    openai_secret: secretsmanager.ISecret | None = None
    # SageMaker endpoint name -> ARN, for the endpoints this stack creates.
    endpoint_arns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen all the way down: no construct can change what another one is given.
        object.__setattr__(self, "environment", MappingProxyType(dict(self.environment)))
        object.__setattr__(self, "endpoint_arns", MappingProxyType(dict(self.endpoint_arns)))

    def with_environment(self, extra: Mapping[str, str]) -> ConstructInputs:
        """These inputs with ``extra`` added to (or overriding) the environment."""
        return replace(self, environment={**self.environment, **extra})
