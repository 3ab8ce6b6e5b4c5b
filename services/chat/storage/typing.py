"""Typing notices are not stored; Redis only remembers, for a moment, that one was just sent."""
from shared.redis_slots import RedisClient


class TypingThrottle:
    def __init__(self, redis: RedisClient, namespace: str, window_ms: int = 1000):
        self.redis = redis
        self.prefix = f"{namespace}:typing:"
        self.window_ms = window_ms

    async def first_in_window(self, conversation_id: str, user_id: str) -> bool:
        """True at most once per window per (conversation, user): the notice worth pushing."""
        return bool(await self.redis.set(f"{self.prefix}{conversation_id}:{user_id}", "1", nx=True, px=self.window_ms))
