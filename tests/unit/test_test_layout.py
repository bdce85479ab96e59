"""The test suite's own layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_test_modules_have_unique_names() -> None:
    # The test folders are not packages: pytest imports each module by its file name, so
    # a second module of the same name in another folder would fail to be collected.
    tests = Path(__file__).resolve().parents[1]
    names = Counter(path.name for path in tests.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
