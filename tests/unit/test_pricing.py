"""Cost arithmetic against hand-computed cases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from ragline.errors import ConfigurationError
from ragline.llm import Usage
from ragline.telemetry.pricing import Cost, PriceTable


@pytest.fixture
def table() -> PriceTable:
    return PriceTable.load()


def test_cached_input_tokens_are_billed_at_the_cached_rate(table: PriceTable) -> None:
    # GIVEN gpt-4o-mini at $0.15 input, $0.075 cached input, $0.60 output per million
    usage = Usage(input_tokens=1000, output_tokens=200, cached_input_tokens=400)
    # WHEN priced: 600 x 0.15 + 400 x 0.075 + 200 x 0.60 = 240 (per million)
    cost = table.generation_cost("openai", "gpt-4o-mini", usage)
    assert cost == Cost(pytest.approx(240e-6))  # type: ignore[arg-type]
    assert not cost.estimated


def test_cached_rate_defaults_to_input_rate(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=500_000)
    cost = table.generation_cost("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", usage)
    assert cost.usd == pytest.approx(0.25)


def test_dated_snapshots_use_their_base_price(table: PriceTable) -> None:
    usage = Usage(input_tokens=2_000_000, output_tokens=1_000_000)
    cost = table.generation_cost("openai", "gpt-4o-mini-2024-07-18", usage)
    assert cost.usd == pytest.approx(2 * 0.15 + 0.60)
    # a different model that merely shares a prefix is not matched
    assert table.model("openai:gpt-4o-minimal") is None


def test_a_missing_price_is_null_with_a_warning(
    table: PriceTable, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        cost = table.generation_cost("openai", "my-finetune", Usage(10, 10))
    assert cost.usd is None and cost.unpriced == ("openai:my-finetune",)
    assert "no price for openai:my-finetune" in caplog.text
    # and null stays null when added to a priced part
    assert (cost + Cost(0.5)).usd is None


def test_sagemaker_cost_is_instance_time_and_flagged_estimated(table: PriceTable) -> None:
    cost = table.generation_cost(
        "sagemaker",
        "my-endpoint",
        Usage(100, 100, estimated=True),
        seconds=2.5,
        instance_type="ml.g5.xlarge",
    )
    assert cost.usd == pytest.approx(1.408 * 2.5 / 3600)
    assert cost.estimated
    assert table.generation_cost("sagemaker", "e", Usage(), seconds=1.0).usd is None


def test_embedding_cost_and_free_local_models(table: PriceTable) -> None:
    assert table.embedding_cost("openai:text-embedding-3-small", 5000).usd == pytest.approx(1e-4)
    assert table.embedding_cost("hash:128", 5000).usd == 0.0
    assert table.embedding_cost("minilm", 5000).usd == 0.0
    assert table.embedding_cost("minilm-onnx", 5000).usd == 0.0
    free = table.generation_cost("extractive", "extractive", Usage(500, 50))
    assert (free + table.embedding_cost("hash", 20)).usd == 0.0
    paid = table.generation_cost("openai", "gpt-4o-mini", Usage(1000, 200, 400))
    paid += table.embedding_cost("openai:text-embedding-3-small", 1000)
    assert paid.usd == pytest.approx(240e-6 + 20e-6)


def test_override_file_adds_and_replaces_prices(tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(
        json.dumps(
            {
                "models": {
                    "openai:my-finetune": {"input": 3, "output": 12},
                    "openai:gpt-4o-mini": {"input": 1, "output": 1},
                },
                "sagemaker_instances": {"ml.g6.xlarge": 0.9},
            }
        )
    )
    table = PriceTable.load(override)
    assert table.generation_cost("openai", "my-finetune", Usage(1_000_000, 0)).usd == 3
    assert table.generation_cost("openai", "gpt-4o-mini", Usage(1_000_000, 0)).usd == 1
    assert table.instances["ml.g6.xlarge"] == 0.9 and "ml.g5.xlarge" in table.instances
    override.write_text('{"models": {"x": {"output": 1}}}')
    with pytest.raises(ConfigurationError, match="'x' needs at least an 'input' price"):
        PriceTable.load(override)
