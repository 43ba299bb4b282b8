"""MongoDB connection: ``mongomock://`` for the demo and tests, anything else is a real server."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import mongoengine

log = logging.getLogger(__name__)

DEFAULT_DB = "attendance"


def _db_name(uri: str) -> str:
    path = urlsplit(uri).path.lstrip("/")
    return path.split("/")[0] or DEFAULT_DB


def connect_db(uri: str, *, alias: str = "default"):
    """Connect mongoengine's ``alias`` to ``uri`` (MONGODB_URI).

    ``mongomock://host/db`` gives a fresh in-memory database (one per call); other URIs go to a
    real server. Reconnecting an alias replaces the previous connection.
    """
    mongoengine.disconnect(alias=alias)
    name = _db_name(uri)
    if uri.startswith("mongomock://"):
        import mongomock

        client = mongoengine.connect(
            db=name, alias=alias, host="mongodb://localhost",
            mongo_client_class=mongomock.MongoClient, tz_aware=True,
        )
    else:
        client = mongoengine.connect(db=name, alias=alias, host=uri, tz_aware=True)
    log.info("database connected (%s, db=%s)", "mongomock" if uri.startswith("mongomock://") else "mongodb", name)
    return client


def disconnect_db(*, alias: str = "default") -> None:
    mongoengine.disconnect(alias=alias)
