"""Logging out durably, and keeping the Redis cache of revocations whole.

MongoDB (RevocationStore) is the truth: `auth.logout` writes there before it answers, then puts
the token id into the Redis cache the gateways read. Redis may lose its data at any time
(restarted empty, flushed, failed over, restarted from an older snapshot); the cache's marker
(shared/tokens.py) then says "incomplete" and the gateways ask auth instead, until
`CacheKeeper` has rebuilt the cache from MongoDB. The design is in shared/tokens.py's docstring.
"""
import logging
import time
from datetime import datetime, timezone

from services.auth.domain.ports import RevocationCache, RevocationStore, Unreachable, underlying
from shared.contracts import auth
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.wire import Caller
from shared.logs import log_event
from shared.tokens import BUILDING, marker_run_id

log = logging.getLogger("parley.auth")

# How often each auth replica looks at the marker: the longest the gateways ask auth (one RPC
# per resume and per heartbeat) after Redis lost its data.
CHECK_SECONDS = 1.0
REBUILD_BATCH = 500


class CacheKeeper:
    """Notices an incomplete cache and rebuilds it from MongoDB (every replica checks every
    CHECK_SECONDS: auth's periodic job; a rebuild under way elsewhere, marked `building:`, is
    left to finish)."""

    def __init__(self, store: RevocationStore, cache: RevocationCache) -> None:
        self.store = store
        self.cache = cache
        # A revocation that reached MongoDB but not Redis: the cache must be marked incomplete.
        self.missed = False

    def cache_missed(self) -> None:
        self.missed = True

    async def check(self) -> bool:
        """One look; True when it rebuilt the cache."""
        if self.missed:
            await self.cache.mark_incomplete()
            self.missed = False
        marker, run_id = await self.cache.marker(), await self.cache.run_id()
        if marker is not None and marker.startswith(BUILDING):
            return False  # another replica is rebuilding; its claim expires if it died
        if marker is not None and marker_run_id(marker) == run_id:
            return False
        await self.rebuild(run_id)
        return True

    async def rebuild(self, run_id: str) -> None:
        started = time.perf_counter()
        building = await self.cache.begin_rebuild()
        count = 0
        batch: list[tuple[str, int]] = []
        async for revocation in self.store.active(utc_now()):
            batch.append((revocation.token_id, _unix(revocation.expires_at)))
            if len(batch) >= REBUILD_BATCH:
                await self.cache.revoke_many(batch)
                await self.cache.still_building(building)
                count, batch = count + len(batch), []
        if batch:
            await self.cache.revoke_many(batch)
            count += len(batch)
        done = await self.cache.finish_rebuild(building, run_id)
        log_event(
            log, "revocations.cache_rebuilt" if done else "revocations.cache_rebuild_lost",
            logging.INFO if done else logging.WARNING,
            revocations=count, ms=round((time.perf_counter() - started) * 1000),
        )


def _unix(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


async def logout(caller: Caller, store: RevocationStore, cache: RevocationCache, keeper: CacheKeeper) -> None:
    """Revoke the caller's token: in MongoDB before answering, then in the Redis cache."""
    if caller.token_id is None or caller.token_expires_at is None:
        raise ParleyError.unauthorized()
    expires_at = datetime.fromtimestamp(caller.token_expires_at, timezone.utc)
    await store.add(caller.token_id, caller.user_id, expires_at)
    try:
        await cache.revoke(caller.token_id, caller.token_expires_at)
    except Unreachable as exc:
        # Durable already; the cache must not claim to be complete without it.
        keeper.cache_missed()
        log_event(log, "revocations.cache_write_failed", logging.WARNING, error=repr(underlying(exc)))
        try:
            await cache.mark_incomplete()
            keeper.missed = False
        except Unreachable:
            pass  # the keeper marks it as soon as Redis answers


async def revoked_among(request: auth.TokensRevoked, store: RevocationStore) -> auth.TokensRevokedReply:
    """For the gateway, when the Redis cache cannot say."""
    found = await store.revoked_among(list(dict.fromkeys(request.token_ids)), utc_now())
    return auth.TokensRevokedReply(revoked=sorted(found))
