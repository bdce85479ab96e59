"""`npx cdk synth` through the pinned aws-cdk CLI: offline, with no AWS credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infrastructure.synthesis import ROOT

CLI = ROOT / "node_modules" / ".bin" / "cdk"
# jsii's default package cache for this user
_JSII_PACKAGE_CACHE = Path.home() / (
    "Library/Caches/com.amazonaws.jsii/package-cache"
    if sys.platform == "darwin"
    else ".cache/aws/jsii/package-cache"
)


def _install_cli() -> None:
    if CLI.exists():
        return
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=ROOT,
        check=True,
        timeout=300,
    )


def _environment_without_credentials(home: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    environment.update(
        {
            "HOME": str(home),  # no ~/.aws, no ~/.cdk.json
            "AWS_CONFIG_FILE": str(home / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            # jsii unpacks aws-cdk-lib (200 MB) into a cache under $HOME; keep this user's
            # cache, or each run spends a minute unpacking it into the fresh HOME.
            "JSII_RUNTIME_PACKAGE_CACHE_ROOT": os.environ.get(
                "JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(_JSII_PACKAGE_CACHE)
            ),
        }
    )
    return environment


def _run_app_py(tmp_path: Path, context: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python app.py` with ``context`` as the CLI passes `-c` values (CDK_CONTEXT_JSON),
    no AWS credentials, writing under ``tmp_path / "out"``."""
    environment = _environment_without_credentials(tmp_path)
    environment["CDK_CONTEXT_JSON"] = json.dumps(context)
    environment["CDK_OUTDIR"] = str(tmp_path / "out")
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_npx_cdk_synth_succeeds_offline_without_credentials(tmp_path: Path) -> None:
    # GIVEN the pinned CLI and an environment with no AWS credentials at all
    _install_cli()
    outdir = tmp_path / "cdk.out"
    # WHEN `npx cdk synth` runs the app as a user would (bundling skipped for speed)
    completed = subprocess.run(
        [
            "npx",
            "--no-install",
            "cdk",
            "synth",
            "--quiet",
            "--no-notices",
            "--no-version-reporting",
            "--context",
            "bundling=false",
            "--output",
            str(outdir),
        ],
        cwd=ROOT,
        env=_environment_without_credentials(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # THEN it succeeds, with no context lookup, and writes the stack's template
    assert completed.returncode == 0, completed.stderr[-4000:]
    template = json.loads((outdir / "Ragline.template.json").read_text())
    types = {resource["Type"] for resource in template["Resources"].values()}
    assert {"AWS::RDS::DBCluster", "AWS::ApiGateway::RestApi", "AWS::SQS::Queue"} <= types
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert "missing" not in manifest  # no lookup left unresolved (AZs come from cdk.json)


@pytest.mark.slow
def test_python_app_py_synthesizes_with_cdk_json_context(tmp_path: Path) -> None:
    # GIVEN app.py run directly, as `python app.py`, with one override in CDK's own
    # context variable (how the CLI passes `-c`) and no AWS credentials
    # WHEN it runs
    completed = _run_app_py(tmp_path, {"bundling": "false", "network": "isolated"})
    # THEN the template reflects cdk.json's defaults and the override
    assert completed.returncode == 0, completed.stderr[-4000:]
    template = json.loads((tmp_path / "out" / "Ragline.template.json").read_text())
    types = [resource["Type"] for resource in template["Resources"].values()]
    assert "AWS::EC2::NatGateway" not in types
    assert types.count("AWS::EC2::VPCEndpoint") == 7


@pytest.mark.slow
def test_a_mistyped_context_key_is_one_readable_line_not_a_traceback(tmp_path: Path) -> None:
    # GIVEN app.py with a context key one letter off a setting (`-c llmm=...`)
    # WHEN it runs
    completed = _run_app_py(tmp_path, {"bundling": "false", "llmm": "openai:gpt-4o"})
    # THEN it fails with the hint alone: no traceback, nothing synthesized
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "llmm (did you mean llm?)" in completed.stderr
    assert not (tmp_path / "out" / "Ragline.template.json").exists()
