"""functions/migrate: the custom resource behind every deploy, against a real PostgreSQL,
through psycopg and through the Data API driver (tests/support/data_api.py)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest


def _event(request_type: str, physical_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ResourceType": "Custom::RaglineMigrations",
        "ResourceProperties": {"DeployedAt": "2026-11-28T10:00:00+00:00"},
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


pytestmark = pytest.mark.both_drivers


@pytest.fixture
def migrate_handler(
    cold_start: Callable[..., ModuleType], database_environment: dict[str, str]
) -> ModuleType:
    return cold_start("migrate", **database_environment)


def test_create_then_update_applies_each_migration_once(
    migrate_handler: ModuleType, lambda_context: Any
) -> None:
    # GIVEN an empty database
    # WHEN CloudFormation creates the resource (first deploy)
    created = migrate_handler.lambda_handler(_event("Create"), lambda_context)
    # THEN every migration is applied and the id is the stable one
    assert created["PhysicalResourceId"] == "ragline-migrations"
    assert created["Data"]["Applied"].split(",")[0] == "1"
    # WHEN the next deploy sends an Update
    updated = migrate_handler.lambda_handler(
        _event("Update", created["PhysicalResourceId"]), lambda_context
    )
    # THEN nothing is applied twice and the resource keeps its id
    assert updated == {"PhysicalResourceId": "ragline-migrations", "Data": {"Applied": ""}}


def test_delete_leaves_the_database_alone(
    cold_start: Callable[..., ModuleType], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a handler whose migrate records calls
    handler = cold_start("migrate")
    calls: list[object] = []
    monkeypatch.setattr(handler, "migrate", calls.append)
    # WHEN CloudFormation deletes the resource
    response = handler.lambda_handler(_event("Delete", "ragline-migrations"), lambda_context)
    # THEN it answers with the same id and migrates nothing
    assert response == {"PhysicalResourceId": "ragline-migrations"}
    assert calls == []


def test_unknown_request_type_fails_the_deployment(
    cold_start: Callable[..., ModuleType], lambda_context: Any
) -> None:
    handler = cold_start("migrate")
    with pytest.raises(ValueError, match="unknown custom resource request type"):
        handler.lambda_handler(_event("Refresh"), lambda_context)
