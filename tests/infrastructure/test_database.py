"""Aurora PostgreSQL Serverless v2 (pgvector 0.8, pauses at 0 ACU) and the migrations."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from stacks.database import engine_version
from tests.infrastructure.synthesis import Synthesized


def test_aurora_serverless_v2_pauses_at_zero_capacity(nat: Synthesized) -> None:
    # GIVEN the default settings WHEN synthesized
    # THEN the cluster scales to 0 ACU (auto-pause) and up to the configured maximum
    nat.template.has_resource_properties(
        "AWS::RDS::DBCluster",
        {
            "Engine": "aurora-postgresql",
            "ServerlessV2ScalingConfiguration": {
                "MinCapacity": 0,
                "MaxCapacity": 2,
                "SecondsUntilAutoPause": 600,
            },
        },
    )
    nat.template.has_resource_properties(
        "AWS::RDS::DBInstance", {"DBInstanceClass": "db.serverless", "PubliclyAccessible": False}
    )


def test_aurora_is_encrypted_private_and_ships_pgvector_0_8(nat: Synthesized) -> None:
    # GIVEN the cluster WHEN synthesized
    cluster = next(iter(nat.of_type("AWS::RDS::DBCluster").values()))["Properties"]
    # THEN storage is encrypted, the engine is 16.6+ or 17.x (pgvector 0.8), port 5432
    assert cluster["StorageEncrypted"] is True
    major, minor = (int(part) for part in cluster["EngineVersion"].split(".")[:2])
    assert (major, minor) >= (16, 6)
    assert cluster["Port"] == 5432
    assert cluster["DatabaseName"] == "ragline"
    # AND no paid extended support, logs exported, backups kept, a snapshot on deletion
    assert cluster["EngineLifecycleSupport"] == "open-source-rds-extended-support-disabled"
    assert cluster["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert cluster["BackupRetentionPeriod"] == 7
    nat.template.has_resource("AWS::RDS::DBCluster", {"DeletionPolicy": "Snapshot"})


def test_credentials_live_in_a_generated_secret(nat: Synthesized) -> None:
    # GIVEN the cluster WHEN synthesized
    # THEN the master password is generated into Secrets Manager, never in the template
    nat.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"GenerateStringKey": "password"})},
    )
    cluster = next(iter(nat.of_type("AWS::RDS::DBCluster").values()))["Properties"]
    assert "resolve:secretsmanager" in str(cluster["MasterUserPassword"])
    nat.template.resource_count_is("AWS::SecretsManager::SecretTargetAttachment", 1)


def test_only_the_functions_reach_the_database(nat: Synthesized) -> None:
    # GIVEN the database's security group WHEN inspecting its ingress
    database_group = nat.logical_id("Database/SecurityGroup")
    functions_group = nat.logical_id("Network/FunctionsSecurityGroup")
    ingress = [
        rule["Properties"]
        for rule in nat.of_type("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [database_group, "GroupId"]}
    ]
    # THEN one rule: PostgreSQL from the functions' group
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "GroupId": {"Fn::GetAtt": [database_group, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [functions_group, "GroupId"]},
            "Description": "PostgreSQL from the ragline functions",
        }
    ]
    group = nat.resources[database_group]["Properties"]
    assert "SecurityGroupIngress" not in group


def test_migrations_run_through_a_custom_resource_on_every_deploy(nat: Synthesized) -> None:
    # GIVEN the migration custom resource WHEN synthesized
    resources = nat.of_type("Custom::RaglineMigrations")
    assert len(resources) == 1
    (migrations,) = resources.values()
    # THEN it carries a deploy timestamp (so every deploy is an Update) and depends on
    # the cluster being there
    assert migrations["Properties"]["DeployedAt"].endswith("+00:00")
    assert any(
        nat.resources[dependency]["Type"] == "AWS::RDS::DBCluster"
        for dependency in migrations["DependsOn"]
    )
    # AND its handler is functions/migrate, in the VPC, reading the cluster's secret
    migrate = nat.resources[nat.logical_id("Database/Migrate/Function")]["Properties"]
    assert migrate["Handler"] == "handler.lambda_handler"
    assert "VpcConfig" in migrate
    secret = migrate["Environment"]["Variables"]["RAGLINE_DATABASE_SECRET_ARN"]
    assert secret == {"Ref": nat.logical_id("Database/Cluster/Secret/Attachment")}


def test_an_engine_version_without_pgvector_0_8_is_refused() -> None:
    # GIVEN Aurora PostgreSQL 16.4, which ships pgvector 0.7
    # WHEN the engine is chosen THEN it is refused with the reason
    with pytest.raises(ValueError, match=r"lacks pgvector 0\.8"):
        engine_version("16.4")
    with pytest.raises(ValueError, match=r"no Aurora PostgreSQL 17\.99"):
        engine_version("17.99")
