"""The `push_subscriptions` collection: one document per (user, device), `_id` "<user>|<device>".

A device's endpoint (Web Push) or token (FCM, APNs) belongs to one device of one user: a
subscription arriving with an endpoint or token another device holds takes it over (a browser
shared by two accounts hears only the one logged in last).
"""
from datetime import datetime, timezone
from typing import Any

from pymongo import ASCENDING

from services.push.domain.ports import Subscription
from shared.stores import Database, Document


def subscription_key(user_id: str, device_id: str) -> str:
    return f"{user_id}|{device_id}"


def _document(sub: Subscription) -> Document:
    return {
        "_id": subscription_key(sub.user_id, sub.device_id), "user_id": sub.user_id, "device_id": sub.device_id,
        "kind": sub.kind, "endpoint": sub.endpoint, "p256dh": sub.p256dh, "auth": sub.auth, "token": sub.token,
        "locale": sub.locale, "updated_at": datetime.now(timezone.utc),
    }


def _record(doc: Document) -> Subscription:
    return Subscription(
        user_id=doc["user_id"], device_id=doc["device_id"], kind=doc["kind"], endpoint=doc.get("endpoint"),
        p256dh=doc.get("p256dh"), auth=doc.get("auth"), token=doc.get("token"), locale=doc.get("locale") or "en",
    )


def _address(sub: Subscription) -> dict[str, Any]:
    """What identifies where it goes: its endpoint or its token."""
    return {"endpoint": sub.endpoint} if sub.endpoint is not None else {"token": sub.token}


class MongoSubscriptionStore:
    def __init__(self, db: Database):
        self.subscriptions = db["push_subscriptions"]

    async def ensure_indexes(self) -> None:
        await self.subscriptions.create_index([("user_id", ASCENDING)])
        await self.subscriptions.create_index([("endpoint", ASCENDING)])
        await self.subscriptions.create_index([("token", ASCENDING)])

    async def put(self, subscription: Subscription) -> None:
        doc = _document(subscription)
        await self.subscriptions.delete_many({**_address(subscription), "_id": {"$ne": doc["_id"]}})
        await self.subscriptions.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def remove(self, user_id: str, device_id: str) -> bool:
        result = await self.subscriptions.delete_one({"_id": subscription_key(user_id, device_id)})
        return result.deleted_count == 1

    async def remove_if_same(self, subscription: Subscription) -> bool:
        key = subscription_key(subscription.user_id, subscription.device_id)
        result = await self.subscriptions.delete_one({"_id": key, **_address(subscription)})
        return result.deleted_count == 1

    async def of_users(self, user_ids: list[str]) -> list[Subscription]:
        if not user_ids:
            return []
        cursor = self.subscriptions.find({"user_id": {"$in": list(dict.fromkeys(user_ids))}})
        return [_record(doc) async for doc in cursor]
