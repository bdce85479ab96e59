"""``ragline keys create|list|revoke``: the API keys of tenants, with their options.

The command works on the store the settings name: the embedded database of the data
directory by default; a deployed stack's database with ``RAGLINE_DATABASE_URL`` (through
a tunnel to the cluster), or without any tunnel through the RDS Data API with
``RAGLINE_DATABASE_DRIVER=data-api``, ``RAGLINE_DATABASE_CLUSTER_ARN`` and
``RAGLINE_DATABASE_SECRET_ARN`` (the stack's outputs) and AWS credentials allowed to use
them. A key is printed once, when created; only its digest is stored.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.dev.commands.common import use_data_dir

if TYPE_CHECKING:
    from ragline.dev.commands.common import Subcommands
    from ragline.store.records import KeyRecord
    from ragline.tenancy import Keys

_LIFETIME = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def expiry(value: str, now: datetime | None = None) -> datetime:
    """``--expires``: a lifetime (``12h``, ``30d``, ``8w``) or an ISO 8601 time with a zone."""
    match = _LIFETIME.match(value)
    if match:
        lifetime = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) + lifetime
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a lifetime (12h, 30d, 8w) nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone (for example +00:00)")
    return moment


def register(commands: Subcommands) -> None:
    """``ragline keys`` and its actions, with their options."""
    from ragline.identity import SCOPES

    keys = commands.add_parser(
        "keys",
        help="API keys of tenants: create, list, revoke",
        description="Manage the API keys of tenants in the store the settings name (the "
        "data directory's by default; a deployed stack's through RAGLINE_DATABASE_URL or "
        "the Data API settings).",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="create a key (and its tenant if new); the key is printed once",
        description="Create an API key for a tenant, creating the tenant if it is new. The "
        "key is printed once: only its digest is stored.",
    )
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument(
        "--scopes",
        default="query,read",
        help=f"comma-separated, of {', '.join(SCOPES)} (default: query,read)",
    )
    create.add_argument("--name", default="", help="a label shown in listings")
    create.add_argument(
        "--expires", type=expiry, help="a lifetime (12h, 30d, 8w) or an ISO 8601 time"
    )
    create.set_defaults(run=cmd_keys_create)

    listing = actions.add_parser(
        "list", help="list keys (ids, scopes, dates; never the keys)", description="List keys."
    )
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.set_defaults(run=cmd_keys_list)

    revoke = actions.add_parser(
        "revoke",
        help="revoke a key by its id; refused from the next request on",
        description="Revoke a key by its id (rgl_<id>_...): `ragline dev` refuses it from "
        "the next request on.",
    )
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.add_argument("--tenant", help="only if the key is this tenant's")
    revoke.set_defaults(run=cmd_keys_revoke)

    for parser in (create, listing, revoke):
        parser.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
        parser.add_argument("--json", action="store_true", help="print JSON")


def _keys(args: argparse.Namespace) -> Keys:
    use_data_dir(args.data_dir)
    from ragline.config import get_settings
    from ragline.tenancy import get_keys

    return get_keys(get_settings())


def _row(record: KeyRecord) -> str:
    expires = record.expires_at.isoformat(timespec="seconds") if record.expires_at else "never"
    state = "revoked" if record.revoked_at else "live"
    return (
        f"{record.id:<14} {record.tenant:<16} {','.join(record.scopes):<28} "
        f"{state:<8} expires {expires:<26} {record.name}"
    )


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create a key and print it (once)."""
    from ragline.errors import RaglineError

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        created = _keys(args).create(args.tenant, scopes, name=args.name, expires_at=args.expires)
    except (RaglineError, ValueError) as exc:
        print(f"ragline keys create: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"key": created.key, **created.record.to_dict()}, indent=2))
    else:
        print(created.key)
        print(f"  {_row(created.record)}", file=sys.stderr)
        print("  shown once: keep it now (only its digest is stored)", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List keys without their secrets."""
    records = _keys(args).list(args.tenant)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        for record in records:
            print(_row(record))
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by its id."""
    from ragline.errors import RaglineError

    key_id = args.key_id.removeprefix("rgl_").split("_")[0]
    try:
        _keys(args).revoke(key_id, tenant=args.tenant)
    except RaglineError as exc:
        print(f"ragline keys revoke: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"revoked": key_id}) if args.json else f"revoked {key_id}")
    return 0
