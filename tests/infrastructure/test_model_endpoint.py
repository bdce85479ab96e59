"""The optional SageMaker endpoint: TGI on a GPU instance, autoscaled, invoked by query."""

from __future__ import annotations

import pytest

from stacks.model_endpoint import tgi_image_uri
from tests.infrastructure.synthesis import ENDPOINT_MODEL, Synthesized


def test_no_endpoint_by_default(nat: Synthesized) -> None:
    # GIVEN the default settings THEN no GPU instance runs up a bill
    for resource_type in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig"):
        nat.template.resource_count_is(resource_type, 0)


def test_endpoint_serves_the_model_with_tgi_on_a_gpu(endpoint: Synthesized) -> None:
    # GIVEN sagemaker_model_id WHEN synthesized
    # THEN the model runs the Hugging Face TGI image with the model settings
    endpoint.template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": {
                "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
                "huggingface-pytorch-tgi-inference:2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04",
                "Environment": {
                    "HF_MODEL_ID": ENDPOINT_MODEL,
                    "HF_MODEL_QUANTIZE": "awq",
                    "SM_NUM_GPUS": "1",
                    "MAX_INPUT_TOKENS": "4096",
                    "MAX_TOTAL_TOKENS": "8192",
                    "MESSAGES_API_ENABLED": "true",
                },
            }
        },
    )
    # AND the endpoint configuration puts it on one ml.g5.xlarge
    (config,) = endpoint.of_type("AWS::SageMaker::EndpointConfig").values()
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g5.xlarge"
    assert variant["InitialInstanceCount"] == 1
    assert variant["ModelName"] == {
        "Fn::GetAtt": [endpoint.logical_id("ModelEndpoint/Model"), "ModelName"]
    }
    endpoint.template.has_resource_properties(
        "AWS::SageMaker::Endpoint", {"EndpointName": "ragline-llm"}
    )


def test_endpoint_scales_on_invocations_per_instance(endpoint: Synthesized) -> None:
    # GIVEN the endpoint WHEN synthesized
    # THEN a scalable target spans instance_count..max_instance_count
    endpoint.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": "endpoint/ragline-llm/variant/AllTraffic",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": 1,
            "MaxCapacity": 3,
        },
    )
    # AND a target-tracking policy follows invocations per instance
    endpoint.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "TargetValue": 30,
                "ScaleInCooldown": 600,
                "ScaleOutCooldown": 300,
            },
        },
    )
    (target,) = endpoint.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert endpoint.logical_id("ModelEndpoint/Endpoint") in target["DependsOn"]


def test_query_function_uses_and_may_invoke_exactly_that_endpoint(
    endpoint: Synthesized,
) -> None:
    # GIVEN the query function WHEN synthesized
    query = endpoint.resources[endpoint.logical_id("Query/Function")]["Properties"]
    variables = query["Environment"]["Variables"]
    # THEN its model is the endpoint, with the payload format and instance type
    assert variables["RAGLINE_LLM"] == "sagemaker:ragline-llm"
    assert variables["RAGLINE_LLM_FALLBACK"] == "extractive"
    assert variables["RAGLINE_SAGEMAKER_PAYLOAD"] == "messages"
    assert variables["RAGLINE_SAGEMAKER_INSTANCE_TYPE"] == "ml.g5.xlarge"
    # AND its role may invoke that endpoint's ARN and nothing else on SageMaker
    statements = [
        statement
        for policy in endpoint.of_type("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": endpoint.logical_id("Query/Role")}]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "sagemaker" in str(statement["Action"])
    ]
    assert statements == [
        {
            "Sid": "InvokeSageMakerEndpoints",
            "Action": "sagemaker:InvokeEndpoint",
            "Effect": "Allow",
            "Resource": {"Ref": endpoint.logical_id("ModelEndpoint/Endpoint")},
        }
    ]
    # AND the ingest function, which only embeds, may not
    ingest = endpoint.resources[endpoint.logical_id("Ingestion/Ingest/Function")]["Properties"]
    assert "RAGLINE_LLM" not in ingest["Environment"]["Variables"]


def test_execution_role_pulls_only_the_tgi_repository(endpoint: Synthesized) -> None:
    # GIVEN the endpoint's execution role WHEN synthesized
    role_id = endpoint.logical_id("ModelEndpoint/ExecutionRole")
    (policy,) = [
        p
        for p in endpoint.of_type("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    # THEN image layers come from the one TGI repository, logs go to the endpoint's group
    assert statements["PullTgiImage"]["Resource"] == (
        "arn:aws:ecr:us-east-1:763104351884:repository/huggingface-pytorch-tgi-inference"
    )
    assert statements["WriteEndpointLogs"]["Resource"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/ragline-llm:*"
    )


def test_image_uri_follows_the_region_and_refuses_unknown_ones() -> None:
    # GIVEN a region with its own Deep Learning Containers account
    uri = tgi_image_uri("eu-south-1", "some-tag")
    # THEN the image comes from that account's registry in that region
    registry = "692866216735.dkr.ecr.eu-south-1.amazonaws.com"
    assert uri == f"{registry}/huggingface-pytorch-tgi-inference:some-tag"
    # GIVEN a region without one THEN a clear error
    with pytest.raises(ValueError, match="no Hugging Face TGI image registry"):
        tgi_image_uri("xx-nowhere-1", "some-tag")


def test_scale_to_zero_serves_the_model_as_an_inference_component(
    scale_to_zero: Synthesized,
) -> None:
    # GIVEN sagemaker_scale_to_zero WHEN synthesized
    # THEN the endpoint's instances are managed, down to none, and the variant names no model
    (config,) = scale_to_zero.of_type("AWS::SageMaker::EndpointConfig").values()
    (variant,) = config["Properties"]["ProductionVariants"]
    assert "ModelName" not in variant
    assert variant["ManagedInstanceScaling"] == {
        "Status": "ENABLED",
        "MinInstanceCount": 0,
        "MaxInstanceCount": 2,
    }
    assert config["Properties"]["ExecutionRoleArn"] == {
        "Fn::GetAtt": [scale_to_zero.logical_id("ModelEndpoint/ExecutionRole"), "Arn"]
    }
    # AND the model is an inference component on that endpoint, one GPU per copy
    scale_to_zero.template.has_resource_properties(
        "AWS::SageMaker::InferenceComponent",
        {
            "InferenceComponentName": "ragline-llm-ic",
            "VariantName": "AllTraffic",
            "Specification": {
                "ModelName": {
                    "Fn::GetAtt": [scale_to_zero.logical_id("ModelEndpoint/Model"), "ModelName"]
                },
                "ComputeResourceRequirements": {"NumberOfAcceleratorDevicesRequired": 1},
            },
            "RuntimeConfig": {"CopyCount": 1},
        },
    )
    # AND the query functions (buffered and streaming) invoke that component
    queries = [
        f
        for f in scale_to_zero.of_type("AWS::Lambda::Function").values()
        if f["Properties"].get("Environment", {}).get("Variables", {}).get("RAGLINE_LLM")
        == "sagemaker:ragline-llm"
    ]
    assert len(queries) == 2
    for query in queries:
        variables = query["Properties"]["Environment"]["Variables"]
        assert variables["RAGLINE_SAGEMAKER_INFERENCE_COMPONENT"] == "ragline-llm-ic"


def test_scale_to_zero_scales_copies_to_zero_and_out_on_no_capacity(
    scale_to_zero: Synthesized,
) -> None:
    # GIVEN sagemaker_scale_to_zero WHEN synthesized
    # THEN the component's copies scale between 0 and the maximum
    scale_to_zero.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": "inference-component/ragline-llm-ic",
            "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
            "MinCapacity": 0,
            "MaxCapacity": 2,
        },
    )
    policies = scale_to_zero.of_type("AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = [
        p for p in policies.values() if p["Properties"]["PolicyType"] == "TargetTrackingScaling"
    ]
    assert [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
        for p in tracking
    ] == [{"PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"}]
    # AND a request that finds no copy raises an alarm whose action adds one copy
    step_id = scale_to_zero.logical_id("ModelEndpoint/ScaleOutFromZero")
    step = policies[step_id]["Properties"]
    assert step["PolicyType"] == "StepScaling"
    assert step["StepScalingPolicyConfiguration"]["AdjustmentType"] == "ChangeInCapacity"
    assert step["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
    ]
    scale_to_zero.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SageMaker",
            "MetricName": "NoCapacityInvocationFailures",
            "Dimensions": [{"Name": "InferenceComponentName", "Value": "ragline-llm-ic"}],
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "AlarmActions": [{"Ref": step_id}],
        },
    )
    # AND the instance-count scaling of the always-on endpoint is not there
    assert not [
        t
        for t in scale_to_zero.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
        if t["Properties"]["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    ]


def test_the_always_on_endpoint_names_no_inference_component(endpoint: Synthesized) -> None:
    # GIVEN the endpoint without scale to zero THEN nothing names a component
    endpoint.template.resource_count_is("AWS::SageMaker::InferenceComponent", 0)
    for function in endpoint.of_type("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "RAGLINE_SAGEMAKER_INFERENCE_COMPONENT" not in variables
