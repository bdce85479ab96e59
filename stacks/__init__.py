"""The ragline CDK app: one stack composing one construct per concern.

`build_app` is what `app.py` (and the infrastructure tests) call: it reads the
settings from the CDK context, builds the stack and registers cdk-nag.
"""

from stacks.application import build_app, settings_from_app
from stacks.ragline_stack import RaglineStack
from stacks.settings import DeploymentSettings, SettingsError

__all__ = ["DeploymentSettings", "RaglineStack", "SettingsError", "build_app", "settings_from_app"]
