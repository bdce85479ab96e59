"""Building the CDK app from a context mapping: settings, the stack and cdk-nag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.ragline_stack import RaglineStack
from stacks.settings import DeploymentSettings

# Context keys that configure the app itself rather than the deployment.
NAG_KEY = "cdk_nag"


def settings_from_app(app: App) -> DeploymentSettings:
    """The deployment settings from everything in the app's context."""
    context = {k: v for k, v in app.node.get_all_context().items() if k != NAG_KEY}
    return DeploymentSettings.from_context(context)


def build_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> App:
    """Create the app with ``context`` as defaults (the CLI's ``-c`` values win).

    cdk-nag's AwsSolutions checks run at synthesis unless the context sets
    ``cdk_nag`` to false; any finding not acknowledged in the code fails the synth.
    """
    app = App(context=dict(context or {}), outdir=outdir)
    settings = settings_from_app(app)
    RaglineStack(app, settings.stack_name, settings=settings)
    if str(app.node.try_get_context(NAG_KEY)).lower() != "false":
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app
