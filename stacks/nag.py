"""Acknowledging cdk-nag findings: one place for the call, every reason at its cause."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import Construct, IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``AwsSolutions-IAM5[Resource::*]``) on ``scope``.

    The reason is recorded in the validation report; it must say why the finding is
    acceptable here, not restate the rule.
    """
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def reference(construct: IConstruct, attribute: str = "Arn") -> str:
    """How cdk-nag prints ``Fn::GetAtt`` of a construct's resource: ``<LogicalId.Arn>``."""
    element = construct.node.default_child if isinstance(construct, Construct) else None
    resource = element if isinstance(element, CfnElement) else construct
    if not isinstance(resource, CfnElement):
        raise TypeError(f"{construct.node.path} is not a CloudFormation resource")
    logical_id = Stack.of(resource).resolve(resource.logical_id)
    return f"<{logical_id}.{attribute}>"
