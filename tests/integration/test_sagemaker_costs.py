"""A SageMaker embeddings endpoint is priced by the time it was held, like the SageMaker
chat model: questions and ingested objects both carry its cost (moto's sagemaker-runtime)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws
from ragline.config import Settings
from ragline.ingest import Ingestor
from ragline.ledger import Ledger
from ragline.store import get_store

from tests.support.emf import emf_documents, value
from tests.support.sagemaker import queue_endpoint_results

ENDPOINT = "tei-embeddings"
INSTANCE = "ml.g5.xlarge"  # USD 1.408 an hour in the packaged price table
ENVIRONMENT = {
    "RAGLINE_EMBEDDINGS": f"sagemaker:{ENDPOINT}",
    "RAGLINE_EMBEDDING_DIMENSIONS": "8",
    "RAGLINE_EMBEDDINGS_INSTANCE_TYPE": INSTANCE,
}


# These tests read the EMF documents the code prints.
pytestmark = pytest.mark.usefixtures("emf_on")


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        embeddings=f"sagemaker:{ENDPOINT}",
        embedding_dimensions=8,
        embeddings_instance_type=INSTANCE,
    )


def test_sagemaker_embeddings_are_priced_by_endpoint_time(
    aws: None,
    database_url: str,
    cold_start: Callable[..., ModuleType],
    event: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a SageMaker embeddings endpoint on an instance type the price table knows
    queue_endpoint_results([[1.0, 0, 0, 0, 0, 0, 0, 0]], [[0.9, 0.1, 0, 0, 0, 0, 0, 0]])
    # WHEN an object is ingested through it
    result = Ingestor.from_settings(settings(database_url)).ingest_bytes(
        "s3://docs/leave.md", b"# Leave\n\nEmployees get 25 vacation days each year."
    )
    assert result.status == "ingested" and result.embedding_seconds > 0
    capsys.readouterr()
    Ledger.from_settings(settings(database_url)).ingest(result)
    # THEN its EMF document carries what the endpoint time cost
    (ingested,) = emf_documents(capsys.readouterr().out)
    expected = 1.408 * result.embedding_seconds / 3600
    assert value(ingested, "EmbeddingCostUSD") == pytest.approx(expected)
    get_store.cache_clear()

    # WHEN a question is embedded through it
    api = cold_start("query", RAGLINE_DATABASE_URL=database_url, **ENVIRONMENT)
    request = copy.deepcopy(event("api_query"))
    request["body"] = json.dumps({"question": "How many vacation days?"})
    response = api.lambda_handler(request, lambda_context)
    body = json.loads(response["body"])
    # THEN the answer's cost is a number, flagged as estimated from the instance's time
    assert response["statusCode"] == 200, body
    usage = body["usage"]
    assert usage["cost_usd"] is not None and usage["cost_usd"] > 0
    assert usage["cost_estimated"] is True
    # AND CostUSD is emitted with it
    (queried,) = emf_documents(capsys.readouterr().out)
    assert value(queried, "CostUSD") == pytest.approx(usage["cost_usd"])
