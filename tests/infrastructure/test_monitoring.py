"""Dashboard and alarms on the `{service: ragline}` metrics, sent to a TLS-only topic."""

from __future__ import annotations

import json
from typing import Any

from tests.infrastructure.synthesis import CDK_CONTEXT, Synthesized

SERVICE_DIMENSION = [{"Name": "service", "Value": "ragline"}]


def _alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarm construct id (``Api5xxRate``...) -> properties."""
    return {
        name: synthesized.resources[synthesized.logical_id(f"Monitoring/{name}")]["Properties"]
        for name in (
            "Api5xxRate",
            "ApiLatencyP95",
            "DeadLetterQueueNotEmpty",
            "DocumentsFailed",
            "DailyCost",
        )
    }


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use_when_asked(
    openai: Synthesized,
) -> None:
    # GIVEN -c alarm_topic_kms=true (the openai configuration) WHEN synthesized
    key = openai.logical_id("Monitoring/AlarmTopicKey")
    openai.template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}}
    )
    # THEN its key rotates and lets CloudWatch encrypt the alarm messages
    properties = openai.resources[key]["Properties"]
    assert properties["EnableKeyRotation"] is True
    statements = properties["KeyPolicy"]["Statement"]
    assert any(
        s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and set(s["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
        for s in statements
    )


def test_alarm_topic_has_no_key_by_default_and_refuses_plain_http(nat: Synthesized) -> None:
    # GIVEN the default settings WHEN synthesized
    # THEN no KMS key is billed, and the topic is not encrypted with one
    nat.template.resource_count_is("AWS::KMS::Key", 0)
    topic_id = nat.logical_id("Monitoring/AlarmTopic")
    assert "KmsMasterKeyId" not in nat.resources[topic_id]["Properties"]
    # AND the topic refuses plain-HTTP publishing
    (policy,) = [p for p in nat.of_type("AWS::SNS::TopicPolicy").values()
                 if p["Properties"]["Topics"] == [{"Ref": topic_id}]]  # fmt: skip
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_every_alarm_notifies_the_topic(nat: Synthesized) -> None:
    # GIVEN the five alarms WHEN synthesized (the sixth, the review queue's daily approval
    # rate, is tests/infrastructure/test_reviews.py's)
    topic = {"Ref": nat.logical_id("Monitoring/AlarmTopic")}
    nat.template.resource_count_is("AWS::CloudWatch::Alarm", 6)
    for name, alarm in _alarms(nat).items():
        # THEN each notifies on alarm and on recovery, and missing data is not a breach
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", name


def test_api_alarms_watch_the_5xx_rate_and_p95_latency(nat: Synthesized) -> None:
    alarms = _alarms(nat)
    # GIVEN the API alarms THEN the 5xx one reads the average of 5XXError (a rate)
    errors = alarms["Api5xxRate"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/ApiGateway",
        "5XXError",
        "Average",
    )
    assert errors["Threshold"] == CDK_CONTEXT["alarm_5xx_rate"]
    # AND the latency one reads the 95th percentile
    latency = alarms["ApiLatencyP95"]
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("Latency", "p95")
    assert latency["Threshold"] == CDK_CONTEXT["alarm_p95_latency_ms"]


def test_pipeline_alarms_watch_the_dlq_and_failed_documents(nat: Synthesized) -> None:
    alarms = _alarms(nat)
    # GIVEN the DLQ alarm THEN any message in the DLQ trips it
    dlq = alarms["DeadLetterQueueNotEmpty"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": [nat.logical_id("Ingestion/DeadLetterQueue"), "QueueName"]
    }
    assert dlq["Threshold"] == 0
    # AND failed documents are counted on the service-wide dimension set
    (failed,) = alarms["DocumentsFailed"]["Metrics"]
    stat = failed["MetricStat"]
    assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"]) == (
        "Ragline",
        "DocumentsFailed",
        "Sum",
    )
    assert stat["Metric"]["Dimensions"] == SERVICE_DIMENSION


def test_daily_cost_alarm_sums_query_and_embedding_cost_over_a_day(nat: Synthesized) -> None:
    # GIVEN the budget alarm WHEN synthesized
    cost = _alarms(nat)["DailyCost"]
    assert cost["Threshold"] == CDK_CONTEXT["daily_cost_budget_usd"]
    metrics = {m["Id"]: m for m in cost["Metrics"]}
    # THEN it adds both cost metrics (no SEARCH: alarms cannot aggregate one)
    assert metrics["expr_1"]["Expression"] == "FILL(queries, 0) + FILL(ingestion, 0)"
    for metric_id, name in (("queries", "CostUSD"), ("ingestion", "EmbeddingCostUSD")):
        stat = metrics[metric_id]["MetricStat"]
        assert stat["Metric"]["MetricName"] == name
        assert stat["Metric"]["Dimensions"] == SERVICE_DIMENSION
        assert (stat["Period"], stat["Stat"]) == (86400, "Sum")
    assert "SEARCH" not in json.dumps(cost)


def test_dashboard_shows_every_stage_of_the_service(nat: Synthesized) -> None:
    # GIVEN the dashboard WHEN synthesized
    (dashboard,) = nat.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    # THEN it charts tokens, cost, latency per stage, abstention, ingestion, the DLQ,
    # Lambda errors and throttles, and Aurora's capacity
    for metric in (
        "InputTokens",
        "OutputTokens",
        "CachedInputTokens",
        "EmbeddingTokens",
        "CostUSD",
        "EmbeddingCostUSD",
        "RetrieveLatency",
        "GenerateLatency",
        "TotalLatency",
        "Abstained",
        "DocumentsIngested",
        "DocumentsFailed",
        "ChunksWritten",
        "ApproximateNumberOfMessagesVisible",
        "Errors",
        "Throttles",
        "ServerlessDatabaseCapacity",
        "ACUUtilization",
    ):
        assert metric in body, metric
    # AND a per-model cost breakdown over the Provider/Model dimensions
    assert "SEARCH(" in body and "Provider,Model,Prompt,Profile" in body


def test_alarm_email_subscribes_when_given(nat: Synthesized, openai: Synthesized) -> None:
    nat.template.resource_count_is("AWS::SNS::Subscription", 0)
    openai.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


def test_the_dashboard_can_be_left_out(nat: Synthesized, isolated: Synthesized) -> None:
    # GIVEN the default settings THEN one dashboard, named in the outputs
    nat.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    assert "DashboardName" in nat.template.to_json()["Outputs"]
    # WHEN -c dashboard=false (the isolated configuration)
    # THEN no dashboard and no output naming one, and the alarms are all still there
    isolated.template.resource_count_is("AWS::CloudWatch::Dashboard", 0)
    assert "DashboardName" not in isolated.template.to_json()["Outputs"]
    isolated.template.resource_count_is("AWS::CloudWatch::Alarm", 6)


def test_dashboard_charts_answers_that_echo_a_passage_instruction(nat: Synthesized) -> None:
    # GIVEN the dashboard WHEN synthesized, THEN the guard's injection flag has a rate
    (dashboard,) = nat.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "InstructionEcho" in body and "instruction-echo rates" in body
