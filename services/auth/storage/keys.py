"""The key directory's collections (owned by auth; docs/security.md "Keys and signatures").

device_keys: `{_id: "<user_id>|<device_id>", user_id, device_id, identity_key, signing_key,
  signature, published_at, fallback?: {key_id, key, signature}}`
one_time_keys: `{_id, user_id, device_id, key_id, key, signature}`, unique (user_id, device_id,
  key_id); each is handed out once: the claim that deletes it is the one that has it.
"""
from collections.abc import Sequence

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError

from services.auth.domain.ports import OneTimeKey, PublishedDevice
from shared.stores import Database, Document

# Candidates read per claim attempt: a concurrent claim may delete the first ones first.
CLAIM_CANDIDATES = 4


def _device_id(user_id: str, device_id: str) -> str:
    return f"{user_id}|{device_id}"  # user ids hold no "|"


def _key(doc: Document) -> OneTimeKey:
    return OneTimeKey(doc["key_id"], doc["key"], doc["signature"])


def _device(doc: Document) -> PublishedDevice:
    fallback = doc.get("fallback")
    return PublishedDevice(
        doc["user_id"], doc["device_id"], doc["identity_key"], doc["signing_key"], doc["signature"],
        doc["published_at"], _key(fallback) if fallback else None,
    )


class MongoKeyStore:
    """The `KeyStore` port (services/auth/domain/ports.py)."""

    def __init__(self, db: Database):
        self.devices = db["device_keys"]
        self.one_time = db["one_time_keys"]

    async def ensure_indexes(self) -> None:
        await self.devices.create_index([("user_id", ASCENDING)])
        await self.one_time.create_index(
            [("user_id", ASCENDING), ("device_id", ASCENDING), ("key_id", ASCENDING)], unique=True
        )

    async def device(self, user_id: str, device_id: str) -> PublishedDevice | None:
        doc = await self.devices.find_one({"_id": _device_id(user_id, device_id), "user_id": user_id})
        return _device(doc) if doc else None

    async def devices_of(self, user_ids: Sequence[str]) -> list[PublishedDevice]:
        cursor = self.devices.find({"user_id": {"$in": list(user_ids)}}).sort("_id", ASCENDING)
        return [_device(doc) async for doc in cursor]

    async def put_device(self, device: PublishedDevice) -> None:
        """Store (or replace) a device's keys; its fallback key goes with the old keys."""
        await self.devices.replace_one(
            {"_id": _device_id(device.user_id, device.device_id), "user_id": device.user_id},
            {
                "user_id": device.user_id, "device_id": device.device_id, "identity_key": device.identity_key,
                "signing_key": device.signing_key, "signature": device.signature,
                "published_at": device.published_at,
            },
            upsert=True,
        )

    async def set_fallback(self, user_id: str, device_id: str, key: OneTimeKey) -> None:
        await self.devices.update_one(
            {"_id": _device_id(user_id, device_id), "user_id": user_id},
            {"$set": {"fallback": {"key_id": key.key_id, "key": key.key, "signature": key.signature}}},
        )

    async def one_time_keys(self, user_id: str, device_id: str, key_ids: Sequence[str]) -> dict[str, OneTimeKey]:
        """Those of the key ids the device holds unclaimed."""
        if not key_ids:
            return {}
        cursor = self.one_time.find({"user_id": user_id, "device_id": device_id, "key_id": {"$in": list(key_ids)}})
        return {doc["key_id"]: _key(doc) async for doc in cursor}

    async def add_one_time_keys(self, user_id: str, device_id: str, keys: Sequence[OneTimeKey]) -> None:
        """Insert the keys; one already there (a retry, a concurrent publish) stays as it is."""
        if not keys:
            return
        docs = [
            {"user_id": user_id, "device_id": device_id, "key_id": k.key_id, "key": k.key, "signature": k.signature}
            for k in keys
        ]
        try:
            await self.one_time.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors") or []):
                raise

    async def count_one_time_keys(self, user_id: str, device_id: str) -> int:
        return await self.one_time.count_documents({"user_id": user_id, "device_id": device_id})

    async def claim_one_time_key(self, user_id: str, device_id: str) -> OneTimeKey | None:
        """The device's oldest unclaimed key, deleted: the delete by `_id` that succeeds is the one
        claim that has it (a concurrent claim that lost it tries the next)."""
        while True:
            cursor = (
                self.one_time.find({"user_id": user_id, "device_id": device_id})
                .sort("_id", ASCENDING)
                .limit(CLAIM_CANDIDATES)
            )
            candidates = await cursor.to_list()
            if not candidates:
                return None
            for doc in candidates:
                deleted = await self.one_time.delete_one({"_id": doc["_id"], "user_id": user_id, "device_id": device_id})
                if deleted.deleted_count == 1:
                    return _key(doc)

    async def drop_one_time_keys(self, user_id: str, device_id: str) -> None:
        await self.one_time.delete_many({"user_id": user_id, "device_id": device_id})

    async def remove_device(self, user_id: str, device_id: str) -> bool:
        """The device's keys, one-time keys and fallback gone; False if it had none."""
        await self.drop_one_time_keys(user_id, device_id)
        result = await self.devices.delete_one({"_id": _device_id(user_id, device_id), "user_id": user_id})
        return result.deleted_count == 1
