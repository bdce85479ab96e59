#!/usr/bin/env python3
"""The ragline CDK app: `npx cdk synth|deploy`, or `python app.py` to synthesize.

Settings come from the `context` of `cdk.json`, overridden by `-c key=value` (see
docs/deploy.md). No AWS credentials are needed to synthesize: without them the
account and region default to the placeholders whose availability zones `cdk.json`
lists.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Before aws_cdk starts its Node.js runtime: Node 20 is supported but past its end of life.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from stacks import build_app
from stacks.settings import SettingsError

CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def default_context(environ: dict[str, str]) -> dict[str, Any]:
    """cdk.json's context, plus the account and region the CLI found, if any.

    `python app.py` does not read cdk.json by itself (the CLI does), so it is read here;
    the CLI's own context values take precedence over these defaults.
    """
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    for key, variable in (("account", "CDK_DEFAULT_ACCOUNT"), ("region", "CDK_DEFAULT_REGION")):
        if environ.get(variable) and key not in context:
            context[key] = environ[variable]
    return context


def main() -> int:
    # The CLI names the output directory; run directly, write where the CLI would.
    outdir = None if os.environ.get("CDK_OUTDIR") else "cdk.out"
    try:
        app = build_app(default_context(dict(os.environ)), outdir=outdir)
    except SettingsError as exc:
        # A setting the deployer mistyped: the message says what to fix; a traceback
        # through the stack's code would bury it.
        print(f"ragline: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
