"""The variables the stack gives its functions are the ones the library's Settings read."""

from __future__ import annotations

import pytest
from ragline.config import Settings, variable

from tests.infrastructure.synthesis import Synthesized

# Read by the libraries themselves, not by Settings: Powertools' log level, the OpenAI
# SDK's server address; and by Lambda: the streaming query function's exec wrapper.
NOT_SETTINGS = {"POWERTOOLS_LOG_LEVEL", "OPENAI_BASE_URL", "AWS_LAMBDA_EXEC_WRAPPER"}


@pytest.mark.parametrize("configuration", ["default", "endpoint", "openai", "isolated"])
def test_every_variable_a_function_gets_is_a_setting(
    request: pytest.FixtureRequest, configuration: str
) -> None:
    # GIVEN a synthesized configuration (endpoint and openai set the optional variables)
    synthesized: Synthesized = request.getfixturevalue(configuration)
    settings_variables = {variable(field) for field in Settings.model_fields}
    functions = synthesized.of_type("AWS::Lambda::Function")
    seen = set()
    for logical_id, function in functions.items():
        environment = function["Properties"].get("Environment", {}).get("Variables", {})
        if "POWERTOOLS_SERVICE_NAME" not in environment:
            continue  # CDK's own functions (custom resource providers), not ragline's
        names = set(environment) - NOT_SETTINGS
        seen |= names
        # THEN each is a Settings variable (a renamed one would be ignored, or refused)
        assert names <= settings_variables, (logical_id, sorted(names - settings_variables))
        # AND the literal values pass the settings' validation, as at cold start
        literal = {name: value for name, value in environment.items() if isinstance(value, str)}
        Settings.from_env({name: literal[name] for name in names if name in literal})
    assert {"RAGLINE_LLM", "RAGLINE_EMBEDDINGS", "POWERTOOLS_METRICS_NAMESPACE"} <= seen
