"""The library's import graph points one way (docs: CONTRIBUTING.md, "Where a change goes").

Read from the source with ``ast``, typing-only imports included: an arrow drawn for the
type checker today becomes a runtime import tomorrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "layers" / "common" / "python" / "ragline"

# leaves: package -> the only ragline packages it may import
LEAVES: dict[str, set[str]] = {
    "errors": set(),
    "tokens": set(),
    "records": set(),
    "filters": set(),
    "config": {"errors"},
}

# package -> the ragline packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "telemetry": {
        "answer",
        "ingest",
        "ledger",
        "store",
        "llm",
        "embeddings",
        "rerankers",
        "providers",
        "retrieval",
        "documents",
        "catalog",
        "dev",
    },
    # providers and their shared plumbing never import each other
    "providers": {"llm", "embeddings", "rerankers", "answer", "ingest", "ledger", "store", "dev"},
    "llm": {"embeddings", "rerankers", "answer", "ingest", "ledger", "store", "telemetry", "dev"},
    "embeddings": {"llm", "rerankers", "answer", "ingest", "ledger", "store", "telemetry", "dev"},
    "rerankers": {
        "llm",
        "embeddings",
        "retrieval",
        "answer",
        "ingest",
        "ledger",
        "store",
        "telemetry",
        "dev",
    },
    "documents": {"llm", "embeddings", "answer", "ingest", "ledger", "store", "dev"},
    # the store is below every use case
    "store": {
        "answer",
        "ingest",
        "ledger",
        "llm",
        "embeddings",
        "rerankers",
        "telemetry",
        "retrieval",
        "catalog",
        "dev",
    },
    # the shipped library never reaches into the local stack, nor into the evaluation
    # (which composes the use cases and is not shipped)
    "answer": {"dev", "evaluation"},
    "ingest": {"dev", "evaluation"},
    "ledger": {"dev", "answer", "ingest", "evaluation"},
    "retrieval": {"evaluation", "dev"},
    "catalog": {"evaluation", "dev"},
    # the endpoint meter reads SageMaker and publishes metrics; it never touches the store
    "metering": {
        "store",
        "answer",
        "ingest",
        "ledger",
        "retrieval",
        "documents",
        "evaluation",
        "dev",
    },
    "evaluation": {"dev"},
}

# third-party modules only one package may import
OWNED = {"psycopg": {"store"}, "pgvector": {"store"}, "openai": {"llm", "embeddings", "providers"}}


def _package(path: Path) -> str:
    return path.relative_to(LIBRARY).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Top-level names (``ragline.x`` as ``ragline.x``) this module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            found.add(".".join(parts[:2]) if parts[0] == "ragline" else parts[0])
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in LIBRARY.rglob("*.py"):
        if path.parent == LIBRARY and path.name == "__init__.py":
            continue
        graph.setdefault(_package(path), set()).update(_imports(path))
    return graph


def _ragline_imports(package: str) -> set[str]:
    imported = {name.split(".")[1] for name in GRAPH[package] if name.startswith("ragline.")}
    return imported - {package}


GRAPH = _graph()


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up_or_sideways(package: str) -> None:
    # GIVEN the ragline packages a package imports
    imported = _ragline_imports(package)
    # THEN none is one it must not import
    assert imported & FORBIDDEN[package] == set()


@pytest.mark.parametrize("package", sorted(LEAVES))
def test_leaves_import_nothing_above_them(package: str) -> None:
    assert _ragline_imports(package) <= LEAVES[package]


@pytest.mark.parametrize("module", sorted(OWNED))
def test_third_party_clients_stay_in_their_package(module: str) -> None:
    # GIVEN the packages importing a driver or a model SDK
    importers = {package for package, names in GRAPH.items() if module in names}
    # THEN only its owners (and the local stack, which is not shipped) do
    assert importers - {"dev"} <= OWNED[module]


def test_the_graph_is_read() -> None:
    # a guard against a test that passes because it read nothing
    assert {"ragline.errors", "ragline.config"} <= set().union(*GRAPH.values())
    assert "psycopg" in GRAPH["store"]
