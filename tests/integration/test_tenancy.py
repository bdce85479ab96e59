"""Tenancy in the store, on both drivers: keys (stored as digests, refused once revoked
or expired), uploads landing only in their own tenant's collections, and cost per
tenant in ``ragline stats --tenant``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ragline.config import Settings
from ragline.dev.stats import run_stats
from ragline.errors import UnauthorizedError
from ragline.ingest import Ingestor
from ragline.ingest.pipeline import DocumentFailedError, object_tenant
from ragline.outcomes import QueryRecord
from ragline.store import Store
from ragline.tenancy import Keys, key_digest


@pytest.fixture(scope="module")
def store(store_settings: Settings) -> Store:
    return Store(store_settings)


@pytest.fixture(scope="module")
def keys(store: Store) -> Keys:
    return Keys(store)


def test_a_key_is_stored_as_its_digest_and_authenticates_as_its_tenant(
    keys: Keys, store: Store
) -> None:
    # WHEN a key is created for a new tenant
    created = keys.create("acme", ["query", "read"], name="ci")
    # THEN it authenticates as that tenant with those scopes
    identity = keys.authenticate(created.key)
    assert (identity.tenant, identity.scopes, identity.key_id) == (
        "acme", frozenset({"query", "read"}), created.record.id,
    )  # fmt: skip
    # AND the store holds its digest, never the key
    rows = store.connection().execute("SELECT * FROM api_keys WHERE id = %s", (created.record.id,))
    (row,) = rows.fetchall()
    assert created.key not in [str(v) for v in row] and key_digest(created.key) in row
    assert [k.id for k in keys.list("acme")] == [created.record.id]


@pytest.mark.parametrize(
    "api_key", [None, "", "not-a-key", "rgl_", "rgl_abc_" + "x" * 200, "rgl_0123456789ab_guess"]
)
def test_missing_malformed_and_unknown_keys_are_401(keys: Keys, api_key: str | None) -> None:
    with pytest.raises(UnauthorizedError):
        keys.authenticate(api_key)


def test_a_revoked_key_is_refused_on_the_next_call(keys: Keys) -> None:
    created = keys.create("acme", ["read"])
    assert keys.authenticate(created.key).tenant == "acme"
    # WHEN it is revoked, THEN the next authentication fails
    keys.revoke(created.record.id, tenant="acme")
    with pytest.raises(UnauthorizedError, match="revoked"):
        keys.authenticate(created.key)


def test_an_expired_key_is_refused(keys: Keys) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    created = keys.create("acme", ["read"], expires_at=expires)
    assert keys.authenticate(created.key, now=expires - timedelta(seconds=1)).tenant == "acme"
    with pytest.raises(UnauthorizedError, match="expired"):
        keys.authenticate(created.key, now=expires)


def test_another_tenant_cannot_revoke_a_key(keys: Keys) -> None:
    from ragline.errors import NotFoundError

    created = keys.create("acme", ["read"])
    with pytest.raises(NotFoundError):
        keys.revoke(created.record.id, tenant="other")
    assert keys.authenticate(created.key).tenant == "acme"


def test_an_objects_key_names_its_tenant() -> None:
    assert object_tenant("s3://b/tenants/acme/docs/a.md") == "acme"
    assert object_tenant("s3://b/notes/a.md") == "default"
    assert object_tenant("file:///tmp/a.md") == "default"
    assert object_tenant("s3://b/tenants/acme") is None  # no tenant folder
    assert object_tenant("s3://b/tenants/Not A Tenant/a.md") is None


def test_uploads_land_only_in_their_own_tenants_collections(
    store_settings: Settings, keys: Keys, store: Store
) -> None:
    ingestor = Ingestor.from_settings(store_settings)
    keys.create("north", ["read"])
    keys.create("south", ["read"])
    # GIVEN north's collection, made by its first upload
    ok = ingestor.ingest_bytes("s3://b/tenants/north/a.md", b"# A\n\nNorth text.\n", collection="n")
    assert ok.status == "ingested" and store.collection_owner("n") == "north"
    # WHEN south, or an object outside tenants/, names north's collection in its metadata
    for source in ("s3://b/tenants/south/b.md", "s3://b/c.md"):
        with pytest.raises(DocumentFailedError, match="not tenant"):
            ingestor.ingest_bytes(source, b"# B\n\nSouth text.\n", collection="n")
        # THEN nothing of it is stored
        assert store.find_document(source) is None
    # AND an unknown tenant's upload is refused, not stored
    with pytest.raises(DocumentFailedError, match="no tenant 'west'"):
        ingestor.ingest_bytes("s3://b/tenants/west/d.md", b"# D\n\nWest.\n", collection="w")
    assert store.collection_owner("w") is None
    # AND north's collection holds north's document only
    docs, _ = store.list_documents(collection="n")
    assert [d.source for d in docs] == ["s3://b/tenants/north/a.md"]
    assert docs[0].tenant == "north"


def _query(n: int, tenant: str, cost: float, tokens: int) -> QueryRecord:
    return QueryRecord(
        request_id=f"cost-{tenant}-{n}", collection=f"{tenant}-docs", profile="simple",
        provider="openai", model="gpt-4o-mini", prompt="answer@v2",
        input_tokens=tokens, output_tokens=10, cached_input_tokens=0, embedding_tokens=3,
        cost_usd=cost, cost_estimated=False, retrieve_ms=1.0, generate_ms=2.0, total_ms=3.0,
        chunks_retrieved=1, top_score=0.5, abstained=False, needs_review=False,
        fallback=False, sources=[], tenant=tenant,
    )  # fmt: skip


def test_stats_for_a_tenant_show_that_tenants_tokens_and_cost_only(store: Store) -> None:
    # GIVEN three queries by red (1,000 input tokens, $0.25 each) and two by blue
    # (7,777 input tokens, $1.50 each)
    for n in range(3):
        store.log_query(_query(n, "red", 0.25, 1000))
    for n in range(2):
        store.log_query(_query(n, "blue", 1.5, 7777))
    # WHEN the stats are asked for red
    report = run_stats(store, timedelta(hours=1), tenant="red")
    # THEN they count red's queries, tokens and cost, and nothing of blue's
    assert "tenant red" in report
    assert "queries    3" in report and "input 3,000" in report and "$0.750000" in report
    assert "7,777" not in report and "15,554" not in report and "blue" not in report
    stats = store.query_stats(datetime.now(UTC) - timedelta(hours=1), tenant="blue")
    assert (stats["queries"], stats["input_tokens"], stats["cost_usd"]) == (2, 15554, 3.0)
    # AND without a tenant the report splits by tenant
    everyone = run_stats(store, timedelta(hours=1))
    assert "by tenant" in everyone and "red" in everyone and "blue" in everyone
