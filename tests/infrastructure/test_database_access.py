"""Deploy-time checks of the two database accesses over every network mode.

`vpc`: the functions run in the VPC and connect to Aurora. `data-api`: they run
outside it and send SQL through the RDS Data API, so the VPC holds the database alone
and each function that touches the database may call the Data API on that cluster and
read that cluster's secret, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from constructs import IConstruct

from stacks.settings import DeploymentSettings, SettingsError
from tests.infrastructure.synthesis import CDK_CONTEXT, CONFIGURATIONS, Synthesized, context_for

DATA_API_ACTIONS = {
    "rds-data:ExecuteStatement",
    "rds-data:BatchExecuteStatement",
    "rds-data:BeginTransaction",
    "rds-data:CommitTransaction",
    "rds-data:RollbackTransaction",
}
# The functions that read or write the database (construct paths); reconcile when on.
DATABASE_FUNCTIONS = (
    "Query",
    "QueryStream",
    "Authorizer",
    "Ingestion/Ingest",
    "Database/Migrate",
    "Ingestion/Reconcile",
)
DATA_API_VARIABLES = {
    "RAGLINE_DATABASE_DRIVER",
    "RAGLINE_DATABASE_CLUSTER_ARN",
    "RAGLINE_DATABASE_SECRET_ARN",
    "RAGLINE_DATABASE_NAME",
}


def _settings(configuration: str) -> DeploymentSettings:
    return DeploymentSettings.from_context(context_for(CONFIGURATIONS[configuration]))


def _database_functions(synthesized: Synthesized) -> list[str]:
    """The construct paths of the database functions this configuration has."""
    return [path for path in DATABASE_FUNCTIONS if _exists(synthesized, path)]


def _exists(synthesized: Synthesized, path: str) -> bool:
    node: IConstruct | None = synthesized.stack
    for part in path.split("/"):
        node = node.node.try_find_child(part) if node is not None else None
    return node is not None


def _role_statements(synthesized: Synthesized) -> dict[str, list[dict[str, Any]]]:
    """Role logical id -> every statement of the policies attached to it."""
    statements: dict[str, list[dict[str, Any]]] = {}
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        for role in policy["Properties"].get("Roles", []):
            statements.setdefault(role["Ref"], []).extend(
                policy["Properties"]["PolicyDocument"]["Statement"]
            )
    return statements


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


def _database_grants(statements: list[dict[str, Any]], secret: Any) -> dict[str, list[Any]]:
    """Action -> resources, for every rds-data action and every action on the secret."""
    grants: dict[str, list[Any]] = {}
    for statement in statements:
        for action in _actions(statement):
            if action.startswith("rds-data:") or secret in _resources(statement):
                grants.setdefault(action, []).extend(_resources(statement))
    return grants


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_data_api_mode_has_no_nat_no_endpoints_and_no_function_in_the_vpc(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN a configuration of some network mode and database access WHEN synthesized
    synthesis = synthesized(configuration)
    data_api = _settings(configuration).data_api
    functions = synthesis.of_type("AWS::Lambda::Function")
    (cluster,) = synthesis.of_type("AWS::RDS::DBCluster").values()
    if data_api:
        # THEN with the Data API: no NAT gateway, no endpoint, no route out of the VPC
        synthesis.template.resource_count_is("AWS::EC2::NatGateway", 0)
        synthesis.template.resource_count_is("AWS::EC2::VPCEndpoint", 0)
        synthesis.template.resource_count_is("AWS::EC2::InternetGateway", 0)
        # AND only the database's isolated subnets, one per AZ
        subnets = synthesis.of_type("AWS::EC2::Subnet")
        assert all("dataSubnet" in logical_id for logical_id in subnets)
        # AND no function in a VPC, and the cluster's Data API on
        assert [k for k, f in functions.items() if "VpcConfig" in f["Properties"]] == []
        assert cluster["Properties"]["EnableHttpEndpoint"] is True
        # AND nothing may connect to the database over the network
        synthesis.template.resource_count_is("AWS::EC2::SecurityGroupIngress", 0)
        synthesis.template.resource_count_is("AWS::EC2::SecurityGroup", 1)
        (group,) = synthesis.of_type("AWS::EC2::SecurityGroup").values()
        assert "SecurityGroupIngress" not in group["Properties"]
    else:
        # THEN in the VPC mode the functions that use the database are in the VPC
        for path in _database_functions(synthesis):
            function = synthesis.resources[synthesis.logical_id(f"{path}/Function")]
            assert "VpcConfig" in function["Properties"], path
        assert not cluster["Properties"].get("EnableHttpEndpoint", False)


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_each_function_has_exactly_the_database_grants_it_needs(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN a configuration WHEN synthesized
    synthesis = synthesized(configuration)
    data_api = _settings(configuration).data_api
    secret = {"Ref": synthesis.logical_id("Database/Cluster/Secret/Attachment")}
    cluster_arn = {
        "Fn::Join": [
            "",
            [
                "arn:aws:rds:us-east-1:123456789012:cluster:",
                {"Ref": synthesis.logical_id("Database/Cluster")},
            ],
        ]
    }
    database_roles = {
        synthesis.logical_id(f"{path}/Role"): path for path in _database_functions(synthesis)
    }
    assert {"Query", "Ingestion/Ingest", "Database/Migrate"} <= set(database_roles.values())
    for role, statements in _role_statements(synthesis).items():
        grants = _database_grants(statements, secret)
        if role not in database_roles:
            # THEN a function that does not touch the database may do nothing with it
            assert grants == {}, role
        elif data_api:
            # THEN through the Data API: its five actions on the cluster, and reading
            # the cluster's secret, which the Data API does as the caller
            assert grants == {
                **{action: [cluster_arn] for action in DATA_API_ACTIONS},
                "secretsmanager:GetSecretValue": [secret],
            }, database_roles[role]
        else:
            # THEN in the VPC: reading the secret (host and credentials), no Data API
            assert "secretsmanager:GetSecretValue" in grants, database_roles[role]
            assert not any(action.startswith("rds-data:") for action in grants)


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
def test_the_database_functions_are_told_how_to_reach_the_database(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN a configuration WHEN synthesized
    synthesis = synthesized(configuration)
    data_api = _settings(configuration).data_api
    for path in _database_functions(synthesis):
        function = synthesis.resources[synthesis.logical_id(f"{path}/Function")]
        variables = function["Properties"]["Environment"]["Variables"]
        if data_api:
            # THEN the Data API driver, the cluster, its secret and the database's name
            assert set(variables) >= DATA_API_VARIABLES, path
            assert variables["RAGLINE_DATABASE_DRIVER"] == "data-api"
            assert variables["RAGLINE_DATABASE_NAME"] == "ragline"
            assert variables["RAGLINE_DATABASE_CLUSTER_ARN"] == {
                "Fn::Join": [
                    "",
                    [
                        "arn:aws:rds:us-east-1:123456789012:cluster:",
                        {"Ref": synthesis.logical_id("Database/Cluster")},
                    ],
                ]
            }
        else:
            # THEN the secret alone (psycopg, the library's default driver)
            assert "RAGLINE_DATABASE_SECRET_ARN" in variables, path
            assert "RAGLINE_DATABASE_DRIVER" not in variables, path


def test_the_network_modes_and_accesses_are_all_synthesized_or_refused() -> None:
    # GIVEN the configurations the tests synthesize, with the access each one gets
    combinations = {
        (_settings(name).network, "data-api" if _settings(name).data_api else "vpc")
        for name in CONFIGURATIONS
    }
    # THEN every combination that can be deployed is among them
    assert {("nat", "vpc"), ("isolated", "vpc"), ("nat", "data-api")} <= combinations
    # AND the one that cannot is refused: `isolated` promises functions without egress,
    # which outside the VPC they are not
    with pytest.raises(SettingsError, match="network=isolated keeps the functions inside"):
        DeploymentSettings.from_context({"network": "isolated", "database_access": "data-api"})
    # AND the database access is `auto` unless asked, and only the three names are accepted
    assert DeploymentSettings.from_context({}).database_access == "auto"
    with pytest.raises(SettingsError, match="database_access"):
        DeploymentSettings.from_context({"database_access": "proxy"})


@pytest.mark.parametrize(
    ("context", "data_api"),
    [
        # the default Bedrock models, SageMaker endpoints and OpenAI need no VPC
        ({}, True),
        ({"llm": "sagemaker:my-endpoint", "reranker": "sagemaker:rerank"}, True),
        ({"llm": "openai:gpt-4o-mini"}, True),
        # a server that may live in the VPC keeps the functions there
        ({"reranker": "http:bge-reranker-base", "reranker_url": "http://tei.internal"}, False),
        ({"llm": "openai:local", "openai_base_url": "http://vllm.internal/v1"}, False),
        # and so does network=isolated, which asks for functions without egress
        ({"network": "isolated"}, False),
    ],
)
def test_auto_chooses_the_data_api_unless_something_needs_the_vpc(
    context: dict[str, str], data_api: bool
) -> None:
    # GIVEN -c database_access=auto and a configuration
    settings = DeploymentSettings.from_context({**context, "database_access": "auto"})
    # THEN the functions leave the VPC exactly when nothing configured needs it
    assert settings.data_api is data_api
    # AND an explicit choice is kept whatever the models
    explicit = DeploymentSettings.from_context({**context, "database_access": "vpc"})
    assert explicit.data_api is False


def test_the_default_runs_the_functions_outside_the_vpc_on_the_data_api(
    default: Synthesized,
) -> None:
    # GIVEN cdk.json's context as shipped: `auto`, and the Bedrock models
    assert CDK_CONTEXT["database_access"] == "auto"
    assert DeploymentSettings.from_context(CDK_CONTEXT).data_api is True
    # WHEN synthesized THEN no NAT gateway, no endpoint, no internet gateway
    for resource_type in ("AWS::EC2::NatGateway", "AWS::EC2::VPCEndpoint", "AWS::EC2::EIP"):
        default.template.resource_count_is(resource_type, 0)
    default.template.resource_count_is("AWS::EC2::InternetGateway", 0)
    # AND no function in a VPC; the database functions use the Data API driver
    functions = default.of_type("AWS::Lambda::Function")
    assert functions
    assert [k for k, f in functions.items() if "VpcConfig" in f["Properties"]] == []
    for path in ("Query", "Ingestion/Ingest", "Database/Migrate"):
        function = default.resources[default.logical_id(f"{path}/Function")]
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["RAGLINE_DATABASE_DRIVER"] == "data-api", path
    (cluster,) = default.of_type("AWS::RDS::DBCluster").values()
    assert cluster["Properties"]["EnableHttpEndpoint"] is True


def test_the_default_keeps_the_vpc_for_a_model_server_on_a_private_address(
    private_server: Synthesized,
) -> None:
    # GIVEN the default `auto` and an OpenAI-compatible server at a private address
    settings = _settings("private_server")
    assert settings.database_access == "auto"
    # WHEN synthesized THEN the functions stay in the VPC, with the NAT gateway
    assert settings.data_api is False
    private_server.template.resource_count_is("AWS::EC2::NatGateway", 1)
    for path in ("Query", "Ingestion/Ingest", "Database/Migrate"):
        function = private_server.resources[private_server.logical_id(f"{path}/Function")]
        assert "VpcConfig" in function["Properties"], path
        variables = function["Properties"]["Environment"]["Variables"]
        assert "RAGLINE_DATABASE_DRIVER" not in variables, path
    # AND the query function is pointed at that server
    query = private_server.resources[private_server.logical_id("Query/Function")]
    variables = query["Properties"]["Environment"]["Variables"]
    assert variables["OPENAI_BASE_URL"] == "http://10.40.1.10:8000/v1"
    (cluster,) = private_server.of_type("AWS::RDS::DBCluster").values()
    assert not cluster["Properties"].get("EnableHttpEndpoint", False)


def test_moving_a_vpc_stack_to_the_default_keeps_its_database_and_subnets(
    nat: Synthesized, default: Synthesized
) -> None:
    # GIVEN a stack deployed with the functions in the VPC (nat), and the default now
    # running them outside it on the Data API
    kept_types = ("AWS::EC2::", "AWS::RDS::", "AWS::SecretsManager::")
    kept = {k: v for k, v in default.resources.items() if v["Type"].startswith(kept_types)}
    assert {v["Type"] for v in kept.values()} >= {
        "AWS::RDS::DBCluster",
        "AWS::RDS::DBSubnetGroup",
        "AWS::EC2::Subnet",
        "AWS::EC2::VPC",
    }
    # WHEN the next deploy moves it THEN the VPC, the database's subnets (same addresses:
    # a new CIDR would replace them, under the cluster), its security group, secret and
    # the cluster itself are the same resources with the same properties, but for the
    # cluster's Data API switched on
    for logical_id, resource in kept.items():
        before = nat.resources.get(logical_id)
        assert before is not None, logical_id
        if resource["Type"] == "AWS::RDS::DBCluster":
            before = {
                **before,
                "Properties": {**before["Properties"], "EnableHttpEndpoint": True},
            }
        assert resource == before, logical_id
