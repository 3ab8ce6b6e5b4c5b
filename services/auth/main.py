"""auth: wiring only (clients → stores → handlers), and the keeper of the revocation cache."""
import asyncio

from argon2 import PasswordHasher

from services.auth.domain.accounts import Passwords
from services.auth.domain.limits import LoginRules, LoginThrottle, RegistrationLimit
from services.auth.domain.revocations import CacheKeeper
from services.auth.handlers import ProfileChanges, Sessions, build_router
from services.auth.remote import BrokerProfileEvents, FilesAvatars
from services.auth.storage.limits import RedisGates, RedisRateBucket
from services.auth.storage.revocation_cache import RedisRevocationCache
from services.auth.storage.revocations import MongoRevocationStore
from services.auth.storage.users import MongoUserStore
from shared.broker import RpcClient
from shared.runtime import Runtime, run
from shared.service import Router
from shared.tokens import TokenCodec

_background: set[asyncio.Task[None]] = set()


async def wire(rt: Runtime) -> Router:
    s = rt.settings
    users = MongoUserStore(rt.db)
    await users.ensure_indexes()
    revoked = MongoRevocationStore(rt.db)
    await revoked.ensure_indexes()
    passwords = Passwords(PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib, parallelism=1))
    cache = RedisRevocationCache(rt.redis, s.namespace)
    keeper = CacheKeeper(revoked, cache)
    task = asyncio.create_task(keeper.run_forever(), name="auth.revocation_cache")
    _background.add(task)
    task.add_done_callback(_background.discard)
    registrations = RedisRateBucket(
        rt.redis, s.namespace, "register", s.register_per_address_per_hour / 3600, s.register_burst_per_address
    )
    sessions = Sessions(
        tokens=TokenCodec(s.jwt_secret, s.token_ttl_seconds),
        revoked=revoked,
        cache=cache,
        keeper=keeper,
        login_throttle=LoginThrottle(RedisGates(rt.redis, s.namespace), LoginRules.from_settings(s)),
        register_limit=RegistrationLimit(registrations),
    )
    rpc = await RpcClient(rt.broker, rt.instance_id).start()
    changes = ProfileChanges(avatars=FilesAvatars(rpc), events=BrokerProfileEvents(rt.broker))
    return build_router(users, passwords, sessions, rt.mongo, changes)


if __name__ == "__main__":
    run("auth", wire)
