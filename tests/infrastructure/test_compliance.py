"""cdk-nag AwsSolutions with zero unacknowledged findings, and cfn-lint with zero errors.

Every acknowledgment lives next to its cause in `stacks/` with a reason; a second
synthesis with the acknowledgments recorded but not applied shows that each one covers
a real finding, so none outlives the finding it was written for.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

import stacks.nag
from stacks import build_app
from tests.infrastructure.synthesis import CONFIGURATIONS, Synthesized, context_for

NAG_PLUGIN = "AwsSolutions"
ALL = list(CONFIGURATIONS)


@pytest.mark.parametrize("configuration", ALL)
def test_cdk_nag_reports_no_finding(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN a configuration synthesized with cdk-nag's AwsSolutions checks
    report = synthesized(configuration).validation_report
    # THEN no plugin failed and cdk-nag reported nothing, warnings included
    for plugin in report["pluginReports"]:
        assert plugin["conclusion"] == "success", plugin
        if plugin["pluginName"] == NAG_PLUGIN:
            assert plugin["violations"] == []


@pytest.mark.parametrize("configuration", ALL)
def test_every_acknowledgment_matches_a_finding_and_has_a_reason(
    configuration: str, tmp_path: Path
) -> None:
    # GIVEN the acknowledgments recorded instead of applied
    with recorded_acknowledgments() as acknowledged:
        app = build_app(context_for(CONFIGURATIONS[configuration]), outdir=str(tmp_path))
        # WHEN synthesized, cdk-nag reports every finding
        with pytest.raises(RuntimeError, match="ValidationFailed"):
            app.synth()
    findings = _findings(json.loads((tmp_path / "validation-report.json").read_text()))
    # THEN each finding is covered by an acknowledgment on its construct or a parent
    unacknowledged = [f for f in findings if not any(_covers(a, f) for a in acknowledged)]
    assert unacknowledged == []
    # AND each acknowledgment covers some finding, and says why in a sentence
    stale = [a for a in acknowledged if not any(_covers(a, f) for f in findings)]
    assert stale == []
    for _path, _rule, reason in acknowledged:
        assert len(reason) > 40


@pytest.mark.parametrize("configuration", ALL)
def test_cfn_lint_finds_no_error(
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN the synthesized template WHEN cfn-lint checks it
    matches = lint_file(synthesized(configuration).template_path)
    # THEN nothing is an error (warnings such as hard-coded AZs come from aws-cdk-lib)
    errors = [str(match) for match in matches if match.rule.id.startswith("E")]
    assert errors == []


@contextmanager
def recorded_acknowledgments() -> Iterator[list[tuple[str, str, str]]]:
    """Replace ``acknowledge`` in every stacks module with a recorder, for the block."""
    recorded: list[tuple[str, str, str]] = []

    def record(scope: Any, rule: str, reason: str) -> None:
        recorded.append((scope.node.path, rule, reason))

    original = stacks.nag.acknowledge
    patched = [
        module
        for name, module in sys.modules.items()
        if name.startswith("stacks.") and getattr(module, "acknowledge", None) is original
    ]
    for module in patched:
        module.acknowledge = record  # type: ignore[attr-defined]
    try:
        yield recorded
    finally:
        for module in patched:
            module.acknowledge = original  # type: ignore[attr-defined]


def _findings(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (construct["constructPath"], violation["ruleName"])
        for plugin in report["pluginReports"]
        if plugin["pluginName"] == NAG_PLUGIN
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]


def _covers(acknowledgment: tuple[str, str, str], finding: tuple[str, str]) -> bool:
    path, rule, _reason = acknowledgment
    finding_path, finding_rule = finding
    return rule == finding_rule and (finding_path == path or finding_path.startswith(f"{path}/"))
