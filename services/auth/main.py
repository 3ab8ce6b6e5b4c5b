"""auth: wiring only (clients → stores → handlers)."""

from argon2 import PasswordHasher

from services.auth.domain.accounts import Passwords
from services.auth.handlers import build_router
from services.auth.storage.users import UserStore
from shared.runtime import Runtime, run
from shared.service import Router
from shared.tokens import Revocations, TokenCodec


async def wire(rt: Runtime) -> Router:
    users = UserStore(rt.db)
    await users.ensure_indexes()
    passwords = Passwords(
        PasswordHasher(time_cost=rt.settings.argon2_time_cost, memory_cost=rt.settings.argon2_memory_kib, parallelism=1)
    )
    tokens = TokenCodec(rt.settings.jwt_secret, rt.settings.token_ttl_seconds)
    return build_router(users, passwords, tokens, Revocations(rt.redis, rt.settings.namespace), rt.mongo)


if __name__ == "__main__":
    run("auth", wire)
