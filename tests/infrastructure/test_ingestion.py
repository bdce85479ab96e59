"""Documents bucket -> SQS (+ DLQ) -> ingest function with partial batch responses."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from stacks.settings import INGEST_RESERVE_SECONDS, INGEST_RESIDENT_MB, PARSE_REAP_SECONDS
from tests.infrastructure.synthesis import CDK_CONTEXT, Synthesized

# The ingest function's memory, sized from bench/hostile_uploads.py.
INGEST_MEMORY_MB = 1536


def _bucket(synthesized: Synthesized, path: str) -> dict[str, Any]:
    return synthesized.resources[synthesized.logical_id(path)]


def _bucket_policy_statements(synthesized: Synthesized, bucket_id: str) -> list[dict[str, Any]]:
    for policy in synthesized.of_type("AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": bucket_id}:
            statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
            return statements
    raise AssertionError(f"no bucket policy for {bucket_id}")


def test_documents_bucket_is_private_encrypted_versioned_and_logged(nat: Synthesized) -> None:
    # GIVEN the documents bucket WHEN synthesized
    bucket = _bucket(nat, "Ingestion/Documents")
    properties = bucket["Properties"]
    # THEN public access is blocked on all four counts
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    # AND objects are encrypted, versioned, and access is logged to the log bucket
    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": nat.logical_id("Ingestion/AccessLogs")
    }
    # AND the data outlives the stack
    assert bucket["DeletionPolicy"] == "Retain"


def test_both_buckets_deny_requests_without_tls(nat: Synthesized) -> None:
    for path in ("Ingestion/Documents", "Ingestion/AccessLogs"):
        # GIVEN each bucket's policy WHEN synthesized
        statements = _bucket_policy_statements(nat, nat.logical_id(path))
        # THEN it denies every action over plain HTTP, to everyone
        assert any(
            statement["Effect"] == "Deny"
            and statement["Action"] == "s3:*"
            and statement["Principal"] == {"AWS": "*"}
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for statement in statements
        )
        access = _bucket(nat, path)["Properties"]["PublicAccessBlockConfiguration"]
        assert all(access.values())


def test_created_and_removed_objects_notify_the_queue(nat: Synthesized) -> None:
    # GIVEN the bucket notifications WHEN synthesized
    queue = nat.logical_id("Ingestion/Queue")
    (notifications,) = nat.of_type("Custom::S3BucketNotifications").values()
    configurations = notifications["Properties"]["NotificationConfiguration"]
    # THEN ObjectCreated and ObjectRemoved both go to the ingest queue
    assert sorted(
        (event, configuration["QueueArn"]["Fn::GetAtt"][0])
        for configuration in configurations["QueueConfigurations"]
        for event in configuration["Events"]
    ) == [("s3:ObjectCreated:*", queue), ("s3:ObjectRemoved:*", queue)]
    # AND the queue policy lets exactly this bucket send to it
    nat.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(["sqs:SendMessage"]),
                                "Principal": {"Service": "s3.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {
                                        "aws:SourceArn": {
                                            "Fn::GetAtt": [
                                                nat.logical_id("Ingestion/Documents"),
                                                "Arn",
                                            ]
                                        }
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_queue_and_dead_letter_queue(nat: Synthesized) -> None:
    # GIVEN both queues and the ingest function WHEN synthesized
    queue = _bucket(nat, "Ingestion/Queue")["Properties"]
    dlq_id = nat.logical_id("Ingestion/DeadLetterQueue")
    dlq = nat.resources[dlq_id]["Properties"]
    ingest = nat.resources[nat.logical_id("Ingestion/Ingest/Function")]["Properties"]
    # THEN failures move to the DLQ after maxReceiveCount, where they stay 14 days
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    # AND a message stays invisible while six function timeouts could process it
    assert queue["VisibilityTimeout"] >= 6 * ingest["Timeout"]
    # AND both are encrypted by SQS and refuse plain HTTP
    for properties in (queue, dlq):
        assert properties["SqsManagedSseEnabled"] is True
    for policy in nat.of_type("AWS::SQS::QueuePolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )
    nat.template.resource_count_is("AWS::SQS::QueuePolicy", 2)


def test_ingest_function_reads_batches_with_partial_failures(nat: Synthesized) -> None:
    # GIVEN the event source mapping WHEN synthesized
    # THEN it reports item failures, batches as configured, and caps concurrency
    nat.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [nat.logical_id("Ingestion/Queue"), "Arn"]},
            "FunctionName": {"Ref": nat.logical_id("Ingestion/Ingest/Function")},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BatchSize": CDK_CONTEXT["ingest_batch_size"],
            "MaximumBatchingWindowInSeconds": CDK_CONTEXT["ingest_max_batching_window_seconds"],
            "ScalingConfig": {"MaximumConcurrency": CDK_CONTEXT["ingest_concurrency"]},
        },
    )
    # AND reserved concurrency protects the database
    ingest = nat.resources[nat.logical_id("Ingestion/Ingest/Function")]["Properties"]
    assert ingest["ReservedConcurrentExecutions"] == CDK_CONTEXT["ingest_concurrency"]
    assert ingest["Handler"] == "handler.lambda_handler"
    assert ingest["Runtime"] == "python3.11"
    assert ingest["Architectures"] == ["x86_64"]


def _reconcile_functions(synthesized: Synthesized) -> dict[str, Any]:
    return {
        logical_id: function
        for logical_id, function in synthesized.of_type("AWS::Lambda::Function").items()
        if "reconcile" in function["Properties"].get("Description", "")
    }


def test_the_reconcile_function_is_absent_by_default(nat: Synthesized) -> None:
    # GIVEN the default context WHEN synthesized THEN there is no reconcile function,
    # no schedule, and no output naming one
    assert CDK_CONTEXT.get("reconcile", False) in (False, "false")
    assert _reconcile_functions(nat) == {}
    assert nat.of_type("AWS::Events::Rule") == {}
    assert "ReconcileFunctionName" not in nat.template.to_json()["Outputs"]


def test_reconcile_on_schedules_a_least_privilege_function(endpoint: Synthesized) -> None:
    # GIVEN `-c reconcile=true -c reconcile_schedule="rate(6 hours)"` WHEN synthesized
    [function_id] = _reconcile_functions(endpoint)
    bucket = endpoint.logical_id("Ingestion/Documents")
    # THEN a rule invokes it on the schedule with the documents bucket as its input
    rule = endpoint.resources[endpoint.logical_id("Ingestion/ReconcileSchedule")]
    assert rule["Properties"]["ScheduleExpression"] == "rate(6 hours)"
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert "Ref" in json.dumps(target["Input"]) and bucket in json.dumps(target["Input"])
    endpoint.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": "events.amazonaws.com",
        },
    )
    # AND its role may list and read the documents bucket and read the database secret,
    # and write nothing to S3, SQS or Lambda
    role = endpoint.logical_id("Ingestion/Reconcile/Role")
    statements = [
        statement
        for policy in endpoint.of_type("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {
        action
        for statement in statements
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    s3_actions = {a for a in actions if a.startswith("s3:")}
    assert s3_actions == {"s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging"}
    assert not any(a.startswith(("sqs:", "lambda:")) for a in actions)
    # AND it may call the embedding model (Bedrock here), not the chat model (SageMaker)
    assert {"secretsmanager:GetSecretValue", "bedrock:InvokeModel"} <= actions
    assert "sagemaker:InvokeEndpoint" not in actions
    by_sid = {s.get("Sid"): s for s in statements}
    assert by_sid["ListDocuments"]["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]}
    assert bucket in json.dumps(by_sid["ReadDocuments"]["Resource"])
    # AND the function runs up to Lambda's 15 minutes, in the VPC, and is announced
    properties = endpoint.resources[function_id]["Properties"]
    assert properties["Timeout"] == 900 and "VpcConfig" in properties
    outputs = endpoint.template.to_json()["Outputs"]
    assert outputs["ReconcileFunctionName"]["Value"] == {"Ref": function_id}


def test_the_ingest_function_outlasts_a_batch_of_parses_and_holds_a_parse_child(
    nat: Synthesized,
) -> None:
    # GIVEN the ingest function and its event source mapping WHEN synthesized
    function = nat.resources[nat.logical_id("Ingestion/Ingest/Function")]["Properties"]
    [mapping] = nat.of_type("AWS::Lambda::EventSourceMapping").values()
    variables = function["Environment"]["Variables"]
    parse_seconds = int(variables["RAGLINE_PARSE_TIMEOUT_SECONDS"])
    parse_memory = int(variables["RAGLINE_PARSE_MEMORY_MB"])
    batch = mapping["Properties"]["BatchSize"]

    # THEN a whole batch of parses, each stopped at its deadline, ends with time left for
    # the batch's other work, so one slow document never times out its batch-mates
    assert (
        batch * (parse_seconds + PARSE_REAP_SECONDS) + INGEST_RESERVE_SECONDS <= function["Timeout"]
    )
    # AND the memory holds the function's own and a parse child at its limit, as sized
    # from bench/hostile_uploads.py (docs/ingestion.md, "Budgets")
    assert function["MemorySize"] == INGEST_MEMORY_MB
    assert function["MemorySize"] >= INGEST_RESIDENT_MB + parse_memory
    assert (parse_seconds, parse_memory) == (40, 512)


def test_the_reconcile_function_parses_under_the_same_budgets(endpoint: Synthesized) -> None:
    # GIVEN reconcile=true WHEN synthesized
    [function] = _reconcile_functions(endpoint).values()
    ingest = endpoint.resources[endpoint.logical_id("Ingestion/Ingest/Function")]
    # THEN it parses with the ingest function's budgets and memory
    names = ("RAGLINE_PARSE_TIMEOUT_SECONDS", "RAGLINE_PARSE_MEMORY_MB")
    variables = function["Properties"]["Environment"]["Variables"]
    ingest_variables = ingest["Properties"]["Environment"]["Variables"]
    assert {n: variables[n] for n in names} == {n: ingest_variables[n] for n in names}
    assert function["Properties"]["MemorySize"] == ingest["Properties"]["MemorySize"]
