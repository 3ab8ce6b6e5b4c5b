"""What a stack's database holds, read as an outsider would: the end-to-end encryption tests
search it for plaintext that must not be there."""
from typing import Any

import bson
from pymongo import AsyncMongoClient

from shared.settings import Settings


async def documents(settings: Settings) -> list[tuple[str, bytes]]:
    """Every document of every collection of the stack's database: (collection, its BSON)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.mongo_db]
        return [(name, bson.encode(doc)) for name in await db.list_collection_names()
                async for doc in db[name].find({})]
    finally:
        await client.close()


async def database_dump(settings: Settings) -> list[bytes]:
    """Every document of the stack's database, as BSON."""
    return [raw for _, raw in await documents(settings)]


async def plaintext_found(settings: Settings, needles: list[str]) -> list[str]:
    """`collection: needle` for each of `needles` (UTF-8) found in a document of the database."""
    return [f"{name}: {needle}" for name, raw in await documents(settings) for needle in needles
            if needle.encode() in raw]
