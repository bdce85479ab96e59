"""``ragline sync``: make the store match the bucket, locally or on a deployed stack.

Locally it reconciles in-process against the running ``ragline dev``. For a deployed
stack (``--stack``) the database sits in the stack's VPC: the stack's reconcile function
(deployed with ``-c reconcile=true``) runs it there, or, when RAGLINE_DATABASE_URL
reaches the database (a tunnel), it runs here with the stack's bucket.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from ragline.dev.commands.common import (
    add_target_arguments,
    local_embeddings,
    use_data_dir,
    without_emf,
)

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from ragline.dev.commands.common import Subcommands
    from ragline.dev.targets import Target


def register(commands: Subcommands) -> None:
    """``ragline sync`` and its options."""
    sync = commands.add_parser(
        "sync",
        help="make the store match the bucket: ingest missing or changed objects, delete "
        "documents whose object is gone",
        description="Reconcile the store with the documents bucket of the running `ragline "
        "dev` (default) or of a deployed stack (--stack, found by its CloudFormation outputs; "
        "runs its reconcile function, or here when RAGLINE_DATABASE_URL reaches its "
        "database). Unchanged objects are not read or embedded again. Exits 1 when an "
        "object failed.",
    )
    add_target_arguments(sync)
    sync.add_argument("--prefix", default="", help="only the keys starting with this")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    sync.set_defaults(run=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    """Reconcile the store with the bucket and print the counts; exit 1 if any failed."""
    use_data_dir(args.data_dir)
    if not args.stack:
        stack_embeddings(args.data_dir)
        local_embeddings()  # the choice `ragline dev` made for the same store
    without_emf()
    from ragline.config import get_settings
    from ragline.dev.targets import TargetError, deployed_target, local_target

    try:
        target = (
            deployed_target(args.stack, args.region) if args.stack else local_target(args.data_dir)
        )
    except TargetError as exc:
        print(f"ragline sync: {exc}", file=sys.stderr)
        return 2
    if target.local or get_settings().database_url:
        report = _reconcile_here(target, args.prefix)
    elif target.reconcile_function:
        try:
            report = _reconcile_there(target, args.prefix)
        except RuntimeError as exc:
            print(f"ragline sync: {exc}", file=sys.stderr)
            return 1
    else:
        print(
            f"ragline sync: {target.name} has no reconcile function and RAGLINE_DATABASE_URL "
            "is unset: deploy with `-c reconcile=true`, or reach the database through a "
            "tunnel and set RAGLINE_DATABASE_URL",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report, target.name))
    return 1 if report["counts"].get("failed") else 0


def stack_embeddings(data_dir: Path) -> None:
    """Embed as the local stack on ``data_dir`` does: its RAGLINE_EMBEDDING* variables
    (recorded in its endpoints file) over the shell's. A stack on ``hash`` and a shell
    at the MiniLM default would otherwise write vectors the store cannot hold."""
    from ragline.dev.stack import Endpoints

    try:
        endpoints = Endpoints.read(data_dir)
    except (FileNotFoundError, ValueError, TypeError):
        return  # no stack running: local_target says so
    os.environ.update(endpoints.embedding_environment)


def _reconcile_here(target: Target, prefix: str) -> dict[str, Any]:
    from ragline.ingest import S3ObjectReader, get_ingestor
    from ragline.ingest.reconcile import reconcile

    return reconcile(
        get_ingestor(), S3ObjectReader(target.s3), target.bucket, prefix=prefix
    ).to_dict()


def _reconcile_there(target: Target, prefix: str) -> dict[str, Any]:
    """Invoke the stack's reconcile function and return its report."""
    response = target.lambda_client.invoke(
        FunctionName=target.reconcile_function,
        Payload=json.dumps({"bucket": target.bucket, "prefix": prefix}).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError") or not isinstance(payload, dict):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise RuntimeError(f"the reconcile function {target.reconcile_function} failed: {message}")
    return payload


def format_report(report: dict[str, Any], where: str) -> str:
    """The counts on one line, then each failure with its reason."""
    counts = ", ".join(f"{status} {count}" for status, count in report["counts"].items())
    lines = [f"s3://{report['bucket']}/{report.get('prefix', '')} on {where}: {counts}"]
    lines += [f"  failed: {f['source']}: {f['error']}" for f in report.get("failures", [])]
    return "\n".join(lines)
