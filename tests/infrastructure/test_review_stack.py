"""The review queue as deployed: its routes' request models, its event topic, the
approval alarm and dashboard row, and the console (private bucket, CloudFront with origin
access control, off by default). cdk-nag and cfn-lint run over both configurations in
test_compliance.py."""

from __future__ import annotations

import json
from typing import Any

from tests.infrastructure.synthesis import Synthesized


def _one(synthesized: Synthesized, resource_type: str) -> dict[str, Any]:
    (resource,) = synthesized.of_type(resource_type).values()
    return resource["Properties"]


def test_the_query_function_publishes_queued_items_to_the_review_topic(
    default: Synthesized,
) -> None:
    # GIVEN the default configuration WHEN synthesized
    topic = default.logical_id("Reviews/ReviewTopic")
    query = default.resources[default.logical_id("Query/Function")]["Properties"]
    # THEN the query function knows the topic and may publish to it, over TLS only
    assert query["Environment"]["Variables"]["RAGLINE_REVIEW_TOPIC_ARN"] == {"Ref": topic}
    policies = json.dumps(default.of_type("AWS::IAM::Policy"))
    assert '"sns:Publish"' in policies and f'"Ref": "{topic}"' in policies
    topic_policy = json.dumps(default.of_type("AWS::SNS::TopicPolicy"))
    assert topic in topic_policy and "aws:SecureTransport" in topic_policy


def test_corrections_and_rejections_are_validated_by_generated_models(
    default: Synthesized,
) -> None:
    models = {m["Properties"]["Schema"]["title"]: m["Properties"]["Schema"]
              for m in default.of_type("AWS::ApiGateway::Model").values()}  # fmt: skip
    # THEN the correct body needs the answer and the passage numbers, and nothing else
    correct = models["CorrectRequest"]
    assert set(correct["required"]) == {"answer", "citations"}
    assert correct["additionalProperties"] is False
    # AND a rejection's category is one of the known ones
    category = models["RejectRequest"]["properties"]["category"]
    assert category["enum"] == ["not_in_documents", "wrong", "unsafe", "other"]


def test_a_daily_approval_rate_below_the_bar_alarms(
    default: Synthesized, openai: Synthesized
) -> None:
    for synthesized, bar in ((default, 0.8), (openai, 0.75)):
        alarm = synthesized.resources[synthesized.logical_id("Reviews/DailyApprovalRate")]
        alarm = alarm["Properties"]
        assert alarm["Threshold"] == bar
        assert alarm["ComparisonOperator"] == "LessThanThreshold"
        (stat,) = [m["MetricStat"] for m in alarm["Metrics"]]
        assert stat["Metric"]["MetricName"] == "ReviewApproved"
        assert (stat["Stat"], stat["Period"]) == ("Average", 86400)
        assert alarm["TreatMissingData"] == "notBreaching"


def test_the_dashboard_shows_the_queue_and_approvals(default: Synthesized) -> None:
    body = json.dumps(_one(default, "AWS::CloudWatch::Dashboard")["DashboardBody"])
    for metric in ("ReviewQueueDepth", "ReviewOldestAge", "ReviewDecisionTime"):
        assert metric in body
    assert "service,Model,Prompt" in body and "ReviewApproved" in body


def test_the_console_is_off_by_default(default: Synthesized) -> None:
    assert default.of_type("AWS::CloudFront::Distribution") == {}
    assert default.of_type("AWS::CloudFront::OriginAccessControl") == {}


def test_the_console_bucket_is_private_behind_origin_access_control(openai: Synthesized) -> None:
    # GIVEN -c console=true WHEN synthesized
    bucket = openai.logical_id("Reviews/ConsoleBucket")
    properties = openai.resources[bucket]["Properties"]
    # THEN the bucket blocks every public access and is encrypted
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True,
        "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip
    assert "WebsiteConfiguration" not in properties
    # AND the distribution reads it through origin access control, over HTTPS
    control = _one(openai, "AWS::CloudFront::OriginAccessControl")["OriginAccessControlConfig"]
    assert (control["OriginAccessControlOriginType"], control["SigningBehavior"]) == (
        "s3", "always",
    )  # fmt: skip
    config = _one(openai, "AWS::CloudFront::Distribution")["DistributionConfig"]
    s3_origin = next(o for o in config["Origins"] if "S3OriginConfig" in o)
    assert s3_origin["OriginAccessControlId"] and s3_origin["S3OriginConfig"] == {
        "OriginAccessIdentity": ""
    }
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    # AND only CloudFront, for this distribution, may read the bucket
    policy = json.dumps(
        next(
            p
            for p in openai.of_type("AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": bucket}
        )
    )
    assert "cloudfront.amazonaws.com" in policy and "AWS:SourceArn" in policy
    # AND the API routes go to the API on the same origin, never cached
    api_paths = {b["PathPattern"] for b in config["CacheBehaviors"]}
    assert {"/query", "/reviews*", "/documents*"} <= api_paths
    assert {b["CachePolicyId"] for b in config["CacheBehaviors"]} == {
        "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CloudFront's managed CachingDisabled
    }
