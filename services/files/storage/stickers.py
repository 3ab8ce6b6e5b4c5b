"""The `stickers` collection: each user's own stickers (owned by the files service alone).

`{_id: sticker_id (the sticker image's id), owner, url, added_at}`. Removing one forgets it
from its owner's list; the image stays, for the messages that carry it.
"""
from pymongo import ASCENDING

from services.files.domain.ports import Sticker
from shared.stores import Database, Document


def _sticker(doc: Document) -> Sticker:
    return Sticker(sticker_id=doc["_id"], owner=doc["owner"], url=doc["url"], added_at=doc["added_at"])


class MongoStickerStore:
    """The `StickerStore` port (services/files/domain/ports.py)."""

    def __init__(self, db: Database):
        self.stickers = db["stickers"]

    async def ensure_indexes(self) -> None:
        await self.stickers.create_index([("owner", ASCENDING), ("added_at", ASCENDING)])

    async def add(self, sticker: Sticker) -> None:
        await self.stickers.insert_one(
            {"_id": sticker.sticker_id, "owner": sticker.owner, "url": sticker.url, "added_at": sticker.added_at}
        )

    async def count(self, owner: str) -> int:
        return await self.stickers.count_documents({"owner": owner})

    async def owned(self, owner: str) -> list[Sticker]:
        cursor = self.stickers.find({"owner": owner}).sort([("added_at", ASCENDING), ("_id", ASCENDING)])
        return [_sticker(doc) async for doc in cursor]

    async def remove(self, sticker_id: str, owner: str) -> bool:
        result = await self.stickers.delete_one({"_id": sticker_id, "owner": owner})
        return result.deleted_count == 1
