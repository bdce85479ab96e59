"""What PostgreSQL row-level security would cost as a second wall behind the store's
tenant scoping, per read, through psycopg and the Data API driver.

The store scopes every request's query with ``AND tenant = %s`` (one statement). Row-level
security keyed on the tenant needs the tenant in the session: ``set_config('ragline.tenant',
t, true)`` (SET LOCAL) inside the transaction of each statement it guards, since the
Data API keeps no session between calls outside a transaction and the functions' pooled
connections serve every tenant. The bench enables it (FORCE, as the application's role
owns the tables) on ``documents`` and on ``chunks`` (through the collection's owner), and
times a document read and a vector search both ways, checking that the policy hides the
other tenant's rows. The Data API figures leave out the network and the service's own
time per call (see bench/data_api_overhead.py); a guarded read there is four calls
(BeginTransaction, set_config, the read, CommitTransaction) instead of one.

    python bench/tenant_rls.py [--documents 40] [--repeat 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common" / "python"), str(ROOT / "bench")]

from data_api_overhead import median_ms, text  # noqa: E402

POLICIES = """
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_wall ON documents;
CREATE POLICY tenant_wall ON documents USING (
    coalesce(current_setting('ragline.tenant', true), '') = ''
    OR tenant = current_setting('ragline.tenant', true));
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunks FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_wall ON chunks;
CREATE POLICY tenant_wall ON chunks USING (
    coalesce(current_setting('ragline.tenant', true), '') = ''
    OR collection IN (SELECT name FROM collections
                      WHERE tenant = current_setting('ragline.tenant', true)));
"""


def measure(server: str, driver: str, documents: int, repeat: int) -> dict[str, float]:
    import psycopg
    from ragline.config import Settings
    from ragline.embeddings import create_embedder
    from ragline.ingest import Ingestor
    from ragline.store import Store, search
    from ragline.store import documents as sql
    from ragline.tenancy import Keys

    from tests.support.data_api import driver_settings
    from tests.support.databases import create_database

    url = create_database(server, f"bench_rls_{driver}")
    # The application's role: a superuser (the embedded server's default) bypasses
    # row-level security even when forced; Aurora's master user is no superuser.
    owner = Store(Settings(database_url=url))
    owner.migrate()
    owner.connection().execute(
        b"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_app') THEN"
        b" CREATE ROLE bench_app LOGIN PASSWORD 'bench'; END IF; END $$;"
        b" GRANT ALL ON ALL TABLES IN SCHEMA public TO bench_app;"
        b" GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO bench_app;"
        b" GRANT ALL ON SCHEMA public TO bench_app;"
        b" DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables"
        b" WHERE schemaname = 'public' LOOP"
        b" EXECUTE format('ALTER TABLE %I OWNER TO bench_app', t); END LOOP; END $$;"
    )
    owner.database.close()
    superuser = url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=f"bench_app:bench@{host}"))
    with driver_settings(url, driver) as base:
        settings = base.with_overrides(embeddings="hash")
        store = Store(settings)
        embedder = create_embedder(settings.embeddings, settings)
        ingestor = Ingestor(settings, store, embedder)
        for tenant in ("t0", "t1"):
            Keys(store).create(tenant, ["read"])
            for n in range(documents // 2):
                ingestor.ingest_bytes(
                    f"s3://bench/tenants/{tenant}/doc-{n}.md", text(n), collection=f"{tenant}-c"
                )
        # Enabled once the documents are in: COPY (the ingest's chunk load) is refused on a
        # table under row-level security ("COPY FROM not supported with row-level security").
        with psycopg.connect(superuser, autocommit=True) as admin:
            admin.execute(POLICIES.encode())
        mine = store.find_document("s3://bench/tenants/t0/doc-0.md")
        theirs = store.find_document("s3://bench/tenants/t1/doc-0.md")
        assert mine is not None and theirs is not None
        vector = embedder.embed_batch(["otter river budget"]).vectors[0]
        conn = store.connection()

        def scoped_read() -> None:
            assert store.get_document(mine.id, tenant="t0") is not None

        def scoped_search() -> None:
            assert store.vector_search("t0-c", vector, 5)

        figures = {
            "document read, WHERE tenant": median_ms(scoped_read, repeat),
            "vector search, owner checked": median_ms(scoped_search, repeat),
        }

        def guarded_read() -> None:
            with conn.transaction():
                conn.execute("SELECT set_config('ragline.tenant', %s, true)", ("t0",))
                assert sql.get_document(conn, mine.id) is not None

        def guarded_search() -> None:
            with conn.transaction():
                conn.execute("SELECT set_config('ragline.tenant', %s, true)", ("t0",))
                assert search.vector_search(conn, "t0-c", vector, 5, ef_search=40)

        with conn.transaction():  # the wall holds: t0 cannot read t1's document
            conn.execute("SELECT set_config('ragline.tenant', %s, true)", ("t0",))
            assert sql.get_document(conn, theirs.id) is None
        figures["document read, RLS"] = median_ms(guarded_read, repeat)
        figures["vector search, RLS"] = median_ms(guarded_search, repeat)
        store.database.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ragline-bench-rls-"))
    os.environ.update(
        RAGLINE_DATA_DIR=str(data_dir),
        POWERTOOLS_METRICS_DISABLED="true",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # never sent: the adapter answers every call
        AWS_DEFAULT_REGION="us-east-1",
    )
    from ragline.config import Settings
    from ragline.store.database import embedded_url

    server = embedded_url(Settings.from_env())
    results = {d: measure(server, d, args.documents, args.repeat) for d in ("psycopg", "data-api")}
    print(f"{args.documents} documents of 2 tenants; medians of {args.repeat} calls (ms)")
    print(f"{'':30} {'psycopg':>9} {'data-api':>9}")
    for name in results["psycopg"]:
        print(f"{name:30} {results['psycopg'][name]:9.2f} {results['data-api'][name]:9.2f}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
