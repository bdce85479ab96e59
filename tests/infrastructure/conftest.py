"""Session fixtures: each deployment configuration synthesized once, bundling skipped."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.infrastructure.synthesis import CONFIGURATIONS, Synthesized, synthesize


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Synthesized]:
    """``synthesized(name)``: the configuration ``name``, synthesized once per session."""
    cache: dict[str, Synthesized] = {}

    def get(name: str) -> Synthesized:
        if name not in cache:
            cache[name] = synthesize(CONFIGURATIONS[name], tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def default(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("default")


@pytest.fixture(scope="session")
def private_server(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("private_server")


@pytest.fixture(scope="session")
def nat(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("nat")


@pytest.fixture(scope="session")
def isolated(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("isolated")


@pytest.fixture(scope="session")
def endpoint(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("endpoint")


@pytest.fixture(scope="session")
def scale_to_zero(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("scale_to_zero")


@pytest.fixture(scope="session")
def openai(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("openai")


@pytest.fixture(scope="session")
def data_api(synthesized: Callable[[str], Synthesized]) -> Synthesized:
    return synthesized("data-api")
