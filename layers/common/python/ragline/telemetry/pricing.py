"""The price table and the cost of a request, computed once from the usage reported.

Prices are data (``prices.json`` in this package, USD per million tokens, per 1,000
queries for rerankers, and per hour for SageMaker instances), overridable by a file the
deployer supplies (``RAGLINE_PRICES_FILE``, merged over the packaged table). A model
missing from the table costs ``None`` with a warning, never a silent zero.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from ragline.errors import ConfigurationError

logger = logging.getLogger(__name__)
PER_MILLION = 1_000_000
PER_THOUSAND = 1_000
# What providers append to a model name for a dated or pinned snapshot of it.
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}|-\d{4}|-\d{8}|-latest")


class TokenUsage(Protocol):
    """The token counts a model call reports (``ragline.llm.Usage`` is one)."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cached_input_tokens(self) -> int: ...


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens. Cached input defaults to the input price when not listed."""

    input: float
    output: float = 0.0
    cached_input: float | None = None


@dataclass(frozen=True)
class Cost:
    """A cost in USD, or None when something used is not priced.

    ``estimated`` marks costs inferred rather than billed per token (SageMaker: the
    instance's hourly price times the time the call held it).
    """

    usd: float | None
    estimated: bool = False
    unpriced: tuple[str, ...] = ()

    def __add__(self, other: Cost) -> Cost:
        usd = None if self.usd is None or other.usd is None else self.usd + other.usd
        return Cost(usd, self.estimated or other.estimated, self.unpriced + other.unpriced)


def _price(entry: Any, name: str) -> ModelPrice:
    if not isinstance(entry, dict) or "input" not in entry:
        raise ConfigurationError(f"price table: {name!r} needs at least an 'input' price")
    try:
        return ModelPrice(
            input=float(entry["input"]),
            output=float(entry.get("output", 0.0)),
            cached_input=None
            if entry.get("cached_input") is None
            else float(entry["cached_input"]),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"price table: {name!r} has a non-numeric price") from exc


class PriceTable:
    """Model prices by ``provider:model``, reranker prices (USD per 1,000 queries) by
    ``provider:model``, and SageMaker instance prices by type."""

    def __init__(
        self,
        models: dict[str, ModelPrice],
        instances: dict[str, float],
        rerankers: dict[str, float] | None = None,
    ) -> None:
        self.models = models
        self.instances = instances
        self.rerankers = rerankers or {}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PriceTable:
        models = {name: _price(entry, name) for name, entry in data.get("models", {}).items()}
        instances = {k: float(v) for k, v in data.get("sagemaker_instances", {}).items()}
        rerankers: dict[str, float] = {}
        for name, price in data.get("rerankers", {}).items():
            if name == "about":
                continue
            try:
                rerankers[name] = float(price)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"price table: reranker {name!r} needs a number (USD per 1,000 queries)"
                ) from exc
        return cls(models, instances, rerankers)

    @classmethod
    def load(cls, override: Path | None = None) -> PriceTable:
        """The packaged table, with the entries of ``override`` (a JSON file) on top."""
        packaged = resources.files("ragline.telemetry").joinpath("prices.json").read_text()
        data: dict[str, Any] = json.loads(packaged)
        if override is not None:
            try:
                extra = json.loads(Path(override).read_text())
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"price file {override}: {exc}") from exc
            data["models"] = {**data.get("models", {}), **extra.get("models", {})}
            data["rerankers"] = {**data.get("rerankers", {}), **extra.get("rerankers", {})}
            data["sagemaker_instances"] = {
                **data.get("sagemaker_instances", {}),
                **extra.get("sagemaker_instances", {}),
            }
        return cls.from_data(data)

    def model(self, spec: str) -> ModelPrice | None:
        """The price of ``provider:model``; dated snapshots match their base name
        (``openai:gpt-4o-mini-2024-07-18`` is priced as ``openai:gpt-4o-mini``)."""
        if spec in self.models:
            return self.models[spec]
        candidates = [
            k for k in self.models
            if spec.startswith(k) and _SNAPSHOT_SUFFIX.fullmatch(spec[len(k) :])
        ]  # fmt: skip
        return self.models[max(candidates, key=len)] if candidates else None

    def generation_cost(
        self,
        provider: str,
        model: str,
        usage: TokenUsage,
        *,
        seconds: float | None = None,
        instance_type: str | None = None,
    ) -> Cost:
        """Cost of one model call from the usage the provider reported."""
        spec = provider if provider == model else f"{provider}:{model}"
        if provider == "sagemaker":
            return self.instance_cost(instance_type, seconds)
        price = self.model(spec)
        if price is None:
            return self._unpriced(spec)
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        usd = (
            (usage.input_tokens - cached) * price.input
            + cached * cached_rate
            + usage.output_tokens * price.output
        ) / PER_MILLION
        return Cost(usd)

    def embedding_cost(
        self, spec: str, tokens: int, *, seconds: float | None = None,
        instance_type: str | None = None,
    ) -> Cost:  # fmt: skip
        """Cost of embedding ``tokens`` tokens with the embedder named ``spec``."""
        if tokens == 0:
            return Cost(0.0)
        if spec.startswith("sagemaker:"):
            return self.instance_cost(instance_type, seconds)
        if spec.startswith("hash"):
            spec = "hash"
        price = self.model(spec)
        if price is None:
            return self._unpriced(spec)
        return Cost(tokens * price.input / PER_MILLION)

    def rerank_cost(
        self, spec: str, queries: int, *, seconds: float | None = None,
        instance_type: str | None = None,
    ) -> Cost:  # fmt: skip
        """Cost of one rerank call: ``queries`` billed queries with the reranker ``spec``,
        or for a SageMaker endpoint the instance time the call held."""
        if spec.startswith("sagemaker:"):
            return self.instance_cost(instance_type, seconds)
        price = self.rerankers.get(spec)
        if price is None:
            return self._unpriced(f"reranker {spec}")
        return Cost(queries * price / PER_THOUSAND)

    def instance_cost(self, instance_type: str | None, seconds: float | None) -> Cost:
        """Cost of ``seconds`` of SageMaker instance time (instances x seconds for several)
        at ``instance_type``'s hourly price; an estimate, since SageMaker bills by the hour
        an instance exists. An unknown type (or no time) costs None with a warning."""
        hourly = self.instances.get(instance_type or "")
        if hourly is None or seconds is None:
            return self._unpriced(f"sagemaker instance {instance_type or '(unset)'}")
        return Cost(hourly * seconds / 3600, estimated=True)

    @staticmethod
    def _unpriced(name: str) -> Cost:
        logger.warning(
            "no price for %s in the price table: cost reported as null "
            "(add it with RAGLINE_PRICES_FILE)",
            name,
        )
        return Cost(None, unpriced=(name,))


@lru_cache(maxsize=8)
def get_price_table(override: Path | None = None) -> PriceTable:
    """The price table for this process (loaded once)."""
    return PriceTable.load(override)
