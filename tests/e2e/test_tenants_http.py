"""Tenants over HTTP against ``ragline dev``: keys made with ``ragline keys``, uploads
under ``tenants/<tenant>/``, and every route asked for the caller's own data and for
another tenant's, with keys of different scopes. Also: no key, a revoked key and an
expired key are refused (401) from the very next request."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import DevProcess, http_json, run_ragline, wait_until

pytestmark = pytest.mark.slow


def _create_key(data_dir: Path, tenant: str, scopes: str, *extra: str) -> dict[str, Any]:
    run = run_ragline(
        "keys", "create", "--tenant", tenant, "--scopes", scopes, "--data-dir", str(data_dir),
        "--json", *extra,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    created: dict[str, Any] = json.loads(run.stdout)
    return created


@pytest.fixture(scope="module")
def tenants(dev_stack: DevProcess, endpoints: dict[str, str], s3: Any) -> dict[str, Any]:
    """Tenants alpha and beta, a key of every scope set below for each, and one document
    each, uploaded under its tenant's prefix into its collection."""
    keys: dict[str, dict[str, str]] = {}
    for tenant in ("alpha", "beta"):
        keys[tenant] = {
            scopes: _create_key(dev_stack.data_dir, tenant, scopes)["key"]
            for scopes in ("query", "read", "write", "query,read,write,review,admin")
        }
        s3.put_object(
            Bucket=endpoints["bucket"],
            Key=f"tenants/{tenant}/ferry.md",
            Body=f"# {tenant} ferry\n\nThe {tenant} ferry leaves at seven.\n".encode(),
            Metadata={"collection": f"{tenant}-docs"},
        )
    documents: dict[str, dict[str, Any]] = {}
    for tenant in ("alpha", "beta"):
        key = keys[tenant]["read"]

        def listed(key: str = key) -> list[dict[str, Any]] | None:
            status, body = http_json("GET", f"{endpoints['api']}/documents", api_key=key)
            assert status == 200, body
            return [d for d in body["documents"] if d["status"] == "ingested"] or None

        (documents[tenant],) = wait_until(listed, timeout=60, what=f"{tenant}'s document")
    return {"keys": keys, "documents": documents}


def _requests(tenant: str, document: dict[str, Any]) -> dict[str, tuple[str, str, Any]]:
    return {
        "query": ("POST", "/query", {"question": "When does the ferry leave?",
                                     "collection": f"{tenant}-docs"}),
        "retrieve": ("POST", "/retrieve", {"query": "ferry", "collection": f"{tenant}-docs"}),
        "list": ("GET", f"/documents?collection={tenant}-docs", None),
        "get": ("GET", f"/documents/{document['id']}", None),
        "delete": ("DELETE", f"/documents/{document['id']}", None),
        "feedback": ("POST", "/feedback", {"request_id": f"unknown-{tenant}", "rating": "up"}),
    }  # fmt: skip


NEEDS = {"query": "query", "retrieve": "query", "list": "read", "get": "read",
         "delete": "write", "feedback": "query"}  # fmt: skip


def test_no_key_of_any_scope_reaches_another_tenants_data_over_http(
    endpoints: dict[str, str], tenants: dict[str, Any]
) -> None:
    api, keys, documents = endpoints["api"], tenants["keys"], tenants["documents"]
    theirs = _requests("beta", documents["beta"])
    ours = _requests("alpha", documents["alpha"])
    leaks, wrong = [], []
    for scopes, key in keys["alpha"].items():
        for route, (method, path, body) in theirs.items():
            # WHEN alpha's key asks for beta's collection or document
            status, answer = http_json(method, api + path, body, api_key=key)
            # THEN it is 404, with nothing of beta's in it
            if status != 404 or documents["beta"]["source"] in json.dumps(answer):
                leaks.append((scopes, route, status, answer))
        for route, (method, path, body) in ours.items():
            if route in ("delete", "feedback"):
                continue  # a delete of its own changes the data; feedback needs a logged id
            status, answer = http_json(method, api + path, body, api_key=key)
            expected = 200 if NEEDS[route] in scopes.split(",") else 403
            if status != expected:
                wrong.append((scopes, route, status, answer))
    assert leaks == []
    assert wrong == []
    # AND beta's document is still there
    status, _ = http_json("GET", api + theirs["get"][1], api_key=keys["beta"]["read"])
    assert status == 200


def test_requests_without_a_valid_key_are_refused_but_health(
    endpoints: dict[str, str], tenants: dict[str, Any]
) -> None:
    api = endpoints["api"]
    refused = {
        "": "missing API key",
        "not-a-ragline-key": "malformed API key",
        "rgl_000000000000_nope": "unknown API key",
    }
    for method, path, body in _requests("alpha", tenants["documents"]["alpha"]).values():
        for key, reason in refused.items():
            # WHEN a route is asked with no key, a malformed one, an unknown one
            status, answer = http_json(method, api + path, body, api_key=key)
            # THEN it is 401 saying which, in the deployed API's refusal shape
            assert (status, answer["statusCode"]) == (401, 401)
            assert answer["message"].startswith(reason), answer
    assert http_json("GET", f"{api}/health", api_key="")[0] == 200


def test_a_revoked_key_is_refused_from_the_next_request(
    dev_stack: DevProcess, endpoints: dict[str, str], tenants: dict[str, Any]
) -> None:
    # GIVEN a working key
    created = _create_key(dev_stack.data_dir, "alpha", "read")
    url = f"{endpoints['api']}/documents"
    assert http_json("GET", url, api_key=created["key"])[0] == 200
    # WHEN it is revoked
    run = run_ragline("keys", "revoke", created["id"], "--data-dir", str(dev_stack.data_dir))
    assert run.returncode == 0, run.stderr
    # THEN the very next request is refused, saying why
    assert http_json("GET", url, api_key=created["key"]) == (
        401, {"message": "this API key was revoked", "statusCode": 401},
    )  # fmt: skip


def test_an_expired_key_is_refused_from_the_next_request(
    dev_stack: DevProcess, endpoints: dict[str, str], tenants: dict[str, Any]
) -> None:
    # GIVEN a key that expires in 45 seconds (the command itself takes a few, more on a
    # busy machine), working now
    expires = datetime.now(UTC) + timedelta(seconds=45)
    created = _create_key(dev_stack.data_dir, "alpha", "read", "--expires", expires.isoformat())
    url = f"{endpoints['api']}/documents"
    assert http_json("GET", url, api_key=created["key"])[0] == 200
    # WHEN its time has passed, THEN the next request is refused, saying why
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert http_json("GET", url, api_key=created["key"]) == (
        401, {"message": "this API key has expired", "statusCode": 401},
    )  # fmt: skip
