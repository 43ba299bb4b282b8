"""Every index of every document class, created in one place (start-up and CLI commands)."""
from __future__ import annotations

from mongoengine import Document

from integrations.storage import audit, conversations, documents, outbox, panel, throttle

ALL_DOCUMENTS: tuple[type[Document], ...] = (
    *documents.ALL_DOCUMENTS, *outbox.DOCUMENTS, conversations.ConversationDoc, *panel.DOCUMENTS,
    *audit.DOCUMENTS, *throttle.DOCUMENTS,
)


def ensure_indexes() -> None:
    """Create the indexes declared in each document's ``meta`` (idempotent) and backfill keys."""
    for document in ALL_DOCUMENTS:
        document.ensure_indexes()
    documents.Student.backfill_phone_tails()
