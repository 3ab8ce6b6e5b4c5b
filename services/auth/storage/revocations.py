"""The `revocations` collection: logged-out token ids, the durable truth behind the Redis cache.

One document per revoked token, `{_id: token_id, user_id, expires_at}`; a TTL index on
`expires_at` lets MongoDB delete each one once its token has expired anyway (queries also skip
expired ones, since the TTL monitor runs only about once a minute).
"""
from collections.abc import AsyncIterator
from datetime import datetime

from pymongo import ASCENDING

from services.auth.domain.ports import Revocation
from shared.stores import Database


class MongoRevocationStore:
    """The `RevocationStore` port (services/auth/domain/ports.py)."""

    def __init__(self, db: Database):
        self.revocations = db["revocations"]

    async def ensure_indexes(self) -> None:
        await self.revocations.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)

    async def add(self, token_id: str, user_id: str | None, expires_at: datetime) -> None:
        """Idempotent: logging out twice (or a redelivered command) keeps one document."""
        await self.revocations.update_one(
            {"_id": token_id},
            {"$setOnInsert": {"user_id": user_id, "expires_at": expires_at}},
            upsert=True,
        )

    async def revoked_among(self, token_ids: list[str], now: datetime) -> set[str]:
        cursor = self.revocations.find({"_id": {"$in": token_ids}, "expires_at": {"$gt": now}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def active(self, now: datetime) -> AsyncIterator[Revocation]:
        """Every revocation whose token has not expired."""
        cursor = self.revocations.find({"expires_at": {"$gt": now}}, {"expires_at": 1})
        async for doc in cursor:
            yield Revocation(token_id=doc["_id"], expires_at=doc["expires_at"])
