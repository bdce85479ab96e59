"""The documents use case: what the store holds, as the API lists, shows and deletes it.

Deleting a document here removes it from retrieval only; its object stays in the bucket
(and a later event for that key ingests it again).

Every method takes the caller's :class:`~ragline.identity.Identity` and sees only its
tenant's documents: another tenant's document or collection is "not found" (404), never
"forbidden", so its existence is not told. A key lacking the scope gets 403 only for
what is its tenant's own.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ragline.errors import InvalidRequestError, NotFoundError
from ragline.identity import OPERATOR, Identity
from ragline.store import get_store

if TYPE_CHECKING:
    from ragline.config import Settings
    from ragline.store import Store


def document_id(value: str) -> UUID:
    """Parse a document id; a malformed one is the caller's error (400)."""
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidRequestError(f"document id {value!r} is not a UUID") from exc


class Catalog:
    """Lists, shows and deletes stored documents, and reports the store's health."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        return cls(get_store(settings))

    def list(
        self,
        *,
        collection: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        identity: Identity = OPERATOR,
    ) -> dict[str, Any]:
        """A page of the tenant's documents ordered by source, and the cursor of the next
        page; 404 for a collection that is not the tenant's (or does not exist)."""
        if collection is not None and self.store.collection_owner(collection) != identity.tenant:
            raise NotFoundError(f"no collection {collection!r}")
        identity.require("read")
        documents, next_cursor = self.store.list_documents(
            collection=collection, status=status, limit=limit, cursor=cursor,
            tenant=identity.tenant,
        )  # fmt: skip
        return {"documents": [d.to_dict() for d in documents], "next_cursor": next_cursor}

    def get(self, id: str, *, identity: Identity = OPERATOR) -> dict[str, Any]:
        """One of the tenant's documents; 404 when the tenant has none with this id."""
        document = self.store.get_document(document_id(id), tenant=identity.tenant)
        if document is None:
            raise NotFoundError(f"no document with id {id}")
        identity.require("read")
        return document.to_dict()

    def delete(self, id: str, *, identity: Identity = OPERATOR) -> dict[str, Any]:
        """Delete one of the tenant's documents and its chunks; 404 when the tenant has
        none with this id."""
        if not identity.allows("write"):
            # Forbidden only if the document is the tenant's own; else it is not found.
            if self.store.get_document(document_id(id), tenant=identity.tenant) is not None:
                identity.require("write")
        elif self.store.delete_document(document_id(id), tenant=identity.tenant):
            return {"deleted": id}
        raise NotFoundError(f"no document with id {id}")

    def health(self) -> dict[str, Any]:
        """The service's health, with the database's."""
        return {"status": "ok", "database": self.store.health()}


@lru_cache(maxsize=4)
def get_catalog(settings: Settings) -> Catalog:
    """The process's catalog, created once."""
    return Catalog.from_settings(settings)
