"""Issue 18's "done when", measured: each full-size hostile file uploaded through S3 to
a fresh ``ragline dev`` (default budgets), then a control document; per file, the
status and reason it ends with, the seconds from upload to that status, the seconds
until the control document is answerable, and the peak memory of the dev process's tree
(the Python process, its embedded PostgreSQL and the forked parse children: summed PSS,
and summed RSS which counts shared pages in each process) compared with the ingest
function's configured memory.

    python bench/hostile_uploads.py [--scale full|small]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("full", "small"), default="full")
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    parser.add_argument("--control-timeout", type=float, default=120.0)
    args = parser.parse_args()

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import boto3

    from stacks.settings import DeploymentSettings
    from tests.e2e.hostile_uploads import SMALL_BUDGETS, files, table, upload_each
    from tests.e2e.support import DevProcess
    from tests.support.process_tree import MIB, TreeMemorySampler, tree_memory

    deployed = DeploymentSettings()
    hostile_files = files(args.scale)
    environment = SMALL_BUDGETS if args.scale == "small" else {}
    with tempfile.TemporaryDirectory(prefix="ragline-hostile-") as folder:
        stack = DevProcess.start(Path(folder) / "data", environment=environment)
        try:
            endpoints = stack.wait_for_endpoints()
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoints["s3"],
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            time.sleep(2.0)  # let start-up settle before the idle reading
            baseline = tree_memory(stack.process.pid)[0] / MIB
            with TreeMemorySampler(stack.process.pid) as sampler:
                results = upload_each(
                    endpoints,
                    s3,
                    sampler,
                    hostile_files,
                    settle_timeout=args.settle_timeout,
                    control_timeout=args.control_timeout,
                )
        finally:
            stack.stop()
    print(table(results, baseline))
    worst = max(results, key=lambda r: r.peak_pss_mb)
    print(
        f"\nworst tree peak: {worst.peak_pss_mb:.0f} MB PSS ({worst.title}); the deployed "
        f"ingest function has {deployed.ingest_memory_mb} MB and parses with "
        f"{deployed.ingest_parse_memory_mb} MB and {deployed.ingest_parse_timeout_seconds} s "
        f"(ragline dev: the library's defaults, RAGLINE_PARSE_*)"
    )
    print(f"slowest control document: {max(r.control_seconds for r in results):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
