"""The import contract in pyproject.toml (`make lint`) catches wrong arrows.

Each case copies the library and the handlers, injects one wrong import and runs
``lint-imports`` on the copy: the contract must break, naming the arrow. The unchanged
copy must pass, so a failure is the injection's doing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = Path("layers/common/python/ragline")

# (file, line appended, what the report must name)
INJECTIONS: dict[str, tuple[str, str, str]] = {
    "relative import of the store in telemetry": (
        "telemetry/metrics.py",
        "from ..store import Store",
        "ragline.telemetry.metrics",
    ),
    "telemetry imports the evaluation": (
        "telemetry/pricing.py",
        "from ragline.evaluation import runner",
        "ragline.telemetry.pricing",
    ),
    "retrieval imports a use case (upward, a cycle)": (
        "retrieval.py",
        "from ragline.answer import answerer",
        "ragline.retrieval",
    ),
    "catalog imports answer (sideways)": (
        "catalog.py",
        "from ragline import answer",
        "ragline.catalog",
    ),
    "the store imports documents": (
        "store/facade.py",
        "from ragline.documents import parse_document",
        "ragline.store.facade",
    ),
    "the query handler imports the store": (
        "../../../../functions/query/handler.py",
        "from ragline.store import get_store",
        "functions.query.handler",
    ),
    "api imports the store": (
        "api.py",
        "from ragline.store import Store",
        "ragline.api",
    ),
    "a dynamic import of the store in telemetry": (
        "telemetry/tracing.py",
        'import importlib\n_store = importlib.import_module("ragline.store")',
        "ragline.telemetry.tracing",
    ),
    "boto3 in retrieval": ("retrieval.py", "import boto3", "ragline.retrieval"),
    "a typing-only import of the ledger in the store": (
        "store/search.py",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ragline.ledger import QueryRecord",
        "ragline.store.search",
    ),
    "psycopg outside the store": ("catalog.py", "import psycopg", "ragline.catalog"),
    "a document parser outside its loader": (
        "ingest/pipeline.py",
        "import pypdfium2",
        "ragline.ingest",
    ),
}


def _copy(destination: Path) -> Path:
    """The library, the handlers, the contract and its contract types, under ``destination``."""
    shutil.copytree(
        ROOT / LIBRARY, destination / LIBRARY, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(
        ROOT / "functions", destination / "functions", ignore=shutil.ignore_patterns("__pycache__")
    )
    (destination / "tests" / "support").mkdir(parents=True)
    for name in ("__init__.py", "import_contracts.py"):
        shutil.copy(ROOT / "tests" / "support" / name, destination / "tests" / "support" / name)
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        # the copy, not the editable install, is the package grimp reads
        "PYTHONPATH": os.pathsep.join([str(tree / LIBRARY.parent), str(tree)]),
    }
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo"]
    return subprocess.run(
        command, cwd=tree, env=environment, capture_output=True, text=True, timeout=120
    )


def _inject(tree: Path, file: str, line: str) -> None:
    path = (tree / LIBRARY / file).resolve()
    path.write_text(path.read_text("utf-8") + "\n" + line + "\n", "utf-8")


@pytest.mark.slow
def test_the_contract_holds_on_the_code_and_breaks_on_each_wrong_arrow(tmp_path: Path) -> None:
    # GIVEN one copy of the code as it is, and one copy per injected wrong import
    clean = _copy(tmp_path / "clean")
    trees = {}
    for index, (name, (file, line, _)) in enumerate(INJECTIONS.items()):
        trees[name] = _copy(tmp_path / f"case{index}")
        _inject(trees[name], file, line)

    # WHEN lint-imports runs on each (two at a time: the machine has two cores)
    with ThreadPoolExecutor(max_workers=2) as pool:
        clean_run = pool.submit(_lint, clean)
        runs = {name: pool.submit(_lint, tree) for name, tree in trees.items()}
        results = {name: run.result() for name, run in runs.items()}

    # THEN the code as it is keeps every contract
    assert clean_run.result().returncode == 0, clean_run.result().stdout
    # AND every injection breaks one, naming the module that drew the arrow
    for name, (_, _, importer) in INJECTIONS.items():
        result = results[name]
        assert result.returncode != 0, f"{name}: not caught\n{result.stdout}"
        assert "BROKEN" in result.stdout, name
        assert importer in result.stdout, f"{name}: {result.stdout}"
