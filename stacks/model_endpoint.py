"""An optional SageMaker real-time endpoint serving an open model with Hugging Face TGI.

Off by default: a GPU instance costs by the hour whether or not anyone asks. When
`sagemaker_model_id` is set, the stack creates the model (the Hugging Face LLM inference
container, which downloads the weights from the Hugging Face Hub at startup), an
endpoint configuration on the GPU instance type, the endpoint, and target-tracking
autoscaling on invocations per instance.

With `sagemaker_scale_to_zero`, the model is an inference component instead, on an
endpoint whose managed instance scaling goes down to 0 instances: the copies scale in to
0 when idle, and a CloudWatch alarm on `NoCapacityInvocationFailures` (a request arrived
and no copy could serve it) triggers a step-scaling policy that adds one back. This is
AWS's pattern for real-time endpoints that scale to zero; the GPU bills only while a
copy runs, and the first request after idling fails until one is up (minutes).

The image is AWS's Deep Learning Container `huggingface-pytorch-tgi-inference`; the
default tag (`sagemaker_image_tag`) is PyTorch 2.4 with TGI 3.0.1, CUDA 12.4, Ubuntu 22.04.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, CfnResource, Duration, Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.nag import acknowledge

if TYPE_CHECKING:
    from stacks.settings import DeploymentSettings

TGI_REPOSITORY = "huggingface-pytorch-tgi-inference"
VARIANT = "AllTraffic"
# The accounts hosting AWS Deep Learning Containers, by region (commercial regions).
DLC_ACCOUNTS = {
    **dict.fromkeys(
        [
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "ca-central-1",
            "sa-east-1",
            "eu-central-1",
            "eu-north-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-south-1",
            "ap-southeast-1",
            "ap-southeast-2",
        ],
        "763104351884",
    ),
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-south-2": "772153158452",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-west-1": "204538143572",
    "eu-central-2": "380420809688",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
}


def tgi_image_uri(region: str, tag: str) -> str:
    """The TGI container image in ``region``'s Deep Learning Containers registry."""
    account = DLC_ACCOUNTS.get(region)
    if account is None:
        raise ValueError(
            f"no Hugging Face TGI image registry known for {region}; "
            f"known: {', '.join(sorted(DLC_ACCOUNTS))}"
        )
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{TGI_REPOSITORY}:{tag}"


def endpoint_name_for(settings: DeploymentSettings) -> str:
    """The endpoint's name: fixed, so its ARN, logs and the Lambda setting are known."""
    return f"{settings.stack_name}-llm".lower()[:63]


class ModelEndpoint(Construct):
    """SageMaker model, endpoint configuration, endpoint and autoscaling."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploymentSettings):
        super().__init__(scope, construct_id)
        assert settings.sagemaker_model_id is not None
        stack = Stack.of(self)
        self.endpoint_name = endpoint_name_for(settings)
        image = tgi_image_uri(settings.region, settings.sagemaker_image_tag)
        self.role = self._execution_role(settings, stack, registry_account=image.split(".", 1)[0])
        self.model = self._model(settings, image)
        if settings.sagemaker_scale_to_zero:
            self._scale_to_zero(settings)
        else:
            self._instance_endpoint(settings)

    def _execution_role(
        self, settings: DeploymentSettings, stack: Stack, *, registry_account: str
    ) -> iam.Role:
        """SageMaker's role: pull the TGI image, write the endpoint's own logs."""
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="ragline model endpoint: pull the TGI image, write the endpoint's logs",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PullTgiImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                resources=[
                    f"arn:{stack.partition}:ecr:{settings.region}:{registry_account}:"
                    f"repository/{TGI_REPOSITORY}"
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]
            )
        )
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{self.endpoint_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteEndpointLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                resources=[log_group_arn],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; the image pull "
            "itself is limited to the TGI repository.",
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{stack.resolve(log_group_arn)}]",
            "The endpoint's own log group, any of its log streams (named per instance).",
        )
        return role

    def _model(self, settings: DeploymentSettings, image: str) -> sagemaker.CfnModel:
        """The TGI container serving ``sagemaker_model_id``."""
        assert settings.sagemaker_model_id is not None
        environment = {
            "HF_MODEL_ID": settings.sagemaker_model_id,
            "SM_NUM_GPUS": str(settings.sagemaker_num_gpus),
            "MAX_INPUT_TOKENS": str(settings.sagemaker_max_input_tokens),
            "MAX_TOTAL_TOKENS": str(settings.sagemaker_max_total_tokens),
            # The OpenAI-style chat payload (`messages`) on /invocations.
            "MESSAGES_API_ENABLED": str(settings.sagemaker_payload == "messages").lower(),
        }
        if settings.sagemaker_quantize:
            environment["HF_MODEL_QUANTIZE"] = settings.sagemaker_quantize
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image, environment=environment
            ),
        )
        model.node.add_dependency(self.role)
        return model

    def _instance_endpoint(self, settings: DeploymentSettings) -> None:
        """The model on the variant itself, with at least one instance at all times."""
        self.inference_component_name: str | None = None
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=self.model.attr_model_name,
                    instance_type=settings.sagemaker_instance_type,
                    initial_instance_count=settings.sagemaker_instance_count,
                    initial_variant_weight=1,
                    container_startup_health_check_timeout_in_seconds=(
                        settings.sagemaker_startup_timeout_seconds
                    ),
                    model_data_download_timeout_in_seconds=(
                        settings.sagemaker_startup_timeout_seconds
                    ),
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        # Ref of an endpoint is its ARN.
        self.endpoint_arn = self.endpoint.ref

        self._scale_on_invocations(
            settings,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT}",
            dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=settings.sagemaker_instance_count,
            metric="SageMakerVariantInvocationsPerInstance",
            policy_name=f"{self.endpoint_name}-invocations-per-instance",
            after=self.endpoint,
        )

    def _scale_on_invocations(
        self,
        settings: DeploymentSettings,
        *,
        resource_id: str,
        dimension: str,
        min_capacity: int,
        metric: str,
        policy_name: str,
        after: CfnResource,
    ) -> None:
        """Scale ``resource_id`` between ``min_capacity`` and the maximum instance count,
        tracking RAGLINE's invocations per instance (or per copy) on ``metric``."""
        # L1 without a RoleARN: Application Auto Scaling then uses (and creates if need
        # be) its service-linked role for SageMaker, which holds exactly the permissions.
        self.scaling = autoscaling.CfnScalableTarget(
            self,
            "Scaling",
            service_namespace="sagemaker",
            resource_id=resource_id,
            scalable_dimension=dimension,
            min_capacity=min_capacity,
            max_capacity=settings.sagemaker_max_instance_count,
        )
        self.scaling.add_dependency(after)
        autoscaling.CfnScalingPolicy(
            self,
            "ScaleOnInvocations",
            policy_name=policy_name,
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scaling.ref,
            target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=settings.sagemaker_invocations_per_instance,
                predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type=metric
                ),
                scale_in_cooldown=int(Duration.minutes(10).to_seconds()),
                scale_out_cooldown=int(Duration.minutes(5).to_seconds()),
            ),
        )

    def _scale_to_zero(self, settings: DeploymentSettings) -> None:
        """The model as an inference component that scales to 0 copies on 0 instances."""
        self.inference_component_name = f"{self.endpoint_name}-ic"[:63]
        self._managed_endpoint(settings)
        self.inference_component = self._inference_component(settings)
        # Between 1 and the maximum, and in to 0 once no request has come for a while.
        self._scale_on_invocations(
            settings,
            resource_id=f"inference-component/{self.inference_component_name}",
            dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=0,
            metric="SageMakerInferenceComponentInvocationsPerCopy",
            policy_name=f"{self.inference_component_name}-invocations-per-copy",
            after=self.inference_component,
        )
        self._scale_out_from_zero(self.inference_component_name)

    def _managed_endpoint(self, settings: DeploymentSettings) -> None:
        """An endpoint of inference components names no model; its instances are managed
        (created for copies, removed when none is left), down to zero."""
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            execution_role_arn=self.role.role_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    instance_type=settings.sagemaker_instance_type,
                    initial_instance_count=1,
                    managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                        status="ENABLED",
                        min_instance_count=0,
                        max_instance_count=settings.sagemaker_max_instance_count,
                    ),
                    routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                        routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                    ),
                )
            ],
        )
        self.endpoint_config.node.add_dependency(self.role)
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        self.endpoint_arn = self.endpoint.ref

    def _inference_component(self, settings: DeploymentSettings) -> sagemaker.CfnInferenceComponent:
        """The model on the endpoint as one copy at deploy time (CloudFormation waits for
        it to serve); the scaling takes it to 0 once idle."""
        startup_seconds = settings.sagemaker_startup_timeout_seconds
        return sagemaker.CfnInferenceComponent(
            self,
            "InferenceComponent",
            inference_component_name=self.inference_component_name,
            endpoint_name=self.endpoint.attr_endpoint_name,
            variant_name=VARIANT,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name,
                compute_resource_requirements=sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                    number_of_accelerator_devices_required=settings.sagemaker_num_gpus,
                    min_memory_required_in_mb=1024,
                ),
                startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                    container_startup_health_check_timeout_in_seconds=startup_seconds,
                    model_data_download_timeout_in_seconds=startup_seconds,
                ),
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(
                copy_count=1
            ),
        )

    def _scale_out_from_zero(self, component_name: str) -> None:
        """Target tracking cannot leave 0 (no copy, no invocations to track): a request
        that found no copy raises NoCapacityInvocationFailures, and this adds one."""
        scale_out_from_zero = autoscaling.CfnScalingPolicy(
            self,
            "ScaleOutFromZero",
            policy_name=f"{component_name}-scale-out-from-zero",
            policy_type="StepScaling",
            scaling_target_id=self.scaling.ref,
            step_scaling_policy_configuration=autoscaling.CfnScalingPolicy.StepScalingPolicyConfigurationProperty(
                adjustment_type="ChangeInCapacity",
                metric_aggregation_type="Maximum",
                cooldown=60,
                step_adjustments=[
                    autoscaling.CfnScalingPolicy.StepAdjustmentProperty(
                        metric_interval_lower_bound=0, scaling_adjustment=1
                    )
                ],
            ),
        )
        cloudwatch.CfnAlarm(
            self,
            "NoCapacityAlarm",
            alarm_description=(
                "A request found no running copy of the model: scale out from zero."
            ),
            namespace="AWS/SageMaker",
            metric_name="NoCapacityInvocationFailures",
            dimensions=[
                cloudwatch.CfnAlarm.DimensionProperty(
                    name="InferenceComponentName", value=component_name
                )
            ],
            statistic="Maximum",
            period=30,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            # No request, no datapoint: that is not a failure to act on.
            treat_missing_data="missing",
            alarm_actions=[scale_out_from_zero.ref],
        )
