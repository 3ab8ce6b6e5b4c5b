"""auth's side of the Redis cache of revocations (shared/tokens.py's `Revocations`, which the
gateways read too), with Redis's errors turned into the domain's `Unreachable`: a logout whose
cache write fails is still durable, and the cache must then be marked incomplete."""
from collections.abc import Iterable

from services.auth.storage.redis_errors import reachable
from shared.tokens import Revocations


class RedisRevocationCache(Revocations):
    """The `RevocationCache` port (services/auth/domain/ports.py)."""

    async def revoke(self, token_id: str, expires_at: int) -> None:
        with reachable():
            await super().revoke(token_id, expires_at)

    async def revoke_many(self, revoked: Iterable[tuple[str, int]]) -> None:
        with reachable():
            await super().revoke_many(revoked)

    async def marker(self) -> str | None:
        with reachable():
            return await super().marker()

    async def run_id(self) -> str:
        with reachable():
            return await super().run_id()

    async def begin_rebuild(self) -> str:
        with reachable():
            return await super().begin_rebuild()

    async def still_building(self, building: str) -> None:
        with reachable():
            await super().still_building(building)

    async def finish_rebuild(self, building: str, run_id: str) -> bool:
        with reachable():
            return await super().finish_rebuild(building, run_id)

    async def mark_incomplete(self) -> None:
        with reachable():
            await super().mark_incomplete()
