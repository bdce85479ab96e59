"""cdk-nag AwsSolutions with zero unacknowledged findings, and cfn-lint with zero errors.

Every acknowledgment lives next to its cause in `stacks/` with a reason; the findings
cdk-nag reports before any acknowledgment is applied (see synthesis.py) show that each
one covers a real finding, so none outlives the finding it was written for.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cfnlint.api import lint_file

from tests.infrastructure.synthesis import (
    CONFIGURATIONS,
    Acknowledged,
    Finding,
    Synthesized,
)

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
    configuration: str, synthesized: Callable[[str], Synthesized]
) -> None:
    # GIVEN the acknowledgments the stacks made
    synthesis = synthesized(configuration)
    acknowledged = synthesis.acknowledgments
    # WHEN cdk-nag checks the tree before they are applied, it reports every finding
    findings = synthesis.findings
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


def _covers(acknowledgment: Acknowledged, finding: Finding) -> bool:
    path, rule, _reason = acknowledgment
    finding_path, finding_rule = finding
    return rule == finding_rule and (finding_path == path or finding_path.startswith(f"{path}/"))
