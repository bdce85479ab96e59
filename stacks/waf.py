"""The optional WAF in front of the REST API (`-c waf=true`, about $7/month when idle).

It blocks request bodies over `RAGLINE_MAX_BODY_BYTES` before they reach Lambda (API
Gateway REST has no body-size setting of its own, see `stacks/api.py`) and applies AWS's
common rule set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Stack
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

if TYPE_CHECKING:
    from aws_cdk import aws_apigateway as apigw

    from stacks.settings import DeploymentSettings

# WAF inspects at most this much of a body (API Gateway allows 16, 32, 48 or 64 KB).
WAF_INSPECTION_LIMITS_KB = (16, 32, 48, 64)


class Waf(Construct):
    """A regional web ACL on the API stage: block bodies over the byte limit, and AWS's
    common rules."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploymentSettings,
        stage: apigw.Stage,
    ) -> None:
        super().__init__(scope, construct_id)
        limit_kb = next(
            (kb for kb in WAF_INSPECTION_LIMITS_KB if kb * 1024 >= settings.max_body_bytes),
            WAF_INSPECTION_LIMITS_KB[-1],
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("ragline-api"),
            association_config=wafv2.CfnWebACL.AssociationConfigProperty(
                request_body={
                    "API_GATEWAY": wafv2.CfnWebACL.RequestBodyAssociatedResourceTypeConfigProperty(
                        default_size_inspection_limit=f"KB_{limit_kb}"
                    )
                }
            ),
            rules=[_body_too_large(settings.max_body_bytes, limit_kb), _aws_common_rules()],
        )
        stack = Stack.of(self)
        self.association = wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=f"arn:{stack.partition}:apigateway:{stack.region}::/restapis/"
            f"{stage.rest_api.rest_api_id}/stages/{stage.stage_name}",
            web_acl_arn=self.web_acl.attr_arn,
        )


def _body_too_large(max_body_bytes: int, limit_kb: int) -> wafv2.CfnWebACL.RuleProperty:
    """Block bodies over ``max_body_bytes`` (or over the inspection limit, if lower)."""
    return wafv2.CfnWebACL.RuleProperty(
        name="BodyTooLarge",
        priority=0,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        visibility_config=_visibility("ragline-body-too-large"),
        statement=wafv2.CfnWebACL.StatementProperty(
            size_constraint_statement=wafv2.CfnWebACL.SizeConstraintStatementProperty(
                comparison_operator="GT",
                size=min(max_body_bytes, limit_kb * 1024),
                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(
                    # Bodies past the inspection limit are over our limit too.
                    body=wafv2.CfnWebACL.BodyProperty(oversize_handling="MATCH")
                ),
                text_transformations=[
                    wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                ],
            )
        ),
    )


def _aws_common_rules() -> wafv2.CfnWebACL.RuleProperty:
    """AWS's common rule set, its body-size rule only counting."""
    return wafv2.CfnWebACL.RuleProperty(
        name="AwsCommonRules",
        priority=1,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        visibility_config=_visibility("ragline-common-rules"),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name="AWSManagedRulesCommonRuleSet",
                # Its 8 KB body rule would undercut our own limit: count only.
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name="SizeRestrictions_BODY",
                        action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                    )
                ],
            )
        ),
    )


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=metric_name,
        sampled_requests_enabled=True,
    )
