"""Schemathesis against a real ``ragline dev``, from the OpenAPI document it serves.

Bounded and reproducible (a fixed seed, a fixed number of examples per operation, no
example database carried between runs). It fails on any 5xx, any status or body the
document does not declare, a request the document forbids being served, and any body
that is not strict JSON (``schemathesis_hooks.strict_json``). Two checks are left out:
``positive_data_acceptance``, since some requests the schema allows are still refused
by what is stored (a cursor of the right shape the API never handed out); and
``ignored_auth``, since the deployed API's ``x-api-key`` is API Gateway's to check and
``ragline dev`` has no gateway (the hooks also drop the scheme from the fuzzed document).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import http_json, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED = "20260901"
EXAMPLES_PER_OPERATION = "40"


def test_the_api_honours_its_openapi_document(
    endpoints: dict[str, str], s3: Any, module_scratch: Path
) -> None:
    # GIVEN `ragline dev` holding one ingested document, so searches return scored passages
    api = endpoints["api"]
    s3.put_object(
        Bucket=endpoints["bucket"],
        Key="guide/tides.md",
        Body=b"# Tides\n\n## Harbour\n\nHigh tide at the Quillfeather harbour is at 6:40.\n",
    )

    def ingested() -> bool:
        status, body = http_json("POST", f"{api}/retrieve", {"query": "harbour tide"})
        return status == 200 and bool(body["results"])

    wait_until(ingested, timeout=30, what="the document to be searchable")

    # WHEN schemathesis tests every operation of the document the API serves
    workdir = module_scratch / "schemathesis"
    workdir.mkdir()
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
    }
    run = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{api}/swagger?format=json",
            "--url", api,
            "--checks", "all", "--exclude-checks", "positive_data_acceptance,ignored_auth",
            "--max-examples", EXAMPLES_PER_OPERATION, "--seed", SEED,
            "--generation-database", "none", "--workers", "1",
            "--request-timeout", "10", "--no-color", "--report-dir", str(workdir / "report"),
        ],
        cwd=workdir, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    # THEN every response is one the document declares, none a 5xx, all strict JSON
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"[1-9]\d* generated, [1-9]\d* passed", run.stdout), run.stdout[-2000:]
