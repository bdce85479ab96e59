"""Reading and checking CloudWatch Embedded Metric Format documents from captured output.

The checks follow the EMF specification: a root ``_aws`` object with an integer
millisecond ``Timestamp`` and ``CloudWatchMetrics`` directives, each with a
``Namespace``, ``Dimensions`` (arrays of up to 30 dimension keys, each a string member
of the root) and ``Metrics`` (``Name`` and an allowed ``Unit``, each a numeric member of
the root).
"""

from __future__ import annotations

import json
from typing import Any

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def emf_documents(output: str) -> list[dict[str, Any]]:
    """Every EMF document among the JSON lines of ``output``."""
    documents = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "_aws" in data:
            documents.append(data)
    return documents


def check_emf(document: dict[str, Any]) -> None:
    """Raise AssertionError where ``document`` breaks the EMF specification."""
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_500_000_000_000
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and 0 < len(directive["Namespace"]) <= 255
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and len(dimension_set) <= 30
            for key in dimension_set:
                assert isinstance(document.get(key), str), f"dimension {key} not a root string"
        assert 0 < len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert metric.get("Unit", "None") in UNITS, metric
            value = document[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def metric_units(document: dict[str, Any]) -> dict[str, str]:
    """Metric name -> unit, over all directives of the document."""
    return {
        m["Name"]: m.get("Unit", "None")
        for directive in document["_aws"]["CloudWatchMetrics"]
        for m in directive["Metrics"]
    }


def dimension_sets(document: dict[str, Any]) -> list[list[str]]:
    return [list(s) for d in document["_aws"]["CloudWatchMetrics"] for s in d["Dimensions"]]


def value(document: dict[str, Any], name: str) -> float:
    """The single value of metric ``name`` (EMF allows a value or an array of values)."""
    raw = document[name]
    if isinstance(raw, list):
        assert len(raw) == 1, f"{name} has {len(raw)} values"
        return float(raw[0])
    return float(raw)
