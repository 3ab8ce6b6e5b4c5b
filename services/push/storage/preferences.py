"""What users set about their notifications: `push_preferences` (one document per user, `_id`
the user id) and `push_levels` (one per (user, conversation) set away from the default, `_id`
"<user>|<conversation>"). Every read on the message path is by `_id`."""
from datetime import datetime

from pymongo import ASCENDING

from shared.contracts.base import iso
from shared.contracts.push import ConversationPush, DoNotDisturb, PushPreferences
from shared.stores import Database, Document


def level_key(user_id: str, conversation_id: str) -> str:
    return f"{user_id}|{conversation_id}"


def _preferences(doc: Document | None) -> PushPreferences:
    if doc is None:
        return PushPreferences()
    dnd = doc.get("do_not_disturb")
    return PushPreferences(
        previews=doc.get("previews", True), do_not_disturb=DoNotDisturb(**dnd) if dnd else None,
        locale=doc.get("locale"),
    )


def _level(doc: Document) -> ConversationPush:
    until: datetime | None = doc.get("until")
    return ConversationPush(
        conversation_id=doc["conversation_id"], level=doc["level"], until=iso(until) if until else None,
    )


class MongoPreferenceStore:
    def __init__(self, db: Database):
        self.preferences = db["push_preferences"]
        self.levels = db["push_levels"]

    async def ensure_indexes(self) -> None:
        await self.levels.create_index([("user_id", ASCENDING)])

    async def get(self, user_id: str) -> PushPreferences:
        return _preferences(await self.preferences.find_one({"_id": user_id}))

    async def put(self, user_id: str, preferences: PushPreferences) -> None:
        await self.preferences.replace_one(
            {"_id": user_id}, {"_id": user_id, **preferences.model_dump(mode="json")}, upsert=True
        )

    async def of_users(self, user_ids: list[str]) -> dict[str, PushPreferences]:
        """Everyone asked for: their own, or the defaults."""
        if not user_ids:
            return {}
        found = {doc["_id"]: doc async for doc in self.preferences.find({"_id": {"$in": list(dict.fromkeys(user_ids))}})}
        return {u: _preferences(found.get(u)) for u in user_ids}

    async def set_level(self, user_id: str, setting: ConversationPush) -> None:
        """`until` is stored as a time, so that an expired setting is known as one."""
        until = datetime.fromisoformat(setting.until) if setting.until else None
        await self.levels.replace_one(
            {"_id": level_key(user_id, setting.conversation_id)},
            {"user_id": user_id, "conversation_id": setting.conversation_id, "level": setting.level, "until": until},
            upsert=True,
        )

    async def levels_of(self, user_id: str) -> list[ConversationPush]:
        return [_level(doc) async for doc in self.levels.find({"user_id": user_id}).sort("conversation_id", ASCENDING)]

    async def levels_for(self, conversation_id: str, user_ids: list[str]) -> dict[str, ConversationPush]:
        if not user_ids:
            return {}
        keys = [level_key(u, conversation_id) for u in dict.fromkeys(user_ids)]
        return {doc["user_id"]: _level(doc) async for doc in self.levels.find({"_id": {"$in": keys}})}
